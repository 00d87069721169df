"""Decode a set of cuts end to end: inputs -> likelihoods -> search -> settings -> hyps, CTM, WER.

What :func:`decode_set` writes to its output dir (a Kaldi-style decode dir)::

    hyp.txt          "utt-id w1 w2 ..." of the chosen setting (every input cut, failed ones empty)
    hyp.ctm          recording-level CTM of the chosen setting (asr_bl.scoring.write_ctm)
    failures.txt     "id reason" for inputs that could not be read and utterances with no
                     surviving token (scored as all deletions)
    ref.stm          references (when the cuts have supervisions with text)
    sweep.json       WER of every LM weight x insertion penalty (k2 backend, with references)
    sweep/           each setting's hypotheses, lmwt_<weight>_wip_<penalty>.txt
    wer.json/.md     the chosen setting's report (in-process scorer, utterance level)
    sclite/          score_ctm of hyp.ctm against ref.stm (sclite when installed)
    rescored/        the same for the lattices rescored with a bigger LM (when asked)
    summary.json     backend, beams, setting, frames, times, real-time factors, WERs

Settings. With ``lm_weight``/``wip`` given (test sets: the values tuned on dev) they are used;
otherwise, with references, the best setting of the sweep on this set is chosen (dev). No lattice
outlives its chunk of utterances: the sweep keeps each setting's best path (and, with rescoring,
each utterance's n-best, sampled at the search's scale plus every setting's 1-best), so a dev
decode's memory is one chunk of lattices, like a test set's. The kaldi
backend keeps no lattice: its one setting is LM weight = 1 / acoustic scale (a given
``lm_weight`` becomes the search's acoustic scale), penalty 0.
"""
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from asr_bl.decode.acoustic import LikelihoodSource
from asr_bl.decode.ctm import ctm_entries
from asr_bl.decode.decoders import DecoderConfig, DecodeResult, KaldiDecoder, make_decoder
from asr_bl.decode.graph import GraphDir
from asr_bl.decode.lattice import (
    Candidate,
    Setting,
    best_path,
    choose_rescored,
    nbest_candidates,
    rescore_nbest,
    sweep_paths,
)
from asr_bl.io import Pathlike, write_json, write_text

logger = logging.getLogger(__name__)

__all__ = ["DecodeOptions", "decode_matrices", "decode_set", "references"]


@dataclass
class DecodeOptions:
    """How a set is decoded and scored (decoder beams are in :class:`DecoderConfig`)."""

    backend: str = "k2"
    device: str = "cpu"
    #: Acoustic scale of the search (Kaldi's acwt); the sweep rescales from it.
    acoustic_scale: float = 0.1
    #: Apply this LM weight / penalty (None: tune on this set when it has references, else 1/acwt, 0).
    lm_weight: Optional[float] = None
    wip: Optional[float] = None
    #: The sweep's grid (k2 backend).
    lm_weights: Tuple[float, ...] = (6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 16.0)
    wips: Tuple[float, ...] = (0.0, 0.5, 1.0)
    num_jobs: int = 1
    #: ARPA of a bigger LM for n-best rescoring (k2 backend), and how many sampled paths.
    rescore_arpa: Optional[str] = None
    num_paths: int = 100
    #: GLM: "project" (the embedded corpus' spelling variants), "none", or a GLM file.
    glm: str = "project"
    #: Scorer of the CTM: auto (sclite when installed), sclite, python.
    scorer: str = "auto"
    #: name -> utterance/recording-id prefix (eval2000: swb=sw_, callhome=en_).
    subsets: Dict[str, str] = field(default_factory=dict)
    #: Reference STM for the CTM scoring (eval2000: LDC's); None: one written from the cuts' supervisions.
    stm: Optional[str] = None
    #: More (lm_weight, wip) settings whose 1-best to write to sweep/ (k2), e.g. the Kaldi backend's.
    extra_settings: Tuple[Tuple[float, float], ...] = ()
    progress: bool = True


class _KaldiShard:
    """One worker's share of the kaldi backend: its own decoder over the graph, built on first use."""

    def __init__(self, graph_path: str, config: DecoderConfig) -> None:
        self.graph_path = graph_path
        self.config = config
        self._decoder: Optional[KaldiDecoder] = None

    def decode(self, items: List[Tuple[int, np.ndarray]]
               ) -> List[Tuple[int, List[int], np.ndarray, float, bool, float]]:
        if self._decoder is None:
            self._decoder = KaldiDecoder(GraphDir(self.graph_path), self.config)
        out = []
        for i, m in items:
            t0 = time.perf_counter()
            r = self._decoder.decode_one(torch.from_numpy(m))
            out.append((i, r.words, r.tids, r.score, r.ok, time.perf_counter() - t0))
        return out


def decode_matrices(matrices: Sequence[torch.Tensor], graph: GraphDir, backend: str, config: DecoderConfig,
                    device: str = "cpu", num_jobs: int = 1, decoder: Any = None,
                    pool: Any = None) -> Tuple[List[DecodeResult], float]:
    """Search only: results in order and the summed search seconds (wall; per worker for a kaldi pool)."""
    if backend == "kaldi" and pool is not None:
        from asr_bl.parallel import balanced_shards

        items = [(i, m.numpy()) for i, m in enumerate(matrices)]
        shards = balanced_shards(items, weight=lambda x: x[1].shape[0], num_shards=len(pool))
        shards += [[] for _ in range(len(pool) - len(shards))]
        res: List[Optional[DecodeResult]] = [None] * len(matrices)
        secs = 0.0
        for part in pool.map_each(_KaldiShard.decode, [(s,) for s in shards]):
            for i, words, tids, score, ok, dt in part:
                res[i] = DecodeResult(words=words, tids=tids, score=score, ok=ok)
                secs += dt
        return res, secs  # type: ignore[return-value]
    dec = decoder if decoder is not None else make_decoder(backend, graph, config, device=device)
    t0 = time.perf_counter()
    out = dec.decode(matrices)
    return out, time.perf_counter() - t0


def references(cuts: Sequence[Any]) -> Optional[Dict[str, List[str]]]:
    """``{cut_id: reference words}`` when every cut has supervisions with text, else None."""
    refs: Dict[str, List[str]] = {}
    for c in cuts:
        sups = [s for s in getattr(c, "supervisions", []) if s.text is not None]
        if not sups:
            return None
        refs[c.id] = " ".join(s.text for s in sups).split()
    return refs


def _glm(spec: str) -> Any:
    from asr_bl.scoring import project_glm, read_glm

    if spec == "none":
        return None
    if spec == "project":
        return project_glm()
    return read_glm(spec)


def _rescoring_lms(graph: GraphDir, options: DecodeOptions) -> Optional[Tuple[Any, Any]]:
    """The (first-pass, rescoring) ARPA models of an n-best rescoring, or None without one."""
    if not options.rescore_arpa:
        return None
    from asr_bl.decode.lm import load_arpa

    old_arpa = graph.path / "G.arpa"
    if not old_arpa.is_file():
        raise FileNotFoundError(f"{old_arpa}: the graph dir has no first-pass ARPA; rebuild it with "
                                f"asr_bl-mkgraph --lm-dir (which copies lm.arpa as G.arpa)")
    return load_arpa(old_arpa), load_arpa(options.rescore_arpa)


def search_setting_of(ac: float) -> Setting:
    """The setting the search itself scores at: LM weight 1 / acoustic scale, no penalty."""
    return Setting(round(1.0 / ac, 6), 0.0)


def _path_of(r: DecodeResult, ac: float, setting: Setting, words: Sequence[str],
             rescore: Optional[Tuple[Any, Any]] = None, num_paths: int = 100) -> Tuple[List[int], np.ndarray]:
    """One utterance's (word ids, transition ids) at ``setting``: the search's own best path, the
    lattice's best path at another setting, or with ``rescore`` the best n-best path after the LM swap."""
    if not r.ok:
        return [], np.zeros(0, dtype=np.int32)
    if rescore is not None and r.lattice is not None:
        p = rescore_nbest(r.lattice, ac, setting, words, rescore[0], rescore[1], num_paths=num_paths)
        return p.words, p.tids
    if r.lattice is not None and setting != search_setting_of(ac):
        p = best_path(r.lattice, ac, setting)
        return p.words, p.tids
    return r.words, r.tids


def decode_set(cuts: Sequence[Any], source: LikelihoodSource, graph: GraphDir, out_dir: Pathlike,
               options: DecodeOptions, config: Optional[DecoderConfig] = None,
               input_failures: Sequence[Tuple[str, str]] = ()) -> Dict[str, Any]:
    """Decode ``cuts`` and write the decode dir (module docstring); returns the summary."""
    from asr_bl.scoring import score_ctm, score_texts, write_ctm, write_stm

    config = config if config is not None else DecoderConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    graph.check_model(source.num_pdfs, source.tree_fingerprint, source.description)
    cuts = list(cuts)
    frame_shift = float(getattr(source, "frame_shift", 0.01))
    given_stm = None
    if options.stm is not None:  # it covers the whole test set: keep the recordings decoded here
        from asr_bl.scoring.trans import read_stm

        mine = {c.recording_id for c in cuts}
        given_stm = [s for s in read_stm(options.stm) if s.recording in mine]
        if not given_stm:
            raise ValueError(f"{options.stm}: no segment of the decoded recordings ({', '.join(sorted(mine)[:3])}, "
                             f"...); pass this test set's STM")
    t_start = time.perf_counter()
    t0 = time.perf_counter()
    source.prepare(cuts, num_jobs=options.num_jobs)
    t_prepare = time.perf_counter() - t0

    ac = options.acoustic_scale
    if options.backend == "kaldi" and options.lm_weight is not None:
        # No lattice: the LM weight is applied in the search itself, as acoustic scale 1 / LM weight.
        if options.wip not in (None, 0.0):
            raise ValueError(f"the kaldi backend has no word-insertion penalty (got --wip {options.wip}); "
                             f"use the best setting with penalty 0 of the dev sweep (sweep.json 'best_wip0')")
        ac = 1.0 / options.lm_weight
    keep_lattices = options.backend == "k2"
    decoder = None
    pool = None
    if options.backend == "kaldi" and options.num_jobs > 1:
        from asr_bl.parallel import ShardPool

        pool = ShardPool([_KaldiShard(str(graph.path), config) for _ in range(options.num_jobs)],
                         num_jobs=options.num_jobs, start_method="spawn")
    else:
        decoder = make_decoder(options.backend, graph, config, device=options.device)
        if hasattr(decoder, "keep_lattices"):
            decoder.keep_lattices = keep_lattices
    refs = references(cuts)
    words = graph.words
    # No lattice outlives its chunk, so memory stays bounded by one chunk of lattices. At a given
    # setting the 1-best, rescored path and extra settings are taken right away. The dev sweep keeps
    # instead every setting's best path (words, alignment, scores) and, for rescoring, each
    # utterance's n-best candidates; the setting is chosen after the last chunk.
    tune = options.backend == "k2" and refs is not None and options.lm_weight is None
    settings = [Setting(lw, p) for lw in options.lm_weights for p in options.wips] if tune else []
    search_setting = search_setting_of(ac)
    fixed = Setting(options.lm_weight if options.lm_weight is not None else search_setting.lm_weight,
                    options.wip if options.wip is not None else 0.0)
    extra = [Setting(float(lw), float(p)) for lw, p in options.extra_settings] if options.backend == "k2" else []
    rescore_pair = _rescoring_lms(graph, options) if options.backend == "k2" else None
    streamed: Dict[str, Dict[str, Tuple[List[int], np.ndarray]]] = {"first": {}, "rescored": {}}
    swept: Dict[Setting, Dict[str, Candidate]] = {s: {} for s in settings + extra}
    candidates: Dict[str, List[Candidate]] = {}
    t_paths = t_rescore = t_sweep = 0.0
    results: Dict[str, DecodeResult] = {}
    t_like = t_search = 0.0
    frames = 0
    chunk = max(8, 16 * max(1, options.num_jobs))
    bar = tqdm(total=len(cuts), desc=f"decode ({options.backend})", unit="utt", disable=not options.progress)
    try:
        for c0 in range(0, len(cuts), chunk):
            part = cuts[c0:c0 + chunk]
            t0 = time.perf_counter()
            mats = [source.log_likelihoods(c) * ac for c in part]
            t_like += time.perf_counter() - t0
            frames += sum(m.shape[0] for m in mats)
            res, secs = decode_matrices(mats, graph, options.backend, config, options.device, options.num_jobs,
                                        decoder=decoder, pool=pool)
            t_search += secs
            for c, r in zip(part, res):
                results[c.id] = r
            chunk_lattices = {c.id: r.lattice for c, r in zip(part, res) if r.ok and r.lattice is not None}
            if tune:
                t0 = time.perf_counter()
                for st, paths in sweep_paths(chunk_lattices, ac, list(swept)).items():
                    swept[st].update(paths)
                t1 = time.perf_counter()
                if rescore_pair is not None:  # sampled at the search's own scale, as Kaldi's lattice-to-nbest
                    for u, lat in chunk_lattices.items():
                        candidates[u] = nbest_candidates(lat, ac, search_setting, options.num_paths,
                                                         extra=[swept[st][u] for st in settings])
                t_rescore += time.perf_counter() - t1
                t_sweep += t1 - t0
            elif options.backend == "k2":
                t0 = time.perf_counter()
                for st, paths in sweep_paths(chunk_lattices, ac, extra).items() if extra else ():
                    swept[st].update(paths)
                for c, r in zip(part, res):
                    streamed["first"][c.id] = _path_of(r, ac, fixed, words)
                t1 = time.perf_counter()
                if rescore_pair is not None:
                    for c, r in zip(part, res):
                        streamed["rescored"][c.id] = _path_of(r, ac, fixed, words, rescore_pair, options.num_paths)
                t_rescore += time.perf_counter() - t1
                t_paths += t1 - t0
            for r in res:
                r.lattice = None
            bar.update(len(part))
    finally:
        bar.close()
        if pool is not None:
            pool.close()
    t_total = time.perf_counter() - t_start - t_paths - t_rescore - t_sweep

    failures = [(u, r) for u, r in input_failures]
    failures += [(u, "no surviving token: no path reached a final state within the beam (scored as all deletions)")
                 for u, r in results.items() if not r.ok]
    glm = _glm(options.glm)
    vocab = [w for w in words if w and w not in ("<eps>", "#0", "<s>", "</s>")]
    speakers = None
    if refs is not None:
        speakers = {c.id: (c.supervisions[0].speaker or c.id) for c in cuts}

    def write_setting_hyps(s: Setting, hyp: Dict[str, List[str]]) -> None:
        # Kaldi's scoring dir keeps every setting's transcripts too (e.g. to compare backends).
        write_text(out_dir / "sweep" / f"lmwt_{s.lm_weight:g}_wip_{s.wip:g}.txt",
                   "".join(f"{c.id} {' '.join(hyp.get(c.id, []))}".rstrip() + "\n" for c in cuts))

    def setting_hyps(st: Setting, utts: Sequence[str]) -> Dict[str, List[str]]:
        return {u: [words[w] for w in swept[st][u].words] if u in swept[st] else [] for u in utts}

    def setting_report(hyp: Dict[str, List[str]]) -> Any:
        assert refs is not None
        return score_texts(hyp, refs, speakers=speakers, subsets=options.subsets or None, vocab=vocab, glm=glm)

    # Settings: the sweep (k2, references, no fixed setting) or the given one.
    sweep_report: Dict[str, Any] = {}
    chosen = fixed
    if tune:
        t0 = time.perf_counter()
        reports = {}
        for st in settings:
            hyp = setting_hyps(st, list(refs))
            write_setting_hyps(st, hyp)
            reports[st] = setting_report(hyp)
        from asr_bl.scoring import best_setting

        chosen = best_setting(reports)
        sweep_report = {str(st): {"lm_weight": st.lm_weight, "wip": st.wip, "wer": reports[st].overall.wer}
                        for st in settings}
        best0 = best_setting({st: r for st, r in reports.items() if st.wip == 0.0}) if 0.0 in options.wips else None
        write_json(out_dir / "sweep.json", {"best": str(chosen), "best_lm_weight": chosen.lm_weight,
                                            "best_wip": chosen.wip,
                                            "best_wip0": None if best0 is None else best0.lm_weight,
                                            "search_lm_weight": search_setting.lm_weight,
                                            "settings": sweep_report})
        t_sweep += time.perf_counter() - t0
        logger.info("sweep: best %s, WER %.2f%% (%d settings, %.0f s)", chosen, reports[chosen].overall.wer,
                    len(settings), t_sweep)
    extra_report: Dict[str, Any] = {}
    for st in extra:
        hyp = setting_hyps(st, list(results))
        write_setting_hyps(st, hyp)
        if refs is not None:  # utterance-level WER, as the sweep's
            rep = setting_report({u: hyp.get(u, []) for u in refs})
            extra_report[str(st)] = {"lm_weight": st.lm_weight, "wip": st.wip, "wer": rep.overall.wer}

    def chosen_paths(rescore: bool = False) -> Dict[str, Tuple[List[int], np.ndarray]]:
        if options.backend == "k2" and not tune:
            return streamed["rescored" if rescore else "first"]
        if tune:
            empty = ([], np.zeros(0, dtype=np.int32))
            if rescore:
                assert rescore_pair is not None
                picked = {u: choose_rescored(c, chosen, words, *rescore_pair) for u, c in candidates.items()}
                return {u: (picked[u].words, picked[u].tids) if u in picked else empty for u in results}
            return {u: (list(swept[chosen][u].words), swept[chosen][u].tids) if u in swept[chosen] else empty
                    for u in results}
        return {u: _path_of(r, ac, chosen, words) for u, r in results.items()}  # kaldi: its own 1-best

    def write_reference_stm() -> None:
        write_stm(cuts, out_dir / "ref.stm", segments=given_stm)

    def write_outputs(d: Path, paths: Dict[str, Tuple[List[int], np.ndarray]]) -> Dict[str, Any]:
        d.mkdir(parents=True, exist_ok=True)
        lines = [f"{c.id} {' '.join(words[w] for w in paths[c.id][0])}".rstrip() for c in cuts]
        write_text(d / "hyp.txt", "\n".join(lines) + "\n")
        entries = []
        for c in cuts:
            w, tids = paths[c.id]
            entries += ctm_entries(graph, c, tids, [words[i] for i in w], frame_shift)
        write_ctm(entries, d / "hyp.ctm")
        info: Dict[str, Any] = {}
        if refs is not None:
            hyp = {u: [words[w] for w in paths[u][0]] for u in refs}
            rep = score_texts(hyp, refs, speakers=speakers, subsets=options.subsets or None, vocab=vocab, glm=glm)
            write_json(d / "wer.json", rep.to_json())
            write_text(d / "wer.md", rep.to_markdown(title=f"WER {d}"))
            info["wer"] = rep.overall.wer
            info["report"] = rep.to_json()
            write_reference_stm()
            try:
                crep = score_ctm(d / "hyp.ctm", out_dir / "ref.stm", d / "sclite", glm=glm, scorer=options.scorer,
                                 subsets=options.subsets or None, vocab=vocab)
                info["ctm_wer"] = crep.overall.wer
                info["ctm_scorer"] = crep.scorer
                info["ctm_report"] = crep.to_json()
            except Exception as e:  # the utterance-level report stands; say why the CTM one is missing
                logger.warning("CTM scoring failed (%s); the utterance-level wer.json is written", e)
                info["ctm_error"] = str(e)
        return info

    first = write_outputs(out_dir, chosen_paths())
    write_text(out_dir / "failures.txt", "".join(f"{u} {why}\n" for u, why in failures))
    summary: Dict[str, Any] = {
        "backend": options.backend,
        "device": options.device,
        "decoder_config": asdict(config),
        "acoustic_scale": ac,
        "setting": {"lm_weight": chosen.lm_weight, "wip": chosen.wip, "tuned_here": bool(sweep_report)},
        "model": source.description,
        "graph": str(graph.path),
        "utterances": len(cuts),
        "failed_inputs": len(input_failures),
        "no_surviving_token": sum(1 for r in results.values() if not r.ok),
        "frames": frames,
        "audio_seconds": frames * frame_shift,
        # total: likelihoods + search (what the RTFs divide); sweep and scoring come on top.
        "seconds": {"prepare": t_prepare, "likelihoods": t_like, "search": t_search, "total": t_total,
                    "sweep": t_sweep, "outputs_and_scoring": time.perf_counter() - t_start - t_total - t_sweep},
        "rtf": {"search": t_search / max(frames * frame_shift, 1e-9),
                "total": t_total / max(frames * frame_shift, 1e-9)},
        "num_jobs": options.num_jobs,
    }
    if extra_report:
        summary["extra_settings"] = extra_report
    summary.update({k: v for k, v in first.items() if not k.endswith("report")})
    if rescore_pair is not None:
        t0 = time.perf_counter()
        resc = write_outputs(out_dir / "rescored", chosen_paths(rescore=True))
        summary["rescored"] = {k: v for k, v in resc.items() if not k.endswith("report")}
        summary["rescored"]["lm"] = str(options.rescore_arpa)
        summary["rescored"]["seconds"] = time.perf_counter() - t0 + t_rescore
    write_json(out_dir / "summary.json", summary)
    return summary
