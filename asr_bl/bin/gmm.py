"""asr_bl-gmm: lang preparation, GMM-HMM training (mono -> tri with our tree) and alignment.

Typical use (the recipe's stages 2-5)::

    asr_bl-gmm prepare-lang --lexicon data/lexicon.txt --out-dir data/lang
    asr_bl-gmm train-mono --cuts data/fbank/synth_cuts_train.jsonl.gz --lang data/lang --out-dir exp/mono
    asr_bl-gmm train-tri  --cuts ... --lang data/lang --ali-dir exp/mono --num-leaves 1000 --out-dir exp/tri1
    asr_bl-gmm train-tri  --cuts ... --lang data/lang --ali-dir exp/tri1 --num-leaves 2000 --out-dir exp/tri2
    asr_bl-gmm align      --cuts ... --lang data/lang --model-dir exp/tri2 --out-dir exp/tri2_ali

Every command skips its work when its output directory already holds a finished result made with
the same arguments from the same input files (``done.json`` records the arguments and the size and
mtime of the cuts, the lang files and the previous model/alignments); when an input has
changed since (e.g. the previous stage was retrained) the command redoes its work, saying which input
changed. Pass ``--force`` to redo it anyway.
"""
import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

logger = logging.getLogger("asr_bl.bin.gmm")


def _add_common(p: argparse.ArgumentParser, model_dir: bool = False) -> None:
    p.add_argument("--cuts", required=True, help="lhotse CutSet (jsonl.gz), one cut per utterance with its transcript")
    p.add_argument("--lang", required=True, help="lang directory from 'prepare-lang'")
    p.add_argument("--out-dir", required=True, help="output directory (created)")
    p.add_argument("--num-jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes for features, alignment and accumulation")
    p.add_argument("--feature-type", choices=("mfcc", "fbank"), default="mfcc",
                   help="GMM features: 13 MFCC (Kaldi's choice) or the 64 log-mels, each + Δ + ΔΔ, per-side CMN")
    p.add_argument("--feats-cache-dir", default=None,
                   help="where GMM features are cached (default: <out-dir>/../gmm_feats)")
    p.add_argument("--beam", type=float, default=10.0, help="alignment beam")
    p.add_argument("--retry-beam", type=float, default=40.0, help="beam of the retry when the first fails")
    p.add_argument("--seed", type=int, default=0, help="seed of the flat start and of mixture splitting")
    p.add_argument("--force", action="store_true", help="redo even if the output is complete")
    p.add_argument("--verbose", action="store_true", help="debug logging")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr_bl-gmm",
        description=(
            "Kaldi-style GMM-HMM for the hybrid system: prepare the lang directory, train monophones "
            "from a flat start, train triphones on our own phonetic decision tree (num-leaves = "
            "number of tied states = the network's output size) and write frame alignments "
            "(pdf-ids and phones) attached to lhotse cuts, plus pdf counts for the priors."
        ),
        epilog=(
            "stages (the recipe's 2-5):\n"
            "  asr_bl-gmm prepare-lang --lexicon data/lexicon.txt --out-dir data/lang\n"
            "  asr_bl-gmm train-mono --cuts data/fbank/synth_cuts_train.jsonl.gz --lang data/lang --out-dir exp/mono\n"
            "  asr_bl-gmm train-tri --cuts ... --lang data/lang --ali-dir exp/mono --num-leaves 1000 --out-dir exp/tri1\n"
            "  asr_bl-gmm train-tri --cuts ... --lang data/lang --ali-dir exp/tri1 --num-leaves 2000 --out-dir exp/tri2\n"
            "  asr_bl-gmm align --cuts ... --lang data/lang --model-dir exp/tri2 --out-dir exp/tri2_ali\n"
            "outputs of align: <out-dir>/<cuts name> (cuts with pdf_ali/phone_ali), pdf_counts, num_pdfs,\n"
            "pdf_ali.ark.txt, phone_ali.ark.txt, ali.ark.txt, phones.ctm, failures.txt, final.mdl, tree.\n"
            "Run '<command> --help' for each command's options."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare-lang", help="lexicon -> lang dir (phones, words, topo, L.fst, L_disambig.fst)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--lexicon", required=True, help="lexicon file: Kaldi 'word PH1 PH2 ...' or the SWB MSU dictionary")
    p.add_argument("--lexicon-format", choices=("kaldi", "msu"), default="kaldi",
                   help="'kaldi' (lexicon.txt) or 'msu' (Switchboard sw-ms98-dict.text)")
    p.add_argument("--out-dir", required=True, help="lang directory to write")
    p.add_argument("--sil-prob", type=float, default=0.5, help="probability of optional silence after a word")
    p.add_argument("--position-dependent-phones", action="store_true", help="Kaldi's _B/_I/_E/_S phones")
    p.add_argument("--speech-states", type=int, default=3, help="HMM states of speech phones")
    p.add_argument("--silence-states", type=int, default=5, help="HMM states of silence/noise phones")
    p.add_argument("--verbose", action="store_true", help="debug logging")

    p = sub.add_parser("train-mono", help="flat-start monophone training",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common(p)
    p.add_argument("--num-iters", type=int, default=25, help="EM iterations")
    p.add_argument("--total-gauss", type=int, default=1000, help="Gaussians in total at the end")
    p.add_argument("--subset", type=int, default=2000,
                   help="train on the N shortest utterances (Kaldi's train_2kshort: a flat start works best "
                        "on short utterances), then align all with the result; 0 = all")

    p = sub.add_parser("train-tri", help="triphone training with our decision tree",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common(p)
    p.add_argument("--ali-dir", required=True, help="directory of the previous model (final.mdl, ali.ark.txt)")
    p.add_argument("--num-leaves", type=int, default=2000, help="number of tied states (pdfs) of the tree")
    p.add_argument("--total-gauss", type=int, default=0, help="Gaussians in total at the end (0: 5 x num-leaves)")
    p.add_argument("--num-iters", type=int, default=25, help="EM iterations")
    p.add_argument("--min-leaf-count", type=float, default=50.0, help="minimum frames per tree leaf")

    p = sub.add_parser("align", help="align with a trained model and export alignments",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common(p)
    p.add_argument("--model-dir", required=True, help="directory holding final.mdl")
    p.add_argument("--reuse-alignments", type=int, choices=(0, 1), default=1,
                   help="1: use the model dir's ali.ark.txt (its training's final alignments, made by "
                        "final.mdl) instead of re-aligning; 0: always re-align")
    return parser


def _done_path(out_dir: Path) -> Path:
    return out_dir / "done.json"


def _file_fingerprint(path: Path) -> Optional[Dict[str, int]]:
    """Size and modification time (ns) of ``path``; None when it does not exist.

    Cheap on multi-GB inputs and changes whenever a stage rewrites its output (Kaldi's recipes
    likewise redo a step when its inputs are newer than its outputs).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def stage_inputs(args: argparse.Namespace) -> Dict[str, Optional[Dict[str, int]]]:
    """Fingerprints of the files a stage reads, keyed by path: recorded in ``done.json`` so that a
    stage whose inputs were remade (e.g. an upstream model retrained) is redone, not skipped."""
    lang = Path(args.lang)
    paths = [Path(args.cuts)] + [lang / n for n in ("phones.txt", "words.txt", "lexicon.txt", "lang_config.txt", "L.fst")]
    if args.command == "train-tri":
        paths += [Path(args.ali_dir) / "final.mdl", Path(args.ali_dir) / "ali.ark.txt"]
    elif args.command == "align":
        paths += [Path(args.model_dir) / "final.mdl"]
        if args.reuse_alignments:
            paths += [Path(args.model_dir) / "ali.ark.txt", Path(args.model_dir) / "failures.txt"]
    return {str(p): _file_fingerprint(p) for p in paths}


def _already_done(out_dir: Path, args: Dict[str, Any], inputs: Dict[str, Any]) -> bool:
    """Whether ``out_dir`` holds a result made with these arguments from these very input files."""
    p = _done_path(out_dir)
    if not p.is_file():
        return False
    try:
        prev = json.loads(p.read_text())
    except json.JSONDecodeError:
        return False
    if prev.get("args") != args:
        return False
    prev_inputs = prev.get("inputs")
    if prev_inputs is None:
        logger.info("%s records no input fingerprints (older version): redoing %s", p, out_dir)
        return False
    changed = sorted(k for k in set(inputs) | set(prev_inputs) if inputs.get(k) != prev_inputs.get(k))
    if changed:
        logger.info("inputs changed since %s was made (%s): redoing it", out_dir, ", ".join(changed))
        return False
    return True


def _finish(out_dir: Path, args: Dict[str, Any], summary: Dict[str, Any],
            inputs: Optional[Dict[str, Any]] = None) -> None:
    tmp = out_dir / "done.json.tmp"
    tmp.write_text(json.dumps({"args": args, "inputs": inputs, "summary": summary}, indent=2, default=str))
    os.replace(tmp, _done_path(out_dir))


def _load_cuts(path: str) -> List[Any]:
    from lhotse import load_manifest

    if not Path(path).is_file():
        raise FileNotFoundError(f"cuts manifest {path} not found; run the features stage (asr_bl-features) first")
    cuts = load_manifest(path)
    return list(cuts)


def _utterances(args: argparse.Namespace, lang: Any, cuts: List[Any]) -> List[Any]:
    from asr_bl.hmm.feats import GmmFeatureConfig, cached_gmm_features, manifest_fingerprint
    from asr_bl.hmm.train import Utterance

    cfg = GmmFeatureConfig(kind=args.feature_type)
    cache = Path(args.feats_cache_dir) if args.feats_cache_dir else Path(args.out_dir).resolve().parent / "gmm_feats"
    tag = Path(args.cuts).name.split(".")[0]
    feats = cached_gmm_features(cuts, cfg, cache, tag, num_jobs=args.num_jobs,
                                source_fingerprint=manifest_fingerprint(Path(args.cuts)))
    utts = []
    for c in cuts:
        text = " ".join(s.text for s in c.supervisions if s.text)
        utts.append(Utterance(c.id, feats[c.id], lang.words_to_ids(text.split())))
    return utts


def _align_opts(args: argparse.Namespace) -> Any:
    from asr_bl.hmm.train import AlignOptions

    return AlignOptions(beam=args.beam, retry_beam=args.retry_beam)


def cmd_prepare_lang(args: argparse.Namespace) -> int:
    from asr_bl.hmm.lang import LangConfig, prepare_lang, read_lexicon, read_msu_lexicon, write_lang

    if not Path(args.lexicon).is_file():
        print(f"error: lexicon {args.lexicon} not found (the corpus stage writes data/lexicon.txt)", file=sys.stderr)
        return 1
    entries = read_lexicon(Path(args.lexicon)) if args.lexicon_format == "kaldi" else read_msu_lexicon(Path(args.lexicon))
    cfg = LangConfig(
        sil_prob=args.sil_prob,
        speech_states=args.speech_states,
        silence_states=args.silence_states,
        position_dependent_phones=args.position_dependent_phones,
    )
    lang = prepare_lang(entries, cfg)
    write_lang(lang, Path(args.out_dir))
    print(
        f"lang written to {args.out_dir}: {len(lang.real_phone_ids)} phones "
        f"({len(lang.silence_phone_ids)} silence/noise), {len(lang.words) - 4} words, "
        f"{len(lang.lexicon)} prons, {len(lang.disambig_phone_ids)} disambiguation symbols"
    )
    return 0


def _write_stage(out_dir: Path, result: Any, lang: Any, extra_log: Dict[str, Any]) -> Dict[str, Any]:
    from asr_bl.hmm.export import write_int_ark

    out_dir.mkdir(parents=True, exist_ok=True)
    result.model.save(out_dir / "final.mdl")
    write_int_ark(out_dir / "ali.ark.txt", result.alignments)
    (out_dir / "failures.txt").write_text("".join(f"{k} {v}\n" for k, v in sorted(result.failures.items())))
    log = dict(extra_log)
    log["iterations"] = result.log
    tmp = out_dir / "log.json.tmp"
    tmp.write_text(json.dumps(log, indent=1, default=str))
    os.replace(tmp, out_dir / "log.json")
    final_like = [e for e in result.log if e.get("iter") == "final_align"]
    return {
        "num_pdfs": result.model.num_pdfs,
        "num_gauss": result.model.am.num_gauss,
        "aligned": len(result.alignments),
        "failed": len(result.failures),
        "final_align_like_per_frame": final_like[-1]["align_like_per_frame"] if final_like else None,
        "final_acoustic_loglike_per_frame": extra_log.get("final_acoustic_loglike_per_frame"),
    }


def cmd_train_mono(args: argparse.Namespace, argd: Dict[str, Any], inputs: Dict[str, Any]) -> int:
    from asr_bl.hmm.lang import load_lang
    from asr_bl.hmm.train import MonoConfig, TrainResult, align_with_model, train_mono

    out_dir = Path(args.out_dir)
    timings: Dict[str, float] = {}
    t0 = time.time()
    lang = load_lang(Path(args.lang))
    cuts = _load_cuts(args.cuts)
    utts = _utterances(args, lang, cuts)
    timings["features_s"] = time.time() - t0
    train_utts = utts
    if args.subset and args.subset < len(utts):
        train_utts = sorted(utts, key=lambda u: (u.feats.shape[0], u.id))[: args.subset]
    cfg = MonoConfig(num_iters=args.num_iters, total_gauss=args.total_gauss, seed=args.seed, align=_align_opts(args))
    cfg.max_iter_inc = max(1, min(cfg.max_iter_inc, args.num_iters - 5))
    t1 = time.time()
    result = train_mono(train_utts, lang, cfg, num_jobs=args.num_jobs)
    timings["train_s"] = time.time() - t1
    ll = result.final_loglike_per_frame
    if len(train_utts) < len(utts):
        t2 = time.time()
        ali, failures, ll = align_with_model(utts, lang, result.model, cfg.align, num_jobs=args.num_jobs)
        timings["align_all_s"] = time.time() - t2
        result = TrainResult(result.model, ali, failures, result.log)
    summary = _write_stage(out_dir, result, lang, {
        "timings": timings, "train_utterances": len(train_utts), "utterances": len(utts),
        "final_acoustic_loglike_per_frame": ll,
    })
    summary["timings"] = timings
    _finish(out_dir, argd, summary, inputs)
    print(json.dumps(summary, indent=1))
    return 0


def cmd_train_tri(args: argparse.Namespace, argd: Dict[str, Any], inputs: Dict[str, Any]) -> int:
    from asr_bl.hmm.export import read_int_ark
    from asr_bl.hmm.lang import load_lang
    from asr_bl.hmm.model import GmmHmm
    from asr_bl.hmm.train import TriConfig, train_tri
    from asr_bl.hmm.tree import TreeConfig

    out_dir = Path(args.out_dir)
    ali_dir = Path(args.ali_dir)
    for name in ("final.mdl", "ali.ark.txt"):
        if not (ali_dir / name).is_file():
            print(f"error: {ali_dir / name} not found; train the previous stage first (train-mono or train-tri)",
                  file=sys.stderr)
            return 1
    timings: Dict[str, float] = {}
    t0 = time.time()
    lang = load_lang(Path(args.lang))
    cuts = _load_cuts(args.cuts)
    utts = _utterances(args, lang, cuts)
    prev = GmmHmm.load(ali_dir / "final.mdl")
    prev_ali = read_int_ark(ali_dir / "ali.ark.txt")
    timings["features_s"] = time.time() - t0
    tree_cfg = TreeConfig(num_leaves=args.num_leaves, min_leaf_count=args.min_leaf_count)
    cfg = TriConfig(
        num_iters=args.num_iters,
        total_gauss=args.total_gauss or 5 * args.num_leaves,
        seed=args.seed,
        tree=tree_cfg,
        align=_align_opts(args),
    )
    cfg.max_iter_inc = max(1, min(cfg.max_iter_inc, args.num_iters - 5))
    cfg.realign_iters = tuple(i for i in (10, 20, 30) if i < args.num_iters) or (max(1, args.num_iters // 2),)
    t1 = time.time()
    result, tree_summary = train_tri(utts, lang, prev, prev_ali, cfg, num_jobs=args.num_jobs)
    timings["train_s"] = time.time() - t1
    ll = result.final_loglike_per_frame
    summary = _write_stage(out_dir, result, lang, {
        "timings": timings, "tree": tree_summary, "utterances": len(utts),
        "final_acoustic_loglike_per_frame": ll,
    })
    summary["tree"] = tree_summary
    summary["timings"] = timings
    _finish(out_dir, argd, summary, inputs)
    print(json.dumps(summary, indent=1))
    return 0


def cmd_align(args: argparse.Namespace, argd: Dict[str, Any], inputs: Dict[str, Any]) -> int:
    from asr_bl.hmm.export import write_alignment_outputs
    from asr_bl.hmm.lang import load_lang
    from asr_bl.hmm.model import GmmHmm
    from asr_bl.hmm.train import align_with_model

    out_dir = Path(args.out_dir)
    model_path = Path(args.model_dir) / "final.mdl"
    if not model_path.is_file():
        print(f"error: {model_path} not found; train the model first (train-mono / train-tri)", file=sys.stderr)
        return 1
    t0 = time.time()
    lang = load_lang(Path(args.lang))
    cuts = _load_cuts(args.cuts)
    utts = _utterances(args, lang, cuts)
    model = GmmHmm.load(model_path)
    t1 = time.time()
    previous: Optional[Dict[str, Any]] = None
    prev_failures: Dict[str, str] = {}
    prev_ali_path = Path(args.model_dir) / "ali.ark.txt"
    if args.reuse_alignments and prev_ali_path.is_file():
        # The training stage's final alignments were made by this final.mdl: score, don't redo,
        # provided they cover these cuts (otherwise, e.g. for another part, align afresh).
        from asr_bl.hmm.export import read_int_ark

        previous = read_int_ark(prev_ali_path)
        prev_fail = Path(args.model_dir) / "failures.txt"
        if prev_fail.is_file():
            for line in prev_fail.read_text().splitlines():
                k, _, reason = line.partition(" ")
                prev_failures[k] = reason
        if all(u.id in previous or u.id in prev_failures for u in utts):
            logger.info("align: reusing the final alignments of %s", args.model_dir)
        else:
            previous = None
    ali, failures, ll = align_with_model(utts, lang, model, _align_opts(args), num_jobs=args.num_jobs,
                                         alignments=previous)
    if previous is not None:
        mine = {u.id for u in utts}
        failures.update({k: v for k, v in prev_failures.items() if k in mine})
    t2 = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "final.mdl")
    summary = write_alignment_outputs(out_dir, model, lang, ali, failures, cuts, Path(args.cuts).name)
    summary["acoustic_loglike_per_frame"] = ll
    summary["timings"] = {"features_s": t1 - t0, "align_s": t2 - t1, "export_s": time.time() - t2}
    _finish(out_dir, argd, summary, inputs)
    print(json.dumps(summary, indent=1))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "prepare-lang":
        return cmd_prepare_lang(args)
    argd = {k: v for k, v in vars(args).items() if k not in ("force", "verbose", "num_jobs")}
    out_dir = Path(args.out_dir)
    # Fingerprinted before the work starts: an input remade meanwhile makes the next run redo it.
    inputs = stage_inputs(args)
    if not args.force and _already_done(out_dir, argd, inputs):
        print(f"{out_dir} is complete (done.json matches these arguments and input files); skipping. "
              "Use --force to redo.")
        return 0
    if args.num_jobs < 1:
        print("error: --num-jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.command == "train-mono":
            return cmd_train_mono(args, argd, inputs)
        if args.command == "train-tri":
            return cmd_train_tri(args, argd, inputs)
        return cmd_align(args, argd, inputs)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
