#!/usr/bin/env python3
"""The recipe's summary (stage 10): a Table-3-like table of every model, its JSON twin and Figure 2's picture.

Usage: local/summarize.py --exp-dir exp --models "resnet22 bl-resnet22-a4-b1" --out-dir exp

Reads, for the tri2 GMM (exp/tri2) and each network (exp/am_<preset>): the decode dirs'
summary.json (decode_dev, decode_test_swb, decode_test_ch; sclite's CTM WER after 4-gram
rescoring, and the first pass), the model card (GMACs and parameters per 49-frame window, as
asr_bl-flops counts them) and metrics.jsonl (train frames/s, dev frame accuracy per epoch); the
backends' agreement (exp/tri2/backend_agreement.json, the Kaldi decodes) and the per-stage times
of exp/log/times.tsv. Writes RESULTS.md, results.json and wer_vs_macs.png (WER against GMACs per
model, like the paper's Figure 2). Skipped when its record (results.done.json) matches its inputs.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from asr_bl.bin import setup_logging
from asr_bl.io import atomic_path, write_json, write_text
from asr_bl.machine import cpu_model
from asr_bl.stage import Stage

SETS = ("dev", "test_swb", "test_ch")
TESTS = ("test_swb", "test_ch")


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else None


def set_wers(decode: Optional[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """First-pass and rescored WER of one decode (sclite's CTM WER where it was scored, else the utterance-level)."""
    if decode is None:
        return {"first_pass": None, "rescored": None}
    resc = decode.get("rescored") or {}
    return {"first_pass": decode.get("ctm_wer", decode.get("wer")),
            "rescored": resc.get("ctm_wer", resc.get("wer"))}


def model_row(name: str, mdir: Path, kind: str) -> Dict[str, Any]:
    decodes = {s: read_json(mdir / f"decode_{s}" / "summary.json") for s in SETS}
    row: Dict[str, Any] = {"model": name, "kind": kind, "dir": str(mdir),
                           "wer": {s: set_wers(d) for s, d in decodes.items()}}
    for key in ("first_pass", "rescored"):
        vals = [row["wer"][s][key] for s in TESTS]
        row["wer"].setdefault("test_avg", {})[key] = sum(vals) / len(vals) if None not in vals else None
    tests = [d for s, d in decodes.items() if s in TESTS and d]
    audio = sum(d["audio_seconds"] for d in tests)
    if audio:
        row["decode_rtf"] = {"search": sum(d["seconds"]["search"] for d in tests) / audio,
                             "total": sum(d["seconds"]["total"] for d in tests) / audio}
        row["setting"] = tests[0]["setting"]
    card = read_json(mdir / "card.json")
    if card is not None:
        row.update(preset=card["preset"], width=card["width"], gmacs=card["macs"] / 1e9, params=card["params"],
                   num_pdfs=card["num_pdfs"])
        epochs = [json.loads(line) for line in (mdir / "metrics.jsonl").read_text().splitlines() if line.strip()] \
            if (mdir / "metrics.jsonl").is_file() else []
        row["epochs"] = [{"epoch": e["epoch"], "lr": e["lr"], "train_ce": e["train"]["ce"],
                          "train_frame_acc": e["train"]["frame_acc"], "dev_ce": e["dev"]["ce"],
                          "dev_frame_acc": e["dev"]["frame_acc"]} for e in epochs]
        if epochs:
            frames = sum(e["train"]["frames"] for e in epochs)
            row["train_frames_per_s"] = frames / max(1e-9, sum(e["train"]["seconds"] for e in epochs))
    return row


def k2_wer_at(decode_dir: Path, lm_weight: float) -> Optional[float]:
    """k2's WER at ``lm_weight`` and penalty 0 (the Kaldi backend's setting): from the dev sweep, a
    test set's extra setting, or the decode's own WER when that was its setting; else None."""
    summary = read_json(decode_dir / "summary.json") or {}
    own = dict(summary.get("setting", {}), wer=summary.get("ctm_wer", summary.get("wer")))
    scored = [*((read_json(decode_dir / "sweep.json") or {}).get("settings", {}).values()),
              *summary.get("extra_settings", {}).values(), own]  # the sweep, --extra-setting, its own
    for st in scored:
        if st.get("lm_weight") is not None and float(st["lm_weight"]) == lm_weight and float(st.get("wip", -1)) == 0.0:
            return st["wer"]
    return None


def stage_times(times_tsv: Path) -> Dict[str, float]:
    """Wall seconds per stage: for each command its last run that did work; commands that ran side
    by side (run.sh's in_parallel) count once, from their start and end times (older rows without
    them are summed)."""
    last: Dict[tuple, tuple] = {}
    if times_tsv.is_file():
        for line in times_tsv.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) in (4, 6) and parts[2] == "done":
                span = (float(parts[4]), float(parts[5])) if len(parts) == 6 else None
                last[(parts[0], parts[3])] = (float(parts[1]), span)
    per_stage: Dict[str, List[tuple]] = {}
    for (stage, _), run in last.items():
        per_stage.setdefault(stage, []).append(run)
    out: Dict[str, float] = {}
    for stage, runs in per_stage.items():
        out[stage] = sum(secs for secs, span in runs if span is None)
        end = float("-inf")
        for start, stop in sorted(span for _, span in runs if span is not None):  # union of the intervals
            out[stage] += max(0.0, stop - max(start, end))
            end = max(end, stop)
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def fmt(x: Optional[float], spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def to_markdown(res: Dict[str, Any]) -> str:
    rows: List[Dict[str, Any]] = res["models"]
    base = next((r for r in rows if r.get("preset") == "resnet22"), None)
    lines = [
        "# Results: GMM baseline and Big-Little acoustic models (Table 3 shape)",
        "",
        f"Machine: {res['machine']}. Corpus: {res['corpus']}.",
        "WER % by sclite on the conversation-side CTM (Hub5 filtering, GLM), with the LM weight and insertion",
        "penalty tuned on dev; the test columns after rescoring the first-pass trigram's lattices with the 4-gram.",
        "GMACs and parameters per 49-frame window as trained (asr_bl-flops); MAC ratio against resnet22.",
        "",
        "| model | width | GMACs | MAC ratio | params (M) | dev | test_swb | test_ch | avg | avg 1st pass "
        "| train frames/s | decode RTF (search) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w = r["wer"]
        ratio = r["gmacs"] / base["gmacs"] if base and r.get("gmacs") else None
        lines.append(
            f"| {r['model']} | {fmt(r.get('width'), 'g')} | {fmt(r.get('gmacs'), '.4f')} | {fmt(ratio, '.3f')} "
            f"| {fmt(r['params'] / 1e6 if r.get('params') else None, '.2f')} | {fmt(w['dev']['rescored'])} "
            f"| {fmt(w['test_swb']['rescored'])} | {fmt(w['test_ch']['rescored'])} | {fmt(w['test_avg']['rescored'])} "
            f"| {fmt(w['test_avg']['first_pass'])} | {fmt(r.get('train_frames_per_s'), '.0f')} "
            f"| {fmt((r.get('decode_rtf') or {}).get('search'), '.3f')} |")
    gmm = next((r for r in rows if r["kind"] == "gmm"), None)
    if gmm is not None:
        beat = []
        for r in rows:
            if r["kind"] != "network":
                continue
            better = [s for s in TESTS if None not in (r["wer"][s]["rescored"], gmm["wer"][s]["rescored"])
                      and r["wer"][s]["rescored"] < gmm["wer"][s]["rescored"]]
            beat.append(f"{r['model']} below the GMM on {len(better)} of {len(TESTS)} test subsets")
        if beat:
            lines += ["", "Against the tri2 GMM: " + "; ".join(beat) + "."]
    if res.get("backends"):
        lines += ["", "## k2 and Kaldi decoders (tri2 GMM, same graph)", "",
                  "| set | k2 WER | kaldi WER | 1-best identical | LM weight (penalty 0) |",
                  "|---|---|---|---|---|"]
        for s, b in res["backends"].items():
            lines.append(f"| {s} | {fmt(b.get('k2_wer'))} | {fmt(b.get('kaldi_wer'))} | "
                         f"{b['identical']}/{b['utterances']} ({100 * b['share']:.2f}%) | {b['lm_weight']:g} |")
    curves = [r for r in rows if r.get("epochs")]
    if curves:
        lines += ["", "## Dev frame accuracy per epoch (%)", "", "| model | " + " | ".join(
            f"epoch {e['epoch']}" for e in max((r["epochs"] for r in curves), key=len)) + " |",
            "|---|" + "---|" * max(len(r["epochs"]) for r in curves)]
        for r in curves:
            lines.append(f"| {r['model']} | " + " | ".join(f"{e['dev_frame_acc']:.2f}" for e in r["epochs"]) + " |")
    lines += ["", "## Seconds per stage (the last run that did the work)", "",
              "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in res["stage_seconds"].items()]
    lines += [f"| all | {sum(res['stage_seconds'].values()):.0f} |", "",
              "Reading it: the paper's claim is a bL-ResNet-22 at the WER of ResNet-22 for about 1.6x fewer MACs;",
              "compare the avg column at the MAC ratio. wer_vs_macs.png draws the same (lower left is better).", ""]
    return "\n".join(lines)


def plot(res: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    nets = [r for r in res["models"] if r.get("gmacs") and r["wer"]["test_avg"]["rescored"] is not None]
    for r in nets:
        ax.scatter(r["gmacs"], r["wer"]["test_avg"]["rescored"], s=40)
        ax.annotate(r["model"], (r["gmacs"], r["wer"]["test_avg"]["rescored"]), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    gmm = next((r for r in res["models"] if r["kind"] == "gmm"), None)
    if gmm is not None and gmm["wer"]["test_avg"]["rescored"] is not None:
        ax.axhline(gmm["wer"]["test_avg"]["rescored"], linestyle="--", color="grey", label="tri2 GMM")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("GMACs per 49-frame window (as trained)")
    ax.set_ylabel("WER % (avg of test_swb, test_ch; 4-gram rescored)")
    ax.set_title("WER against MACs (cf. the paper's Figure 2)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", type=Path, default=Path("exp"))
    p.add_argument("--models", default="resnet22 bl-resnet22-a4-b1", help="network presets (exp/am_<preset>)")
    p.add_argument("--corpus", default="embedded default (synthetic)", help="named in the summary")
    p.add_argument("--out-dir", type=Path, default=Path("exp"))
    args = p.parse_args()
    setup_logging(False)
    exp = args.exp_dir
    models = [("tri2 GMM", exp / "tri2", "gmm")] + [(m, exp / f"am_{m}", "network") for m in args.models.split()]
    missing = [str(d / "decode_test_ch" / "summary.json") for _, d, _ in models
               if not (d / "decode_test_ch" / "summary.json").is_file()]
    if missing:
        print(f"{p.prog}: error: {missing[0]}: missing; run stages 7 and 9 first", file=sys.stderr)
        return 2
    inputs = [f for _, d, _ in models for f in [d / f"decode_{s}" / "summary.json" for s in SETS]
              + [d / "card.json", d / "metrics.jsonl"] if f.is_file()]
    agreement = exp / "tri2" / "backend_agreement.json"
    inputs += [agreement] if agreement.is_file() else []
    inputs += [exp / "tri2" / f"decode_{s}_kaldi" / "summary.json" for s in SETS
               if (exp / "tri2" / f"decode_{s}_kaldi" / "summary.json").is_file()]
    stage = Stage(args.out_dir / "results.done.json", "summary", {"models": args.models, "corpus": args.corpus},
                  inputs=inputs)
    if stage.is_done():
        return 0
    import os

    res: Dict[str, Any] = {"machine": f"{cpu_model()}, {os.cpu_count()} cores", "corpus": args.corpus,
                           "models": [model_row(n, d, k) for n, d, k in models],
                           "stage_seconds": stage_times(exp / "log" / "times.tsv")}
    if agreement.is_file():
        res["backends"] = {}
        for s, a in json.loads(agreement.read_text()).items():
            kaldi = read_json(exp / "tri2" / f"decode_{s}_kaldi" / "summary.json") or {}
            res["backends"][s] = dict(a, kaldi_wer=kaldi.get("ctm_wer", kaldi.get("wer")),
                                      k2_wer=k2_wer_at(exp / "tri2" / f"decode_{s}", a["lm_weight"]))
    out = args.out_dir
    write_json(out / "results.json", res)
    write_text(out / "RESULTS.md", to_markdown(res))
    plot(res, out / "wer_vs_macs.png")
    stage.finish([out / "results.json", out / "RESULTS.md", out / "wer_vs_macs.png"],
                 {"models": [r["model"] for r in res["models"]]})
    print((out / "RESULTS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
