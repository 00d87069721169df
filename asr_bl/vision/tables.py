"""The paper's vision figures of Tables 6-10 (Chen et al., ICLR 2019, Appendix A) beside ours.

:data:`PAPER_ROWS` lists every model of those tables that ``asr_bl.vision`` builds, with the
paper's GMACs (its "FLOPs" are multiply-accumulates, as for Tables 1-2) and parameters as printed,
the input they hold at, and :func:`measure` counts ours the same way (``asr_bl.nn.count_macs``:
every conv and linear layer of one forward pass). ``asr_bl-flops vision-tables`` prints the lot.

Classifiers are counted on the ``meta`` device (shapes only, no arithmetic: milliseconds); the
detectors of Table 10 run for real on a random image (tens of seconds each on a CPU).
"""
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import torch

from asr_bl.nn import count_macs

__all__ = ["PaperRow", "PAPER_ROWS", "measure", "measure_rows"]


@dataclass(frozen=True)
class PaperRow:
    """One model of the paper's tables: where it is printed, its figures and its input.

    ``paper_params_m`` is ``None`` where the table gives none (Table 10). ``proposals`` is set for
    detectors (the region proposals their box head sees).
    """

    model: str
    table: str
    paper_gmacs: float
    paper_params_m: Optional[float]
    input_size: Tuple[int, int] = (224, 224)
    proposals: Optional[int] = None
    note: str = ""

    @property
    def is_detector(self) -> bool:
        return self.proposals is not None


PAPER_ROWS: Tuple[PaperRow, ...] = (
    PaperRow("resnet50_lowres", "Table 6", 1.29, 25.60),
    PaperRow("resnet101_lowres", "Table 6", 2.22, 44.57),
    PaperRow("bl_resnet50_concat", "Table 7", 2.01, 20.57),
    PaperRow("bl_resnet50_k3", "Table 7", 3.91, 27.23,
             note="layout not recoverable from the text (see BLNetThreeBranch)"),
    PaperRow("bl_resnet50_m2", "Table 8", 2.74, 26.66),
    PaperRow("bl_resnet50_m1", "Table 8", 2.64, 26.64),
    PaperRow("bl_resnet101_m7", "Table 8", 5.21, 44.44),
    PaperRow("shufflenet_v2_x1_0", "Table 9", 0.146, 2.30, note="torchvision"),
    PaperRow("shufflenet_v2_x1_5", "Table 9", 0.299, 3.51, note="torchvision"),
    PaperRow("shufflenet_v2_x2_0", "Table 9", 0.588, 7.40, note="torchvision"),
    PaperRow("bl_shufflenet_v2_x1_0", "Table 9", 0.150, 2.33, (256, 256), note="@256"),
    PaperRow("bl_shufflenet_v2_x1_5", "Table 9", 0.298, 4.80, (256, 256), note="@256"),
    PaperRow("bl_shufflenet_v2_x2_0", "Table 9", 0.590, 7.60, (256, 256), note="@256"),
    PaperRow("bl_shufflenet_v2_x1_0", "Table 9", 0.150, 2.33, note="@256 figure, counted at 224"),
    PaperRow("bl_shufflenet_v2_x1_5", "Table 9", 0.298, 4.80, note="@256 figure, counted at 224"),
    PaperRow("bl_shufflenet_v2_x2_0", "Table 9", 0.590, 7.60, note="@256 figure, counted at 224"),
    PaperRow("fasterrcnn_resnet101_fpn", "Table 10", 137.70, None, (600, 1024), 300, "VOC"),
    PaperRow("fasterrcnn_bl_resnet101_fpn", "Table 10", 89.21, None, (600, 1024), 300, "VOC"),
    PaperRow("fasterrcnn_resnet101_fpn", "Table 10", 234.85, None, (800, 1344), 300, "COCO"),
    PaperRow("fasterrcnn_bl_resnet101_fpn", "Table 10", 151.11, None, (800, 1344), 300, "COCO"),
)


def _dev(ours: float, paper: Optional[float]) -> Optional[float]:
    return None if paper is None else round(100.0 * (ours / paper - 1.0), 2)


def measure(row: PaperRow) -> Dict[str, object]:
    """Our GMACs and parameters for ``row``, with the paper's and the deviations in percent.

    Detector rows also give ``gmacs_without_rpn`` (see ``DetectorMacs.without_rpn``) and its
    deviation, and the backbone's GMACs.
    """
    from asr_bl.vision import MODELS  # the package registry (holds every module's builders)
    from asr_bl.vision.detection import DETECTORS, count_detector_macs

    height, width = row.input_size
    out: Dict[str, object] = {
        "model": row.model, "table": row.table, "input_size": [3, height, width], "note": row.note,
        "paper_gmacs": row.paper_gmacs, "paper_params_m": row.paper_params_m,
    }
    if row.is_detector:
        torch.manual_seed(0)
        macs = count_detector_macs(DETECTORS[row.model](), height, width, row.proposals)
        out.update(
            proposals=row.proposals,
            gmacs=round(macs.total / 1e9, 4),
            gmacs_without_rpn=round(macs.without_rpn / 1e9, 4),
            backbone_gmacs=round(macs.backbone / 1e9, 4),
            params_m=round(macs.count.params_m, 4),
        )
        out["gmacs_without_rpn_dev_pct"] = _dev(float(out["gmacs_without_rpn"]), row.paper_gmacs)
    else:
        model = MODELS[row.model]().to("meta")
        count = count_macs(model, torch.empty(1, 3, height, width, device="meta"))
        out.update(gmacs=round(count.gmacs, 4), params_m=round(count.params_m, 4))
    out["gmacs_dev_pct"] = _dev(float(out["gmacs"]), row.paper_gmacs)
    out["params_dev_pct"] = _dev(float(out["params_m"]), row.paper_params_m)
    return out


def measure_rows(rows: Iterable[PaperRow] = PAPER_ROWS, detectors: bool = True) -> List[Dict[str, object]]:
    """:func:`measure` for every row (detector rows only with ``detectors=True``)."""
    return [measure(r) for r in rows if detectors or not r.is_detector]
