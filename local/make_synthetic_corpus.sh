#!/usr/bin/env bash
# Build the embedded synthetic telephone corpus (no LDC data needed) for Kaldi-style recipes.
#
# Usage: local/make_synthetic_corpus.sh [--size default|tiny] [--seed N] [--nj N] <out-dir>
#   default: ~10 h of training speech, a few minutes on 2 cores; tiny: seconds (for tests).
# Writes <out-dir>/synth_{recordings,supervisions}_{train,dev,test_swb,test_ch}.jsonl.gz
# (also linked from <out-dir>/manifests/), lexicon.txt, lm_text.txt and SUMMARY.md.
# Re-running resumes an interrupted build. Uses espeak-ng (pip), and flite / festival when
# installed (bash tools/setup_env.sh installs them as root).
set -euo pipefail

size=default
seed=0
nj=2
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --nj) nj=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) echo "$0: unknown option $1 (see --help)" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "Usage: $0 [--size default|tiny] [--seed N] [--nj N] <out-dir>" >&2; exit 1; }

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
python=${PYTHON:-$top/.venv/bin/python}
[ -x "$python" ] || { echo "$0: $python not found; run 'bash tools/setup_env.sh' in $top first." >&2; exit 1; }
exec "$python" -m asr_bl.bin.make_corpus --out-dir "$1" --size "$size" --seed "$seed" --num-jobs "$nj"
