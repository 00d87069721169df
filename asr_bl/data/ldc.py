"""Manifests for the licensed corpora: Switchboard-1 (LDC97S62 + MS98 transcripts), Fisher English
(LDC2004S13/LDC2005S13 audio, LDC2004T19/LDC2005T19 transcripts) and Hub5'00 (LDC2002S09 audio,
LDC2002T43 references), built with lhotse's Switchboard and Hub5'00 recipes (Fisher transcripts are
parsed here, see :func:`prepare_fisher`) plus what a Kaldi-style recipe needs:

* layout checks before anything is read, with errors naming the expected sub-directory and corpus id
  (:class:`LdcLayoutError`);
* Switchboard speakers per conversation side (lhotse's recipe labels both channels with the A side);
* normalised training text (:mod:`asr_bl.data.normalize`) and Hub5'00 references (raw text kept in
  ``supervision.custom["raw_text"]``);
* Kaldi's splits: the first ``num_dev`` (4000) Switchboard utterances in Kaldi's sort order
  (conversation, side, start time) are the ``dev`` set, the rest plus Fisher are ``train``, where
  identical transcripts are capped at ``max_duplicates`` (300) utterances as Kaldi's ``train_nodup``;
  Hub5'00 splits into ``test_swb`` (``sw_*``) and ``test_ch`` (CallHome, ``en_*``);
* manifests written under temporary names and renamed, so that nothing half-written is left, and
  only where their content changed (:func:`asr_bl.manifests.write_manifest`);
* a stage record (``<out-dir>/{corpus}_done.json``, :mod:`asr_bl.stage`): a finished preparation
  with the same settings from the same corpus trees is skipped (:func:`prepare_ldc`).
"""
import logging
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from lhotse import RecordingSet, SupervisionSegment, SupervisionSet
from tqdm.auto import tqdm

from asr_bl.data.normalize import TrainingTextConfig, normalize_hub5_reference, normalize_training_text
from asr_bl.data.sphere import check_sph2pipe
from asr_bl.manifests import PARTS, manifest_paths, write_manifest
from asr_bl.stage import Stage

logger = logging.getLogger(__name__)

Pathlike = Union[str, Path]

SWBD_ID = "LDC97S62"
FISHER_AUDIO_IDS = ("LDC2004S13", "LDC2005S13")
FISHER_TRANSCRIPT_IDS = ("LDC2004T19", "LDC2005T19")
EVAL2000_AUDIO_ID = "LDC2002S09"
EVAL2000_TRANSCRIPT_ID = "LDC2002T43"


class LdcLayoutError(ValueError):
    """A given LDC directory is missing or does not have the layout of the named corpus."""


@dataclass
class LdcPrepConfig:
    """How the licensed corpora become the parts ``train``, ``dev``, ``test_swb``, ``test_ch``."""

    num_dev: int = 4000
    max_duplicates: int = 300
    text: TrainingTextConfig = field(default_factory=TrainingTextConfig)


def _require_dir(path: Path, corpus: str, what: str) -> None:
    if not path.is_dir():
        raise LdcLayoutError(f"{corpus}: missing directory {path} ({what})")


def _require_files(path: Path, pattern: str, corpus: str, what: str) -> List[Path]:
    _require_dir(path, corpus, what)
    found = sorted(path.rglob(pattern))
    if not found:
        raise LdcLayoutError(f"{corpus}: no '{pattern}' files under {path} ({what})")
    return found


def check_switchboard_layout(audio_dir: Path, transcripts_dir: Path) -> List[Path]:
    """Check a Switchboard-1 tree; return its ``.sph`` files. Every conversation needs A and B transcripts."""
    audio = _require_files(
        audio_dir, "*.sph", f"Switchboard-1 {SWBD_ID}",
        "expected the LDC97S62 package root, with swb1_d1/data/sw02001.sph ...",
    )
    texts = _require_files(
        transcripts_dir, "*trans.text", "Switchboard-1 MS98 transcripts (swb_ms98_transcriptions)",
        "expected swb_ms98_transcriptions/20/2001/sw2001A-ms98-a-trans.text ...",
    )
    sides = {p.name.split("-")[0] for p in texts}
    for sph in audio:
        name = sph.stem.replace("sw0", "sw", 1)
        for side in "AB":
            if f"{name}{side}" not in sides:
                raise LdcLayoutError(
                    f"Switchboard-1 MS98 transcripts: no {name}{side}-ms98-a-trans.text under "
                    f"{transcripts_dir} for {sph} (is the transcript tree complete?)"
                )
    return audio


def check_fisher_layout(
    corpus_dir: Path,
    audio_ids: Sequence[str] = FISHER_AUDIO_IDS,
    transcript_ids: Sequence[str] = FISHER_TRANSCRIPT_IDS,
    text_dir: Optional[Path] = None,
) -> Tuple[List[Path], List[Path], List[Path]]:
    """Check a Fisher English tree (the LDC packages side by side in ``corpus_dir``; the transcript
    packages may instead sit side by side in ``text_dir``).

    Returns ``(sph files, transcript .txt files, *_calldata.tbl files)``. Both lhotse's flattened
    layout (``LDC2004T19/data/trans/000/*.txt``, ``LDC2004T19/doc/``) and the LDC disc layout
    (``LDC2004T19/fe_03_p1_tran/data/trans/...``) are accepted.
    """
    _require_dir(corpus_dir, "Fisher English", "the directory holding the LDC packages")
    audio: List[Path] = []
    for corpus_id in audio_ids:
        audio += _require_files(
            corpus_dir / corpus_id, "*.sph", f"Fisher English audio {corpus_id}",
            f"expected {corpus_id}/fe_03_p1_sph1/audio/000/fe_03_00001.sph ...",
        )
    texts: List[Path] = []
    tables: List[Path] = []
    text_dir = Path(text_dir) if text_dir is not None else corpus_dir
    _require_dir(text_dir, "Fisher English transcripts", "the directory holding LDC2004T19 / LDC2005T19")
    for corpus_id in transcript_ids:
        root = text_dir / corpus_id
        found = [p for p in _require_files(
            root, "*.txt", f"Fisher English transcripts {corpus_id}",
            f"expected {corpus_id}/data/trans/000/fe_03_00001.txt ...",
        ) if p.parent.parent.name == "trans"]
        if not found:
            raise LdcLayoutError(
                f"Fisher English transcripts {corpus_id}: no data/trans/NNN/fe_03_*.txt under {root}"
            )
        texts += found
        tables += _require_files(
            root, "*_calldata.tbl", f"Fisher English transcripts {corpus_id}",
            f"expected {corpus_id}/doc/fe_03_p*_calldata.tbl (speaker PINs per side)",
        )
    stems = {p.stem for p in audio}
    missing = [p for p in texts if p.stem not in stems]
    if missing:
        raise LdcLayoutError(
            f"Fisher English: {len(missing)} transcripts have no audio, e.g. {missing[0]} "
            f"(expected {missing[0].stem}.sph under {list(audio_ids)})"
        )
    return audio, texts, tables


def read_fisher_calldata(tables: Iterable[Path]) -> Dict[str, Dict[str, str]]:
    """``{call id: {"A": PIN, "B": PIN}}`` from Fisher's ``*_calldata.tbl`` (CSV; PINs in columns 6, 11)."""
    sessions: Dict[str, Dict[str, str]] = {}
    for table in tables:
        lines = table.read_text(encoding="utf8").splitlines()
        for line in lines[1:]:
            fields = line.split(",")
            if len(fields) < 11:
                continue
            sessions[fields[0]] = {"A": fields[5], "B": fields[10]}
    return sessions


def read_fisher_transcript(
    path: Path, recording_id: str, speakers: Optional[Dict[str, str]] = None
) -> List[SupervisionSegment]:
    """Supervisions of one Fisher transcript (``START END A: words`` lines; ``#`` and blank lines skipped)."""
    segments = []
    for line_number, line in enumerate(path.read_text(encoding="utf8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 3)
        if len(fields) < 3 or fields[2] not in ("A:", "B:"):
            raise LdcLayoutError(f"{path}:{line_number}: expected 'START END A|B: words', got {line!r}")
        start, end, side = float(fields[0]), float(fields[1]), fields[2][0]
        text = fields[3] if len(fields) > 3 else ""
        speaker = (speakers or {}).get(side) or f"{recording_id}-{side}"
        segments.append(
            SupervisionSegment(
                id=f"{recording_id}-{side}-{int(round(start * 100)):06d}-{int(round(end * 100)):06d}",
                recording_id=recording_id, start=round(start, 3), duration=round(end - start, 3),
                channel=0 if side == "A" else 1, text=text, language="English", speaker=speaker,
            )
        )
    return segments


def check_eval2000_layout(corpus_dir: Path, text_dir: Optional[Path] = None) -> List[Path]:
    """Check a Hub5'00 tree (LDC2002S09 and LDC2002T43 side by side in ``corpus_dir``, or LDC2002T43
    in ``text_dir``); return its ``.sph`` files."""
    text_dir = Path(text_dir) if text_dir is not None else corpus_dir
    audio = _require_files(
        corpus_dir / EVAL2000_AUDIO_ID / "hub5e_00" / "english", "*.sph", f"Hub5'00 audio {EVAL2000_AUDIO_ID}",
        f"expected {EVAL2000_AUDIO_ID}/hub5e_00/english/sw_4390.sph ...",
    )
    _require_files(
        text_dir / EVAL2000_TRANSCRIPT_ID / "reference" / "english", "*.txt",
        f"Hub5'00 references {EVAL2000_TRANSCRIPT_ID}",
        f"expected {EVAL2000_TRANSCRIPT_ID}/reference/english/sw_4390.txt ...",
    )
    return audio


def _normalise_training(supervisions: Iterable[SupervisionSegment],
                        config: TrainingTextConfig) -> List[SupervisionSegment]:
    kept = []
    for sup in supervisions:
        text = normalize_training_text(sup.text or "", config)
        if text:
            kept.append(replace(sup, text=text))
    return kept


def prepare_switchboard(
    audio_dir: Pathlike, transcripts_dir: Pathlike, config: Optional[LdcPrepConfig] = None
) -> Tuple[RecordingSet, SupervisionSet]:
    """Switchboard-1 recordings and normalised supervisions, one speaker per conversation side.

    Supervisions are sorted in Kaldi's order (conversation, side, start) so that the first
    ``num_dev`` are Kaldi's ``train_dev``.
    """
    from lhotse.recipes import prepare_switchboard as lhotse_prepare_switchboard

    config = config if config is not None else LdcPrepConfig()
    audio_dir, transcripts_dir = Path(audio_dir), Path(transcripts_dir)
    sph = check_switchboard_layout(audio_dir, transcripts_dir)
    check_sph2pipe(sph)
    # omit_silence=False: lhotse drops any segment whose *first* word is [silence]; the normaliser
    # drops [silence] tokens and then only segments left without words.
    manifests = lhotse_prepare_switchboard(audio_dir, transcripts_dir, omit_silence=False, absolute_paths=True)
    recordings: RecordingSet = manifests["recordings"]
    fixed = []
    for sup in manifests["supervisions"]:
        # lhotse labels both channels "<rec>A"; the side is the channel (0 = A, 1 = B).
        side = "A" if sup.channel == 0 else "B"
        fixed.append(replace(sup, speaker=f"{sup.recording_id}-{side}"))
    fixed = _normalise_training(fixed, config.text)
    fixed.sort(key=lambda s: (s.recording_id, s.channel, s.start))
    return recordings, SupervisionSet.from_segments(fixed)


def prepare_fisher(
    corpus_dir: Pathlike,
    config: Optional[LdcPrepConfig] = None,
    audio_ids: Sequence[str] = FISHER_AUDIO_IDS,
    transcript_ids: Sequence[str] = FISHER_TRANSCRIPT_IDS,
    text_dir: Optional[Pathlike] = None,
    num_jobs: int = 4,
) -> Tuple[RecordingSet, SupervisionSet]:
    """Fisher English recordings and normalised supervisions (speaker = the side's caller PIN).

    Transcripts are parsed here rather than by lhotse's recipe, whose parser drops a fixed number of
    leading lines; this one skips exactly the ``#`` header and blank lines. Recordings are probed
    by ``num_jobs`` threads (each probe is an sph2pipe subprocess).
    """
    from concurrent.futures import ThreadPoolExecutor

    from lhotse import Recording
    from lhotse.qa import fix_manifests

    config = config if config is not None else LdcPrepConfig()
    corpus_dir = Path(corpus_dir)
    sph, texts, tables = check_fisher_layout(
        corpus_dir, audio_ids, transcript_ids, Path(text_dir) if text_dir is not None else None
    )
    check_sph2pipe(sph)
    sessions = read_fisher_calldata(tables)
    wanted = {p.stem for p in texts}
    audio = [p for p in sph if p.stem in wanted]
    with ThreadPoolExecutor(max(1, num_jobs)) as pool:
        recordings = RecordingSet.from_recordings(
            tqdm(pool.map(Recording.from_file, audio), total=len(audio), desc="Fisher recordings")
        )
    sups: List[SupervisionSegment] = []
    for path in tqdm(texts, desc="Fisher transcripts"):
        call_id = path.stem.split("_")[-1]
        sups += read_fisher_transcript(path, path.stem, sessions.get(call_id))
    sups = _normalise_training(sups, config.text)
    sups.sort(key=lambda s: (s.recording_id, s.channel, s.start))
    recordings, supervisions = fix_manifests(recordings, SupervisionSet.from_segments(sups))
    return recordings, supervisions


def prepare_eval2000(
    corpus_dir: Pathlike, text_dir: Optional[Pathlike] = None
) -> Tuple[RecordingSet, SupervisionSet]:
    """Hub5'00 recordings and supervisions with normalised references (raw text in ``custom``)."""
    from lhotse.recipes import prepare_eval2000 as lhotse_prepare_eval2000

    corpus_dir = Path(corpus_dir)
    text_root = Path(text_dir) if text_dir is not None else corpus_dir
    sph = check_eval2000_layout(corpus_dir, text_root)
    check_sph2pipe(sph)
    references = text_root / EVAL2000_TRANSCRIPT_ID / "reference" / "english"
    with tempfile.TemporaryDirectory(prefix="eval2000_prep_") as scratch:
        manifests = lhotse_prepare_eval2000(corpus_dir, scratch, transcript_path=references, absolute_paths=True)
    sups = []
    for sup in manifests["supervisions"]:
        raw = sup.text or ""
        custom = dict(sup.custom or {})
        custom["raw_text"] = raw
        sups.append(replace(sup, text=normalize_hub5_reference(raw), custom=custom))
    sups.sort(key=lambda s: (s.recording_id, s.channel, s.start))
    return manifests["recordings"], SupervisionSet.from_segments(sups)


def split_dev(supervisions: SupervisionSet, num_dev: int) -> Tuple[SupervisionSet, SupervisionSet]:
    """Kaldi's ``subset_data_dir.sh --first N``: the first ``num_dev`` utterances in Kaldi order."""
    ordered = sorted(supervisions, key=lambda s: (s.recording_id, s.channel, s.start))
    return SupervisionSet.from_segments(ordered[num_dev:]), SupervisionSet.from_segments(ordered[:num_dev])


def remove_duplicates(supervisions: Iterable[SupervisionSegment], max_count: int) -> List[SupervisionSegment]:
    """Keep at most ``max_count`` utterances per identical transcript (Kaldi's ``remove_dup_utts.sh``).

    Utterances like "uh-huh" or "yeah" occur tens of thousands of times; the first ``max_count``
    (in the given order) are kept.
    """
    counts: Counter = Counter()
    kept = []
    for sup in supervisions:
        counts[sup.text] += 1
        if counts[sup.text] <= max_count:
            kept.append(sup)
    return kept


def _subset_recordings(recordings: RecordingSet, supervisions: Iterable[SupervisionSegment]) -> RecordingSet:
    wanted = {s.recording_id for s in supervisions}
    return RecordingSet.from_recordings(r for r in recordings if r.id in wanted)


def build_parts(
    swbd: Tuple[RecordingSet, SupervisionSet],
    fisher: Optional[Tuple[RecordingSet, SupervisionSet]] = None,
    eval2000: Optional[Tuple[RecordingSet, SupervisionSet]] = None,
    config: Optional[LdcPrepConfig] = None,
) -> Dict[str, Tuple[RecordingSet, SupervisionSet]]:
    """The parts ``train`` (SWB minus dev, + Fisher, duplicates capped), ``dev``, ``test_swb``, ``test_ch``."""
    config = config if config is not None else LdcPrepConfig()
    swbd_recordings, swbd_sups = swbd
    train_sups, dev_sups = split_dev(swbd_sups, config.num_dev)
    train_list = list(train_sups)
    recordings = list(swbd_recordings)
    if fisher is not None:
        train_list += list(fisher[1])
        recordings += list(fisher[0])
    train_list = remove_duplicates(train_list, config.max_duplicates)
    all_recordings = RecordingSet.from_recordings(recordings)
    parts = {
        "train": (_subset_recordings(all_recordings, train_list), SupervisionSet.from_segments(train_list)),
        "dev": (_subset_recordings(swbd_recordings, dev_sups), dev_sups),
    }
    if eval2000 is not None:
        eval_recordings, eval_sups = eval2000
        for part, prefix in (("test_swb", "sw_"), ("test_ch", "en_")):
            sups = [s for s in eval_sups if s.recording_id.startswith(prefix)]
            parts[part] = (_subset_recordings(eval_recordings, sups), SupervisionSet.from_segments(sups))
    return parts


def write_manifest_atomic(manifest, path: Path) -> bool:
    """Write a lhotse manifest atomically, only if its content changed (see :func:`asr_bl.manifests.write_manifest`)."""
    return write_manifest(manifest, path)


def write_parts(parts: Dict[str, Tuple[RecordingSet, SupervisionSet]], output_dir: Pathlike, corpus: str) -> List[Path]:
    """Write every part's manifests atomically; return the paths written."""
    written = []
    for part, (recordings, supervisions) in parts.items():
        rec_path, sup_path = manifest_paths(output_dir, corpus, part)
        write_manifest(recordings, rec_path)
        write_manifest(supervisions, sup_path)
        written += [rec_path, sup_path]
        logger.info(
            "%s %s: %d recordings, %d supervisions, %.2f h",
            corpus, part, len(recordings), len(supervisions), sum(s.duration for s in supervisions) / 3600,
        )
    return written


def prepare_ldc(
    output_dir: Pathlike,
    swbd_audio_dir: Pathlike,
    swbd_transcripts_dir: Pathlike,
    fisher_dir: Optional[Pathlike] = None,
    eval2000_dir: Optional[Pathlike] = None,
    corpus: str = "swbd",
    config: Optional[LdcPrepConfig] = None,
    fisher_text_dir: Optional[Pathlike] = None,
    eval2000_text_dir: Optional[Pathlike] = None,
    num_jobs: int = 4,
    force: bool = False,
) -> List[Path]:
    """Check every given tree first, then build and write the four parts; return the manifest paths.

    Skipped (logged) when ``<output_dir>/{corpus}_done.json`` records a preparation with the same
    settings and corpus directories whose manifests are unchanged; ``force`` redoes it. The LDC
    trees are read-only releases: they are recorded by path, not hashed.
    """
    config = config if config is not None else LdcPrepConfig()
    dirs = {"swbd": swbd_audio_dir, "swbd_text": swbd_transcripts_dir, "fisher": fisher_dir,
            "fisher_text": fisher_text_dir, "eval2000": eval2000_dir, "eval2000_text": eval2000_text_dir}
    wanted = list(PARTS) if eval2000_dir is not None else ["train", "dev"]
    outputs = [p for part in wanted for p in manifest_paths(output_dir, corpus, part)]
    stage = Stage(Path(output_dir) / f"{corpus}_done.json", f"prepare {corpus}",
                  args={"config": asdict(config), "corpus": corpus,
                        "dirs": {k: (str(Path(v).resolve()) if v is not None else None) for k, v in dirs.items()}})
    if stage.is_done(force):
        return outputs
    fisher_text = Path(fisher_text_dir) if fisher_text_dir is not None else None
    eval2000_text = Path(eval2000_text_dir) if eval2000_text_dir is not None else None
    # Check all layouts before the (slow) reading of any, so a wrong path fails in seconds.
    check_switchboard_layout(Path(swbd_audio_dir), Path(swbd_transcripts_dir))
    if fisher_dir is not None:
        check_fisher_layout(Path(fisher_dir), text_dir=fisher_text)
    if eval2000_dir is not None:
        check_eval2000_layout(Path(eval2000_dir), eval2000_text)
    swbd = prepare_switchboard(swbd_audio_dir, swbd_transcripts_dir, config)
    fisher = (
        prepare_fisher(fisher_dir, config, text_dir=fisher_text, num_jobs=num_jobs) if fisher_dir is not None else None
    )
    eval2000 = prepare_eval2000(eval2000_dir, eval2000_text) if eval2000_dir is not None else None
    parts = build_parts(swbd, fisher, eval2000, config)
    written = write_parts(parts, output_dir, corpus)
    stage.finish(outputs=written, summary={part: len(sups) for part, (_, sups) in parts.items()})
    return written


__all__ = [
    "LdcLayoutError",
    "LdcPrepConfig",
    "PARTS",
    "build_parts",
    "check_eval2000_layout",
    "check_fisher_layout",
    "check_switchboard_layout",
    "manifest_paths",
    "prepare_eval2000",
    "prepare_fisher",
    "prepare_ldc",
    "prepare_switchboard",
    "read_fisher_calldata",
    "read_fisher_transcript",
    "remove_duplicates",
    "split_dev",
    "write_manifest_atomic",
    "write_parts",
]
