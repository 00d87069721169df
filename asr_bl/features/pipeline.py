"""Utterance cuts, precomputed (lilcom) features, per-conversation-side CMVN, and the network input.

Layout of a precomputed feature directory (``data/fbank``)::

    {corpus}_cuts_{part}.jsonl.gz     one MonoCut per supervision, log-mel features attached
    {corpus}_feats_{part}.lca         the lilcom-compressed log-mel matrices (lhotse LilcomChunkyWriter;
                                      a directory of .npy files where lilcom is not installed)
    {corpus}_cmvn_{part}.npz          CMVN statistics per conversation side (recording id + channel)
    {corpus}_fbank_{part}.json        the FbankConfig the features were computed with
    {corpus}_done_{part}.json         the part's stage record (asr_bl.stage): skip or redo
    {corpus}_failures_{part}.txt      only when cuts were dropped: ``cut-id<TAB>reason`` per dropped cut

Audio that cannot be read as its manifest declares (see :func:`asr_bl.validate.cut_audio_problem`)
fails the part, naming every bad cut in the failures file, unless ``max_bad_fraction`` allows that
many to be dropped; a part is complete only when its stage record (written last) matches its files.

Deltas and CMVN are applied when loading (:class:`FeatureLoader`), in Kaldi's order: CMVN on the
log-mel, then Δ/ΔΔ, giving the ``(3, 64, T)`` network input. The on-the-fly path computes the same
log-mel from audio with lhotse's ``OnTheFlyFeatures``; both are on the frame grid of
:func:`asr_bl.features.num_frames`, asserted per cut.
"""
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
from lhotse import CutSet, MonoCut, RecordingSet, SupervisionSet
from tqdm.auto import tqdm

from asr_bl.features.fbank import FbankConfig, make_extractor, num_frames, stack_deltas
from asr_bl.io import write_json
from asr_bl.manifests import manifest_path, write_manifest
from asr_bl.stage import Stage, fingerprint, read_record
from asr_bl.validate import DataError, cut_audio_problem

logger = logging.getLogger(__name__)

Pathlike = Union[str, Path]


def side_key(cut) -> str:
    """The conversation side a cut belongs to: ``"<recording id>:<channel>"``; CMVN is per side.

    The one definition (the network's CMVN here and the GMM's in :mod:`asr_bl.hmm.feats` group by
    it). A cut on several channels (a mix of the two sides of a conversation) is not one side:
    its key names all its channels, sorted, ``"<recording id>:0+1"``, so its frames never enter
    the statistics of one of the sides it mixes; a one-element channel list is that channel.
    """
    channels = cut.channel if isinstance(cut.channel, (list, tuple)) else [cut.channel]
    return f"{cut.recording_id}:{'+'.join(str(c) for c in sorted(channels))}"


def cut_num_frames(cut, config: FbankConfig) -> int:
    """The number of frames of ``cut`` on the one frame grid."""
    return num_frames(cut.num_samples, cut.sampling_rate, config)


def utterance_cuts(recordings: RecordingSet, supervisions: SupervisionSet) -> CutSet:
    """One single-channel cut per supervision (id = supervision id), on the supervision's channel.

    Two-channel conversations (one side per channel) become per-side utterance cuts, which is what
    the GMM alignments, the network and the per-side CMVN all work on.
    """
    cuts = []
    for sup in supervisions:
        recording = recordings[sup.recording_id]
        channel = sup.channel if isinstance(sup.channel, int) else sup.channel[0]
        cut = MonoCut(
            id=sup.id, start=sup.start, duration=sup.duration, channel=channel, recording=recording,
            supervisions=[sup.with_offset(-sup.start)],
        )
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


@dataclass
class CmvnStats:
    """Per-side sums for CMVN: ``count[i]`` frames, ``sum[i]`` and ``sumsq[i]`` (F,) for side ``keys[i]``."""

    keys: List[str]
    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray

    @staticmethod
    def accumulate(items: Iterable[Tuple[str, np.ndarray]], dim: int) -> "CmvnStats":
        """Stats from ``(side key, (T, F) features)`` pairs, summed in float64 in the order given.

        The one CMVN accumulation: the network's features (:func:`compute_cmvn_stats`) and the
        GMM's (:func:`asr_bl.hmm.feats.compute_gmm_features`) both use it and :meth:`mean_std`;
        the modes applying them are :data:`asr_bl.features.fbank.CMVN_MODES`.
        """
        index: Dict[str, int] = {}
        count: List[float] = []
        sums: List[np.ndarray] = []
        sumsqs: List[np.ndarray] = []
        for key, feats in items:
            feats = np.asarray(feats, dtype=np.float64)
            if key not in index:
                index[key] = len(count)
                count.append(0.0)
                sums.append(np.zeros(dim))
                sumsqs.append(np.zeros(dim))
            i = index[key]
            count[i] += feats.shape[0]
            sums[i] += feats.sum(axis=0)
            sumsqs[i] += (feats**2).sum(axis=0)
        return CmvnStats(
            keys=list(index),
            count=np.asarray(count, dtype=np.float64),
            sum=np.asarray(sums, dtype=np.float64).reshape(len(count), dim),
            sumsq=np.asarray(sumsqs, dtype=np.float64).reshape(len(count), dim),
        )

    def __post_init__(self) -> None:
        self._index = {k: i for i, k in enumerate(self.keys)}

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def mean_std(self, key: str) -> Tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of side ``key`` (std floored to avoid division by ~0)."""
        if key not in self._index:
            raise KeyError(f"no CMVN statistics for conversation side {key!r}")
        i = self._index[key]
        n = max(self.count[i], 1.0)
        mean = self.sum[i] / n
        var = np.maximum(self.sumsq[i] / n - mean**2, 1e-10)
        return mean, np.sqrt(var)

    def save(self, path: Pathlike) -> None:
        """Write to ``path`` (.npz) via a temporary name."""
        path = Path(path)
        tmp = path.parent / f".{path.stem}.partial.npz"
        np.savez(tmp, keys=np.asarray(self.keys), count=self.count, sum=self.sum, sumsq=self.sumsq)
        os.replace(tmp, path)

    @staticmethod
    def load(path: Pathlike) -> "CmvnStats":
        with np.load(path) as data:
            return CmvnStats(
                keys=[str(k) for k in data["keys"]], count=data["count"], sum=data["sum"], sumsq=data["sumsq"]
            )


def apply_cmvn(
    feats: np.ndarray, mode: str, stats: Optional[CmvnStats] = None, key: Optional[str] = None
) -> np.ndarray:
    """Normalise ``(T, F)`` features: ``mode`` "mean", "meanvar" or "none".

    With ``stats`` the side ``key``'s statistics are used (Kaldi's per-speaker CMVN); without, the
    utterance's own (a fallback for cuts whose side has no statistics).
    """
    if mode == "none":
        return feats
    if stats is not None and key is not None:
        mean, std = stats.mean_std(key)
    else:
        x = feats.astype(np.float64)
        mean = x.mean(axis=0)
        std = np.sqrt(np.maximum(x.var(axis=0), 1e-10))
    out = feats - mean.astype(feats.dtype)
    if mode == "meanvar":
        out = out / std.astype(feats.dtype)
    return out.astype(np.float32)


def feature_paths(output_dir: Pathlike, corpus: str, part: str) -> Dict[str, Path]:
    """The files of one part in a precomputed feature directory (see the module docstring)."""
    d = Path(output_dir)
    return {
        "cuts": manifest_path(d, corpus, "cuts", part),
        "storage": d / f"{corpus}_feats_{part}",
        "cmvn": d / f"{corpus}_cmvn_{part}.npz",
        "config": d / f"{corpus}_fbank_{part}.json",
        "record": d / f"{corpus}_done_{part}.json",
        "failures": d / f"{corpus}_failures_{part}.txt",
    }


def compute_cmvn_stats(cuts: CutSet, config: FbankConfig, source: str = "precomputed") -> CmvnStats:
    """Per-side CMVN statistics over ``cuts`` from their precomputed features or from audio."""
    extractor = make_extractor(config) if source == "audio" else None

    def items():
        for cut in tqdm(cuts, desc="CMVN stats", leave=False):
            if source == "precomputed":
                feats = cut.load_features()
            else:
                feats = extractor.extract(cut.load_audio()[0], cut.sampling_rate)
            yield side_key(cut), feats

    return CmvnStats.accumulate(items(), config.num_mel_bins)


def lilcom_available() -> bool:
    """Whether the ``lilcom`` package (lhotse's compressed feature storage) is installed."""
    try:
        import lilcom  # noqa: F401
    except ImportError:
        return False
    return True


def storage_writer(storage: str = "auto"):
    """The lhotse writer class for ``storage``: "lilcom" (compressed, default when installed) or "numpy".

    "auto" picks lilcom when it is installed and otherwise falls back to uncompressed ``.npy`` files
    with a warning (``pip install lilcom`` fixes it).
    """
    from lhotse import LilcomChunkyWriter, NumpyFilesWriter

    if storage not in ("auto", "lilcom", "numpy"):
        raise ValueError(f"storage must be 'auto', 'lilcom' or 'numpy', got {storage!r}")
    if storage == "lilcom" or (storage == "auto" and lilcom_available()):
        if not lilcom_available():
            raise ImportError("storage='lilcom' needs the lilcom package: pip install lilcom")
        return LilcomChunkyWriter
    if storage == "auto":
        logger.warning("lilcom is not installed: storing uncompressed numpy features (pip install lilcom)")
    return NumpyFilesWriter


def _cuts_digest(cuts: CutSet) -> str:
    """sha1 of the cuts' JSON (ids, times, channels, audio sources): what the features are computed from."""
    h = hashlib.sha1()
    for cut in cuts:
        h.update(json.dumps(cut.to_dict(), sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def _check_existing_part(paths: Dict[str, Path], config: FbankConfig, cuts: CutSet, stage: Stage) -> None:
    """Refuse to redo over a finished part made with another feature configuration or from other cut ids.

    A silent redo would replace features that other stages were built on; the caller decides
    (``overwrite``). Raises ``ValueError`` naming the file that differs and the two ways out.
    """
    from lhotse import load_manifest

    fix = "pass overwrite=True (asr_bl-features --force) to recompute it, or write to another --out-dir"
    previous = stage.previous
    if previous is not None:
        stored, where = previous.get("args", {}).get("config"), paths["record"]
    else:  # a part made before stage records: its config file
        stored = json.loads(paths["config"].read_text()) if paths["config"].is_file() else None
        where = paths["config"]
    if stored != config.to_dict():
        raise ValueError(f"{where} records feature config {stored}, but {config.to_dict()} was requested; {fix}")
    stored_ids = set(load_manifest(paths["cuts"]).ids)
    requested_ids = set(cuts.ids)
    dropped = set(read_failures(paths["failures"])) if paths["failures"].is_file() else set()
    if stored_ids != requested_ids and not (stored_ids <= requested_ids and requested_ids - stored_ids <= dropped):
        raise ValueError(
            f"{paths['cuts']} holds {len(stored_ids)} cuts, {len(stored_ids - requested_ids)} of them not "
            f"requested; {len(requested_ids - stored_ids)} requested cuts are missing from it "
            f"(the input manifests changed); {fix}"
        )


def read_failures(path: Pathlike) -> Dict[str, str]:
    """``{cut id: reason}`` from a failures file (``cut-id<TAB>reason`` lines)."""
    out: Dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        cid, _, reason = line.partition("\t")
        if cid:
            out[cid] = reason
    return out


def _apply_bad_audio_policy(bad: Dict[str, str], total: int, max_bad_fraction: float, path: Path) -> None:
    """Write the failures file; raise :class:`DataError` when more than ``max_bad_fraction`` of the cuts are bad."""
    from asr_bl.io import write_text

    write_text(path, "".join(f"{cid}\t{reason}\n" for cid, reason in sorted(bad.items())))
    shown = "; ".join(f"{cid}: {reason}" for cid, reason in sorted(bad.items())[:3])
    if len(bad) > max_bad_fraction * total:
        more = f" ... ({len(bad) - 3} more)" if len(bad) > 3 else ""
        raise DataError(
            f"{path}: {len(bad)} of {total} cuts have audio that cannot be read as the manifest says "
            f"({shown}{more}); fix the audio or the manifests (asr_bl-validate data), or let up to a fraction "
            f"of the cuts be dropped with --max-bad-audio (now {max_bad_fraction:g})"
        )
    logger.warning("%d of %d cuts dropped for bad audio (allowed: %g); listed in %s; first: %s",
                   len(bad), total, max_bad_fraction, path, shown)


def _load_error(cut) -> str:
    """Why lhotse could not compute features for ``cut`` (it drops such cuts with a warning only)."""
    try:
        cut.load_audio()
    except Exception as e:  # noqa: BLE001 - any loading failure is the reason
        return f"audio cannot be loaded ({type(e).__name__}: {e})"
    return "feature extraction dropped it (see lhotse's warnings)"


def compute_and_store(
    cuts: CutSet,
    output_dir: Pathlike,
    corpus: str,
    part: str,
    config: Optional[FbankConfig] = None,
    num_jobs: int = 1,
    overwrite: bool = False,
    storage: str = "auto",
    max_bad_fraction: float = 0.0,
) -> CutSet:
    """Compute log-mel features (lilcom storage) and per-side CMVN stats for ``cuts``; write the part's files.

    Skip or redo through the part's stage record (``{corpus}_done_{part}.json``, :mod:`asr_bl.stage`):
    a finished part made with the same ``config`` and storage from the same cuts (their JSON, by
    content) is loaded, not recomputed, and logged as skipped. A finished part made with another
    ``config`` or from other cut ids is refused with ``ValueError`` naming the file and the fix
    (``overwrite=True`` recomputes); same ids with other content (e.g. new audio) are redone, the
    reason logged. ``num_jobs`` is capped at one process per 200 cuts: a worker process costs
    seconds to start, more than small parts take to compute.

    Bad audio (unreadable, missing, another sampling rate or length than declared, a cut outside its
    recording; :func:`asr_bl.validate.cut_audio_problem`, and any cut lhotse's extraction drops) is
    listed in ``{corpus}_failures_{part}.txt`` (``cut-id<TAB>reason``); more than
    ``max_bad_fraction`` of the cuts bad raises :class:`asr_bl.validate.DataError` and leaves the
    part unfinished, otherwise those cuts are dropped, logged, and counted in the record's summary.
    A redo removes the old record before it overwrites anything, so an interrupted redo leaves no
    part that looks finished.
    """
    from lhotse import load_manifest

    config = config if config is not None else FbankConfig()
    writer = storage_writer(storage)
    paths = feature_paths(output_dir, corpus, part)
    paths["cuts"].parent.mkdir(parents=True, exist_ok=True)
    cuts = cuts.to_eager()
    if not 0.0 <= max_bad_fraction < 1.0:
        raise ValueError(f"max_bad_fraction must be in [0, 1), got {max_bad_fraction}")
    args = {"config": config.to_dict(), "storage": writer.name, "cuts_sha1": _cuts_digest(cuts)}
    if max_bad_fraction > 0:  # (absent at 0: records of parts made before the option stay valid)
        args["max_bad_fraction"] = max_bad_fraction
    stage = Stage(paths["record"], f"features {corpus} {part}", args=args)
    if not overwrite and paths["cuts"].is_file():
        _check_existing_part(paths, config, cuts, stage)
    if stage.is_done(overwrite):
        return load_manifest(paths["cuts"])
    cache: Dict[str, Optional[str]] = {}
    bad = {c.id: p for c, p in ((c, cut_audio_problem(c, cache)) for c in cuts) if p}
    if bad:
        _apply_bad_audio_policy(bad, len(cuts), max_bad_fraction, paths["failures"])
    # From here on the old outputs get overwritten: without the record the part is unfinished.
    paths["record"].unlink(missing_ok=True)
    good = cuts.filter(lambda c: c.id not in bad).to_eager() if bad else cuts
    extractor = make_extractor(config)
    num_jobs = max(1, min(num_jobs, len(good) // 200))
    with_feats = good.compute_and_store_features(
        extractor=extractor, storage_path=paths["storage"], num_jobs=num_jobs,
        storage_type=writer,
    )
    with_feats = CutSet.from_cuts(with_feats).to_eager()
    lost = [c for c in good if c.id not in set(with_feats.ids)]
    if lost:
        bad.update({c.id: _load_error(c) for c in lost})
        _apply_bad_audio_policy(bad, len(cuts), max_bad_fraction, paths["failures"])
    if not bad:
        paths["failures"].unlink(missing_ok=True)
    for cut in with_feats:
        expected = cut_num_frames(cut, config)
        assert cut.features.num_frames == expected, (
            f"cut {cut.id}: {cut.features.num_frames} feature frames, frame grid says {expected}"
        )
    stats = compute_cmvn_stats(with_feats, config, source="precomputed")
    write_json(paths["config"], config.to_dict())
    stats.save(paths["cmvn"])
    write_manifest(with_feats, paths["cuts"])
    storage_files = [p for p in (paths["storage"], Path(f"{paths['storage']}.lca")) if p.exists()]
    summary: Dict[str, object] = {"cuts": len(with_feats)}
    if bad:
        summary.update({"requested": len(cuts), "dropped": len(bad)})
        storage_files.append(paths["failures"])
    stage.finish(outputs=[paths["cuts"], paths["cmvn"], paths["config"], *storage_files], summary=summary)
    return with_feats


def verify_feature_part(output_dir: Pathlike, corpus: str, part: str) -> None:
    """:class:`DataError` unless the part's stage record exists and every file it lists is unchanged
    (a truncated or rewritten feature store, an interrupted redo)."""
    paths = feature_paths(output_dir, corpus, part)
    fix = f"recompute it: asr_bl-features --prefix {corpus} --out-dir {output_dir} --parts {part} --force"
    record = read_record(paths["record"])
    if record is None:
        raise DataError(f"{paths['record']}: missing or unreadable, so the features of '{part}' are not known to "
                        f"be complete (an interrupted run?); {fix}")
    for p, fp in record.get("outputs", {}).items():
        now = fingerprint(p, fp)
        if now is None:
            raise DataError(f"{p}: missing (listed in {paths['record']}); {fix}")
        if now.get("size") != fp.get("size") or now.get("sha1") != fp.get("sha1"):
            raise DataError(f"{p}: changed after the features stage finished ({fp.get('size')} -> {now.get('size')} "
                            f"bytes; truncated?); {fix}")


def load_feature_part(output_dir: Pathlike, corpus: str, part: str) -> Tuple[CutSet, CmvnStats, FbankConfig]:
    """The cuts, CMVN statistics and feature configuration of one precomputed part.

    Raises ``FileNotFoundError`` naming the missing file and the command that makes it.
    """
    from lhotse import load_manifest

    paths = feature_paths(output_dir, corpus, part)
    for key in ("cuts", "cmvn", "config"):
        if not paths[key].is_file():
            raise FileNotFoundError(
                f"{paths[key]} not found; compute the features first: "
                f"asr_bl-features --prefix {corpus} --out-dir {output_dir} --parts {part}"
            )
    verify_feature_part(output_dir, corpus, part)
    config = FbankConfig.from_dict(json.loads(paths["config"].read_text()))
    return load_manifest(paths["cuts"]), CmvnStats.load(paths["cmvn"]), config


class FeatureLoader:
    """Loads the ``(3, F, T)`` network input of cuts: log-mel (precomputed or from audio) -> CMVN -> Δ/ΔΔ.

    ``source``: "precomputed" (lhotse ``PrecomputedFeatures``) or "on-the-fly" (lhotse
    ``OnTheFlyFeatures`` with the :func:`make_extractor` front end; ``wave_transforms`` are its
    augmentation hook). ``cmvn_stats``: per-side statistics; sides without statistics (or
    ``cmvn_stats=None``) fall back to the utterance's own.
    """

    def __init__(
        self,
        config: Optional[FbankConfig] = None,
        cmvn_stats: Optional[CmvnStats] = None,
        source: str = "precomputed",
        wave_transforms: Optional[Sequence] = None,
        backend: str = "auto",
    ) -> None:
        from lhotse.dataset import OnTheFlyFeatures, PrecomputedFeatures

        if source not in ("precomputed", "on-the-fly"):
            raise ValueError(f"source must be 'precomputed' or 'on-the-fly', got {source!r}")
        self.config = config if config is not None else FbankConfig()
        self.cmvn_stats = cmvn_stats
        self.source = source
        self._missing_sides: Set[str] = set()
        if source == "precomputed":
            self.strategy = PrecomputedFeatures()
        else:
            self.strategy = OnTheFlyFeatures(
                make_extractor(self.config, backend=backend), wave_transforms=list(wave_transforms or []),
                # Batch extraction pads short utterances with zeros, which changes their last frames
                # (Kaldi reflects the signal at the edge): extract each cut on its own instead.
                use_batch_extract=False,
            )

    def _warn_missing_side(self, key: str) -> None:
        # Per-utterance CMVN on a side meant to have per-side stats usually means the stats file is
        # from another part or corpus: say so (once per side) rather than silently normalise differently.
        if key in self._missing_sides:
            return
        self._missing_sides.add(key)
        if len(self._missing_sides) == 1:
            logger.warning(
                "conversation side %s has no CMVN statistics: falling back to per-utterance CMVN "
                "(are the stats from another part?); further sides are counted at debug level", key
            )
        else:
            logger.debug("side %s has no CMVN statistics (%d sides so far)", key, len(self._missing_sides))

    @property
    def sides_without_cmvn(self) -> List[str]:
        """Conversation sides met so far that had no CMVN statistics (per-utterance CMVN was used)."""
        return sorted(self._missing_sides)

    def load_logmel(self, cuts: CutSet) -> List[np.ndarray]:
        """The CMVN-normalised log-mel ``(T, F)`` of each cut, in order."""
        cuts = cuts if isinstance(cuts, CutSet) else CutSet.from_cuts(cuts)
        feats, lens = self.strategy(cuts)[:2]
        out = []
        for cut, x, n in zip(cuts, feats, lens.tolist()):
            expected = cut_num_frames(cut, self.config)
            if n != expected:
                raise AssertionError(f"cut {cut.id}: {n} feature frames, frame grid says {expected}")
            key = side_key(cut)
            stats = self.cmvn_stats if (self.cmvn_stats is not None and key in self.cmvn_stats) else None
            if self.cmvn_stats is not None and stats is None:
                self._warn_missing_side(key)
            out.append(apply_cmvn(x[:n].numpy(), self.config.cmvn, stats, key))
        return out

    def __call__(self, cuts: CutSet) -> List[np.ndarray]:
        """The ``(3, F, T)`` float32 network input of each cut, in order."""
        return [stack_deltas(x, self.config.delta_window) for x in self.load_logmel(cuts)]


__all__ = [
    "CmvnStats",
    "FeatureLoader",
    "apply_cmvn",
    "compute_and_store",
    "compute_cmvn_stats",
    "cut_num_frames",
    "feature_paths",
    "lilcom_available",
    "load_feature_part",
    "read_failures",
    "verify_feature_part",
    "storage_writer",
    "side_key",
    "utterance_cuts",
]
