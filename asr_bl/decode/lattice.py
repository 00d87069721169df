"""Lattice operations of the k2 backend: LM weight x insertion penalty sweeps, n-best LM rescoring.

A lattice from :class:`~asr_bl.decode.decoders.K2Decoder` has per arc ``scores`` (graph score +
scaled acoustic score), ``graph_scores`` (the graph's part), ``aux_labels`` (words) and ``tids``.
With the search's acoustic scale ``a`` the raw acoustic score is ``(scores - graph_scores) / a``.

Settings follow Kaldi's ``score.sh``: for LM weight ``L`` and word-insertion penalty ``p`` a path
scores ``acoustic / L + graph - p * num_words`` (``lattice-scale --inv-acoustic-scale=L |
lattice-add-penalty --word-ins-penalty=p | lattice-best-path``), so every setting is a best path
of the same lattice: one acoustic pass, every setting scored from it (icefall's habit).

Rescoring with a bigger LM (:func:`rescore_nbest`), as icefall's n-best rescoring: candidate
paths are the 1-best plus ``num_paths`` paths sampled from the lattice's posteriors
(``k2.random_paths``), one per distinct word sequence (its best-scoring sample). Each candidate's
graph score loses the first-pass LM's log-probability of its words and gains the big LM's, both
computed exactly from the ARPA models (back-off included); the best candidate under the tuned
``L``/``p`` wins. The 1-best is always a candidate, so rescoring never loses the first-pass answer.

Memory: a lattice is needed only while its chunk is decoded. :func:`sweep_paths` keeps every
setting's best path as a :class:`Candidate` (words, alignment, raw acoustic and graph scores), and
:func:`nbest_candidates` an utterance's rescoring candidates, so the setting can be chosen (and
the rescored path picked, :func:`choose_rescored`) after the lattices are gone.
"""
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ["Candidate", "PathChoice", "Setting", "choose_rescored", "nbest_candidates", "rescore_nbest", "sweep",
           "sweep_paths"]

LN10 = math.log(10.0)


@dataclass(frozen=True, order=True)
class Setting:
    """An LM weight and a word-insertion penalty."""

    lm_weight: float
    wip: float = 0.0

    def __str__(self) -> str:
        return f"lmwt{self.lm_weight:g}_wip{self.wip:g}"


@dataclass
class PathChoice:
    """A chosen path: words (ids), transition-id alignment, total score under the setting."""

    words: List[int]
    tids: np.ndarray
    score: float


def _words_per_arc(lat: Any) -> torch.Tensor:
    import k2

    aux = lat.aux_labels
    if isinstance(aux, k2.RaggedTensor):
        kept = aux.remove_values_leq(0)
        rs = kept.shape.row_splits(1)
        return (rs[1:] - rs[:-1]).to(torch.float32)
    return (aux > 0).to(torch.float32)


def _rescaled(lat: Any, acoustic_scale: float, setting: Setting) -> torch.Tensor:
    am = (lat.scores - lat.graph_scores) / acoustic_scale
    return am / setting.lm_weight + lat.graph_scores - setting.wip * _words_per_arc(lat)


def _path_from_fsa(path: Any) -> PathChoice:
    from asr_bl.decode.decoders import path_words

    score = float(path.scores.sum())
    return PathChoice(path_words(path), path.tids[:-1].cpu().numpy().astype(np.int32), score)


def best_path(lat: Any, acoustic_scale: float, setting: Setting) -> PathChoice:
    """The best path of one utterance's lattice under ``setting``."""
    import k2

    lat = lat.clone()
    lat.scores = _rescaled(lat, acoustic_scale, setting)
    best = k2.shortest_path(k2.create_fsa_vec([lat]), use_double_scores=True)[0]
    return _path_from_fsa(best)


@dataclass
class Candidate:
    """A path kept for choosing later, without its lattice: word ids, transition ids, and its raw
    acoustic and graph scores, from which its score under any setting (and any LM swap) follows."""

    words: Tuple[int, ...]
    tids: np.ndarray
    am: float
    graph: float

    def score(self, setting: Setting) -> float:
        return self.am / setting.lm_weight + self.graph - setting.wip * len(self.words)


def sweep_paths(lattices: Dict[str, Any], acoustic_scale: float,
                settings: Sequence[Setting]) -> Dict[Setting, Dict[str, Candidate]]:
    """``{setting: {utt_id: best path}}`` for every setting, from the lattices of one decoding.

    The paths keep their alignments and scores, so the lattices can be dropped afterwards (a dev
    sweep then needs memory for one chunk of lattices, not for the whole set)."""
    import k2

    ids = list(lattices)
    out: Dict[Setting, Dict[str, Candidate]] = {s: {} for s in settings}
    chunk = 256
    for c0 in range(0, len(ids), chunk):
        part = ids[c0:c0 + chunk]
        vec = k2.create_fsa_vec([lattices[u] for u in part])
        base_scores = vec.scores.clone()
        am = (base_scores - vec.graph_scores) / acoustic_scale
        vec.raw_am_scores = am  # an arc attribute: shortest_path carries it to the best paths
        nw = _words_per_arc(vec)
        for s in settings:
            vec.scores = am / s.lm_weight + vec.graph_scores - s.wip * nw
            best = k2.shortest_path(vec, use_double_scores=True)
            rs = best.arcs.shape().row_splits(1).tolist()
            rs2 = best.arcs.shape().row_splits(2).tolist()
            aux = best.aux_labels
            ragged = isinstance(aux, k2.RaggedTensor)
            per_arc = aux.remove_values_leq(0).tolist() if ragged else aux.tolist()
            tids = best.tids.cpu().numpy().astype(np.int32)
            labels = best.labels.cpu().numpy()
            am_best = best.raw_am_scores.to(torch.float64).cpu().numpy()
            graph_best = best.graph_scores.to(torch.float64).cpu().numpy()
            for b, u in enumerate(part):
                a0, a1 = rs2[rs[b]], rs2[rs[b + 1]]
                if ragged:
                    words = tuple(w for arc in per_arc[a0:a1] for w in arc)
                else:
                    words = tuple(int(w) for w in per_arc[a0:a1] if w > 0)
                keep = labels[a0:a1] != -1
                out[s][u] = Candidate(words, tids[a0:a1][keep], float(am_best[a0:a1].sum()),
                                      float(graph_best[a0:a1].sum()))
        vec.scores = base_scores
    return out


def sweep(lattices: Dict[str, Any], acoustic_scale: float,
          settings: Sequence[Setting]) -> Dict[Setting, Dict[str, List[int]]]:
    """``{setting: {utt_id: word ids}}`` for every setting, from the lattices of one decoding."""
    return {s: {u: list(c.words) for u, c in paths.items()}
            for s, paths in sweep_paths(lattices, acoustic_scale, settings).items()}


def _arpa_ln(lm: Any, words: Sequence[str]) -> float:
    return LN10 * lm.log_s(tuple(words)) if words else LN10 * lm.log_p_raw(("<s>", "</s>"))


def _path_words(aux: Any) -> Callable[[torch.Tensor], Tuple[int, ...]]:
    """A function from a path's arc indices to its word ids (aux labels > 0, in order).

    Gathers only the path's arcs: converting a whole lattice's aux labels to Python lists would
    cost seconds per utterance on big lattices (one list per arc)."""
    import k2

    if not isinstance(aux, k2.RaggedTensor):
        def plain(idx: torch.Tensor) -> Tuple[int, ...]:
            w = aux[idx]
            return tuple(int(x) for x in w[w > 0].tolist())

        return plain
    splits = aux.shape.row_splits(1).to(torch.int64)
    values = aux.values

    def ragged(idx: torch.Tensor) -> Tuple[int, ...]:
        starts, lengths = splits[idx], splits[idx + 1] - splits[idx]
        total = int(lengths.sum())
        if total == 0:
            return ()
        offsets = torch.arange(total) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
        w = values[torch.repeat_interleave(starts, lengths) + offsets]
        return tuple(int(x) for x in w[w > 0].tolist())

    return ragged


def nbest_candidates(lat: Any, acoustic_scale: float, setting: Setting, num_paths: int = 100,
                     seed: Optional[int] = 0, extra: Sequence[Candidate] = ()) -> List[Candidate]:
    """The candidates of an n-best rescoring: ``lat``'s best path under ``setting``, ``num_paths``
    paths sampled from its posteriors under ``setting`` (the best-scoring sample of each word
    sequence) and any ``extra`` ones (e.g. the 1-best of every swept setting)."""
    import k2

    lat = lat.clone()
    am = (lat.scores - lat.graph_scores) / acoustic_scale
    graph = lat.graph_scores
    lat.raw_am_scores = am  # carried to the best path by shortest_path
    lat.scores = _rescaled(lat, acoustic_scale, setting)
    vec = k2.create_fsa_vec([lat])
    best = k2.shortest_path(vec, use_double_scores=True)[0]
    one = _path_from_fsa(best)
    cands: Dict[Tuple[int, ...], Candidate] = {tuple(one.words): Candidate(
        tuple(one.words), one.tids, float(best.raw_am_scores.sum()), float(best.graph_scores.sum()))}
    if num_paths > 0 and lat.num_arcs > 0:
        if seed is not None:
            torch.manual_seed(seed)
        paths = k2.random_paths(vec, use_double_scores=True, num_paths=num_paths).tolist()[0]
        words_of = _path_words(lat.aux_labels)
        labels = lat.labels
        for arcs in paths:
            if not arcs:
                continue
            idx = torch.tensor(arcs, dtype=torch.int64)
            words = words_of(idx)
            c = Candidate(words, np.zeros(0, dtype=np.int32), float(am[idx].sum()), float(graph[idx].sum()))
            if words not in cands or cands[words].score(setting) < c.score(setting):
                c.tids = lat.tids[idx[labels[idx] != -1]].cpu().numpy().astype(np.int32)
                cands[words] = c
    return list(cands.values()) + list(extra)


def choose_rescored(candidates: Sequence[Candidate], setting: Setting, word_table: Sequence[str],
                    old_lm: Any, new_lm: Any) -> PathChoice:
    """The candidate with the best score under ``setting`` after swapping ``old_lm`` for ``new_lm``."""
    delta: Dict[Tuple[int, ...], float] = {}
    best: Optional[Candidate] = None
    best_score = -float("inf")
    for c in candidates:
        if c.words not in delta:
            w = [word_table[i] for i in c.words]
            delta[c.words] = _arpa_ln(new_lm, w) - _arpa_ln(old_lm, w)
        s = c.score(setting) + delta[c.words]
        if s > best_score:
            best, best_score = c, s
    assert best is not None, "no candidate"
    return PathChoice(list(best.words), best.tids, best_score)


def rescore_nbest(lat: Any, acoustic_scale: float, setting: Setting, word_table: Sequence[str],
                  old_lm: Any, new_lm: Any, num_paths: int = 100, seed: Optional[int] = 0) -> PathChoice:
    """The best of the 1-best and ``num_paths`` sampled paths after swapping the LM (module docstring)."""
    return choose_rescored(nbest_candidates(lat, acoustic_scale, setting, num_paths, seed), setting, word_table,
                           old_lm, new_lm)
