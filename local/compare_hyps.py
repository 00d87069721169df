#!/usr/bin/env python3
"""Agreement of the k2 and Kaldi backends: the share of utterances whose 1-best words are identical.

Usage: local/compare_hyps.py --out exp/tri2/backend_agreement.json exp/tri2/decode_dev exp/tri2/decode_test_swb ...

Each DECODE_DIR (k2) is compared with DECODE_DIR_kaldi, the same set decoded by Kaldi's decoder.
The Kaldi backend has no insertion penalty, so the k2 side is its 1-best at the Kaldi decode's LM
weight and penalty 0: DECODE_DIR/sweep/lmwt_<w>_wip_0.txt (the dev sweep writes every setting; a
test-set decode writes it when given --extra-setting <w>,0), or hyp.txt when that is its setting.
Writes {set: {"utterances", "identical", "share", "lm_weight", "differ": [first ids]}} to --out and
prints it; skipped when the record beside it (<out>.done.json) matches the hypotheses.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

from asr_bl.bin import setup_logging
from asr_bl.io import write_json
from asr_bl.stage import Stage


def read_hyps(path: Path) -> Dict[str, List[str]]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            utt, *words = line.split()
            out[utt] = words
    return out


def k2_side(k2_dir: Path, lm_weight: float) -> Path:
    swept = k2_dir / "sweep" / f"lmwt_{lm_weight:g}_wip_0.txt"
    if swept.is_file():
        return swept
    setting = json.loads((k2_dir / "summary.json").read_text())["setting"]
    if float(setting["lm_weight"]) == lm_weight and float(setting["wip"]) == 0.0:
        return k2_dir / "hyp.txt"
    raise SystemExit(f"{k2_dir}: no k2 1-best at LM weight {lm_weight:g}, penalty 0 (the Kaldi decode's "
                     f"setting); decode it with --extra-setting {lm_weight:g},0")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="JSON report to write")
    p.add_argument("decode_dirs", nargs="+", type=Path, help="k2 decode dirs (each with a <dir>_kaldi twin)")
    args = p.parse_args()
    setup_logging(False)
    pairs = []
    for d in args.decode_dirs:
        kaldi = d.parent / (d.name + "_kaldi")
        for f in (d / "summary.json", kaldi / "summary.json", kaldi / "hyp.txt"):
            if not f.is_file():
                print(f"{p.prog}: error: {f}: missing; decode {d.name} with both backends first", file=sys.stderr)
                return 2
        lm_weight = float(json.loads((kaldi / "summary.json").read_text())["setting"]["lm_weight"])
        pairs.append((d.name.replace("decode_", ""), k2_side(d, lm_weight), kaldi / "hyp.txt", lm_weight))
    stage = Stage(args.out.parent / (args.out.stem + ".done.json"), "compare-backends", {},
                  inputs=[f for _, a, b, _ in pairs for f in (a, b)])
    if stage.is_done():
        return 0
    report = {}
    for name, k2_file, kaldi_file, lm_weight in pairs:
        a, b = read_hyps(k2_file), read_hyps(kaldi_file)
        ids = sorted(set(a) | set(b))
        differ = [u for u in ids if a.get(u) != b.get(u)]
        report[name] = {"utterances": len(ids), "identical": len(ids) - len(differ),
                        "share": (len(ids) - len(differ)) / max(1, len(ids)), "lm_weight": lm_weight,
                        "k2": str(k2_file), "kaldi": str(kaldi_file), "differ": differ[:20]}
    write_json(args.out, report)
    stage.finish([args.out], {k: v["share"] for k, v in report.items()})
    for name, r in report.items():
        print(f"{name}: k2 and kaldi 1-best identical on {r['identical']}/{r['utterances']} utterances "
              f"({100 * r['share']:.2f}%) at LM weight {r['lm_weight']:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
