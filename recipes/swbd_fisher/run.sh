#!/usr/bin/env bash
# Switchboard + Fisher -> Hub5'00 hybrid recipe with Big-Little-Net acoustic models.
#
# Usage: ./run.sh [--stage N] [--stop-stage M] [--swbd DIR --swbd-text DIR --fisher DIR --fisher-text DIR
#                  --eval2000 DIR --eval2000-text DIR [--num-dev N]] [--corpus-size default|tiny] [--nj N]
#                 [--num-leaves-tri1 N] [--num-leaves-tri2 N] [--models "PRESET ..."] [--train-conf NAME]
#                 [--kaldi-check dev|all|false]
#
# Without LDC directories the recipe builds its embedded default, a synthetic telephone-band
# conversational corpus, so that every stage runs for real on any machine. With --swbd, stage 0
# (asr_bl-prepare) checks every LDC tree's layout first, then writes the manifests and data/{lexicon.txt,
# lexicon_oov.txt, lm_text.txt, lm_dev.txt, eval2000.stm, eval2000.glm}; the first --num-dev (4000,
# Kaldi's train_dev) Switchboard utterances are dev. Without sph2pipe on PATH the shorten-compressed
# .sph files are decoded once into FLAC under data/audio.
#
#   stage 0: corpus -> Lhotse manifests                 data/manifests  (+ data/corpus for synth)
#   stage 1: 64 log-mel filterbanks (lilcom), CMVN       data/fbank
#   stage 2: lexicon -> lang (L.fst, phones, words)      data/lang
#   stage 3: monophone GMM-HMM, flat start               exp/mono
#   stage 4: triphone GMM-HMM with our decision tree     exp/tri1
#   stage 5: second triphone pass + final alignments     exp/tri2, exp/tri2_ali
#   stage 6: n-gram LMs (first pass, rescoring) + HCLG   exp/lm/{tg,fg}, exp/tri2/graph_tg
#   stage 7: decode + score the tri2 GMM (dev-tuned)     exp/tri2/decode_{dev,test_swb,test_ch}[_kaldi]
#   stage 8: dev alignments; CE training of --models     exp/tri2_ali_dev, exp/am_<preset>
#   stage 9: decode + score each network (dev-tuned)     exp/am_<preset>/decode_{dev,test_swb,test_ch}
#   stage 10: Table-3-like summary                       exp/RESULTS.md, exp/results.json, exp/wer_vs_macs.png
#
# Decoding (stages 7, 9): k2 lattices on the first-pass trigram graph; the LM weight x insertion
# penalty is tuned on dev and applied to the test sets; lattices are rescored with the 4-gram.
# --kaldi-check all (default) also decodes every set with Kaldi's decoder for the GMM, at the k2
# search's own scale (the backends' cross-check: WER and 1-best agreement); dev: dev only; false: k2 only.
# A k2 decode searches on one core, so up to --nj of them run side by side: the test sets of stage 7,
# the networks of stage 9 (each network's sets one after the other, which bounds the memory).
# Training (stage 8): conf/train.conf on CPU (width and epochs sized for 2 cores), conf/train_gpu.conf
# when CUDA is present, conf/train_tiny.conf for --corpus-size tiny; --train-conf NAME overrides.
# --models: any presets of asr_bl.models (asr_bl-flops all lists them); unknown names are refused
# before any stage runs. Per-stage times go to exp/log/times.tsv (stage, seconds, done|skipped, command,
# start and end epoch seconds) and into the summary (wall time: commands side by side count once).
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
script=$(readlink -f "$0")  # --help reads the header from it, wherever run.sh was called from
cd "$(dirname "$script")"

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
num_dev=4000
num_leaves_tri1=
num_leaves_tri2=
models="resnet22 bl-resnet22-a4-b1"
train_conf=
kaldi_check=all

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
  local start end status out
  start=$(date +%s); out=$(mktemp)
  "$@" 2>&1 | tee -a "exp/log/stage$n.log" "$out"
  end=$(date +%s)
  if grep -q ': skipping, ' "$out" && ! grep -qE ': (redoing|running)[ ,]' "$out"; then
    status=skipped; log "stage $n: skipped ($*: up to date)" | tee -a "exp/log/stage$n.log"
  else
    status=done; log "stage $n: done in $((end - start)) s" | tee -a "exp/log/stage$n.log"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$((end - start))" "$status" "$*" "$start" "$end" >> exp/log/times.tsv
  rm -f "$out"
}
install_if_changed() {  # install_if_changed SRC DST: copy (atomically) only when the content differs,
                        # so that an unchanged file keeps its mtime and nothing downstream redoes.
  cmp -s "$1" "$2" && return 0
  cp "$1" "$2.partial" && mv -f "$2.partial" "$2" && log "stage 0: updated $2"
}

# Refused at start, before any stage runs: an unknown preset in --models, a missing train conf.
$python - $models <<'PY' || exit 1
import sys
from asr_bl.models import PRESETS
unknown = [m for m in sys.argv[1:] if m not in PRESETS]
if unknown or not sys.argv[1:]:
    sys.exit(f"ERROR: --models {' '.join(sys.argv[1:])!r}: unknown preset(s) {unknown or '(none given)'}; "
             f"choose from: {' '.join(PRESETS)}")
PY
if [ -z "$train_conf" ]; then
  if [ "$corpus_size" = tiny ] && [ -z "$swbd" ]; then train_conf=train_tiny
  elif $python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    train_conf=train_gpu
  else train_conf=train; fi
fi
for f in lm_tg lm_fg decode decode_nnet "$train_conf"; do
  [ -f "conf/$f.conf" ] || { echo "ERROR: conf/$f.conf is missing (restore it from git, or fix --train-conf)" >&2; exit 1; }
done
need() {  # need N FILE...: stage N cannot run before the files exist; name the stage that makes them.
  local n=$1 f; shift
  for f in "$@"; do
    [ -e "$f" ] || { echo "ERROR: stage $n needs $f, which an earlier stage makes (run ./run.sh --stage $(maker "$f"))" >&2; exit 1; }
  done
}
maker() {  # maker FILE: the stage that writes FILE
  case "$1" in
    data/fbank/*) echo 1 ;; data/lang*) echo 2 ;; exp/lm/*|*/graph_tg/*) echo 6 ;; exp/tri2/decode*) echo 7 ;;
    exp/tri2_ali_dev*|exp/am_*) echo 8 ;; exp/tri2_ali*|exp/tri2/*) echo 5 ;; *) echo 0 ;;
  esac
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
      --num-dev "$num_dev" --num-jobs "$nj" --out-dir data/manifests --data-dir data --audio-cache data/audio
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

if [ "$corpus" = synth ]; then glm=project; else glm=data/eval2000.glm; fi
graph=exp/tri2/graph_tg
cuts_of() { echo "data/fbank/${corpus}_cuts_$1.jsonl.gz"; }
reference_stm() {  # reference_stm SET: the test sets of eval2000 are scored against LDC's STM
  if [ "$corpus" = swbd ] && [ "$1" != dev ]; then echo "--stm data/eval2000.stm"; fi
}
best() {  # best KEY SWEEP_JSON: a tuned setting from a dev decode's sweep.json
  $python -c 'import json, sys; print(json.load(open(sys.argv[2]))[sys.argv[1]])' "$1" "$2"
}
in_parallel() {  # in_parallel FUNC ARG...: FUNC ARG for each ARG, at most $nj at a time, in the background
                 # (a k2 decode searches on one core, so on 2 cores two decodes side by side halve the wall
                 # time); waits for all of them and fails when any failed. Their log lines interleave.
  local func=$1 arg pid rc=0 pids=(); shift
  for arg in "$@"; do
    if [ "${#pids[@]}" -ge "$nj" ]; then wait "${pids[0]}" || rc=1; pids=("${pids[@]:1}"); fi
    "$func" "$arg" & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  [ "$rc" = 0 ] || { echo "ERROR: a decode run side by side failed; its output is above and in exp/log" >&2; exit 1; }
}
decode_sets() {  # decode_sets N MODEL_DIR BACKEND [twin [KALDI_SETS]]: dev with the weight sweep
                 # (k2), then the test sets with dev's best LM weight x insertion penalty, rescored
                 # with the 4-gram (k2), side by side unless set_jobs=1. The kaldi backend (no lattices,
                 # no penalty; its own --num-jobs processes) decodes every set of KALDI_SETS at the k2
                 # search's own scale (LM weight 1/acwt, penalty 0), into decode_<set>_kaldi, one set after
                 # the other: the same search, so the two 1-bests can be compared; "twin": the k2 test
                 # decodes also write their 1-best at that setting.
  local n=$1 mdir=$2 backend=$3 twin=${4:-} kaldi_sets=${5:-dev} set lmw wip suffix= sets="test_swb test_ch" extra
  local decode_confs=decode
  [ "$n" != 9 ] || decode_confs="decode decode_nnet"
  if [ "$backend" = k2 ]; then
    extra="--rescore-lm exp/lm/fg"
    logged "$n" $python -m asr_bl.bin.decode --test-set dev --model-dir "$mdir" --graph-dir $graph \
      --out-dir "$mdir/decode_dev" --backend k2 --num-jobs "$nj" --glm "$glm" --no-progress $extra $(conf $decode_confs)
    lmw=$(best best_lm_weight "$mdir/decode_dev/sweep.json"); wip=$(best best_wip "$mdir/decode_dev/sweep.json")
    [ -z "$twin" ] || extra="$extra --extra-setting $(best search_lm_weight "$mdir/decode_dev/sweep.json"),0"
  else
    lmw=$(best search_lm_weight "$mdir/decode_dev/sweep.json"); wip=0; suffix=_kaldi; sets=$kaldi_sets; extra=
  fi
  decode_one() {  # decode_one SET: one test set at the setting chosen above
    logged "$n" $python -m asr_bl.bin.decode --test-set "$1" --model-dir "$mdir" --graph-dir $graph \
      --out-dir "$mdir/decode_$1$suffix" --backend "$backend" --num-jobs "$nj" --glm "$glm" --no-progress \
      --lm-weight "$lmw" --wip "$wip" $extra $(reference_stm "$1") $(conf $decode_confs)
  }
  if [ "$backend" = k2 ] && [ "${set_jobs:-$nj}" -gt 1 ]; then in_parallel decode_one $sets
  else for set in $sets; do decode_one "$set"; done; fi
}
decode_network() {  # decode_network PRESET: stage 9 for one trained network, its sets one after the other
                    # (the networks themselves decode side by side: two at a time bound the memory)
  local set_jobs=1
  decode_sets 9 "exp/am_$1" k2
}

if run_stage 6 "n-gram LMs and the decoding graph"; then
  need 6 data/lang/words.txt exp/tri2/final.mdl data/lm_text.txt "$(cuts_of dev)"
  if [ "$corpus" = synth ]; then  # held-out text for the perplexity: dev's transcripts (not in the LM text)
    $python local/supervision_text.py "$(cuts_of dev)" data/lm_dev.txt
  fi
  if [ "$corpus" = synth ]; then lm_conf=; else lm_conf=_ldc; fi
  logged 6 $python -m asr_bl.bin.lm train --text data/lm_text.txt --words data/lang/words.txt \
    --dev-text data/lm_dev.txt --out-dir exp/lm/tg $(conf lm_tg$lm_conf)
  logged 6 $python -m asr_bl.bin.lm train --text data/lm_text.txt --words data/lang/words.txt \
    --dev-text data/lm_dev.txt --out-dir exp/lm/fg --no-fst $(conf lm_fg$lm_conf)
  logged 6 $python -m asr_bl.bin.mkgraph --lang data/lang --model-dir exp/tri2 --lm-dir exp/lm/tg --out-dir $graph
fi

if run_stage 7 "decode the tri2 GMM"; then
  need 7 $graph/HCLG.fst exp/lm/fg/lm.arpa
  if [ "$kaldi_check" != false ]; then
    decode_sets 7 exp/tri2 k2 twin
    if [ "$kaldi_check" = all ]; then check_sets="dev test_swb test_ch"; else check_sets=dev; fi
    decode_sets 7 exp/tri2 kaldi "" "$check_sets"
    logged 7 $python local/compare_hyps.py --out exp/tri2/backend_agreement.json \
      $(for set in $check_sets; do echo exp/tri2/decode_$set; done)
  else
    decode_sets 7 exp/tri2 k2
  fi
fi

if run_stage 8 "CE training of: $models (conf/$train_conf.conf)"; then
  need 8 exp/tri2_ali/pdf_counts "exp/tri2_ali/${corpus}_cuts_train.jsonl.gz"
  logged 8 $python -m asr_bl.bin.gmm align --cuts "$(cuts_of dev)" --lang data/lang --model-dir exp/tri2 \
    --out-dir exp/tri2_ali_dev --num-jobs "$nj" $(conf gmm_common)
  for m in $models; do
    logged 8 $python -m asr_bl.bin.train --model "$m" --cuts "exp/tri2_ali/${corpus}_cuts_train.jsonl.gz" \
      --dev-cuts "exp/tri2_ali_dev/${corpus}_cuts_dev.jsonl.gz" --ali-dir exp/tri2_ali --feature-dir data/fbank \
      --out-dir "exp/am_$m" --resume --no-progress $(conf "$train_conf")
  done
fi

if run_stage 9 "decode the networks: $models"; then
  need 9 $graph/HCLG.fst exp/lm/fg/lm.arpa
  for m in $models; do need 9 "exp/am_$m/model.pt"; done
  in_parallel decode_network $models
fi

if run_stage 10 "summary"; then
  need 10 exp/tri2/decode_test_swb/summary.json
  if [ "$corpus" = synth ]; then corpus_name="embedded default (synthetic, seed $seed, $corpus_size)"
  else corpus_name="Switchboard + Fisher, Hub5'00"; fi
  logged 10 $python local/summarize.py --exp-dir exp --models "$models" --corpus "$corpus_name" --out-dir exp
fi

log "done (stages $stage..$stop_stage)."
