"""Training speed of the acoustic models, side by side in one run: labelled frames/s of one optimiser step.

A step is what ``asr_bl-train`` does per batch: forward on dense chunks (``C + 48`` input frames,
``C`` labelled), cross-entropy, backward, gradient-norm clipping, SGD with Nesterov momentum. Every
preset is timed at each width with the same random features of the real shape (3 x 64 x (C+48)),
interleaved round-robin so a change of machine load hits all alike, and reported as the time ratio
vs ResNet-22 next to the MAC ratio (dense forward MACs per labelled frame, counted by
``asr_bl.nn.count_macs``; backward costs about twice the forward for every model alike).

On CUDA (``--device cuda``): full width with AMP (bf16 where supported) and channels-last, at
each ``--batch-chunks``, with the peak memory. ``--cuts`` additionally measures the data loader's
own rate (FrameLevelDataset on real precomputed cuts, CPU, one process), apart from the model.

  python benchmarks/train_am.py --device cpu --threads 2 --widths 0.25,1.0 --steps 3
  python benchmarks/train_am.py --device cuda --widths 1.0 --batch-chunks 64,256,1024
"""
import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

from asr_bl.io import write_text
from asr_bl.machine import machine_info
from asr_bl.models import CONTEXT_FRAMES, build_model, model_names
from asr_bl.nn import count_macs

LOG = logging.getLogger("train_am")
BASELINE = "resnet22"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(name: str, width: float, num_classes: int, chunks: int, chunk_frames: int, device: torch.device,
              amp: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    model = build_model(name, num_classes=num_classes, width=width).to(device).train()
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-6)
    x = torch.randn(chunks, 3, 64, chunk_frames + 2 * CONTEXT_FRAMES, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (chunks * chunk_frames,), device=device)
    dtype = torch.bfloat16 if (device.type == "cuda" and torch.cuda.is_bf16_supported()) else torch.float16

    def step() -> None:
        with (torch.autocast(device_type=device.type, dtype=dtype) if amp else contextlib.nullcontext()):
            out = model(x)
        loss = torch.nn.functional.cross_entropy(out.float().reshape(-1, num_classes), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()

    return step


def dense_macs_per_frame(name: str, width: float, num_classes: int, chunk_frames: int) -> float:
    model = build_model(name, num_classes=num_classes, width=width)
    return count_macs(model, torch.randn(1, 3, 64, chunk_frames + 2 * CONTEXT_FRAMES)).macs / chunk_frames


def time_interleaved(steps: Dict[str, Callable[[], None]], repeats: int, device: torch.device, warmup: int = 2):
    for fn in steps.values():  # warm-up (allocations, cudnn autotuning)
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {k: [] for k in steps}
    cpu: Dict[str, List[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for k, fn in steps.items():
            _sync(device)
            t, c = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {k: statistics.median(v) for k, v in times.items()}, {k: statistics.median(v) for k, v in cpu.items()}


def data_rate(cuts_path: str, feature_dir: str, chunk_frames: int, seconds: float) -> Dict[str, float]:
    """Labelled frames/s of FrameLevelDataset on real cuts in this process (lilcom decode, CMVN, deltas, chunks)."""
    from lhotse import load_manifest

    from asr_bl.data import FrameDataConfig, FrameLevelDataset, make_sampler
    from asr_bl.features import CmvnStats, FbankConfig, feature_paths

    stem = Path(cuts_path).name.split(".")[0]
    corpus, _, part = stem.partition("_cuts_")
    paths = feature_paths(feature_dir, corpus, part)
    cuts = load_manifest(cuts_path)
    dataset = FrameLevelDataset(FrameDataConfig(chunk_frames=chunk_frames), feature_config=FbankConfig(),
                                cmvn_stats=CmvnStats.load(paths["cmvn"]))
    frames, start = 0, time.perf_counter()
    for batch_cuts in make_sampler(cuts, max_duration=5.12, world_size=1, rank=0):
        batch = dataset[batch_cuts]
        frames += int((batch["targets"] != -100).sum())
        if time.perf_counter() - start > seconds:
            break
    return {"labelled_frames_per_s": frames / (time.perf_counter() - start), "frames": frames}


def run(args: argparse.Namespace) -> Dict[str, object]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info(device)
    info["load_average_1min_at_start"] = round(os.getloadavg()[0], 2)
    presets = args.presets.split(",") if args.presets else model_names()
    if BASELINE not in presets:
        presets.insert(0, BASELINE)
    widths = [float(w) for w in args.widths.split(",")]
    amp = device.type == "cuda" and not args.no_amp
    rows = []
    for width in widths:
        macs = {p: dense_macs_per_frame(p, width, args.num_classes, args.chunk_frames) for p in presets}
        chunk_list = [int(c) for c in (args.batch_chunks_full if width >= 1.0 and args.batch_chunks_full
                                       else args.batch_chunks).split(",")]
        for chunks in chunk_list:
            LOG.info("width %g, %d chunks x %d frames: %d presets", width, chunks, args.chunk_frames, len(presets))
            if device.type == "cuda":
                peaks = {}
                steps = {}
                for p in presets:  # peak memory measured alone, then all timed interleaved
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                    fn = make_step(p, width, args.num_classes, chunks, args.chunk_frames, device, amp)
                    fn()
                    _sync(device)
                    peaks[p] = torch.cuda.max_memory_allocated(device) / 2**30
                    steps[p] = fn
            else:
                peaks = {}
                steps = {p: make_step(p, width, args.num_classes, chunks, args.chunk_frames, device, amp)
                         for p in presets}
            t, c = time_interleaved(steps, args.steps, device, args.warmup)
            for p in presets:
                rows.append({
                    "model": p, "width": width, "chunks": chunks, "labelled_frames": chunks * args.chunk_frames,
                    "seconds_per_step": t[p], "frames_per_s": chunks * args.chunk_frames / t[p],
                    "speed_ratio_vs_resnet22": t[BASELINE] / t[p],
                    "cpu_seconds_per_step": c[p], "frames_per_cpu_s": chunks * args.chunk_frames / c[p],
                    "cpu_speed_ratio_vs_resnet22": c[BASELINE] / c[p],
                    "mac_ratio_vs_resnet22": macs[p] / macs[BASELINE],
                    "gmacs_per_frame_forward": macs[p] / 1e9,
                    "peak_gib": round(peaks[p], 3) if p in peaks else None,
                })
            del steps
    result: Dict[str, object] = {"machine": info, "settings": {
        "device": str(device), "amp": amp, "num_classes": args.num_classes, "chunk_frames": args.chunk_frames,
        "steps": args.steps, "warmup": args.warmup, "widths": widths, "batch_chunks": args.batch_chunks,
        "batch_chunks_full_width": args.batch_chunks_full or args.batch_chunks}, "rows": rows}
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    if args.cuts:  # after the model rows are complete: a data problem must not lose them
        try:
            result["data_loader"] = data_rate(args.cuts, args.feature_dir, args.chunk_frames, args.data_seconds)
        except (KeyError, FileNotFoundError) as error:
            result["data_loader_error"] = str(error)
    return result


def to_markdown(result: Dict[str, object]) -> str:
    m, s = result["machine"], result["settings"]
    lines = [
        "# Acoustic-model training speed (forward + backward + clip + SGD step)",
        "",
        f"Machine: {m.get('gpu', m['cpu'])} ({m['device']}); CPU {m['cpu']}, {m['cpu_cores']} cores, "
        f"{m['torch_threads']} torch threads; torch {m['torch']}, Python {m['python']}; load average "
        f"{m['load_average_1min_at_start']} -> {m['load_average_1min_at_end']} (a shared machine: other jobs ran "
        "meanwhile; the interleaved medians only partly absorb that).",
        f"Settings: {s['num_classes']} outputs, chunks of {s['chunk_frames']} labelled frames (+48 context), "
        f"AMP {s['amp']}, median of {s['steps']} interleaved steps per model.",
        "",
        "| model | width | batch (chunks) | labelled frames/s | speed ratio vs ResNet-22 | frames per CPU-s | "
        "CPU-time ratio vs ResNet-22 | MAC ratio vs ResNet-22 | forward GMACs/frame | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        lines.append(f"| {r['model']} | {r['width']:g} | {r['chunks']} | {r['frames_per_s']:.0f} | "
                     f"{r['speed_ratio_vs_resnet22']:.2f} | {r['frames_per_cpu_s']:.0f} | "
                     f"{r['cpu_speed_ratio_vs_resnet22']:.2f} | "
                     f"{r['mac_ratio_vs_resnet22']:.3f} | "
                     f"{r['gmacs_per_frame_forward']:.4f} | {peak} |")
    lines += ["", "Speed ratio > 1 = faster than ResNet-22; a speed ratio equal to 1 / MAC ratio would mean "
              "the MACs alone set the speed. Frames per CPU-second (process CPU time, all threads) is the "
              "less load-sensitive figure on a shared machine."]
    if "data_loader_error" in result:
        lines += ["", f"Data loader not measured: {result['data_loader_error']}"]
    if "data_loader" in result:
        d = result["data_loader"]
        lines += ["", f"Data loader alone (FrameLevelDataset, one CPU process, real cuts): "
                  f"{d['labelled_frames_per_s']:.0f} labelled frames/s over {d['frames']} frames."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--presets", default="", help="comma-separated (default: all; resnet22 always)")
    p.add_argument("--widths", default="0.25,1.0")
    p.add_argument("--batch-chunks", default="8", help="comma-separated batch sizes in chunks")
    p.add_argument("--batch-chunks-full", default="", help="batch sizes at width 1.0 (default: --batch-chunks)")
    p.add_argument("--chunk-frames", type=int, default=100)
    p.add_argument("--num-classes", type=int, default=2000)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--cuts", default="", help="real aligned cuts (with pdf_ali) for the data-loader rate (optional)")
    p.add_argument("--feature-dir", default="data/fbank")
    p.add_argument("--data-seconds", type=float, default=20.0)
    p.add_argument("--out", default="benchmarks/results/train_am")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = run(args)
    suffix = "cuda" if args.device.startswith("cuda") else "cpu"
    write_text(f"{args.out}.{suffix}.json", json.dumps(result, indent=1) + "\n")
    text = to_markdown(result)
    write_text(f"{args.out}.{suffix}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
