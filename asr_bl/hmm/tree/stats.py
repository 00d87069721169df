"""Tree statistics: Gaussian sufficient statistics per context event (Kaldi's ``acc-tree-stats``).

An *event* is ``(left phone, central phone, right phone, pdf-class)``, one row of ``(E, 4)`` int64;
the columns are Kaldi's event keys 0, 1, 2 (context positions of the triphone) and -1 (the
pdf-class): :data:`EVENT_COLUMN` maps a key to its column. The objective every later step
optimises is Kaldi's ``GaussClusterable::Objf`` (:func:`gauss_objf`: diagonal, variance floored).
"""
import math
from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np

from asr_bl.io import Pathlike, atomic_open

#: Event keys, as in Kaldi: context positions 0..N-1 and -1 for the pdf-class.
KEY_PDF_CLASS = -1
#: Triphone context: width 3, central position 1.
CONTEXT_WIDTH = 3
CENTRAL_POSITION = 1
#: Column of each event key in an ``(E, 4)`` event array.
EVENT_COLUMN: Dict[int, int] = {0: 0, 1: 1, 2: 2, KEY_PDF_CLASS: 3}


@dataclass
class TreeStats:
    """Gaussian sufficient statistics per event ``(left, central, right, pdf_class)``."""

    events: np.ndarray  # (E, 4) int64
    counts: np.ndarray  # (E,) float64
    sums: np.ndarray  # (E, D) float64
    sumsq: np.ndarray  # (E, D) float64

    @property
    def dim(self) -> int:
        return int(self.sums.shape[1])

    @staticmethod
    def merge(parts: Sequence["TreeStats"]) -> "TreeStats":
        """Sum statistics of the same events (e.g. from parallel workers)."""
        parts = [p for p in parts if p.events.shape[0]]
        if not parts:
            raise ValueError("no tree statistics to merge")
        ev = np.concatenate([p.events for p in parts])
        uniq, inv = np.unique(ev, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        counts = np.bincount(inv, weights=np.concatenate([p.counts for p in parts]), minlength=len(uniq))
        sums = np.zeros((len(uniq), parts[0].dim))
        sumsq = np.zeros_like(sums)
        np.add.at(sums, inv, np.concatenate([p.sums for p in parts]))
        np.add.at(sumsq, inv, np.concatenate([p.sumsq for p in parts]))
        return TreeStats(uniq.astype(np.int64), counts, sums, sumsq)

    def save(self, path: Pathlike) -> None:
        """Write to exactly ``path`` (an ``.npz`` archive), atomically."""
        with atomic_open(path, "wb") as f:
            np.savez(f, events=self.events, counts=self.counts, sums=self.sums, sumsq=self.sumsq)

    @staticmethod
    def load(path: Pathlike) -> "TreeStats":
        with np.load(path) as d:
            return TreeStats(d["events"], d["counts"], d["sums"], d["sumsq"])


def accumulate_tree_stats(
    frame_phones: Sequence[np.ndarray],
    frame_pdf_classes: Sequence[np.ndarray],
    phone_starts: Sequence[np.ndarray],
    features: Sequence[np.ndarray],
) -> TreeStats:
    """Statistics for the tree from frame-level phone alignments.

    For each utterance: ``frame_phones[i]`` (T,) phone id per frame, ``frame_pdf_classes[i]`` (T,)
    pdf-class per frame, ``phone_starts[i]`` (T,) bool, True on the first frame of each phone
    instance, and ``features[i]`` (T, D). The left/right context of a phone instance is the
    previous/next instance's phone, 0 at the utterance edges (as in Kaldi's training graphs).
    """
    all_ev, all_x = [], []
    for phones, classes, starts, feats in zip(frame_phones, frame_pdf_classes, phone_starts, features):
        phones = np.asarray(phones, dtype=np.int64)
        if phones.shape[0] == 0:
            continue
        inst = np.cumsum(np.asarray(starts, dtype=np.int64)) - 1  # instance index per frame
        inst_phone = phones[np.asarray(starts, dtype=bool)]
        left = np.concatenate([[0], inst_phone[:-1]])
        right = np.concatenate([inst_phone[1:], [0]])
        ev = np.stack([left[inst], phones, right[inst], np.asarray(classes, dtype=np.int64)], axis=1)
        all_ev.append(ev)
        all_x.append(np.asarray(feats, dtype=np.float64))
    if not all_ev:
        raise ValueError("no aligned frames to accumulate tree statistics from")
    ev = np.concatenate(all_ev)
    x = np.concatenate(all_x)
    uniq, inv = np.unique(ev, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    counts = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    sums = np.zeros((len(uniq), x.shape[1]))
    sumsq = np.zeros_like(sums)
    np.add.at(sums, inv, x)
    np.add.at(sumsq, inv, x * x)
    return TreeStats(uniq.astype(np.int64), counts, sums, sumsq)


def gauss_objf(counts: np.ndarray, sums: np.ndarray, sumsq: np.ndarray, var_floor: float) -> np.ndarray:
    """Kaldi's ``GaussClusterable::Objf`` for a batch: log-likelihood of the data under its own
    diagonal ML Gaussian with floored variances ``v = max(var, floor)``,
    ``-0.5 n (Σ var/v + D log 2π + Σ log v)``; 0 where ``n <= 0``."""
    counts = np.asarray(counts, dtype=np.float64)
    safe = np.maximum(counts, 1e-20)[..., None]
    mean = sums / safe
    raw_var = sumsq / safe - mean * mean
    var = np.maximum(raw_var, var_floor)
    dim = sums.shape[-1]
    # Kaldi's form: the data term is var/floored_var per dimension (1 unless floored).
    objf = -0.5 * counts * ((raw_var / var).sum(-1) + dim * math.log(2 * math.pi) + np.log(var).sum(-1))
    return np.where(counts > 0, objf, 0.0)
