"""Alignment outputs: Kaldi-readable text archives, CTM, pdf counts, and lhotse cuts with
frame-level ``pdf_ali`` / ``phone_ali`` attached (the contract with the acoustic-model trainer).

Files written by :func:`write_alignment_outputs` into an output directory:

- ``ali.ark.txt``        transition-ids per frame (``copy-int-vector ark,t:...`` reads it);
- ``pdf_ali.ark.txt``    pdf-id per frame (what ``ali-to-pdf`` prints);
- ``phone_ali.ark.txt``  phone id per frame (``ali-to-phones --per-frame``);
- ``phones.ctm``         ``utt 1 start duration phone`` per phone instance (``ali-to-phones --ctm-output``);
- ``pdf_counts``         occupation count of every pdf as a Kaldi text vector ``[ c0 c1 ... ]``
                         (``analyze-counts``; the priors of the hybrid decoder);
- ``num_pdfs``           the number of pdfs (the network's output size);
- ``failures.txt``       ``utt reason`` for every utterance without an alignment;
- ``<cuts name>``        the input cuts that were aligned, with custom fields ``pdf_ali`` and
                         ``phone_ali`` (int32 arrays of shape (T,), frame shift 0.01, T equal to the
                         cut's network frames), loadable with ``cut.load_custom("pdf_ali")``;
- ``<cuts stem>.arrays.h5``  those arrays, all in one HDF5 file (lhotse ``numpy_hdf5`` storage,
                         datasets ``pdf_ali/<cut id>`` and ``phone_ali/<cut id>``).
"""
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import numpy as np

from asr_bl.features import FbankConfig, num_frames_from_duration
from asr_bl.hmm.lang import Lang
from asr_bl.hmm.model import GmmHmm, phone_segments
from asr_bl.io import atomic_open, atomic_path

logger = logging.getLogger(__name__)


def _atomic_write_text(path: Path, lines: Iterable[str]) -> None:
    with atomic_open(path) as f:
        for line in lines:
            f.write(line)


def write_int_ark(path: Path, data: Dict[str, np.ndarray]) -> None:
    """Kaldi text archive of integer vectors: ``utt v1 v2 ...`` per line, sorted by key."""
    _atomic_write_text(Path(path), (f"{k} {' '.join(map(str, data[k].tolist()))}\n" for k in sorted(data)))


def read_int_ark(path: Path) -> Dict[str, np.ndarray]:
    """Read :func:`write_int_ark` output.

    A file that does not end with a newline (cut short), a token that is not an integer or text that
    is not UTF-8 is an :class:`asr_bl.validate.DataError` naming the file and line.
    """
    from asr_bl.validate import DataError

    path = Path(path)
    fix = "rerun the stage that wrote it (with --force)"
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        raise DataError(f"{path}: does not end with a newline (truncated?); {fix}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); {fix}") from None
    out: Dict[str, np.ndarray] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if parts:
            try:
                out[parts[0]] = np.asarray([int(x) for x in parts[1:]], dtype=np.int32)
            except ValueError:
                raise DataError(f"{path}:{lineno}: utterance {parts[0]!r} has a value that is not an integer; "
                                f"{fix}") from None
    return out


def read_pdf_counts(path: Path) -> np.ndarray:
    """Read a Kaldi text vector ``[ c0 c1 ... ]`` (as written to ``pdf_counts``)."""
    text = Path(path).read_text().replace("[", " ").replace("]", " ")
    return np.asarray([float(x) for x in text.split()], dtype=np.float64)


def write_alignment_outputs(
    out_dir: Path,
    model: GmmHmm,
    lang: Lang,
    alignments: Dict[str, np.ndarray],
    failures: Dict[str, str],
    cuts: Optional[Any] = None,
    cuts_name: Optional[str] = None,
    frame_shift: float = 0.01,
) -> Dict[str, Any]:
    """Write every output listed in the module docstring; returns a summary dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = model.tables
    pdf_ali = {k: tables.pdf[v].astype(np.int32) for k, v in alignments.items()}
    phone_ali = {k: tables.phone[v].astype(np.int32) for k, v in alignments.items()}
    write_int_ark(out_dir / "ali.ark.txt", alignments)
    write_int_ark(out_dir / "pdf_ali.ark.txt", pdf_ali)
    write_int_ark(out_dir / "phone_ali.ark.txt", phone_ali)

    def ctm_lines() -> Iterable[str]:
        for utt in sorted(alignments):
            for phone, start, dur in phone_segments(tables, alignments[utt]):
                yield f"{utt} 1 {start * frame_shift:.2f} {dur * frame_shift:.2f} {lang.phones[phone]}\n"

    _atomic_write_text(out_dir / "phones.ctm", ctm_lines())
    counts = np.zeros(model.num_pdfs, dtype=np.int64)
    for v in pdf_ali.values():
        counts += np.bincount(v, minlength=model.num_pdfs)
    _atomic_write_text(out_dir / "pdf_counts", ["[ " + " ".join(map(str, counts.tolist())) + " ]\n"])
    _atomic_write_text(out_dir / "num_pdfs", [f"{model.num_pdfs}\n"])
    _atomic_write_text(out_dir / "failures.txt", (f"{k} {failures[k]}\n" for k in sorted(failures)))
    summary: Dict[str, Any] = {
        "aligned": len(alignments),
        "failed": len(failures),
        "num_pdfs": model.num_pdfs,
        "pdfs_seen": int((counts > 0).sum()),
        "frames": int(counts.sum()),
    }
    if cuts is not None:
        cuts_path = out_dir / (cuts_name or "cuts_ali.jsonl.gz")
        summary["cuts"] = str(write_aligned_cuts(cuts_path, cuts, pdf_ali, phone_ali, frame_shift))
    return summary


def aligned_arrays_path(manifest: Path) -> Path:
    """The HDF5 file holding the alignment arrays of the cuts manifest ``manifest``.

    ``<dir>/<name>.jsonl.gz`` -> ``<dir>/<name>.arrays.h5``: one file per manifest, so two manifests
    written into one directory never replace each other's arrays.
    """
    manifest = Path(manifest)
    return manifest.with_name(manifest.name.split(".")[0] + ".arrays.h5")


def write_aligned_cuts(
    path: Path,
    cuts: Any,
    pdf_ali: Dict[str, np.ndarray],
    phone_ali: Dict[str, np.ndarray],
    frame_shift: float = 0.01,
) -> Path:
    """Attach ``pdf_ali``/``phone_ali`` to the aligned cuts and write them to the manifest ``path``.

    The arrays (exact int32) are stored in one HDF5 file beside the manifest,
    :func:`aligned_arrays_path` (lhotse's ``numpy_hdf5`` storage, written by
    :func:`asr_bl.data.attach_alignment`), not as one file per array; readers call
    ``cut.load_custom("pdf_ali")`` as before. Both files are written under temporary names and
    renamed, arrays first, so the manifest never points at missing arrays. Unaligned cuts are left
    out (they are listed in failures.txt). The frame count is checked against the network's frame
    grid (and against the cut's attached features, when it has any).
    """
    from lhotse import CutSet

    from asr_bl.data.dataset import attach_alignment

    path = Path(path)
    fcfg = FbankConfig(frame_shift=frame_shift)
    aligned = []
    for cut in cuts:
        if cut.id not in pdf_ali:
            continue
        expected = num_frames_from_duration(cut.duration, cut.sampling_rate, fcfg)
        if cut.has_features:
            expected = cut.num_frames
        for name, labels in (("pdf_ali", pdf_ali[cut.id]), ("phone_ali", phone_ali[cut.id])):
            if labels.shape[0] != expected:
                raise AssertionError(
                    f"cut {cut.id}: {name} has {labels.shape[0]} frames but the network's features have {expected}"
                )
        aligned.append(cut)
    out = attach_alignment(
        aligned, {"pdf_ali": pdf_ali, "phone_ali": phone_ali}, aligned_arrays_path(path), frame_shift
    )
    with atomic_path(path) as tmp:  # keeps the suffix, from which lhotse picks the format
        CutSet.from_cuts(out).to_file(tmp)
    return path
