"""asr_bl-flops: multiply-accumulates and parameters of a model, counted by running it.

MACs are counted with forward hooks on every convolution and linear layer during one forward pass
of a single example (asr_bl.nn.count_macs): a conv costs out_elements * in_channels/groups *
kernel_size, a linear layer out_elements * in_features; BN, activations, pooling and
interpolation are not counted (the paper's convention). Parameters are all of the model's
parameters, the output layer included.

Speech acoustic models (asr_bl.models) are measured per 49-frame window (input 3 x 64 x 49);
vision models registered in asr_bl.vision.MODELS per image (default 3 x 224 x 224); the
detectors of asr_bl.vision.DETECTORS (Table 10) per random image (default 600 x 1024) whose box
head sees --proposals region proposals (default 300). 'vision-tables' prints every model of the
paper's Tables 6-10 with the paper's figure beside ours (asr_bl.vision.tables; the four detector
counts take a few minutes on a CPU, --skip-detection leaves them out).

Examples:
  asr_bl-flops bl-resnet22-a4-b1
  asr_bl-flops resnet22 --num-classes 2000 --width 0.5 --json
  asr_bl-flops all                     # every speech preset next to the paper's Table 3
  asr_bl-flops bl_resnet50_a2_b4 --input-size 256
  asr_bl-flops bl-resnet22-a4-b1 --breakdown 3   # MACs per module, names cut to 3 components
  asr_bl-flops vision-tables --skip-detection   # Tables 6-9 beside the paper
  asr_bl-flops fasterrcnn_bl_resnet101_fpn --input-size 800x1344 --proposals 300
"""
import argparse
import importlib
import json
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from asr_bl.models import PRESETS, TABLE3_TARGETS, WINDOW_FRAMES, build_model
from asr_bl.nn import count_macs

COUNTER = "forward hooks on Conv/Linear layers (asr_bl.nn.count_macs)"
SPEECH_INPUT = (64, WINDOW_FRAMES)
VISION_INPUT = (224, 224)
DETECTION_INPUT = (600, 1024)


def vision_registry() -> Dict[str, Callable[..., nn.Module]]:
    """``asr_bl.vision.MODELS`` (name -> builder), imported only when a name is not a speech preset."""
    try:
        vision = importlib.import_module("asr_bl.vision")
    except ImportError:
        return {}
    return dict(getattr(vision, "MODELS", {}) or {})


def detector_registry() -> Dict[str, Callable[..., nn.Module]]:
    """``asr_bl.vision.DETECTORS`` (name -> builder), imported only when needed."""
    try:
        vision = importlib.import_module("asr_bl.vision")
    except ImportError:
        return {}
    return dict(getattr(vision, "DETECTORS", {}) or {})


def measure_detector(name: str, input_size: Optional[Tuple[int, int]], proposals: int,
                     num_classes: Optional[int] = None) -> Dict[str, object]:
    """MACs of detector ``name`` on one random image, split by part (asr_bl.vision.detection)."""
    from asr_bl.vision.detection import count_detector_macs

    height, width = input_size or DETECTION_INPUT
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    torch.manual_seed(0)
    macs = count_detector_macs(detector_registry()[name](**kwargs), height, width, proposals)
    return {
        "model": name, "kind": "detector", "input_size": [3, height, width], "proposals": proposals,
        "gmacs": round(macs.total / 1e9, 6), "gmacs_without_rpn": round(macs.without_rpn / 1e9, 6),
        "gmacs_by_part": {part: round(getattr(macs, part) / 1e9, 6)
                          for part in ("backbone", "fpn", "rpn", "roi_heads")},
        "macs": macs.total, "params_m": round(macs.count.params_m, 6), "params": macs.count.params,
        "counter": COUNTER,
    }


def vision_table_rows(detectors: bool = True) -> List[Dict[str, object]]:
    """Every model of the paper's Tables 6-10 with the paper's figures (asr_bl.vision.tables)."""
    from asr_bl.vision.tables import measure_rows

    return measure_rows(detectors=detectors)


def print_vision_table(rows: Sequence[Dict[str, object]]) -> None:
    print(f"{'table':8s} {'model':28s} {'input':>9s} {'GMACs':>8s} {'paper':>7s} {'dev%':>6s} "
          f"{'params(M)':>9s} {'paper':>6s} {'dev%':>6s}  note")

    def pct(value: object) -> str:
        return "" if value is None else f"{float(value):+6.1f}"

    for r in rows:
        size = "x".join(str(v) for v in list(r["input_size"])[1:])
        paper_params = "" if r["paper_params_m"] is None else f"{float(r['paper_params_m']):6.2f}"
        note = str(r.get("note") or "")
        if "gmacs_without_rpn" in r:
            note = (f"{note}; {r['proposals']} proposals; without RPN head {float(r['gmacs_without_rpn']):.2f} "
                    f"({pct(r['gmacs_without_rpn_dev_pct']).strip()}%), backbone {float(r['backbone_gmacs']):.2f}")
        print(f"{r['table']:8s} {r['model']:28s} {size:>9s} {float(r['gmacs']):8.3f} "
              f"{float(r['paper_gmacs']):7.3f} {pct(r['gmacs_dev_pct'])} {float(r['params_m']):9.2f} "
              f"{paper_params:>6s} {pct(r['params_dev_pct'])}  {note}")


def parse_input_size(text: str) -> Tuple[int, int]:
    """``"224"`` -> (224, 224); ``"64x49"`` or ``"64,49"`` -> (64, 49)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        sizes = [int(p) for p in parts if p]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-size {text!r}: expected N or HxW, e.g. 224 or 64x49") from None
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--input-size {text!r}: expected N or HxW with positive sizes")
    return sizes[0], sizes[1]


def measure(
    name: str,
    num_classes: Optional[int] = None,
    width: float = 1.0,
    input_size: Optional[Tuple[int, int]] = None,
    breakdown_depth: int = 0,
) -> Dict[str, object]:
    """MACs and parameters of model ``name`` for one input of ``input_size`` (H x W); with
    ``breakdown_depth > 0`` also the MACs per module, names cut to that many components."""
    if name in PRESETS:
        model = build_model(name, num_classes=32000 if num_classes is None else num_classes, width=width)
        size = input_size or SPEECH_INPUT
        kind = "speech"
    else:
        registry = vision_registry()
        if name not in registry:
            known = sorted(PRESETS) + sorted(registry) + sorted(detector_registry()) + ["all", "vision-tables"]
            raise KeyError(f"unknown model {name!r}; known models: {', '.join(known)}")
        if width != 1.0:
            raise ValueError(f"--width applies to speech models only, not to vision model {name!r}")
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        model = registry[name](**kwargs)
        size = input_size or VISION_INPUT
        kind = "vision"
    example = torch.randn(1, 3, size[0], size[1])
    result = count_macs(model, example)
    row: Dict[str, object] = {
        "model": name,
        "gmacs": round(result.gmacs, 6),
        "params_m": round(result.params_m, 6),
        "macs": result.macs,
        "params": result.params,
        "input_size": [3, size[0], size[1]],
        "kind": kind,
        "counter": COUNTER,
    }
    if breakdown_depth > 0:
        groups: Dict[str, int] = {}
        for module_name, macs in result.per_module.items():
            key = ".".join(module_name.split(".")[:breakdown_depth])
            groups[key] = groups.get(key, 0) + macs
        row["gmacs_by_module"] = {k: round(v / 1e9, 6) for k, v in groups.items()}
    return row


def table3_rows(width: float = 1.0, num_classes: Optional[int] = None) -> List[Dict[str, object]]:
    """Every speech preset with the paper's Table 3 figures and the deviations in percent."""
    rows = []
    for name in PRESETS:
        row = measure(name, num_classes=num_classes, width=width)
        paper_gmacs, paper_params = TABLE3_TARGETS[name]
        row["paper_gmacs"] = paper_gmacs
        row["paper_params_m"] = paper_params
        row["gmacs_dev_pct"] = round(100.0 * (float(row["gmacs"]) / paper_gmacs - 1.0), 2)
        row["params_dev_pct"] = round(100.0 * (float(row["params_m"]) / paper_params - 1.0), 2)
        rows.append(row)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr_bl-flops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        help="a speech preset (" + ", ".join(PRESETS) + "), a vision model of asr_bl.vision.MODELS "
        "or a detector of asr_bl.vision.DETECTORS, 'all' for every speech preset next to Table 3, "
        "or 'vision-tables' for every model of the paper's Tables 6-10 next to the paper",
    )
    parser.add_argument(
        "--num-classes", type=int, default=None, help="output classes (speech default: 32000 CD states)"
    )
    parser.add_argument(
        "--width", type=float, default=1.0, help="channel multiplier for speech models (default 1.0)"
    )
    parser.add_argument(
        "--input-size",
        type=parse_input_size,
        default=None,
        help="input H or HxW (speech default 64x49: mel bins x one 49-frame window; vision default 224)",
    )
    parser.add_argument(
        "--breakdown",
        type=int,
        default=0,
        metavar="DEPTH",
        help="also list MACs per module, grouping names by their first DEPTH components (e.g. 3: body.layer1.big)",
    )
    parser.add_argument(
        "--proposals", type=int, default=300,
        help="detectors: region proposals the box head sees (default 300, as Table 10)",
    )
    parser.add_argument(
        "--skip-detection", action="store_true",
        help="vision-tables: leave out the Table 10 detectors (minutes of CPU)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    if args.num_classes is not None and args.num_classes < 1:
        print(f"asr_bl-flops: --num-classes must be positive, got {args.num_classes}", file=sys.stderr)
        return 2
    if args.width <= 0:
        print(f"asr_bl-flops: --width must be positive, got {args.width}", file=sys.stderr)
        return 2
    if args.proposals < 1:
        print(f"asr_bl-flops: --proposals must be positive, got {args.proposals}", file=sys.stderr)
        return 2
    try:
        if args.model == "vision-tables":
            rows = vision_table_rows(detectors=not args.skip_detection)
            if args.json:
                print(json.dumps(rows, indent=1))
            else:
                print_vision_table(rows)
                print(f"(counted by {COUNTER}; the paper's FLOPs are multiply-accumulates)")
            return 0
        if args.model in detector_registry():
            row = measure_detector(args.model, args.input_size, args.proposals, args.num_classes)
            if args.json:
                print(json.dumps(row))
            else:
                shape = "x".join(str(v) for v in row["input_size"])
                print(f"{row['model']}: {row['gmacs']:.3f} GMACs per {shape} image with {row['proposals']} "
                      f"proposals ({row['gmacs_without_rpn']:.3f} without the RPN head), "
                      f"{row['params_m']:.3f} M parameters")
                for part, gmacs in row["gmacs_by_part"].items():
                    print(f"  {part:12s} {gmacs:9.3f} GMACs")
                print(f"(counted by {COUNTER})")
            return 0
        if args.model == "all":
            rows = table3_rows(width=args.width, num_classes=args.num_classes)
            if args.json:
                print(json.dumps(rows, indent=1))
            else:
                print(f"{'model':24s} {'GMACs':>7s} {'paper':>6s} {'dev%':>6s} "
                      f"{'params(M)':>9s} {'paper':>6s} {'dev%':>6s}")
                for r in rows:
                    print(
                        f"{r['model']:24s} {r['gmacs']:7.3f} {r['paper_gmacs']:6.2f} {r['gmacs_dev_pct']:+6.1f} "
                        f"{r['params_m']:9.2f} {r['paper_params_m']:6.1f} {r['params_dev_pct']:+6.1f}"
                    )
            return 0
        row = measure(
            args.model,
            num_classes=args.num_classes,
            width=args.width,
            input_size=args.input_size,
            breakdown_depth=args.breakdown,
        )
    except (KeyError, ValueError) as e:
        print(f"asr_bl-flops: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # e.g. a detector image too small for --proposals boxes
        hint = "; use a larger --input-size or fewer --proposals" if args.model in detector_registry() else ""
        print(f"asr_bl-flops: error: {args.model}: {e}{hint}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(row))
    else:
        shape = "x".join(str(s) for s in row["input_size"])
        print(f"{row['model']}: {row['gmacs']:.4f} GMACs per {shape} input, {row['params_m']:.3f} M parameters")
        for module_name, gmacs in row.get("gmacs_by_module", {}).items():
            print(f"  {module_name:40s} {gmacs:9.4f} GMACs")
        print(f"(counted by {COUNTER})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
