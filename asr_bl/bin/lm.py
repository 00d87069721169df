"""asr_bl-lm: train an n-gram LM over a lang dir's vocabulary (kaldingram) and make G.fst; perplexity.

Examples::

    # first-pass LM: trigram pruned to about 250k n-grams, with dev perplexity
    asr_bl-lm train --text data/lm_text.txt --words data/lang/words.txt --order 3 \\
        --target-ngrams 250000 --dev-text data/lm_dev.txt --out-dir exp/lm/tg_small
    # rescoring LM: unpruned 4-gram (no G.fst needed)
    asr_bl-lm train --text data/lm_text.txt --words data/lang/words.txt --order 4 --no-fst --out-dir exp/lm/fg
    asr_bl-lm ppl --arpa exp/lm/fg/lm.arpa --text data/lm_dev.txt

``train`` skips its work when ``<out-dir>/done.json`` matches the arguments and the input files'
content (asr_bl.stage); ``--force`` redoes it. The summary (n-gram counts per order, pruning
threshold, OOVs mapped, added unigrams, dev perplexity with OOVs counted apart) is printed as JSON
and kept in ``<out-dir>/summary.json``.
"""
import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import List, Optional

from asr_bl.decode.lm import LmConfig

PROG = "asr_bl-lm"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0].split(": ", 1)[1],
                                     epilog=__doc__.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = LmConfig()
    p = sub.add_parser("train", help="train, prune, add missing words, write lm.arpa and G.fst",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--text", required=True, help="LM training text, one sentence per line")
    p.add_argument("--words", required=True, help="the lang dir's words.txt (the LM's vocabulary)")
    p.add_argument("--out-dir", required=True, help="LM dir to write (lm.arpa, G.fst, summary.json)")
    p.add_argument("--order", type=int, default=d.order, help="n-gram order (1-5)")
    p.add_argument("--target-ngrams", type=int, default=d.target_ngrams,
                   help="entropy-prune to about this many n-grams in total (0: no pruning)")
    p.add_argument("--prune-threshold", type=float, default=d.prune_threshold,
                   help="explicit entropy-pruning threshold instead of a target (0: none)")
    p.add_argument("--ladder-start", type=float, default=d.ladder_start,
                   help="first threshold tried when pruning to --target-ngrams")
    p.add_argument("--ladder-factor", type=float, default=d.ladder_factor,
                   help="factor between the thresholds tried")
    p.add_argument("--oov-word", default=d.oov_word, help="word that LM-text words outside words.txt become")
    p.add_argument("--floor-below-min", type=float, default=d.floor_below_min,
                   help="lexicon words absent from the text get log10 p = (lowest unigram) - this")
    p.add_argument("--dev-text", default=None, help="held-out text for the perplexity")
    p.add_argument("--no-fst", action="store_true", help="do not write G.fst (a rescoring-only LM)")
    p.add_argument("--force", action="store_true", help="redo even when done.json matches")
    p.add_argument("--verbose", action="store_true", help="debug logging, tracebacks")
    p = sub.add_parser("ppl", help="perplexity of an ARPA LM on a text (OOVs counted apart)")
    p.add_argument("--arpa", required=True, help="ARPA file")
    p.add_argument("--text", required=True, help="text, one sentence per line")
    p.add_argument("--verbose", action="store_true", help="debug logging, tracebacks")
    return parser


def _train(args: argparse.Namespace) -> int:
    from asr_bl.decode.lm import build_lm
    from asr_bl.stage import Stage

    config = LmConfig(**{f.name: getattr(args, f.name) for f in fields(LmConfig) if hasattr(args, f.name)})
    out = Path(args.out_dir)
    inputs = [args.text, args.words] + ([args.dev_text] if args.dev_text else [])
    for p in inputs:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: not found; check the path "
                                    f"(the recipe's data/lm_text.txt, data/lang/words.txt)")
    st = Stage(out / "done.json", "lm", dict(asdict(config), fst=not args.no_fst, dev_text=args.dev_text), inputs)
    if st.is_done(args.force):
        print(json.dumps(json.loads((out / "summary.json").read_text()), indent=1))
        return 0
    summary = build_lm(args.text, args.words, out, config, dev_text=args.dev_text, make_fst=not args.no_fst)
    outputs = [out / "lm.arpa", out / "summary.json", out / "text.txt"] + ([] if args.no_fst else [out / "G.fst"])
    st.finish(outputs, summary={k: summary[k] for k in ("ngrams", "ngrams_total", "added_unigrams")})
    print(json.dumps(summary, indent=1))
    return 0


def _ppl(args: argparse.Namespace) -> int:
    from asr_bl.decode.lm import load_arpa, perplexity

    for p in (args.arpa, args.text):
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: not found")
    print(json.dumps(perplexity(load_arpa(args.arpa), Path(args.text).read_text(encoding="utf-8").splitlines())))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from asr_bl.bin import run_tool
    from asr_bl.decode.cli import USAGE_ERRORS

    return run_tool(get_parser(), lambda args: _train(args) if args.command == "train" else _ppl(args), argv,
                    usage_errors=USAGE_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
