"""Scorer agreement and speed: sclite (Debian sctk) vs the in-process Python scorer, side by side.

For each part of a manifest directory (default: the embedded corpus's dev, test_swb, test_ch) it
writes the STM from the cuts with ``write_stm`` and a *perturbed* copy of the references as a
recording-level CTM (seeded random substitutions, deletions, insertions, hesitations and noise
tokens, some words pushed across segment ends), then scores the pair with both scorers, several
times interleaved, and also the utterance-level path (``score_texts``) and kaldialign's
``sclite_mode`` counts on the same utterance pairs (kaldialign breaks ties differently).

Writes ``benchmarks/results/scoring.md`` and ``scoring.json`` with the machine named.

    .venv/bin/python benchmarks/scoring.py --manifest-dir /path/to/data/manifests
"""
import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from asr_bl.io import write_json, write_text
from asr_bl.machine import cpu_model
from asr_bl.scoring import filter_tokens, find_sclite, project_glm, score_ctm, score_texts, write_ctm, write_stm
from asr_bl.scoring.trans import side_channel


def perturb(cuts, rng: random.Random, vocab: List[str], p_sub: float, p_del: float, p_ins: float):
    """CTM entries and utterance-level hypotheses from the references, perturbed."""
    entries, hyps = [], {}
    for cut in cuts:
        for sup in cut.supervisions:
            words = []
            for w in (sup.text or "").split():
                x = rng.random()
                if x < p_del:
                    continue
                words.append(rng.choice(vocab) if x < p_del + p_sub else w)
                if rng.random() < p_ins:
                    words.append(rng.choice(vocab + ["uh", "um", "[noise]"]))
            hyps[sup.id] = words
            if not words:
                continue
            start = float(cut.start) + float(sup.start)
            step = float(sup.duration) / len(words)
            for i, w in enumerate(words):
                t = start + i * step
                if i == len(words) - 1 and rng.random() < 0.05:
                    t = start + float(sup.duration) + 0.02  # past the segment end: the next one's
                entries.append((cut.recording_id, side_channel(cut), t, step * 0.8, w))
    return entries, hyps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"))
    p.add_argument("--prefix", default="synth")
    p.add_argument("--parts", nargs="+", default=["dev", "test_swb", "test_ch"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args()

    import kaldialign
    from lhotse import load_manifest

    from asr_bl.features.pipeline import utterance_cuts

    sclite = find_sclite()
    if sclite is None:
        raise SystemExit("sclite not found: apt-get install sctk")
    glm = project_glm()
    rows: List[Dict] = []
    for part in args.parts:
        rec = args.manifest_dir / f"{args.prefix}_recordings_{part}.jsonl.gz"
        sup = args.manifest_dir / f"{args.prefix}_supervisions_{part}.jsonl.gz"
        if not rec.is_file() or not sup.is_file():
            print(f"{part}: no manifests, skipped")
            continue
        cuts = utterance_cuts(load_manifest(rec), load_manifest(sup))
        refs = {s.id: (s.text or "").split() for c in cuts for s in c.supervisions}
        spk = {s.id: s.speaker for c in cuts for s in c.supervisions}
        vocab = sorted({w for ws in refs.values() for w in ws})
        rng = random.Random(args.seed)
        entries, hyps = perturb(cuts, rng, vocab, 0.10, 0.07, 0.06)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            stm, ctm = tmp / "ref.stm", tmp / "hyp.ctm"
            write_stm(cuts, stm)
            write_ctm(entries, ctm)
            times = {"sclite": [], "python": [], "texts": []}
            reports = {}
            for _ in range(args.repeats):
                for name in ("sclite", "python", "texts"):
                    t0 = time.perf_counter()
                    if name == "texts":
                        reports[name] = score_texts(hyps, refs, speakers=spk, glm=glm, vocab=vocab)
                    else:
                        reports[name] = score_ctm(ctm, stm, tmp / name, glm=glm, scorer=name, vocab=vocab)
                    times[name].append(time.perf_counter() - t0)
        # kaldialign on the same (filtered) utterance pairs, linear references only
        ka = {"sub": 0, "del": 0, "ins": 0, "ref_words": 0}
        for utt, ref in refs.items():
            r = [w for w in filter_tokens(ref, "ref") if not w.startswith("(")]
            h = filter_tokens(hyps.get(utt, []), "hyp")
            e = kaldialign.edit_distance(r, h, sclite_mode=True)
            for k in ("sub", "del", "ins"):
                ka[k] += e[k]
            ka["ref_words"] += len(r)
        row = {"part": part, "utterances": len(refs)}
        for name, rep in reports.items():
            o = rep.overall
            row[name] = {"ref_words": o.ref_words, "sub": o.sub, "dele": o.dele, "ins": o.ins,
                         "sentences": o.sentences, "wer": round(o.wer, 3), "best_s": round(min(times[name]), 4)}
        row["kaldialign_sclite_mode_no_optdel"] = ka
        row["agree_ctm"] = all(row["sclite"][k] == row["python"][k] for k in ("ref_words", "sub", "dele", "ins",
                                                                               "sentences"))
        row["python_speedup_vs_sclite"] = round(row["sclite"]["best_s"] / row["python"]["best_s"], 2)
        rows.append(row)
        print(json.dumps(row))
    load = [round(x, 1) for x in os.getloadavg()]
    result = {"machine": cpu_model(), "loadavg_1_5_15min": load, "repeats": args.repeats, "seed": args.seed,
              "manifest_dir": str(args.manifest_dir), "rows": rows}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(args.out_dir / "scoring.json", result)
    lines = [f"# Scorer agreement and speed ({cpu_model()}, best of {args.repeats}, seed {args.seed})", "",
             f"Load average at the end (1/5/15 min): {load}; times are wall-clock seconds of one process, "
             "including filtering and file writing, measured interleaved.", "",
             "| part | utts | scorer | ref words | sub | del | ins | %WER | time s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for name in ("sclite", "python", "texts"):
            x = r[name]
            lines.append(f"| {r['part']} | {r['utterances']} | {name} | {x['ref_words']} | {x['sub']} | {x['dele']} | "
                         f"{x['ins']} | {x['wer']} | {x['best_s']} |")
    lines += ["", "CTM scorers agree: " + ", ".join(f"{r['part']} {r['agree_ctm']}" for r in rows),
              "", "`texts` is utterance-level (no segment-boundary effects), so it may differ from the CTM rows "
              "where words were pushed past a segment end."]
    write_text(args.out_dir / "scoring.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
