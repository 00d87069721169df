"""Speed of the speech acoustic models, measured side by side in one run.

1. Per-frame inference throughput of every preset vs ResNet-22: dense inference (eval mode, no
   grad) on a batch of utterances, reported as the bL/baseline time ratio next to the ratio of
   MACs (per 49-frame window, the paper's measure, and per frame of dense inference).
2. Dense vs 49-frame-window inference per utterance, for resnet22 and bl-resnet22-a4-b1: one pass
   over the padded utterance vs the paper's per-frame classifier run on every window (windows
   batched), with the MAC ratio as the bound on the speed-up.

Timings are medians over repeats that interleave the models (round-robin), so a change of machine
load hits all models alike. Results go to benchmarks/results/speech_am.<device>.{md,json}, naming
the machine (CPU model, cores, GPU, torch version).

  python benchmarks/speech_am.py                       # all presets, on CUDA if present else CPU
  python benchmarks/speech_am.py --device cpu --threads 2 --frames 300 --repeats 5
"""
import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

import torch

from asr_bl.machine import machine_info as asr_bl_machine_info
from asr_bl.models import WINDOW_FRAMES, build_model, model_names
from asr_bl.models.context import frame_windows
from asr_bl.nn import count_macs

LOG = logging.getLogger("speech_am")
BASELINE = "resnet22"
DENSE_VS_WINDOWED = ("resnet22", "bl-resnet22-a4-b1")


def machine_info(device: torch.device) -> Dict[str, object]:
    info = asr_bl_machine_info(device)
    info["load_average_1min_at_start"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved_medians(calls: Dict[str, Callable[[], object]], repeats: int, device: torch.device) -> Dict[str, float]:
    """Warm each call up once, then time them round-robin ``repeats`` times; medians in seconds."""
    for fn in calls.values():
        fn()
    times: Dict[str, List[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(time_call(fn, device))
    return {k: statistics.median(v) for k, v in times.items()}


def windowed(model: torch.nn.Module, x: torch.Tensor, window_batch: int) -> torch.Tensor:
    windows = frame_windows(x)
    return torch.cat([model(windows[i : i + window_batch]) for i in range(0, windows.shape[0], window_batch)])


def run(args: argparse.Namespace) -> Dict[str, object]:
    device = torch.device(args.device)
    info = machine_info(device)
    presets = args.presets or model_names()
    if BASELINE not in presets:
        presets = [BASELINE] + presets
    input_frames = args.frames + WINDOW_FRAMES - 1
    gen = torch.Generator().manual_seed(0)
    batch = torch.randn(args.batch, 3, 64, input_frames, generator=gen).to(device)
    models = {}
    macs = {}
    for name in presets:
        model = build_model(name, num_classes=args.num_classes).eval()
        window = count_macs(model, torch.randn(1, 3, 64, WINDOW_FRAMES)).macs
        dense = count_macs(model, torch.randn(1, 3, 64, input_frames)).macs / args.frames
        macs[name] = {"window_macs": window, "dense_macs_per_frame": dense}
        models[name] = model.to(device)
    LOG.info("throughput: %d presets, batch %d x %d frames on %s", len(presets), args.batch, args.frames, device)
    with torch.no_grad():
        dense_times = interleaved_medians(
            {name: (lambda m=m: m(batch)) for name, m in models.items()}, args.repeats, device
        )
    base_time = dense_times[BASELINE]
    throughput = []
    for name in presets:
        throughput.append(
            {
                "model": name,
                "seconds": dense_times[name],
                "frames_per_second": args.batch * args.frames / dense_times[name],
                "time_ratio_vs_resnet22": dense_times[name] / base_time,
                "window_mac_ratio_vs_resnet22": macs[name]["window_macs"] / macs[BASELINE]["window_macs"],
                "dense_mac_ratio_vs_resnet22": (
                    macs[name]["dense_macs_per_frame"] / macs[BASELINE]["dense_macs_per_frame"]
                ),
                "gmacs_per_window": macs[name]["window_macs"] / 1e9,
                "gmacs_per_frame_dense": macs[name]["dense_macs_per_frame"] / 1e9,
            }
        )
    utterance = batch[:1]
    dense_vs_windowed = []
    for name in DENSE_VS_WINDOWED:
        if name not in models:
            continue
        model = models[name]
        LOG.info("dense vs windowed: %s, one utterance of %d frames", name, args.frames)
        with torch.no_grad():
            t = interleaved_medians(
                {
                    "dense": lambda model=model: model(utterance),
                    "windowed": lambda model=model: windowed(model, utterance, args.window_batch),
                },
                args.window_repeats,
                device,
            )
            diff = (model(utterance)[0] - windowed(model, utterance, args.window_batch)[:, 0]).abs().max().item()
            scale = model(utterance).abs().max().item()
        dense_vs_windowed.append(
            {
                "model": name,
                "frames": args.frames,
                "dense_seconds": t["dense"],
                "windowed_seconds": t["windowed"],
                "speedup": t["windowed"] / t["dense"],
                "mac_bound": macs[name]["window_macs"] / macs[name]["dense_macs_per_frame"],
                "max_abs_diff_relative": diff / scale,
            }
        )
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    return {
        "machine": info,
        "settings": {
            "batch": args.batch,
            "frames": args.frames,
            "num_classes": args.num_classes,
            "repeats": args.repeats,
            "window_repeats": args.window_repeats,
            "window_batch": args.window_batch,
        },
        "throughput": throughput,
        "dense_vs_windowed": dense_vs_windowed,
    }


def to_markdown(result: Dict[str, object]) -> str:
    m = result["machine"]
    s = result["settings"]
    lines = [
        "# Speech acoustic models: inference speed",
        "",
        f"Machine: {m.get('gpu', m['cpu'])} ({m['device']}); CPU {m['cpu']}, {m['cpu_cores']} cores, "
        f"{m['torch_threads']} torch threads; torch {m['torch']}, Python {m['python']}; "
        f"load average {m.get('load_average_1min_at_start')} -> {m.get('load_average_1min_at_end')} "
        "(a shared machine: other jobs ran at the same time, which the interleaved medians only partly absorb).",
        f"Settings: {s['num_classes']} output classes, eval mode, float32, no grad; medians of interleaved repeats.",
        "",
        f"## Per-frame throughput, dense inference (batch {s['batch']} x {s['frames']} frames, {s['repeats']} repeats)",
        "",
        "| model | frames/s | time ratio vs ResNet-22 | MAC ratio (49-frame window) | MAC ratio (dense, per frame) "
        "| GMACs/window | GMACs/frame dense |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["throughput"]:
        lines.append(
            f"| {r['model']} | {r['frames_per_second']:.0f} | {r['time_ratio_vs_resnet22']:.3f} | "
            f"{r['window_mac_ratio_vs_resnet22']:.3f} | {r['dense_mac_ratio_vs_resnet22']:.3f} | "
            f"{r['gmacs_per_window']:.3f} | {r['gmacs_per_frame_dense']:.4f} |"
        )
    lines += [
        "",
        f"## Dense vs 49-frame windows, one utterance of {s['frames']} frames "
        f"(windows batched {s['window_batch']} at a time, {s['window_repeats']} repeats)",
        "",
        "| model | dense s | windowed s | speed-up | MAC bound (window MACs / dense MACs per frame) "
        "| max abs diff / output scale |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["dense_vs_windowed"]:
        lines.append(
            f"| {r['model']} | {r['dense_seconds']:.4f} | {r['windowed_seconds']:.3f} | {r['speedup']:.1f}x | "
            f"{r['mac_bound']:.1f}x | {r['max_abs_diff_relative']:.1e} |"
        )
    lines += [
        "",
        "Time ratio < 1 means faster than ResNet-22. The dense/windowed speed-up cannot exceed the MAC bound",
        "unless the windowed run is less efficient per MAC. The per-frame output layer (512 x N MACs) costs the",
        "same in both and lowers the bound (N = 32000: 16.4 MMACs of ResNet-22's ~97 MMACs per dense frame).",
        "",
    ]
    return "\n".join(lines)


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp.", suffix=os.path.basename(path))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--presets", nargs="*", default=None, help="models to time (default: all seven)")
    parser.add_argument("--frames", type=int, default=300, help="labelled frames per utterance (input has 48 more)")
    parser.add_argument("--batch", type=int, default=None,
                        help="utterances per dense batch (default 4 on CPU, 64 on CUDA)")
    parser.add_argument("--num-classes", type=int, default=32000, help="output classes (paper: 32000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of the throughput runs")
    parser.add_argument("--window-repeats", type=int, default=3, help="timed repeats of the dense-vs-windowed runs")
    parser.add_argument("--window-batch", type=int, default=256, help="windows per forward in windowed inference")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--output-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch is None:
        args.batch = 64 if args.device.startswith("cuda") else 4
    result = run(args)
    tag = "cuda" if args.device.startswith("cuda") else "cpu"
    base = os.path.join(args.output_dir, f"speech_am.{tag}")
    write_atomic(base + ".json", json.dumps(result, indent=1) + "\n")
    markdown = to_markdown(result)
    write_atomic(base + ".md", markdown)
    print(markdown)
    print(f"wrote {base}.md and {base}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
