"""asr_bl-mkgraph: build a self-contained decoding graph dir (HCLG) from a lang dir, a model and G.fst.

Kaldi's utils/mkgraph.sh order with kaldifst (see asr_bl.decode.graph): L_disambig o G,
determinize_star (log), minimize_encoded, compose_context, H from the tree and transition model,
disambiguation ids removed, self-loops (scale 0.1). Writes HCLG.fst (transition-id labels, OpenFst
format: `fstinfo HCLG.fst` reads it), its k2 form HCLG.k2.pt (pdf-id + 1 labels), words.txt,
phones.txt, lexicon.txt, transitions.npz, G.arpa, graph.json (num_pdfs, tree sha1, scales, sizes)
and log.json (states, arcs and seconds per step).

Examples::

    asr_bl-mkgraph --lang data/lang --model-dir exp/tri2 --lm-dir exp/lm/tg_small --out-dir exp/tri2/graph_tg
    asr_bl-mkgraph --lang data/lang --model-dir exp/tri2 --lm-dir exp/lm/tg_small --out-dir exp/tri2/graph_tg --no-k2

The graph is rebuilt only when an input's content (lang files, final.mdl, tree, G.fst) or an
option changed (<out-dir>/done.json, asr_bl.stage); --force rebuilds it anyway. A network
acoustic model decodes with the graph of the GMM whose tree it was trained on.
"""
import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional

from asr_bl.decode.graph import GraphConfig

PROG = "asr_bl-mkgraph"


def get_parser() -> argparse.ArgumentParser:
    d = GraphConfig()
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0].split(": ", 1)[1],
                                epilog=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lang", required=True, help="lang dir (asr_bl-gmm prepare-lang)")
    p.add_argument("--model-dir", required=True, help="GMM dir with final.mdl and tree (exp/tri2)")
    p.add_argument("--lm-dir", required=True, help="LM dir with G.fst (and lm.arpa) from asr_bl-lm train")
    p.add_argument("--out-dir", required=True, help="graph dir to write")
    p.add_argument("--transition-scale", type=float, default=d.transition_scale, help="scale of transition probs")
    p.add_argument("--self-loop-scale", type=float, default=d.self_loop_scale, help="scale of self-loop probs")
    p.add_argument("--no-k2", action="store_true", help="skip the k2 form (built on first k2 use instead)")
    p.add_argument("--force", action="store_true", help="rebuild even when done.json matches")
    p.add_argument("--verbose", action="store_true", help="debug logging, tracebacks")
    return p


def _run(args: argparse.Namespace) -> int:
    from asr_bl.decode.graph import make_graph
    from asr_bl.stage import Stage

    lang, model, lm, out = Path(args.lang), Path(args.model_dir), Path(args.lm_dir), Path(args.out_dir)
    config = GraphConfig(transition_scale=args.transition_scale, self_loop_scale=args.self_loop_scale,
                         k2=not args.no_k2)
    inputs = [lang / n for n in ("L_disambig.fst", "words.txt", "phones.txt", "disambig.int", "lexicon.txt",
                                 "lang_config.txt")] + [model / "final.mdl", model / "tree", lm / "G.fst"]
    if (lm / "lm.arpa").is_file():
        inputs.append(lm / "lm.arpa")
    for p in inputs:
        if not p.is_file():
            fix = ("build the LM with asr_bl-lm train" if p.parent == lm else
                   "train the model (asr_bl-gmm train-tri)" if p.parent == model else "run asr_bl-gmm prepare-lang")
            raise FileNotFoundError(f"{p}: not found; {fix}")
    st = Stage(out / "done.json", "mkgraph", asdict(config), inputs)
    if st.is_done(args.force):
        print(json.dumps(json.loads((out / "graph.json").read_text()), indent=1))
        return 0
    info = make_graph(lang, model, lm / "G.fst", out, config)
    outputs = [out / n for n in ("HCLG.fst", "words.txt", "phones.txt", "lexicon.txt", "transitions.npz",
                                 "graph.json", "log.json")]
    outputs += [out / n for n in ("HCLG.k2.pt", "G.arpa") if (out / n).is_file()]
    st.finish(outputs, summary={"HCLG": info["HCLG"], "seconds": info["seconds"], "num_pdfs": info["num_pdfs"]})
    print(json.dumps(info, indent=1))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from asr_bl.bin import run_tool
    from asr_bl.decode.cli import USAGE_ERRORS

    return run_tool(get_parser(), _run, argv, usage_errors=USAGE_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
