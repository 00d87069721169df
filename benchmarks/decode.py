"""Search speed of the two decoders on one core, side by side, with the WER at each beam.

The likelihood matrices of a set (GMM or network dir) are computed once; then, for each beam of
the sweep, the k2 and the Kaldi decoder search the *same* matrices in turn (interleaved, one torch
thread, one process), so the real-time factors are comparable on a shared machine. RTF = search
seconds / audio seconds (likelihoods excluded; they are reported apart). WER at the search
setting (LM weight = 1/acoustic scale, no penalty), in-process scorer, project GLM; the two
backends' 1-best agreement (identical word sequences) at each beam and, where they differ, which
backend's path has the higher total score (graph + scaled acoustic, the quantity both searches
maximise): the other one pruned that path away. The load average of the machine before and after
is recorded.

Writes ``benchmarks/results/decode.json`` and ``decode.md``::

    .venv/bin/python benchmarks/decode.py --cuts recipes/swbd_fisher/data/fbank/synth_cuts_test_swb.jsonl.gz \\
        --model-dir recipes/swbd_fisher/exp/tri2 --graph-dir recipes/swbd_fisher/exp/tri2/graph_tg \\
        --max-minutes 5 --beams 8,10,13,16,20:50000

A ``--beams`` entry ``B:M`` searches at beam B with max-active M (the others use ``--max-active``).
"""
import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List

import torch


def main() -> None:
    from lhotse import load_manifest

    from asr_bl.decode.acoustic import load_source
    from asr_bl.decode.decoders import DecoderConfig, make_decoder
    from asr_bl.decode.graph import GraphDir
    from asr_bl.io import write_json, write_text
    from asr_bl.machine import machine_info
    from asr_bl.scoring import project_glm, score_texts

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cuts", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--graph-dir", required=True)
    p.add_argument("--max-minutes", type=float, default=5.0, help="audio decoded per run (the first cuts)")
    p.add_argument("--acoustic-scale", type=float, default=0.1)
    p.add_argument("--beams", default="8,10,13,16",
                   help="beam sweep, each B or B:MAX_ACTIVE; the default beam is marked")
    p.add_argument("--max-active", type=int, default=DecoderConfig().max_active)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "decode"))
    args = p.parse_args()
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    load_before = os.getloadavg()

    graph = GraphDir(args.graph_dir)
    source = load_source(args.model_dir)
    graph.check_model(source.num_pdfs, source.tree_fingerprint, source.description)
    cuts, total = [], 0.0
    for c in load_manifest(args.cuts):
        if total >= args.max_minutes * 60:
            break
        cuts.append(c)
        total += c.duration
    t0 = time.perf_counter()
    source.prepare(cuts)
    mats = [source.log_likelihoods(c) * args.acoustic_scale for c in cuts]
    t_like = time.perf_counter() - t0
    audio = sum(m.shape[0] for m in mats) * float(getattr(source, "frame_shift", 0.01))
    refs = {c.id: " ".join(s.text for s in c.supervisions).split() for c in cuts}
    glm = project_glm()
    vocab = [w for w in graph.words if w and w not in ("<eps>", "#0", "<s>", "</s>")]

    default = DecoderConfig()
    settings = [(float(b.split(":")[0]), int(b.split(":")[1]) if ":" in b else args.max_active)
                for b in args.beams.split(",")]
    rows: List[Dict[str, Any]] = []
    decoders = {}
    for backend in ("k2", "kaldi"):
        decoders[backend] = make_decoder(backend, graph, DecoderConfig(max_active=args.max_active))
        if backend == "k2":
            decoders[backend].keep_lattices = False
        decoders[backend].decode(mats[:2])  # warm-up
    for beam, max_active in settings:
        hyps, scores = {}, {}
        for backend in ("k2", "kaldi"):
            dec = decoders[backend]
            dec.config = DecoderConfig(beam=beam, max_active=max_active)
            t0 = time.perf_counter()
            res = dec.decode(mats)
            secs = time.perf_counter() - t0
            hyps[backend] = {c.id: [graph.words[w] for w in r.words] for c, r in zip(cuts, res)}
            scores[backend] = {c.id: r.score for c, r in zip(cuts, res)}
            rep = score_texts(hyps[backend], refs, vocab=vocab, glm=glm)
            is_default = (beam, max_active) == (default.beam, default.max_active)
            rows.append({"backend": backend, "beam": beam, "default": is_default,
                         "max_active": max_active, "search_s": round(secs, 3), "rtf": round(secs / audio, 4),
                         "wer": round(rep.overall.wer, 2), "failed": sum(1 for r in res if not r.ok)})
            print(json.dumps(rows[-1]), flush=True)
        differ = [u for u in refs if hyps["k2"][u] != hyps["kaldi"][u]]
        # Who found the better path where the 1-bests differ (scores within 1e-3 count as a tie).
        margin = {u: scores["k2"][u] - scores["kaldi"][u] for u in differ}
        better = {"k2": sum(m > 1e-3 for m in margin.values()), "kaldi": sum(m < -1e-3 for m in margin.values())}
        better["tie"] = len(differ) - better["k2"] - better["kaldi"]
        for row in rows[-2:]:
            row["agreement"] = round(100 * (1 - len(differ) / len(refs)), 2)
            row["differing_better_path"] = better
    result = {
        "machine": machine_info(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cuts": args.cuts,
        "utterances": len(cuts),
        "audio_seconds": round(audio, 1),
        "likelihood_seconds": round(t_like, 2),
        "likelihood_rtf": round(t_like / audio, 4),
        "model": source.description,
        "graph": {"dir": args.graph_dir, "HCLG": graph.info.get("HCLG"), "k2": graph.info.get("k2")},
        "acoustic_scale": args.acoustic_scale,
        "rows": rows,
    }
    out = Path(args.out)
    write_json(out.with_suffix(".json"), result)
    lines = [
        "# Decoding search speed (one core), k2 vs Kaldi FasterDecoder, same matrices",
        "",
        f"Machine: {result['machine']['cpu']} ({result['machine']['cpu_cores']} cores, shared; load average "
        f"{load_before[0]:.1f} before, {result['load_average_after'][0]:.1f} after), torch threads 1.",
        f"Set: {args.cuts}, {len(cuts)} utterances, {audio:.0f} s of audio. Model: {source.description}. "
        f"Graph: {args.graph_dir} (HCLG {graph.info.get('HCLG')}).",
        f"Likelihoods (computed once, not in the RTF): {t_like:.1f} s, RTF {t_like / audio:.4f}. "
        f"Acoustic scale {args.acoustic_scale}, WER at LM weight "
        f"{1 / args.acoustic_scale:g}, no penalty (in-process scorer, project GLM).",
        "",
        "Where the 1-bests differ, *better path* counts the utterances on which this backend's path "
        "has the higher total score (the other search pruned it).",
        "",
        "| beam | max-active | backend | search RTF | WER % | 1-best agreement % | better path | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " (default)" if r["default"] else ""
        better = r["differing_better_path"]
        lines.append(f"| {r['beam']:g}{mark} | {r['max_active']} | {r['backend']} | {r['rtf']:.4f} | "
                     f"{r['wer']:.2f} | {r['agreement']:.1f} | {better[r['backend']]} (ties {better['tie']}) | "
                     f"{r['failed']} |")
    d = {r["backend"]: r for r in rows if r["default"]}
    if len(d) == 2:
        ratio = d["kaldi"]["rtf"] / max(d["k2"]["rtf"], 1e-9)
        lines += ["", f"At the default beam {default.beam:g} / max-active {default.max_active}: "
                      f"Kaldi / k2 search time = {ratio:.2f}."]
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
