"""Data-loading throughput: frames/s of the frame-level dataset, precomputed vs on-the-fly features,
with 0, 1 and 2 DataLoader workers, measured side by side in one run.

By default it builds its own small corpus (two-channel 8 kHz conversations of chirps, harmonics and
noise; utterances of 1-4 s) in a scratch directory; ``--cuts`` points it at an existing precomputed
cut manifest (e.g. data/fbank/synth_cuts_dev.jsonl.gz) instead. Alignments are attached as zeros
where the cuts have none (the labels do not change the loading cost).

Writes ``benchmarks/results/data.md`` and ``benchmarks/results/data.json``, naming the machine.

    .venv/bin/python benchmarks/data.py                       # ~2 minutes on 2 cores
    .venv/bin/python benchmarks/data.py --minutes-of-audio 10 --repeats 3
"""
import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import soundfile as sf
import torch

from asr_bl.data import IGNORE_LABEL, FrameDataConfig, FrameLevelDataset, attach_alignment, make_sampler
from asr_bl.features import CmvnStats, FbankConfig, compute_and_store, cut_num_frames, feature_paths, utterance_cuts
from asr_bl.machine import cpu_model

SR = 8000


def build_corpus(workdir: Path, minutes: float, seed: int = 0):
    """Conversations of 60 s, utterances of 1-4 s alternating sides, until ``minutes`` of speech."""
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    rng = np.random.default_rng(seed)
    recordings, sups = [], []
    total, conv = 0.0, 0
    while total < minutes * 60:
        t = np.arange(60 * SR) / SR
        sides = []
        for side in range(2):
            f0 = 100 + 80 * side + 30 * np.sin(2 * np.pi * 0.3 * t)
            phase = 2 * np.pi * np.cumsum(f0) / SR
            voiced = sum(np.sin(k * phase) / k for k in range(1, 10))
            sides.append(0.2 * voiced + 0.01 * rng.standard_normal(t.shape))
        path = workdir / f"conv{conv}.wav"
        sf.write(str(path), np.stack(sides, axis=1), SR, subtype="PCM_16")
        rec = Recording.from_file(path)
        recordings.append(rec)
        start, i = 0.1, 0
        while start < 56 and total < minutes * 60:
            dur = float(rng.uniform(1.0, 4.0))
            sups.append(SupervisionSegment(
                id=f"{rec.id}-{i:03d}", recording_id=rec.id, start=round(start, 2), duration=round(dur, 2),
                channel=i % 2, speaker=f"{rec.id}-{'AB'[i % 2]}",
            ))
            total += dur
            start += dur + 0.2
            i += 1
        conv += 1
    return utterance_cuts(RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(sups))


def with_zero_alignments(cuts, config: FbankConfig, storage: Path):
    """All-zero ``pdf_ali`` labels for the cuts that have none (loading cost is what is measured)."""
    from lhotse import CutSet

    missing = [c for c in cuts if not c.has_custom("pdf_ali")]
    if not missing:
        return cuts
    zeros = {c.id: np.zeros(cut_num_frames(c, config), np.int32) for c in missing}
    attached = attach_alignment(missing, {"pdf_ali": zeros}, Path(storage) / "zero_ali.h5")
    return CutSet.from_cuts([attached[c.id] if c.id in zeros else c for c in cuts])


def measure(
    cuts, stats: CmvnStats, source: str, workers: int, chunk_frames: int, max_duration: float
) -> Dict[str, float]:
    dataset = FrameLevelDataset(FrameDataConfig(chunk_frames=chunk_frames), cmvn_stats=stats, source=source)
    sampler = make_sampler(cuts, max_duration=max_duration, shuffle=False, num_buckets=None)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=workers)
    # Steady state: the clock starts when the first batch arrives, so worker start-up (process
    # creation, imports) is not counted; the frames of that first batch are not counted either.
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    frames = 0
    for batch in iterator:
        frames += int((batch["targets"] != IGNORE_LABEL).sum())
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=Path, default=None,
                        help="precomputed cut manifest to load (default: build a corpus)")
    parser.add_argument("--cmvn", type=Path, default=None, help="CMVN stats of --cuts (default: next to it)")
    parser.add_argument("--minutes-of-audio", type=float, default=20.0,
                        help="size of the built corpus (default: %(default)s)")
    parser.add_argument("--chunk-frames", type=int, default=100, help="C (labelled frames per chunk)")
    parser.add_argument("--max-duration", type=float, default=30.0, help="seconds of audio per batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting; the median is reported")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from lhotse import load_manifest

    config = FbankConfig()
    with tempfile.TemporaryDirectory(prefix="bench_data_") as scratch:
        scratch = Path(scratch)
        if args.cuts is None:
            raw = build_corpus(scratch, args.minutes_of_audio)
            pre = compute_and_store(raw, scratch / "fbank", "bench", "train", config)
            stats = CmvnStats.load(feature_paths(scratch / "fbank", "bench", "train")["cmvn"])
            corpus = f"built: {args.minutes_of_audio} min of 2-channel 8 kHz audio, {len(pre)} utterances of 1-4 s"
        else:
            pre = load_manifest(args.cuts)
            cmvn = args.cmvn or Path(str(args.cuts).replace("_cuts_", "_cmvn_").replace(".jsonl.gz", ".npz"))
            stats = CmvnStats.load(cmvn)
            corpus = f"{args.cuts} ({len(pre)} cuts)"
        pre = with_zero_alignments(pre, config, scratch / "ali").to_eager()
        fly = pre.drop_features()
        storage_type = pre[0].features.storage_type
        results = []
        for source, cuts in (("precomputed", pre), ("on-the-fly", fly)):
            for workers in args.workers:
                runs = [measure(cuts, stats, source, workers, args.chunk_frames, args.max_duration)
                        for _ in range(args.repeats)]
                fps = statistics.median(r["frames_per_s"] for r in runs)
                runs_fps = [round(r["frames_per_s"], 1) for r in runs]
                results.append({"source": source, "workers": workers, "frames": runs[0]["frames"],
                                "frames_per_s": round(fps, 1), "runs_frames_per_s": runs_fps})
                print(f"{source:12s} workers={workers}: {fps:10.0f} frames/s  (runs: {runs_fps})")
    base = {w: r["frames_per_s"] for r in results for w in [r["workers"]] if r["source"] == "on-the-fly"}
    for r in results:
        r["ratio_vs_on_the_fly_same_workers"] = round(r["frames_per_s"] / base[r["workers"]], 2)
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
               "python": platform.python_version(), "feature_storage": storage_type,
               "load_average_1_5_15min_at_end": [round(x, 2) for x in os.getloadavg()]}
    report = {"benchmark": "frame-level data loading", "machine": machine, "corpus": corpus,
              "chunk_frames": args.chunk_frames, "max_duration_s": args.max_duration, "repeats": args.repeats,
              "results": results}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # Temporary name, then rename: an interrupted run never leaves a half-written results file.
    (args.out_dir / "data.json.tmp").write_text(json.dumps(report, indent=2) + "\n")
    os.replace(args.out_dir / "data.json.tmp", args.out_dir / "data.json")
    lines = [
        "# Data-loading throughput (frames/s)", "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
        f"Python {machine['python']}; feature storage: {storage_type}; load average at the end "
        f"{machine['load_average_1_5_15min_at_end']} (other jobs share the cores: compare rows, not runs).",
        f"Corpus: {corpus}. Chunks of {args.chunk_frames} labelled frames (+48 context), "
        f"batches of {args.max_duration} s, median of {args.repeats} runs, all settings in one run.",
        "Frames/s counts labelled frames delivered by the DataLoader (features loaded, CMVN, deltas, chunking),",
        "in steady state (timed from the first batch on, so worker start-up is excluded).",
        "", "| source | workers | frames/s | vs on-the-fly (same workers) |", "|---|---|---|---|",
    ]
    lines += [f"| {r['source']} | {r['workers']} | {r['frames_per_s']:.0f} "
              f"| {r['ratio_vs_on_the_fly_same_workers']:.2f}x |"
              for r in results]
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/data.py` (lilcom storage needs the lilcom package; "
              "without it the uncompressed numpy fallback is what gets measured).", ""]
    (args.out_dir / "data.md.tmp").write_text("\n".join(lines))
    os.replace(args.out_dir / "data.md.tmp", args.out_dir / "data.md")
    print(f"wrote {args.out_dir / 'data.md'} and {args.out_dir / 'data.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
