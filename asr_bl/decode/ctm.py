"""Word times from a best path: transition-ids -> phone instances -> words (a lexicon alignment).

The output labels of a determinized, minimized HCLG are not at word boundaries, so word times
come from the alignment instead (as Kaldi's ``lattice-align-words-lexicon``): the frames'
transition-ids give phone instances (a new instance where the phone changes or the HMM re-enters
state 0), and the phone sequence is matched against the hypothesis' words with the lexicon,
allowing the optional silence phone between words. A word's time is from its first phone's
first frame to its last phone's last frame.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from asr_bl.decode.graph import GraphDir

logger = logging.getLogger(__name__)

__all__ = ["phone_instances", "word_alignment", "ctm_entries"]


def phone_instances(graph: GraphDir, tids: np.ndarray) -> List[Tuple[int, int, int]]:
    """``(phone_id, start_frame, num_frames)`` of each phone instance of an alignment."""
    tids = np.asarray(tids, dtype=np.int64)
    if tids.size == 0:
        return []
    ph, hs = graph.tid_phone[tids], graph.tid_hmm_state[tids]
    start = np.ones(tids.shape[0], dtype=bool)
    start[1:] = (ph[1:] != ph[:-1]) | ((hs[1:] == 0) & (hs[:-1] != 0))
    starts = np.nonzero(start)[0]
    ends = np.append(starts[1:], len(tids))
    return [(int(ph[s]), int(s), int(e - s)) for s, e in zip(starts, ends)]


def word_alignment(graph: GraphDir, tids: np.ndarray, words: Sequence[str]) -> Optional[List[Tuple[str, int, int]]]:
    """``(word, start_frame, num_frames)`` of each word, or None when the phones do not spell the words."""
    segs = phone_instances(graph, tids)
    phones = [p for p, _, _ in segs]
    lex = graph.lexicon()
    sil = graph.phones.index(graph.info["optional_silence"])
    n, m = len(segs), len(words)
    # Breadth-first over (phone position, word position); back[(i, j)] = (prev state, word span or None).
    back: Dict[Tuple[int, int], Tuple[Tuple[int, int], Optional[Tuple[int, int]]]] = {}
    frontier = [(0, 0)]
    seen = {(0, 0)}
    while frontier:
        nxt = []
        for i, j in frontier:
            cands = []
            if i < n and phones[i] == sil:
                cands.append(((i + 1, j), None))
            if j < m:
                for pron in lex.get(words[j], []):
                    k = i + len(pron)
                    if pron and k <= n and phones[i:k] == pron:
                        cands.append(((k, j + 1), (i, k)))
            for st, span in cands:
                if st not in seen:
                    seen.add(st)
                    back[st] = ((i, j), span)
                    nxt.append(st)
        frontier = nxt
    if (n, m) not in seen:
        return None
    out: List[Tuple[str, int, int]] = []
    st = (n, m)
    while st != (0, 0):
        prev, span = back[st]
        if span is not None:
            a, b = span
            start = segs[a][1]
            end = segs[b - 1][1] + segs[b - 1][2]
            out.append((words[prev[1]], start, end - start))
        st = prev
    return out[::-1]


def ctm_entries(graph: GraphDir, cut: object, tids: np.ndarray, words: Sequence[str],
                frame_shift: float) -> List[Tuple[str, str, float, float, str]]:
    """Recording-level CTM entries ``(recording_id, side, start_s, dur_s, word)`` of one cut's best path.

    Times are offset by the cut's start in its recording; the side is
    :func:`asr_bl.scoring.side_channel` of the cut. When the phones cannot be matched to the
    words (it should not happen for a path of the graph) the words share the cut evenly, with a warning.
    """
    from asr_bl.scoring import side_channel

    rec = getattr(cut, "recording_id", None) or cut.id  # type: ignore[attr-defined]
    side = side_channel(cut)
    offset = float(getattr(cut, "start", 0.0))
    ali = word_alignment(graph, tids, words) if len(words) else []
    if ali is None:
        logger.warning("cut %s: best-path phones do not spell its words; spreading word times evenly", cut.id)  # type: ignore[attr-defined]
        T = len(tids)
        step = T / max(len(words), 1)
        ali = [(w, int(i * step), max(1, int(step))) for i, w in enumerate(words)]
    return [(rec, side, offset + s * frame_shift, d * frame_shift, w) for w, s, d in ali]
