"""asr_bl-decode: decode audio, a lhotse manifest or a recipe test set with a model and a graph; score it.

Inputs (one kind per run):
  AUDIO ...              wav / flac / sph files; a stereo file is decoded as two sides (-A, -B)
                         unless --channel picks one; another sample rate is resampled (warning);
                         unreadable or empty files are listed in failures.txt, the rest decoded
  --manifest FILE        a lhotse CutSet (with supervisions: they are the references, and the
                         WER is reported) or RecordingSet
  --test-set NAME        a recipe's set: <recipe-dir>/data/fbank/*_cuts_NAME.jsonl.gz

Examples::

    # tune the LM weight x insertion penalty on dev (k2 lattices), then apply them to a test set
    asr_bl-decode --test-set dev --recipe-dir recipes/swbd_fisher --model-dir exp/tri2 \\
        --graph-dir exp/tri2/graph_tg --out-dir exp/tri2/decode_dev_k2
    asr_bl-decode --test-set test_swb --recipe-dir recipes/swbd_fisher --model-dir exp/tri2 \\
        --graph-dir exp/tri2/graph_tg --out-dir exp/tri2/decode_test_swb_k2 --lm-weight 10 --wip 0.5 \\
        --rescore-lm exp/lm/fg
    # the Kaldi decoder on two processes
    asr_bl-decode --manifest cuts.jsonl.gz --model-dir exp/tri2 --graph-dir exp/tri2/graph_tg \\
        --out-dir out --backend kaldi --num-jobs 2
    # plain audio files (no references: hypotheses and CTM only)
    asr_bl-decode a.wav b.flac --model-dir exp/tri2 --graph-dir exp/tri2/graph_tg --out-dir out

A finished decode (done.json matching the arguments and the content of the inputs: manifest or audio,
model dir, graph dir, rescoring LM) is skipped; --force redoes it.

Writes to --out-dir: hyp.txt, hyp.ctm, failures.txt, and with references ref.stm, sweep.json, sweep/,
wer.json, wer.md, sclite/ (and rescored/ with --rescore-lm), summary.json (times and RTFs).
--model-dir is a GMM dir (final.mdl + tree) or a trained network dir; the graph must have been
built from the same tree (num_pdfs and tree sha1 are checked).
"""
import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from asr_bl.decode.decoders import BACKENDS, DecoderConfig
from asr_bl.decode.pipeline import DecodeOptions

PROG = "asr_bl-decode"


def _floats(s: str) -> tuple:
    return tuple(float(x) for x in s.split(",") if x)


def get_parser() -> argparse.ArgumentParser:
    o, c = DecodeOptions(), DecoderConfig()
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0].split(": ", 1)[1],
                                epilog=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("audio", nargs="*", help="audio files to decode")
    p.add_argument("--manifest", help="lhotse CutSet or RecordingSet manifest")
    p.add_argument("--test-set", help="a recipe test set name (dev, test_swb, test_ch, ...)")
    p.add_argument("--recipe-dir", default=".", help="recipe dir for --test-set (default: the current dir)")
    p.add_argument("--model-dir", required=True, help="GMM dir (exp/tri2) or network dir")
    p.add_argument("--graph-dir", required=True, help="graph dir from asr_bl-mkgraph")
    p.add_argument("--out-dir", required=True, help="decode dir to write")
    p.add_argument("--backend", choices=BACKENDS, default=o.backend,
                   help="k2 (lattices, batched) or kaldi (FasterDecoder)")
    p.add_argument("--device", default=o.device, help="cpu or cuda[:N] (k2 backend)")
    p.add_argument("--num-jobs", type=int, default=o.num_jobs, help="processes for features and the kaldi backend")
    p.add_argument("--channel", type=int, default=None, help="decode only this channel of multi-channel audio")
    p.add_argument("--acoustic-scale", type=float, default=o.acoustic_scale, help="acoustic scale of the search")
    p.add_argument("--lm-weight", type=float, default=None,
                   help="apply this LM weight (e.g. tuned on dev); default: tune on this set if it has references")
    p.add_argument("--wip", type=float, default=None, help="apply this word-insertion penalty (with --lm-weight)")
    p.add_argument("--lm-weights", type=_floats, default=o.lm_weights, help="sweep grid of LM weights (k2)")
    p.add_argument("--wips", type=_floats, default=o.wips, help="sweep grid of insertion penalties (k2)")
    p.add_argument("--beam", type=float, default=c.beam, help="search beam")
    p.add_argument("--max-active", type=int, default=c.max_active, help="max active states per frame")
    p.add_argument("--min-active", type=int, default=c.min_active, help="min active states per frame")
    p.add_argument("--lattice-beam", type=float, default=c.lattice_beam, help="lattice beam (k2)")
    p.add_argument("--extra-setting", action="append", type=_floats, default=[], metavar="LMW,WIP",
                   help="also write the 1-best at this LM weight and penalty to sweep/ (k2; repeatable)")
    p.add_argument("--rescore-lm", default=None, help="LM dir (lm.arpa) or ARPA file for n-best rescoring (k2)")
    p.add_argument("--num-paths", type=int, default=o.num_paths, help="sampled paths for n-best rescoring")
    p.add_argument("--stm", default=None,
                   help="reference STM for the CTM scoring (eval2000: data/eval2000.stm, LDC's); default: "
                        "written from the manifest's supervisions")
    p.add_argument("--glm", default=o.glm, help="'project', 'none' or a GLM file")
    p.add_argument("--scorer", choices=("auto", "sclite", "python"), default=o.scorer, help="CTM scorer")
    p.add_argument("--subsets", default="", help="name=prefix,... of utterance/recording ids (swb=sw_,callhome=en_)")
    p.add_argument("--force", action="store_true", help="redo even when the out dir's done.json matches")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="debug logging, tracebacks")
    return p


#: Options that do not change what is decoded (left out of the stage record).
_RUNTIME_OPTIONS = ("num_jobs", "no_progress", "verbose", "force", "out_dir", "recipe_dir", "device")
_MODEL_FILES = ("final.mdl", "tree", "model.pt", "card.json", "log_priors.npy")


def _stage_inputs(args: argparse.Namespace) -> List[Path]:
    """What a decode reads: the audio or manifest, the model dir's files, the graph dir, the rescoring LM."""
    from asr_bl.decode.inputs import recipe_test_set

    if args.audio:
        sources = [Path(a) for a in args.audio]
    else:
        sources = [Path(args.manifest or recipe_test_set(args.recipe_dir, args.test_set))]
    model = [Path(args.model_dir) / n for n in _MODEL_FILES if (Path(args.model_dir) / n).is_file()]
    extra = [Path(args.rescore_lm)] if args.rescore_lm else []
    extra += [Path(args.stm)] if args.stm else []
    if args.glm not in (None, "", "none", "project"):
        extra.append(Path(args.glm))
    return sources + model + [Path(args.graph_dir)] + extra


def _run(args: argparse.Namespace) -> int:
    from asr_bl.decode.acoustic import load_source
    from asr_bl.decode.graph import GraphDir
    from asr_bl.decode.inputs import InputError, cuts_from_audio, cuts_from_manifest, recipe_test_set
    from asr_bl.decode.pipeline import decode_set
    from asr_bl.io import write_text

    kinds = sum([bool(args.audio), bool(args.manifest), bool(args.test_set)])
    if kinds != 1:
        raise InputError("give exactly one input: audio files, --manifest FILE or --test-set NAME; see --help")
    if (args.wip is not None) and args.lm_weight is None:
        raise InputError("--wip needs --lm-weight (a tuned pair from the dev decode's sweep.json)")
    if args.num_jobs < 1:
        raise InputError(f"--num-jobs must be >= 1, got {args.num_jobs}")
    from asr_bl.stage import Stage

    stage = Stage(Path(args.out_dir) / "done.json", "decode",
                  {k: v for k, v in vars(args).items() if k not in _RUNTIME_OPTIONS}, inputs=_stage_inputs(args))
    if stage.is_done(args.force):
        return 0
    graph = GraphDir(args.graph_dir)
    source = load_source(args.model_dir, device=args.device)
    graph.check_model(source.num_pdfs, source.tree_fingerprint, source.description)
    rate = int(getattr(source, "sampling_rate", 8000))
    if args.audio:
        cuts, failures = cuts_from_audio(args.audio, rate, args.channel)
    else:
        path = args.manifest or recipe_test_set(args.recipe_dir, args.test_set)
        cuts, failures = cuts_from_manifest(path, rate, args.channel)
    for ident, why in failures:
        print(f"{PROG}: warning: {ident}: {why}; skipped (listed in {args.out_dir}/failures.txt)", file=sys.stderr)
    if not cuts:
        write_text(Path(args.out_dir) / "failures.txt", "".join(f"{u} {w}\n" for u, w in failures))
        raise InputError(f"nothing to decode: every input failed (see {args.out_dir}/failures.txt)")
    rescore = None
    if args.rescore_lm:
        r = Path(args.rescore_lm)
        rescore = r / "lm.arpa" if r.is_dir() else r
        if not rescore.is_file():
            raise FileNotFoundError(f"{rescore}: not found; pass an LM dir from asr_bl-lm train or an ARPA file")
        if args.backend != "k2":
            raise InputError("--rescore-lm needs lattices: use --backend k2")
        if not (graph.path / "G.arpa").is_file():
            raise FileNotFoundError(f"{graph.path / 'G.arpa'}: the graph dir has no first-pass ARPA (rescoring "
                                    f"takes its scores out); rebuild it with "
                                    f"asr_bl-mkgraph --lm-dir <dir with lm.arpa>")
    if args.stm and not Path(args.stm).is_file():
        raise FileNotFoundError(f"{args.stm}: no such STM; pass the test set's reference STM (eval2000: "
                                f"data/eval2000.stm from run.sh stage 0) or leave --stm out")
    subsets = dict(kv.split("=", 1) for kv in args.subsets.split(",") if kv)
    options = DecodeOptions(backend=args.backend, device=args.device, acoustic_scale=args.acoustic_scale,
                            lm_weight=args.lm_weight, wip=args.wip, lm_weights=args.lm_weights, wips=args.wips,
                            num_jobs=args.num_jobs, rescore_arpa=str(rescore) if rescore else None,
                            num_paths=args.num_paths, glm=args.glm, stm=args.stm, scorer=args.scorer,
                            subsets=subsets,
                            extra_settings=tuple(tuple(x) for x in args.extra_setting),
                            progress=not args.no_progress)
    config = DecoderConfig(beam=args.beam, max_active=args.max_active, min_active=args.min_active,
                           lattice_beam=args.lattice_beam)
    summary = decode_set(cuts, source, graph, args.out_dir, options, config, input_failures=failures)
    outputs = sorted(p for p in Path(args.out_dir).rglob("*") if p.is_file() and p.name != "done.json")
    stage.finish(outputs, {k: summary.get(k) for k in ("utterances", "wer", "ctm_wer", "setting", "rtf", "rescored")})
    print(json.dumps(summary, indent=1, default=str))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from asr_bl.bin import run_tool
    from asr_bl.decode.cli import USAGE_ERRORS

    return run_tool(get_parser(), _run, argv, usage_errors=USAGE_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
