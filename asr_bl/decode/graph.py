"""Decoding graphs: HCLG in Kaldi's ``utils/mkgraph.sh`` order with kaldifst, and its k2 form.

Steps (sizes and seconds of each go to ``log.json``)::

    LG    = determinize_star_log(L_disambig o G); minimize_encoded
    CLG   = compose_context(disambig phones, N, P, LG)        (N, P from the tree)
    Ha    = get_h_transducer(ilabels of CLG, tree, model, transition_scale)
    HCLGa = determinize_star_log(Ha o CLG); disambiguation transition-ids -> epsilon; minimize_encoded
    HCLG  = add_self_loops(HCLGa, self_loop_scale, reorder)

kaldifst has no ``fstrmsymbols`` or ``fstrmepslocal``: the disambiguation transition-ids are
mapped to epsilon by composing a one-state transducer (``d:<eps>`` for them, ``t:t`` for the
others) on HCLGa's input side; ``rmepslocal`` is skipped (it only shrinks the graph slightly).
Large LGs are determinized in OpenFst, never in k2 (k2's determinize runs out of memory).

A *graph dir* is self-contained; decoding never re-guesses anything::

    HCLG.fst        OpenFst binary (StdVectorFst), input labels = transition-ids, output = word ids
    HCLG.k2.pt      torch.save(k2.Fsa.as_dict()): labels = pdf-id + 1, ``tids`` attribute = the
                    transition-id of each arc, aux_labels = word ids, input epsilons removed
    words.txt       the lang dir's word table
    phones.txt      the lang dir's phone table
    G.arpa          the first-pass LM as ARPA (when G.fst's dir has lm.arpa; rescoring needs it)
    lexicon.txt     the lang dir's lexicon (word -> phones; word times align the best path's
                    phones to the words with it)
    transitions.npz per transition-id (index 0 unused): ``phone``, ``hmm_state``, ``pdf``
    graph.json      num_pdfs, num_transition_ids, tree_fingerprint (sha1 of the model's ``tree``),
                    scales, context width, silence phones, optional-silence phone, sizes
    log.json        per step: states, arcs, seconds
    done.json       the stage record (asr_bl.stage): rebuilt only when an input or option changed

Every file but ``done.json`` is written under a temporary name first; ``done.json`` last.
"""
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from asr_bl.io import Pathlike, atomic_open, atomic_path, save_torch, write_json

logger = logging.getLogger(__name__)

__all__ = ["GraphConfig", "GraphDir", "GraphError", "make_graph", "hclg_to_k2", "GRAPH_FILES"]

#: The files a graph dir must hold.
GRAPH_FILES = ("HCLG.fst", "words.txt", "phones.txt", "lexicon.txt", "transitions.npz", "graph.json")


class GraphError(ValueError):
    """A graph dir (or its inputs) is missing a file or disagrees with the model."""


@dataclass
class GraphConfig:
    """Options of :func:`make_graph` (Kaldi's mkgraph.sh defaults)."""

    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    #: Also write the k2 form (HCLG.k2.pt); needs k2.
    k2: bool = True


def _size(fst: Any) -> Dict[str, int]:
    n = fst.num_states
    arcs = sum(fst.num_arcs(s) for s in range(n))
    return {"states": int(n), "arcs": int(arcs)}


def _read_fst(path: Path) -> Any:
    _, kaldifst = _kaldi()
    if not path.is_file():
        raise GraphError(f"{path}: not found")
    return kaldifst.StdVectorFst.read(str(path))


def _kaldi() -> Any:
    from asr_bl._kaldi import import_kaldi

    return import_kaldi()


def _disambig_to_eps(kaldifst: Any, num_tids: int, disambig_tids: List[int]) -> Any:
    """One-state transducer: ``t:t`` for transition-ids, ``<eps>:d`` for disambiguation ids (composed on the left)."""
    lines = [f"0 0 {t} {t} 0" for t in range(1, num_tids + 1)]
    lines += [f"0 0 0 {d} 0" for d in disambig_tids]
    lines.append("0 0")
    m = kaldifst.compile("\n".join(lines), acceptor=False)
    kaldifst.arcsort(m, sort_type="olabel")
    return m


def _check_inputs(lang_dir: Path, model_dir: Path, g_fst: Path) -> None:
    need = [lang_dir / n for n in ("L_disambig.fst", "words.txt", "phones.txt", "disambig.int", "lexicon.txt",
                                   "lang_config.txt")]
    need += [model_dir / "final.mdl", model_dir / "tree", g_fst]
    for p in need:
        if not p.is_file():
            fix = {
                "G.fst": "build the LM first (asr_bl-lm train ... --out-dir DIR writes DIR/G.fst)",
                "final.mdl": "train the model first (asr_bl-gmm train-tri)",
                "tree": "train the model first (asr_bl-gmm train-tri)",
            }.get(p.name, "run 'asr_bl-gmm prepare-lang' to create the lang dir")
            raise GraphError(f"{p}: not found; {fix}")


def make_graph(lang_dir: Pathlike, model_dir: Pathlike, g_fst: Pathlike, out_dir: Pathlike,
               config: Optional[GraphConfig] = None) -> Dict[str, Any]:
    """Build ``out_dir`` (see the module docstring) from a lang dir, a GMM model dir and G.fst.

    The caller decides skip-or-redo (:class:`asr_bl.stage.Stage`); this always builds.
    Returns the summary also written to ``graph.json``.
    """
    from asr_bl.hmm.lang import load_lang
    from asr_bl.hmm.model import GmmHmm
    from asr_bl.stage import fingerprint

    config = config if config is not None else GraphConfig()

    lang_dir, model_dir, g_fst, out_dir = Path(lang_dir), Path(model_dir), Path(g_fst), Path(out_dir)
    _check_inputs(lang_dir, model_dir, g_fst)
    khg, kaldifst = _kaldi()
    model = GmmHmm.load(model_dir / "final.mdl")
    lang = load_lang(lang_dir)
    tm, ctx = model.tm, model.ctx_dep
    disambig = [int(x) for x in (lang_dir / "disambig.int").read_text().split()]
    log: Dict[str, Any] = {}
    t_all = time.time()

    def step(name: str, t0: float, fst: Any) -> None:
        log[name] = dict(_size(fst), seconds=round(time.time() - t0, 2))
        logger.info("mkgraph %s: %d states, %d arcs, %.1f s", name, log[name]["states"], log[name]["arcs"],
                    log[name]["seconds"])

    t0 = time.time()
    L = _read_fst(lang_dir / "L_disambig.fst")
    kaldifst.arcsort(L, sort_type="olabel")
    G = _read_fst(g_fst)
    kaldifst.arcsort(G, sort_type="ilabel")
    log["G"] = _size(G)
    LG = kaldifst.compose(L, G)
    if kaldifst.determinize_star(LG, use_log=True):  # False = completed (see its docstring)
        raise RuntimeError("determinize_star(L o G) stopped early (max-states)")
    kaldifst.minimize_encoded(LG)
    step("LG", t0, LG)
    del L, G

    t0 = time.time()
    width, central = int(ctx.context_width), int(ctx.central_position)
    CLG, ilabels = kaldifst.compose_context(disambig, width, central, LG)
    kaldifst.arcsort(CLG, sort_type="ilabel")
    step("CLG", t0, CLG)
    del LG

    t0 = time.time()
    hcfg = khg.HTransducerConfig()
    hcfg.transition_scale = config.transition_scale
    Ha, disambig_tids = khg.get_h_transducer(ilabels, ctx, tm, hcfg)
    kaldifst.arcsort(Ha, sort_type="olabel")
    step("Ha", t0, Ha)

    t0 = time.time()
    HCLGa = kaldifst.compose(Ha, CLG)
    del Ha, CLG
    if kaldifst.determinize_star(HCLGa, use_log=True):
        raise RuntimeError("determinize_star(Ha o CLG) stopped early (max-states)")
    num_tids = int(tm.num_transition_ids)
    HCLGa = kaldifst.compose(_disambig_to_eps(kaldifst, num_tids, list(disambig_tids)), HCLGa)
    kaldifst.minimize_encoded(HCLGa)
    step("HCLGa", t0, HCLGa)

    t0 = time.time()
    HCLG = khg.add_self_loops(self_loop_scale=config.self_loop_scale, disambig_syms=[], reorder=True,
                              trans_model=tm, ifst=HCLGa)
    del HCLGa
    step("HCLG", t0, HCLG)

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "HCLG.fst") as tmp:
        HCLG.write(str(tmp))
    for name in ("words.txt", "phones.txt", "lexicon.txt"):
        with atomic_path(out_dir / name) as tmp:
            shutil.copyfile(lang_dir / name, tmp)
    arpa = g_fst.parent / "lm.arpa"
    if arpa.is_file():  # the first-pass LM, for n-best rescoring (its scores are taken out of paths)
        with atomic_path(out_dir / "G.arpa") as tmp:
            shutil.copyfile(arpa, tmp)
    tables = model.tables
    with atomic_open(out_dir / "transitions.npz", "wb") as f:
        np.savez(f, phone=tables.phone, hmm_state=tables.hmm_state, pdf=tables.pdf)
    info = {
        "num_pdfs": int(model.num_pdfs),
        "num_transition_ids": num_tids,
        "tree_fingerprint": fingerprint(model_dir / "tree")["sha1"],
        "context_width": width,
        "central_position": central,
        "transition_scale": config.transition_scale,
        "self_loop_scale": config.self_loop_scale,
        "silence_phones": list(lang.silence_phones),
        "optional_silence": lang.silence_phones[0],
        "oov_word": lang.config.oov_word,
        "HCLG": log["HCLG"],
        "seconds": 0.0,
    }
    if config.k2:
        t0 = time.time()
        fsa = hclg_to_k2(HCLG, tables.pdf)
        save_torch(fsa.as_dict(), out_dir / "HCLG.k2.pt", fsync=False)
        log["k2"] = {"states": int(fsa.shape[0]), "arcs": int(fsa.num_arcs), "seconds": round(time.time() - t0, 2)}
        logger.info("mkgraph k2 form: %d states, %d arcs, %.1f s", fsa.shape[0], fsa.num_arcs, log["k2"]["seconds"])
        info["k2"] = log["k2"]
    info["seconds"] = round(time.time() - t_all, 2)
    log["total_seconds"] = info["seconds"]
    write_json(out_dir / "log.json", log)
    write_json(out_dir / "graph.json", info)
    return info


def hclg_to_k2(hclg: Any, tid2pdf: np.ndarray) -> Any:
    """The k2 search form of a transition-id HCLG: labels pdf-id + 1, ``tids`` attribute, no input epsilons.

    ``hclg`` is a kaldifst ``StdVectorFst`` (or the path of one); ``tid2pdf[t]`` is the pdf of
    transition-id t. k2's ``DenseFsaVec`` column j scores label j, so the log-likelihood matrix
    gets a column of -inf prepended (label 0 = epsilon never matches a frame).
    """
    import k2
    import torch

    if isinstance(hclg, (str, Path)):
        hclg = _read_fst(Path(hclg))
    fsa = k2.Fsa.from_openfst(hclg.to_str(show_weight_one=True), acceptor=False)
    tids = fsa.labels.clone()
    if int(tids.max()) >= len(tid2pdf):
        raise RuntimeError(f"HCLG has input label {int(tids.max())}, beyond the {len(tid2pdf) - 1} transition-ids "
                           f"(disambiguation ids left?)")
    lut = torch.from_numpy(np.asarray(tid2pdf, dtype=np.int32) + 1)
    lut[0] = 0
    labels = tids.clone()
    pos = tids > 0
    labels[pos] = lut[tids[pos].long()]
    fsa.labels = labels
    fsa.tids = tids
    fsa = k2.remove_epsilon(fsa)
    if isinstance(fsa.tids, k2.RaggedTensor):
        # remove_epsilon makes integer attributes ragged (the kept values of the epsilon arcs merged
        # into each arc): every arc has at most one non-zero transition-id (none on final arcs).
        rs = fsa.tids.shape.row_splits(1).long()
        n = rs[1:] - rs[:-1]
        if int(n.max()) > 1:
            raise RuntimeError("k2 form: an arc carries more than one transition-id after remove_epsilon")
        flat = torch.zeros(n.numel(), dtype=torch.int32)
        flat[n == 1] = fsa.tids.values
        del fsa.tids
        fsa.tids = flat
    fsa = k2.connect(fsa)
    fsa = k2.arc_sort(fsa)
    return fsa


class GraphDir:
    """A graph dir, checked on open: every file present, and (with :meth:`check_model`) the model's fit."""

    def __init__(self, path: Pathlike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise GraphError(f"{self.path}: graph dir not found; build it with asr_bl-mkgraph")
        for name in GRAPH_FILES:
            if not (self.path / name).is_file():
                raise GraphError(f"{self.path / name}: missing from the graph dir; rebuild it with asr_bl-mkgraph "
                                 f"(or copy the whole dir)")
        try:
            self.info: Dict[str, Any] = json.loads((self.path / "graph.json").read_text())
        except ValueError as e:
            raise GraphError(f"{self.path / 'graph.json'}: unreadable ({e}); rebuild with asr_bl-mkgraph") from e
        self.words: List[str] = _read_table(self.path / "words.txt")
        self.phones: List[str] = _read_table(self.path / "phones.txt")
        with np.load(self.path / "transitions.npz") as t:
            self.tid_phone = t["phone"]
            self.tid_hmm_state = t["hmm_state"]
            self.tid_pdf = t["pdf"]
        self._lexicon: Optional[Dict[str, List[List[int]]]] = None

    @property
    def num_pdfs(self) -> int:
        return int(self.info["num_pdfs"])

    @property
    def tree_fingerprint(self) -> str:
        return str(self.info["tree_fingerprint"])

    def check_model(self, num_pdfs: int, tree_fingerprint: str, model_desc: str) -> None:
        """Refuse a model whose pdfs or tree are not the graph's (naming both)."""
        if int(num_pdfs) != self.num_pdfs or str(tree_fingerprint) != self.tree_fingerprint:
            raise GraphError(
                f"{self.path}: the graph was built for {self.num_pdfs} pdfs / tree sha1 {self.tree_fingerprint[:12]}, "
                f"but {model_desc} has {num_pdfs} pdfs / tree sha1 {str(tree_fingerprint)[:12]}; "
                f"rebuild the graph from that model's tree (asr_bl-mkgraph --model-dir ...) or pass the matching model"
            )

    def hclg(self) -> Any:
        """The transition-id HCLG (kaldifst StdVectorFst)."""
        return _read_fst(self.path / "HCLG.fst")

    def k2_graph(self) -> Any:
        """The k2 search form, from the cache (built and cached when missing)."""
        import k2
        import torch

        cache = self.path / "HCLG.k2.pt"
        if cache.is_file():
            return k2.Fsa.from_dict(torch.load(cache))
        logger.info("%s: converting HCLG.fst to its k2 form (cached as %s)", self.path, cache)
        fsa = hclg_to_k2(self.path / "HCLG.fst", self.tid_pdf)
        save_torch(fsa.as_dict(), cache, fsync=False)
        return fsa

    def lexicon(self) -> Dict[str, List[List[int]]]:
        """word -> its pronunciations as phone-id lists."""
        if self._lexicon is None:
            p2i = {p: i for i, p in enumerate(self.phones)}
            lex: Dict[str, List[List[int]]] = {}
            for line in (self.path / "lexicon.txt").read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if parts:
                    lex.setdefault(parts[0], []).append([p2i[p] for p in parts[1:]])
            self._lexicon = lex
        return self._lexicon


def _read_table(path: Path) -> List[str]:
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = [""] * (max(int(i) for _, i in rows) + 1)
    for sym, i in rows:
        out[int(i)] = sym
    return out


def graph_config_dict(config: GraphConfig) -> Dict[str, Any]:
    return asdict(config)
