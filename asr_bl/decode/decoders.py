"""Decoders behind one interface: a scaled log-likelihood matrix per utterance in, words + alignment out.

Input of :meth:`Decoder.decode`: a list of ``torch.float32`` CPU tensors, each ``(T, num_pdfs)``,
already multiplied by the acoustic scale (column j = pdf-id j; the same matrices for every
backend). Output: one :class:`DecodeResult` per matrix, in order: word ids of the graph's
``words.txt``, the transition-id of every frame (``(T,)`` int32, the alignment word times and
phone CTMs come from), and the score of the best path (log domain, higher is better, graph +
scaled acoustic). An utterance with no surviving token (no path reaches a final state within the
beam) has ``ok == False``, no words and an empty alignment; it is reported, never dropped.

Backends (same graph dir, same matrices):

- ``k2`` (:class:`K2Decoder`): ``k2.intersect_dense_pruned`` on batches of utterances, on CPU or
  CUDA, over the graph's k2 form (labels pdf-id + 1, so each matrix gets a column of -inf
  prepended: label 0 is epsilon). Keeps the lattices (:attr:`DecodeResult.lattice`), which carry
  ``graph_scores`` (the graph's part of each arc's score) so that the LM weight / insertion
  penalty sweep and LM rescoring (:mod:`asr_bl.decode.lattice`) need no second acoustic pass.
- ``kaldi`` (:class:`KaldiDecoder`): Kaldi's ``FasterDecoder`` (kaldi-hmm-gmm bindings) on the
  transition-id ``HCLG.fst`` itself, one utterance at a time. Its decodable is ``DecodableCtc``,
  which reads column i-1 for input label i, so the matrix is expanded to transition-id columns
  (``M[:, pdf(tid)]`` for tid = 1..N): the graph stays exactly Kaldi's, and the best path's input
  labels are the alignment. Parallel over utterances with :func:`decode_parallel`.

Beams are the same knobs in both (``beam`` = k2's ``search_beam``, ``max_active``,
``min_active``); pruning still differs in detail (k2 prunes per frame in batches with a dynamic
beam, Kaldi with a histogram cutoff), so the backends' 1-best agree only up to search errors;
widen the beams to compare them.
"""
import logging
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

import numpy as np
import torch

from asr_bl.decode.graph import GraphDir

logger = logging.getLogger(__name__)

__all__ = ["DecoderConfig", "DecodeResult", "Decoder", "K2Decoder", "KaldiDecoder", "make_decoder", "BACKENDS"]

BACKENDS = ("k2", "kaldi")


@dataclass
class DecoderConfig:
    """Search settings shared by the backends."""

    #: Search beam (k2 ``search_beam``, Kaldi ``beam``).
    beam: float = 13.0
    #: Most active states per frame.
    max_active: int = 7000
    min_active: int = 200
    #: Lattice beam (k2 ``output_beam``); Kaldi's FasterDecoder keeps no lattice.
    lattice_beam: float = 8.0
    #: Most frames in one k2 batch (memory bound).
    max_frames_per_batch: int = 20000


@dataclass
class DecodeResult:
    """One utterance's decoding (see the module docstring)."""

    words: List[int]
    tids: np.ndarray
    score: float
    ok: bool = True
    #: The utterance's k2 lattice (k2 backend), for sweeps and rescoring.
    lattice: Optional[Any] = field(default=None, repr=False)


class Decoder:
    """Interface: ``decode(matrices) -> results`` (module docstring)."""

    name = ""

    def __init__(self, graph: GraphDir, config: DecoderConfig) -> None:
        self.graph = graph
        self.config = config

    def decode(self, matrices: Sequence[torch.Tensor]) -> List[DecodeResult]:  # pragma: no cover
        raise NotImplementedError

    def _check(self, m: torch.Tensor) -> None:
        if m.dim() != 2 or m.shape[1] != self.graph.num_pdfs:
            raise ValueError(f"log-likelihood matrix of shape {tuple(m.shape)}: the graph {self.graph.path} "
                             f"has {self.graph.num_pdfs} pdfs, so (T, {self.graph.num_pdfs}) is expected")


def _failed() -> DecodeResult:
    return DecodeResult(words=[], tids=np.zeros(0, dtype=np.int32), score=float("-inf"), ok=False)


class K2Decoder(Decoder):
    """Batched ``k2.intersect_dense_pruned`` (module docstring)."""

    name = "k2"

    def __init__(self, graph: GraphDir, config: DecoderConfig, device: str = "cpu", keep_lattices: bool = True) -> None:
        super().__init__(graph, config)
        try:
            import k2  # noqa: F401
        except ImportError as e:
            raise ImportError("the k2 backend needs k2 (pip install k2==1.23.4 with torch 1.13.1); "
                              "use --backend kaldi where k2 is not available") from e
        self.device = torch.device(device)
        fsa = graph.k2_graph()
        fsa.graph_scores = fsa.scores.clone()
        self.fsa = fsa.to(self.device)
        self.keep_lattices = keep_lattices

    def decode(self, matrices: Sequence[torch.Tensor]) -> List[DecodeResult]:
        out: List[Optional[DecodeResult]] = [None] * len(matrices)
        order = sorted(range(len(matrices)), key=lambda i: -matrices[i].shape[0])
        batch: List[int] = []
        frames = 0
        for i in order:
            self._check(matrices[i])
            if batch and frames + matrices[i].shape[0] > self.config.max_frames_per_batch:
                self._decode_batch(matrices, batch, out)
                batch, frames = [], 0
            batch.append(i)
            frames += matrices[i].shape[0]
        if batch:
            self._decode_batch(matrices, batch, out)
        return [r for r in out]  # type: ignore[misc]

    def _decode_batch(self, matrices: Sequence[torch.Tensor], idx: List[int], out: List[Any]) -> None:
        import k2

        todo = [i for i in idx if matrices[i].shape[0] > 0]
        for i in idx:
            if matrices[i].shape[0] == 0:
                out[i] = _failed()
        if not todo:
            return
        T = max(matrices[i].shape[0] for i in todo)
        C = self.graph.num_pdfs + 1
        x = torch.full((len(todo), T, C), -float("inf"), dtype=torch.float32)
        for b, i in enumerate(todo):
            x[b, : matrices[i].shape[0], 1:] = matrices[i]
        seg = torch.tensor([[b, 0, matrices[i].shape[0]] for b, i in enumerate(todo)], dtype=torch.int32)
        dense = k2.DenseFsaVec(x.to(self.device), seg)
        c = self.config
        lattice = k2.intersect_dense_pruned(self.fsa, dense, search_beam=c.beam, output_beam=c.lattice_beam,
                                            min_active_states=c.min_active, max_active_states=c.max_active)
        best = k2.shortest_path(lattice, use_double_scores=True)
        scores = best.get_tot_scores(use_double_scores=True, log_semiring=False).cpu()
        # Arcs per best path, read off the FsaVec's shape: indexing an empty FSA with ragged
        # attributes fails in k2, and an empty best path is the "no surviving token" case.
        rs1 = best.arcs.shape().row_splits(1).tolist()
        rs2 = best.arcs.shape().row_splits(2).tolist()
        for b, i in enumerate(todo):
            if rs2[rs1[b + 1]] - rs2[rs1[b]] == 0:
                out[i] = _failed()
                continue
            path = best[b]
            out[i] = DecodeResult(
                words=path_words(path),
                tids=path.tids[:-1].cpu().numpy().astype(np.int32),
                score=float(scores[b]),
                lattice=lattice[b].to("cpu") if self.keep_lattices else None,
            )


def path_words(path: Any) -> List[int]:
    """Word ids (> 0) on a k2 path's arcs, in order."""
    import k2

    aux = path.aux_labels
    vals = aux.values if isinstance(aux, k2.RaggedTensor) else aux
    return [int(w) for w in vals.cpu().tolist() if w > 0]


class KaldiDecoder(Decoder):
    """Kaldi's FasterDecoder on the transition-id HCLG (module docstring)."""

    name = "kaldi"

    def __init__(self, graph: GraphDir, config: DecoderConfig) -> None:
        super().__init__(graph, config)
        from asr_bl._kaldi import import_kaldi

        self._khg, self._kaldifst = import_kaldi()
        self.fst = graph.hclg()
        self._cols = torch.from_numpy(np.asarray(graph.tid_pdf[1:], dtype=np.int64))
        opts = self._khg.FasterDecoderOptions()
        opts.beam = config.beam
        opts.max_active = config.max_active
        opts.min_active = config.min_active
        self._decoder = self._khg.FasterDecoder(self.fst, opts)

    def decode(self, matrices: Sequence[torch.Tensor]) -> List[DecodeResult]:
        return [self.decode_one(m) for m in matrices]

    def decode_one(self, m: torch.Tensor) -> DecodeResult:
        self._check(m)
        if m.shape[0] == 0:
            return _failed()
        x = m.index_select(1, self._cols).contiguous().numpy()
        dec = self._khg.DecodableCtc(x)
        self._decoder.decode(dec)
        if not self._decoder.reached_final():
            return _failed()
        ok, lat = self._decoder.get_best_path(use_final_probs=True)
        if not ok:
            return _failed()
        succ, isyms, osyms, w = self._kaldifst.get_linear_symbol_sequence(lat)
        if not succ or len(isyms) != m.shape[0]:
            return _failed()
        return DecodeResult(words=[int(o) for o in osyms], tids=np.asarray(isyms, dtype=np.int32),
                            score=-float(w.value1 + w.value2))


def make_decoder(backend: str, graph: GraphDir, config: DecoderConfig, device: str = "cpu") -> Decoder:
    """The decoder of ``backend`` ("k2" or "kaldi") over ``graph``."""
    if backend == "k2":
        return K2Decoder(graph, config, device=device)
    if backend == "kaldi":
        if device != "cpu":
            raise ValueError(f"the kaldi backend runs on the CPU only, not {device}; use --backend k2 for CUDA")
        return KaldiDecoder(graph, config)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
