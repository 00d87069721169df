#!/usr/bin/env bash
# Switchboard + Fisher -> Hub5'00 hybrid recipe with Big-Little-Net acoustic models.
#
# Usage: ./run.sh [--stage N] [--stop-stage M] [--swbd DIR --swbd-text DIR --fisher DIR --fisher-text DIR
#                  --eval2000 DIR --eval2000-text DIR] [--corpus-size default|tiny] [--nj N]
#                 [--num-leaves-tri1 N] [--num-leaves-tri2 N]
#
# Without LDC directories the recipe builds its embedded default, a synthetic telephone-band
# conversational corpus, so that every stage runs for real on any machine.
#
#   stage 0: corpus -> Lhotse manifests                 data/manifests  (+ data/corpus for synth)
#   stage 1: 64 log-mel filterbanks (lilcom), CMVN       data/fbank
#   stage 2: lexicon -> lang (L.fst, phones, words)      data/lang
#   stage 3: monophone GMM-HMM, flat start               exp/mono
#   stage 4: triphone GMM-HMM with our decision tree     exp/tri1
#   stage 5: second triphone pass + final alignments     exp/tri2, exp/tri2_ali
#
# The tools' defaults are the library's; conf/*.conf (fbank, gmm_common, gmm_mono, gmm_tri) holds
# only what this recipe sets differently. Every stage keeps a record of its arguments and of its
# inputs' and outputs' content (asr_bl.stage): re-running skips finished work ("stage N: skipped"),
# redoes a stage whose inputs changed, saying why, and rewrites no file whose content is the same,
# so a redone upstream step with the same result does not make later stages redo (--force on a
# tool redoes it anyway). Logs go to exp/log/stage<N>.log as well as the terminal. Tied states (= the acoustic model's
# outputs): 1000/2000 for the embedded default, 150/200 for --corpus-size tiny, 16000/32000 with
# the LDC corpora (the paper's 32k).

set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2
seed=0
corpus_size=default
swbd=
swbd_text=
fisher=
fisher_text=
eval2000=
eval2000_text=
num_leaves_tri1=
num_leaves_tri2=

. ./local/parse_options.sh

python=../../.venv/bin/python
[ -x "$python" ] || { echo "ERROR: $python not found; run 'bash tools/setup_env.sh' in the repo root first." >&2; exit 1; }
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1

mkdir -p exp/log
log() { echo "$(date '+%F %T') [run.sh] $*"; }
run_stage() {  # run_stage N DESCRIPTION: true when stage N is selected; logs its start.
  local n=$1; shift
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    log "stage $n: $*"; return 0
  fi
  return 1
}
for f in fbank gmm_common gmm_mono gmm_tri; do
  [ -f "conf/$f.conf" ] || { echo "ERROR: conf/$f.conf is missing (restore it from git)" >&2; exit 1; }
done
conf() {  # conf NAME...: the --option=value lines of conf/NAME.conf, comments dropped
  local f
  for f in "$@"; do grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "conf/$f.conf" || true; done
}
logged() {  # logged N CMD...: run CMD, tee its output to exp/log/stage<N>.log, fail on error;
            # then log whether the tool skipped (its "<step>: skipping, ..." line) or did the work.
  local n=$1; shift
  local t0=$SECONDS out
  out=$(mktemp)
  "$@" 2>&1 | tee -a "exp/log/stage$n.log" "$out"
  if grep -q ': skipping, ' "$out" && ! grep -qE ': (redoing|running)[ ,]' "$out"; then
    log "stage $n: skipped ($*: up to date)" | tee -a "exp/log/stage$n.log"
  else
    log "stage $n: done in $((SECONDS - t0)) s" | tee -a "exp/log/stage$n.log"
  fi
  rm -f "$out"
}
install_if_changed() {  # install_if_changed SRC DST: copy (atomically) only when the content differs,
                        # so that an unchanged file keeps its mtime and nothing downstream redoes.
  cmp -s "$1" "$2" && return 0
  cp "$1" "$2.partial" && mv -f "$2.partial" "$2" && log "stage 0: updated $2"
}

if [ -n "$swbd" ]; then
  corpus=swbd
  [ -n "$num_leaves_tri1" ] || num_leaves_tri1=16000
  [ -n "$num_leaves_tri2" ] || num_leaves_tri2=32000
else
  corpus=synth
  if [ "$corpus_size" = tiny ]; then  # a few minutes of audio: a few hundred tied states at most
    [ -n "$num_leaves_tri1" ] || num_leaves_tri1=150
    [ -n "$num_leaves_tri2" ] || num_leaves_tri2=200
  else
    [ -n "$num_leaves_tri1" ] || num_leaves_tri1=1000
    [ -n "$num_leaves_tri2" ] || num_leaves_tri2=2000
  fi
fi

if run_stage 0 "corpus and manifests ($corpus)"; then
  if [ "$corpus" = synth ]; then
    logged 0 local/make_synthetic_corpus.sh --size "$corpus_size" --seed "$seed" --nj "$nj" data/corpus
    mkdir -p data/manifests
    for f in data/corpus/synth_*.jsonl.gz; do install_if_changed "$f" "data/manifests/${f##*/}"; done
    for f in lexicon.txt lm_text.txt; do install_if_changed "data/corpus/$f" "data/$f"; done
  else
    logged 0 $python -m asr_bl.bin.prepare --swbd "$swbd" --swbd-text "$swbd_text" --fisher "$fisher" \
      --fisher-text "$fisher_text" --eval2000 "$eval2000" --eval2000-text "$eval2000_text" \
      --out-dir data/manifests
  fi
fi

if run_stage 1 "features"; then
  logged 1 $python -m asr_bl.bin.features --manifest-dir data/manifests --prefix "$corpus" \
    --out-dir data/fbank --num-jobs "$nj" $(conf fbank)
fi

if run_stage 2 "lang"; then
  logged 2 $python -m asr_bl.bin.gmm prepare-lang --lexicon data/lexicon.txt --out-dir data/lang
fi

if run_stage 3 "monophone training"; then
  logged 3 $python -m asr_bl.bin.gmm train-mono --cuts data/fbank/${corpus}_cuts_train.jsonl.gz \
    --lang data/lang --out-dir exp/mono --num-jobs "$nj" $(conf gmm_common gmm_mono)
fi

if run_stage 4 "triphone pass 1 ($num_leaves_tri1 leaves)"; then
  logged 4 $python -m asr_bl.bin.gmm train-tri --cuts data/fbank/${corpus}_cuts_train.jsonl.gz \
    --lang data/lang --ali-dir exp/mono --num-leaves "$num_leaves_tri1" --out-dir exp/tri1 --num-jobs "$nj" \
    $(conf gmm_common gmm_tri)
fi

if run_stage 5 "triphone pass 2 ($num_leaves_tri2 leaves) and final alignments"; then
  logged 5 $python -m asr_bl.bin.gmm train-tri --cuts data/fbank/${corpus}_cuts_train.jsonl.gz \
    --lang data/lang --ali-dir exp/tri1 --num-leaves "$num_leaves_tri2" --out-dir exp/tri2 --num-jobs "$nj" \
    $(conf gmm_common gmm_tri)
  logged 5 $python -m asr_bl.bin.gmm align --cuts data/fbank/${corpus}_cuts_train.jsonl.gz \
    --lang data/lang --model-dir exp/tri2 --out-dir exp/tri2_ali --num-jobs "$nj" $(conf gmm_common)
fi

log "done (stages $stage..$stop_stage)."
