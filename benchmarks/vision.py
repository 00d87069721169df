"""Inference speed of the ImageNet bL-Nets against their ResNet baselines, side by side in one run.

For each pair (bL-ResNet-50 vs ResNet-50, bL-ResNet-101 vs ResNet-101) and batch size (16, 64):
images/s of each model in eval mode without gradients at 224x224, the speed-up (bL throughput /
baseline throughput) and, next to it, the MAC ratio (baseline MACs / bL MACs) that bounds it.
The paper (Table 2, K80, batch 16) reports 1.33x speed at 2.01x fewer MACs for bL-ResNet-101.

On a GPU the models run in channels-last memory format under fp16 autocast (as one deploys
them); on a CPU in fp32. Timings are medians over repeats that interleave all models round-robin,
so a change of machine load hits every model alike. Results go to
benchmarks/results/vision.<device>.{md,json}, naming the machine (CPU model, cores, GPU, torch).

  python benchmarks/vision.py                          # CUDA if present, else CPU
  python benchmarks/vision.py --device cpu --threads 1 --repeats 3   # shared/loaded machine
  python benchmarks/vision.py --mode train             # forward + backward + SGD step instead
"""
import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import nn

from asr_bl.machine import machine_info as asr_bl_machine_info
from asr_bl.nn import count_macs
from asr_bl.vision import MODELS

LOG = logging.getLogger("vision_benchmark")
PAIRS: Tuple[Tuple[str, str], ...] = (("bl_resnet50", "resnet50"), ("bl_resnet101", "resnet101"))
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info(device: torch.device) -> Dict[str, object]:
    """CPU model, core count, torch version and (on CUDA) the GPU name, plus the load at start."""
    info = asr_bl_machine_info(device)
    info["load_average_at_start"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model: nn.Module, images: torch.Tensor, mode: str, device: torch.device) -> Callable[[], None]:
    """A closure running one timed step of ``model`` on ``images``."""
    use_amp = device.type == "cuda"
    if mode == "inference":
        model.eval()

        def step() -> None:
            with torch.no_grad(), torch.autocast(device_type=device.type, enabled=use_amp):
                model(images)

        return step
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True)
    target = torch.zeros(images.shape[0], dtype=torch.long, device=device)
    criterion = nn.CrossEntropyLoss()

    def train_step() -> None:
        with torch.autocast(device_type=device.type, enabled=use_amp):
            loss = criterion(model(images), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # fp16 gradients may underflow, irrelevant for timing
        optimizer.step()

    return train_step


def interleaved_times(steps: Dict[str, Callable[[], None]], repeats: int, iters: int,
                      warmup: int, device: torch.device) -> Dict[str, Dict[str, List[float]]]:
    """Seconds per step of each closure, wall-clock and process CPU time: ``warmup`` untimed steps
    each, then ``repeats`` rounds in which every closure runs ``iters`` timed steps in turn.

    CPU time is what a step costs regardless of other jobs on a shared machine (with one torch
    thread it equals the wall time of an idle machine); wall time is what a user waits."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    _sync(device)
    times: Dict[str, Dict[str, List[float]]] = {name: {"wall": [], "cpu": []} for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(iters):
                step()
            _sync(device)
            times[name]["wall"].append((time.perf_counter() - wall) / iters)
            times[name]["cpu"].append((time.process_time() - cpu) / iters)
    return times


def run(device: torch.device, batch_sizes: Sequence[int], input_size: int, repeats: int,
        iters: int, warmup: int, mode: str, pairs: Sequence[Tuple[str, str]]) -> Dict[str, object]:
    machine = machine_info(device)  # before any work, so its load average is the load at start
    names = [name for pair in pairs for name in pair]
    macs = {}
    models: Dict[str, nn.Module] = {}
    for name in names:
        torch.manual_seed(0)
        model = MODELS[name]()
        macs[name] = count_macs(model.to("meta"), torch.empty(1, 3, input_size, input_size, device="meta"))
        model = MODELS[name]().to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        models[name] = model
    rows = []
    for batch in batch_sizes:
        images = torch.randn(batch, 3, input_size, input_size, device=device)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        steps = {name: make_step(models[name], images, mode, device) for name in names}
        LOG.info("batch %d: timing %s", batch, ", ".join(names))
        times = interleaved_times(steps, repeats, iters, warmup, device)
        for bl_name, base_name in pairs:
            row: Dict[str, object] = {
                "batch": batch, "bl": bl_name, "baseline": base_name,
                "mac_ratio": macs[base_name].macs / macs[bl_name].macs,
                "bl_gmacs": macs[bl_name].gmacs, "baseline_gmacs": macs[base_name].gmacs,
            }
            for clock in ("wall", "cpu"):
                bl_s = statistics.median(times[bl_name][clock])
                base_s = statistics.median(times[base_name][clock])
                row.update({
                    f"bl_images_per_s_{clock}": batch / bl_s,
                    f"baseline_images_per_s_{clock}": batch / base_s,
                    f"speedup_{clock}": base_s / bl_s,
                    f"bl_times_s_{clock}": times[bl_name][clock],
                    f"baseline_times_s_{clock}": times[base_name][clock],
                })
            rows.append(row)
            LOG.info("batch %d %s vs %s: wall %.2f vs %.2f img/s (%.2fx), cpu-time %.2fx, "
                     "at %.2fx fewer MACs", batch, bl_name, base_name, row["bl_images_per_s_wall"],
                     row["baseline_images_per_s_wall"], row["speedup_wall"], row["speedup_cpu"],
                     row["mac_ratio"])
    return {"machine": machine, "mode": mode, "input_size": input_size,
            "repeats": repeats, "iters_per_repeat": iters, "warmup": warmup,
            "precision": "fp16 autocast, channels_last" if device.type == "cuda" else "fp32",
            "rows": rows}


def to_markdown(result: Dict[str, object]) -> str:
    machine = result["machine"]
    where = machine.get("gpu") or f"{machine['cpu']} ({machine['cpu_cores']} cores, " \
                                   f"{machine['torch_threads']} torch threads)"
    lines = [
        f"# Vision bL-Net vs ResNet {result['mode']} speed ({machine['device']})",
        "",
        f"Machine: {where}; torch {machine['torch']}, Python {machine['python']}; "
        f"{result['precision']}; {result['input_size']}x{result['input_size']} inputs; median of "
        f"{result['repeats']} interleaved repeats x {result['iters_per_repeat']} steps after "
        f"{result['warmup']} warm-up steps. Load average at start: {machine.get('load_average_at_start')}.",
        "",
        "Speed-up = baseline time / bL time for the same batch; \"wall\" is elapsed time, "
        "\"cpu\" the process CPU time (insensitive to other jobs on a shared machine).",
        "",
        "| batch | bL model | baseline | bL img/s (wall) | baseline img/s (wall) | speed-up wall "
        "| bL img/s (cpu) | baseline img/s (cpu) | speed-up cpu | MAC ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['batch']} | {row['bl']} ({row['bl_gmacs']:.2f} GMACs) | {row['baseline']} "
            f"({row['baseline_gmacs']:.2f} GMACs) | {row['bl_images_per_s_wall']:.2f} | "
            f"{row['baseline_images_per_s_wall']:.2f} | {row['speedup_wall']:.2f}x | "
            f"{row['bl_images_per_s_cpu']:.2f} | {row['baseline_images_per_s_cpu']:.2f} | "
            f"{row['speedup_cpu']:.2f}x | {row['mac_ratio']:.2f}x |")
    lines += ["", "Paper (Table 2, K80, batch 16): bL-ResNet-101 1.33x faster at 2.01x fewer MACs; "
              "bL-ResNet-50 2.85 vs 4.09 GMACs (1.43x).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--batch-sizes", default="16,64", help="comma-separated (default: %(default)s)")
    parser.add_argument("--input-size", type=int, default=224, help="(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved rounds (default: 3 on CPU, 10 on GPU)")
    parser.add_argument("--iters", type=int, default=None,
                        help="timed steps per model per round (default: 1 on CPU, 20 on GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default: 1 CPU, 10 GPU)")
    parser.add_argument("--mode", choices=("inference", "train"), default="inference",
                        help="eval forward without gradients, or a full training step (default: %(default)s)")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR), help="(default: %(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    gpu = device.type == "cuda"
    result = run(device, [int(b) for b in args.batch_sizes.split(",")], args.input_size,
                 repeats=args.repeats or (10 if gpu else 3), iters=args.iters or (20 if gpu else 1),
                 warmup=args.warmup if args.warmup is not None else (10 if gpu else 1),
                 mode=args.mode, pairs=PAIRS)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"vision.{device.type}" + ("" if args.mode == "inference" else f".{args.mode}")
    markdown = to_markdown(result)
    for suffix, text in ((".json", json.dumps(result, indent=2)), (".md", markdown)):
        tmp = out_dir / f"{stem}{suffix}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out_dir / f"{stem}{suffix}")
    print(markdown)


if __name__ == "__main__":
    main()
