"""asr_bl-gmm: lang preparation, GMM-HMM training (mono -> tri with our tree) and alignment.

Typical use (the recipe's stages 2-5)::

    asr_bl-gmm prepare-lang --lexicon data/lexicon.txt --out-dir data/lang
    asr_bl-gmm train-mono --cuts data/fbank/synth_cuts_train.jsonl.gz --lang data/lang --out-dir exp/mono
    asr_bl-gmm train-tri  --cuts ... --lang data/lang --ali-dir exp/mono --num-leaves 1000 --out-dir exp/tri1
    asr_bl-gmm train-tri  --cuts ... --lang data/lang --ali-dir exp/tri1 --num-leaves 2000 --out-dir exp/tri2
    asr_bl-gmm align      --cuts ... --lang data/lang --model-dir exp/tri2 --out-dir exp/tri2_ali

Every command keeps a stage record (:mod:`asr_bl.stage`) in ``<out-dir>/done.json``: the arguments
and the content fingerprints of the files it read and wrote. A second run with the same arguments
on inputs of the same content skips ("skipping ..."); otherwise it logs why it redoes ("redoing
...: input data/lang/L.fst changed"). ``prepare-lang`` rewrites only lang files whose content
changed, so redoing it with the same lexicon does not make the GMM stages redo. ``--force`` redoes.

Option defaults are those of the library's configurations (:class:`asr_bl.hmm.train.MonoConfig`,
``TriConfig``, ``AlignOptions``, :class:`asr_bl.hmm.tree.TreeConfig`, :class:`asr_bl.hmm.lang.LangConfig`,
:class:`asr_bl.hmm.feats.GmmFeatureConfig`): the tool builds each configuration once from them.
"""
import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from asr_bl.bin import UsageError, add_force, add_num_jobs, add_verbose, run_tool
from asr_bl.io import write_if_changed, write_json
from asr_bl.stage import Stage

logger = logging.getLogger("asr_bl.bin.gmm")

PROG = "asr_bl-gmm"
RECORD = "done.json"
# Settings that do not change a stage's result: left out of its record.
_RUNTIME_ARGS = ("command", "force", "verbose", "num_jobs", "feats_cache_dir", "max_oov_rate")
#: Default of --max-oov-rate: a transcript/lexicon mismatch (other case, other normalisation) is far above it.
DEFAULT_MAX_OOV_RATE = 0.1


def _int_tuple(text: str) -> Tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of iteration numbers (e.g. '10,20')") from None


def _add_common(p: argparse.ArgumentParser) -> None:
    from asr_bl.hmm.feats import GmmFeatureConfig
    from asr_bl.hmm.train import AlignOptions

    align, feats = AlignOptions(), GmmFeatureConfig()
    p.add_argument("--cuts", required=True, help="lhotse CutSet (jsonl.gz), one cut per utterance with its transcript")
    p.add_argument("--lang", required=True, help="lang directory from 'prepare-lang'")
    p.add_argument("--out-dir", required=True, help="output directory (created)")
    add_num_jobs(p, what="worker processes for features, alignment and accumulation")
    p.add_argument("--feature-type", choices=("mfcc", "fbank"), default=feats.kind,
                   help="GMM features: 13 MFCC (Kaldi's choice) or the 64 log-mels, each + Δ + ΔΔ, per-side CMN")
    p.add_argument("--feats-cache-dir", default=None,
                   help="where GMM features are cached (default: <out-dir>/../gmm_feats)")
    p.add_argument("--beam", type=float, default=align.beam, help="alignment beam")
    p.add_argument("--retry-beam", type=float, default=align.retry_beam, help="beam of the retry when the first fails")
    p.add_argument("--max-oov-rate", type=float, default=DEFAULT_MAX_OOV_RATE,
                   help="fail when more than this fraction of the transcripts' words are not in the lexicon "
                        "(they are trained as the OOV word)")
    add_force(p)
    add_verbose(p)


def _add_schedule(p: argparse.ArgumentParser, config: Any) -> None:
    p.add_argument("--num-iters", type=int, default=config.num_iters, help="EM iterations")
    p.add_argument("--max-iter-inc", type=int, default=config.max_iter_inc,
                   help="the Gaussians grow over the first N iterations")
    p.add_argument("--realign-iters", type=_int_tuple, default=config.realign_iters,
                   help="iterations that realign (comma-separated)")
    p.add_argument("--seed", type=int, default=config.seed, help="seed of the flat start and of mixture splitting")


def get_parser() -> argparse.ArgumentParser:
    from asr_bl.hmm.lang import LangConfig
    from asr_bl.hmm.train import MonoConfig, TriConfig

    parser = argparse.ArgumentParser(
        prog=PROG,
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
            "  asr_bl-gmm train-tri --cuts ... --lang data/lang --ali-dir exp/mono --num-leaves 1000 \\\n"
            "      --out-dir exp/tri1\n"
            "  asr_bl-gmm train-tri --cuts ... --lang data/lang --ali-dir exp/tri1 --num-leaves 2000 \\\n"
            "      --out-dir exp/tri2\n"
            "  asr_bl-gmm align --cuts ... --lang data/lang --model-dir exp/tri2 --out-dir exp/tri2_ali\n"
            "outputs of align: <out-dir>/<cuts name> (cuts with pdf_ali/phone_ali), pdf_counts, num_pdfs,\n"
            "pdf_ali.ark.txt, phone_ali.ark.txt, ali.ark.txt, phones.ctm, failures.txt, final.mdl, tree.\n"
            "A finished command is skipped when its arguments and its inputs' content are unchanged\n"
            "(<out-dir>/done.json); --force redoes it. Run '<command> --help' for each command's options.\n"
            "Inputs are validated before anything is written (asr_bl.validate): the cuts manifest, the\n"
            "cuts' audio, their transcripts (an empty one is an error; the OOV rate against the lexicon is\n"
            "logged and recorded in done.json, an error above --max-oov-rate), the lang dir, and that the\n"
            "model was trained with this lang; bad input exits 2 with one line naming the file."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lang, mono, tri = LangConfig(), MonoConfig(), TriConfig()

    p = sub.add_parser("prepare-lang", help="lexicon -> lang dir (phones, words, topo, L.fst, L_disambig.fst)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--lexicon", required=True, help="lexicon file: Kaldi 'word PH1 PH2 ...' or the SWB MSU dictionary")
    p.add_argument("--lexicon-format", choices=("kaldi", "msu"), default="kaldi",
                   help="'kaldi' (lexicon.txt) or 'msu' (Switchboard sw-ms98-dict.text)")
    p.add_argument("--out-dir", required=True, help="lang directory to write")
    p.add_argument("--sil-prob", type=float, default=lang.sil_prob, help="probability of optional silence after a word")
    p.add_argument("--position-dependent-phones", action="store_true", default=lang.position_dependent_phones,
                   help="Kaldi's _B/_I/_E/_S phones")
    p.add_argument("--speech-states", type=int, default=lang.speech_states, help="HMM states of speech phones")
    p.add_argument("--silence-states", type=int, default=lang.silence_states, help="HMM states of silence/noise phones")
    add_force(p)
    add_verbose(p)

    p = sub.add_parser("train-mono", help="flat-start monophone training",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common(p)
    _add_schedule(p, mono)
    p.add_argument("--total-gauss", type=int, default=mono.total_gauss, help="Gaussians in total at the end")
    p.add_argument("--subset", type=int, default=2000,
                   help="train on the N shortest utterances (Kaldi's train_2kshort: a flat start works best "
                        "on short utterances), then align all with the result; 0 = all")

    p = sub.add_parser("train-tri", help="triphone training with our decision tree",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common(p)
    _add_schedule(p, tri)
    p.add_argument("--ali-dir", required=True, help="directory of the previous model (final.mdl, ali.ark.txt)")
    p.add_argument("--num-leaves", type=int, default=tri.tree.num_leaves,
                   help="number of tied states (pdfs) of the tree")
    p.add_argument("--total-gauss", type=int, default=0,
                   help="Gaussians in total at the end (0: 5 x num-leaves, Kaldi's ratio)")
    p.add_argument("--min-leaf-count", type=float, default=tri.tree.min_leaf_count, help="minimum frames per tree leaf")

    p = sub.add_parser("align", help="align with a trained model and export alignments",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_common(p)
    p.add_argument("--model-dir", required=True, help="directory holding final.mdl")
    p.add_argument("--reuse-alignments", type=int, choices=(0, 1), default=1,
                   help="1: use the model dir's ali.ark.txt (its training's final alignments, made by "
                        "final.mdl) instead of re-aligning; 0: always re-align")
    return parser


def _lang_files(lang_dir: Path) -> List[Path]:
    """The files of a lang directory (not its stage record), sorted."""
    if not lang_dir.is_dir():
        return []
    return sorted(p for p in lang_dir.iterdir() if p.is_file() and p.name != RECORD)


def stage_inputs(args: argparse.Namespace) -> List[Path]:
    """The files a GMM stage reads: recorded (by content) in its ``done.json`` so that a stage
    whose inputs were remade with other content (e.g. an upstream model retrained) is redone."""
    lang = Path(args.lang)
    paths = [Path(args.cuts)] + _lang_files(lang)
    if args.command == "train-tri":
        paths += [Path(args.ali_dir) / "final.mdl", Path(args.ali_dir) / "ali.ark.txt"]
    elif args.command == "align":
        paths += [Path(args.model_dir) / "final.mdl"]
        if args.reuse_alignments:
            paths += [Path(args.model_dir) / "ali.ark.txt", Path(args.model_dir) / "failures.txt"]
    return paths


def _record_args(args: argparse.Namespace) -> Dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in _RUNTIME_ARGS}


def _outputs(out_dir: Path) -> List[Path]:
    return sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != RECORD)


def _load_cuts(path: str) -> List[Any]:
    """The cuts, validated: a readable manifest with unique ids and their audio as declared."""
    from asr_bl.validate import DataError, Problem, cut_audio_problem, read_manifest, summarize

    if not Path(path).is_file():
        raise FileNotFoundError(f"cuts manifest {path} not found; run the features stage (asr_bl-features) first")
    cuts = list(read_manifest(path, "cuts", fix="rerun the features stage (asr_bl-features --force)"))
    cache: Dict[str, Optional[str]] = {}
    bad = [Problem(path, f"cut {c.id}", r) for c, r in ((c, cut_audio_problem(c, cache)) for c in cuts) if r]
    if bad:
        raise DataError(f"{len(bad)} of {len(cuts)} cuts have audio that cannot be read as declared: "
                        f"{summarize(bad)}; fix the audio, or rerun asr_bl-features (it lists and, with "
                        "--max-bad-audio, drops such cuts)")
    return cuts


def _check_transcripts(args: argparse.Namespace, lang: Any, cuts: List[Any]) -> Dict[str, Any]:
    """Refuse empty transcripts (they would be aligned as all silence); log and return the OOV counts,
    refusing an OOV rate above ``--max-oov-rate``."""
    from asr_bl.validate import DataError, oov_stats

    texts = {c.id: " ".join(s.text for s in c.supervisions if s.text) for c in cuts}
    empty = sorted(k for k, t in texts.items() if not t.strip())
    if empty:
        shown = ", ".join(empty[:5]) + (f" ... and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise DataError(f"{args.cuts}: {len(empty)} of {len(cuts)} cuts have an empty transcript ({shown}); "
                        "they would be trained as all silence: remove them in data preparation")
    real_words = {w for w, _ in lang.lexicon}
    stats = oov_stats(texts, real_words)
    logger.info("%s: %s", args.cuts, stats.line())
    if stats.all_oov_utterances:
        logger.warning("%s: %d utterances have no word in the lexicon (e.g. %s; another case or normalisation?)",
                       args.cuts, len(stats.all_oov_utterances), stats.all_oov_utterances[0])
    if stats.rate > args.max_oov_rate:
        raise DataError(f"{args.cuts}: {stats.line()}, above --max-oov-rate {args.max_oov_rate:g}; normalise "
                        "the transcripts like the lexicon, or extend the lexicon")
    return stats.summary()


def _load_lang(args: argparse.Namespace) -> Any:
    """The lang dir, validated (Kaldi's validate_lang.pl checks)."""
    from asr_bl.hmm.lang import load_lang
    from asr_bl.validate import validate_lang_dir

    lang = load_lang(Path(args.lang))
    validate_lang_dir(args.lang).raise_if_errors(
        f"rebuild it: asr_bl-gmm prepare-lang --lexicon <lexicon> --out-dir {args.lang} --force")
    return lang


def _load_model(path: Path, lang: Any, lang_dir: str) -> Any:
    """A GMM-HMM from ``path``; DataError when it is unreadable or was not trained with ``lang``."""
    from asr_bl.hmm.model import GmmHmm
    from asr_bl.validate import DataError

    try:
        model = GmmHmm.load(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file, whatever the unpickler says
        raise DataError(f"{path}: not a readable asr_bl GMM-HMM ({type(e).__name__}: {e}; truncated?); "
                        "retrain it (asr_bl-gmm train-mono / train-tri --force)") from None
    if model.topo_text.strip() != lang.topology_text().strip():
        raise DataError(f"{path}: trained with another lang than {lang_dir} (their HMM topologies differ: "
                        f"{lang_dir}/topo has {len(lang.real_phone_ids)} phones); pass the --lang the model was "
                        "trained with, or retrain the model with this lang")
    return model


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

    lexicon, out_dir = Path(args.lexicon), Path(args.out_dir)
    if not lexicon.is_file():
        raise UsageError(f"{lexicon}: lexicon not found; the corpus stage writes data/lexicon.txt")
    stage = Stage(out_dir / RECORD, "prepare-lang", _record_args(args), inputs=[lexicon])
    if stage.is_done(args.force):
        return 0
    entries = read_lexicon(lexicon) if args.lexicon_format == "kaldi" else read_msu_lexicon(lexicon)
    cfg = LangConfig(
        sil_prob=args.sil_prob,
        speech_states=args.speech_states,
        silence_states=args.silence_states,
        position_dependent_phones=args.position_dependent_phones,
    )
    lang = prepare_lang(entries, cfg)
    from asr_bl.validate import validate_lang_dir

    # Written aside, then copied file by file where the content differs: a redo with the same
    # lexicon leaves every lang file (and so every GMM stage's inputs) untouched.
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lang-", dir=out_dir.parent) as tmp:
        write_lang(lang, Path(tmp))
        validate_lang_dir(tmp).raise_if_errors(f"{lexicon} gives an invalid lang dir: fix the lexicon")
        names = sorted(p.name for p in Path(tmp).iterdir() if p.is_file())
        changed = [n for n in names if write_if_changed(out_dir / n, (Path(tmp) / n).read_bytes())]
    for stale in _lang_files(out_dir):
        if stale.name not in names:
            stale.unlink()
    summary = {"phones": len(lang.real_phone_ids), "silence_phones": len(lang.silence_phone_ids),
               "words": len(lang.words) - 4, "prons": len(lang.lexicon),
               "disambig_symbols": len(lang.disambig_phone_ids), "files_changed": changed}
    stage.finish(outputs=[out_dir / n for n in names], summary=summary)
    print(
        f"lang written to {out_dir}: {summary['phones']} phones ({summary['silence_phones']} silence/noise), "
        f"{summary['words']} words, {summary['prons']} prons, {summary['disambig_symbols']} disambiguation "
        f"symbols; {len(changed)} of {len(names)} files changed"
    )
    return 0


def _finish_training(out_dir: Path, result: Any, stage: Stage, extra_log: Dict[str, Any],
                     summary_keys: Tuple[str, ...] = ("timings",),
                     extra_summary: Optional[Dict[str, Any]] = None) -> int:
    """Write a training stage's outputs (final.mdl, tree, ali.ark.txt, failures.txt, log.json), then its record."""
    from asr_bl.hmm.export import write_int_ark

    out_dir.mkdir(parents=True, exist_ok=True)
    result.model.save(out_dir / "final.mdl")
    write_int_ark(out_dir / "ali.ark.txt", result.alignments)
    write_if_changed(out_dir / "failures.txt", "".join(f"{k} {v}\n" for k, v in sorted(result.failures.items())))
    write_json(out_dir / "log.json", dict(extra_log, iterations=result.log), indent=1, default=str)
    final_like = [e for e in result.log if e.get("iter") == "final_align"]
    summary = {
        "num_pdfs": result.model.num_pdfs,
        "num_gauss": result.model.am.num_gauss,
        "aligned": len(result.alignments),
        "failed": len(result.failures),
        "final_align_like_per_frame": final_like[-1]["align_like_per_frame"] if final_like else None,
        "final_acoustic_loglike_per_frame": extra_log.get("final_acoustic_loglike_per_frame"),
    }
    summary.update({k: extra_log[k] for k in summary_keys})
    summary.update(extra_summary or {})
    stage.finish(outputs=_outputs(out_dir), summary=summary)
    print(json.dumps(summary, indent=1))
    return 0


def cmd_train_mono(args: argparse.Namespace, stage: Stage) -> int:
    from asr_bl.hmm.train import MonoConfig, TrainResult, align_with_model, train_mono

    out_dir = Path(args.out_dir)
    timings: Dict[str, float] = {}
    t0 = time.time()
    lang = _load_lang(args)
    cuts = _load_cuts(args.cuts)
    oov = _check_transcripts(args, lang, cuts)
    utts = _utterances(args, lang, cuts)
    timings["features_s"] = time.time() - t0
    train_utts = utts
    if args.subset and args.subset < len(utts):
        train_utts = sorted(utts, key=lambda u: (u.feats.shape[0], u.id))[: args.subset]
    cfg = MonoConfig(num_iters=args.num_iters, max_iter_inc=args.max_iter_inc, realign_iters=args.realign_iters,
                     total_gauss=args.total_gauss, seed=args.seed, align=_align_opts(args))
    t1 = time.time()
    result = train_mono(train_utts, lang, cfg, num_jobs=args.num_jobs)
    timings["train_s"] = time.time() - t1
    ll = result.final_loglike_per_frame
    if len(train_utts) < len(utts):
        t2 = time.time()
        ali, failures, ll = align_with_model(utts, lang, result.model, cfg.align, num_jobs=args.num_jobs)
        timings["align_all_s"] = time.time() - t2
        result = TrainResult(result.model, ali, failures, result.log)
    return _finish_training(out_dir, result, stage, {
        "timings": timings, "train_utterances": len(train_utts), "utterances": len(utts),
        "final_acoustic_loglike_per_frame": ll,
    }, extra_summary={"oov": oov})


def cmd_train_tri(args: argparse.Namespace, stage: Stage) -> int:
    from asr_bl.hmm.export import read_int_ark
    from asr_bl.hmm.train import TriConfig, train_tri
    from asr_bl.hmm.tree import TreeConfig

    out_dir = Path(args.out_dir)
    ali_dir = Path(args.ali_dir)
    for name in ("final.mdl", "ali.ark.txt"):
        if not (ali_dir / name).is_file():
            raise FileNotFoundError(f"{ali_dir / name} not found; train the previous stage first "
                                    "(train-mono or train-tri)")
    timings: Dict[str, float] = {}
    t0 = time.time()
    lang = _load_lang(args)
    prev = _load_model(ali_dir / "final.mdl", lang, args.lang)
    prev_ali = read_int_ark(ali_dir / "ali.ark.txt")
    cuts = _load_cuts(args.cuts)
    oov = _check_transcripts(args, lang, cuts)
    utts = _utterances(args, lang, cuts)
    timings["features_s"] = time.time() - t0
    tree_cfg = TreeConfig(num_leaves=args.num_leaves, min_leaf_count=args.min_leaf_count)
    cfg = TriConfig(
        num_iters=args.num_iters,
        max_iter_inc=args.max_iter_inc,
        realign_iters=args.realign_iters,
        total_gauss=args.total_gauss or 5 * args.num_leaves,
        seed=args.seed,
        tree=tree_cfg,
        align=_align_opts(args),
    )
    t1 = time.time()
    result, tree_summary = train_tri(utts, lang, prev, prev_ali, cfg, num_jobs=args.num_jobs)
    timings["train_s"] = time.time() - t1
    ll = result.final_loglike_per_frame
    return _finish_training(out_dir, result, stage, {
        "timings": timings, "tree": tree_summary, "utterances": len(utts),
        "final_acoustic_loglike_per_frame": ll,
    }, summary_keys=("tree", "timings"), extra_summary={"oov": oov})


def cmd_align(args: argparse.Namespace, stage: Stage) -> int:
    from asr_bl.hmm.export import write_alignment_outputs
    from asr_bl.hmm.train import align_with_model

    out_dir = Path(args.out_dir)
    model_path = Path(args.model_dir) / "final.mdl"
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found; train the model first (train-mono / train-tri)")
    t0 = time.time()
    lang = _load_lang(args)
    model = _load_model(model_path, lang, args.lang)
    cuts = _load_cuts(args.cuts)
    oov = _check_transcripts(args, lang, cuts)
    utts = _utterances(args, lang, cuts)
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
    summary["oov"] = oov
    summary["timings"] = {"features_s": t1 - t0, "align_s": t2 - t1, "export_s": time.time() - t2}
    stage.finish(outputs=_outputs(out_dir), summary=summary)
    print(json.dumps(summary, indent=1))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "prepare-lang":
        return cmd_prepare_lang(args)
    # Fingerprinted before the work starts: an input remade meanwhile makes the next run redo it.
    stage = Stage(Path(args.out_dir) / RECORD, args.command, _record_args(args), inputs=stage_inputs(args))
    if stage.is_done(args.force):
        return 0
    if args.command == "train-mono":
        return cmd_train_mono(args, stage)
    if args.command == "train-tri":
        return cmd_train_tri(args, stage)
    return cmd_align(args, stage)


def main(argv: Optional[List[str]] = None) -> int:
    from asr_bl.validate import DataError

    return run_tool(get_parser(), _run, argv, usage_errors=(DataError,))


if __name__ == "__main__":
    sys.exit(main())
