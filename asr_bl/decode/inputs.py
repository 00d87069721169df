"""What ``asr_bl-decode`` decodes: audio files, a lhotse manifest, or a recipe's test set -> cuts.

Audio files (wav, flac, sph: whatever lhotse/soundfile reads) become one cut per channel and
file: a stereo file without a channel choice is decoded as two sides (as Switchboard), cut ids
``<name>-A`` / ``<name>-B``. A file at another sample rate is resampled to the model's, with a
warning. An unreadable, empty or zero-length file is named in the returned failures and skipped;
the rest are decoded. A whole file is decoded as one utterance (no segmentation).

Manifests: a CutSet (cuts with supervisions are cut to their supervisions and then carry
references) or a RecordingSet (as audio files). A recipe test set is
``<recipe>/data/fbank/<prefix>_cuts_<name>.jsonl.gz``.
"""
import logging
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from asr_bl.io import Pathlike

logger = logging.getLogger(__name__)

__all__ = ["InputError", "cuts_from_audio", "cuts_from_manifest", "recipe_test_set", "cuts_from_recordings"]


class InputError(ValueError):
    """An input path or manifest that cannot be decoded as a whole (bad usage, not one bad file)."""


def _side(ch: int) -> str:
    return "AB"[ch] if ch < 2 else str(ch)


def cuts_from_recordings(recordings: Sequence[Any], sampling_rate: int, channel: Optional[int] = None,
                         check_audio: bool = True) -> Tuple[List[Any], List[Tuple[str, str]]]:
    """Cuts (one per decoded channel) of lhotse Recordings, and ``(id, reason)`` failures."""
    from lhotse import MonoCut

    cuts, failures = [], []
    for rec in recordings:
        if rec.duration <= 0 or rec.num_samples <= 0:
            failures.append((rec.id, "zero-length audio"))
            continue
        if rec.sampling_rate != sampling_rate:
            logger.warning("%s: sampled at %d Hz, the model expects %d Hz: resampling", rec.id, rec.sampling_rate,
                           sampling_rate)
            rec = rec.resample(sampling_rate)
        chans = list(rec.channel_ids)
        if channel is not None:
            if channel not in chans:
                failures.append((rec.id, f"has channels {chans}, not {channel}"))
                continue
            chans = [channel]
        for ch in chans:
            cid = rec.id if len(rec.channel_ids) == 1 else f"{rec.id}-{_side(ch)}"
            cut = MonoCut(id=cid, start=0.0, duration=rec.duration, channel=ch, recording=rec)
            if check_audio:
                try:
                    audio = cut.load_audio()
                except Exception as e:  # unreadable: named, skipped
                    failures.append((cid, f"unreadable audio ({type(e).__name__}: {e})"))
                    continue
                if audio.size == 0:
                    failures.append((cid, "empty audio"))
                    continue
            cuts.append(cut)
    return cuts, failures


def cuts_from_audio(paths: Sequence[Pathlike], sampling_rate: int,
                    channel: Optional[int] = None) -> Tuple[List[Any], List[Tuple[str, str]]]:
    """Cuts of audio files (module docstring) and the failures ``(path, reason)``."""
    from lhotse import Recording

    recs, failures = [], []
    seen = set()
    for p in paths:
        p = Path(p)
        if not p.is_file():
            failures.append((str(p), "no such file"))
            continue
        if p.stat().st_size == 0:
            failures.append((str(p), "empty file"))
            continue
        rid = p.stem
        if rid in seen:
            rid = f"{p.parent.name}_{p.stem}"
        seen.add(rid)
        try:
            recs.append(Recording.from_file(p, recording_id=rid))
        except Exception as e:
            failures.append((str(p), f"unreadable audio ({type(e).__name__}: {e})"))
    cuts, more = cuts_from_recordings(recs, sampling_rate, channel)
    return cuts, failures + more


def cuts_from_manifest(path: Pathlike, sampling_rate: int,
                       channel: Optional[int] = None) -> Tuple[List[Any], List[Tuple[str, str]]]:
    """Cuts of a CutSet or RecordingSet manifest (module docstring)."""
    from lhotse import CutSet, RecordingSet, load_manifest

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found")
    try:
        m = load_manifest(path)
    except Exception as e:
        raise InputError(f"{path}: not a lhotse manifest ({e}); give a CutSet or RecordingSet (.jsonl.gz)") from e
    if isinstance(m, RecordingSet):
        return cuts_from_recordings(list(m), sampling_rate, channel)
    if not isinstance(m, CutSet):
        raise InputError(f"{path}: a {type(m).__name__}; asr_bl-decode takes a CutSet or a RecordingSet "
                         f"(make cuts with CutSet.from_manifests(recordings, supervisions))")
    cuts = list(m)
    if any(len(c.supervisions) > 1 or (c.supervisions and (c.supervisions[0].start > 0 or
                                                           c.supervisions[0].duration < c.duration - 1e-3))
           for c in cuts):
        cuts = list(m.trim_to_supervisions(keep_overlapping=False))
    if not cuts:
        raise InputError(f"{path}: the manifest holds no cuts")
    out, failures = [], []
    for c in cuts:
        if c.duration <= 0:
            failures.append((c.id, "zero-length cut"))
            continue
        if c.sampling_rate != sampling_rate:
            logger.warning("%s: sampled at %d Hz, the model expects %d Hz: resampling", c.id, c.sampling_rate,
                           sampling_rate)
            c = c.resample(sampling_rate)
        out.append(c)
    return out, failures


def recipe_test_set(recipe_dir: Pathlike, name: str) -> Path:
    """The cuts manifest of a recipe's test set ``name`` (``data/fbank/*_cuts_<name>.jsonl.gz``)."""
    d = Path(recipe_dir) / "data" / "fbank"
    found = sorted(d.glob(f"*_cuts_{name}.jsonl.gz"))
    if not found:
        have = sorted(p.name.split("_cuts_")[1].split(".")[0] for p in d.glob("*_cuts_*.jsonl.gz"))
        raise InputError(f"{d}: no *_cuts_{name}.jsonl.gz; the recipe has sets {have or 'none'} "
                         f"(run its stages 0-1 first)")
    return found[0]
