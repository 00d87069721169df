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
* SPHERE audio read through sph2pipe when on PATH, else decoded once by desphere into FLAC files
  (``audio_cache_dir``; :mod:`asr_bl.data.sphere` says why);
* with ``data_dir``: the lexicon (the MSU dictionary, Kaldi's ``swbd1_prepare_dict`` treatment, plus
  training words from CMUdict, :mod:`asr_bl.data.swbd_dict`) as ``lexicon.txt`` with the words left
  without a pronunciation in ``lexicon_oov.txt``; the LM text ``lm_text.txt`` (SWB minus dev, +
  Fisher, normalised like the training text, before the duplicate cap) and ``lm_dev.txt`` (dev);
  Hub5'00's scoring files ``eval2000.stm`` (with Kaldi's fixes, :func:`fix_hub5_stm_line`) and
  ``eval2000.glm`` from LDC2002T43;
* manifests written under temporary names and renamed, so that nothing half-written is left, and
  only where their content changed (:func:`asr_bl.manifests.write_manifest`);
* a stage record (``<out-dir>/{corpus}_done.json``, :mod:`asr_bl.stage`): a finished preparation
  with the same settings from the same corpus trees is skipped (:func:`prepare_ldc`).
"""
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from lhotse import RecordingSet, SupervisionSegment, SupervisionSet
from tqdm.auto import tqdm

from asr_bl.data.normalize import NOISE_TOKENS, TrainingTextConfig, normalize_hub5_reference, normalize_training_text
from asr_bl.data.sphere import resolve_sphere_decoder, sphere_recordings
from asr_bl.data.swbd_dict import (
    DictionaryError,
    SwbdDictConfig,
    add_missing_words,
    count_words,
    find_msu_dict,
    read_msu_dict,
    swbd_lexicon,
    write_lexicon,
    write_word_counts,
)
from asr_bl.io import write_if_changed
from asr_bl.manifests import PARTS, manifest_paths, write_manifest
from asr_bl.stage import Stage

logger = logging.getLogger(__name__)

Pathlike = Union[str, Path]

SWBD_ID = "LDC97S62"
FISHER_AUDIO_IDS = ("LDC2004S13", "LDC2005S13")
FISHER_TRANSCRIPT_IDS = ("LDC2004T19", "LDC2005T19")
EVAL2000_AUDIO_ID = "LDC2002S09"
EVAL2000_TRANSCRIPT_ID = "LDC2002T43"
#: Hub5'00 scoring files inside LDC2002T43's ``reference`` directory.
EVAL2000_STM_NAME = "hub5e00.english.000405.stm"
EVAL2000_GLM_NAME = "en20000405_hub5.glm"
#: The files ``prepare_ldc(data_dir=...)`` writes there.
DATA_FILES = ("lexicon.txt", "lexicon_oov.txt", "lm_text.txt", "lm_dev.txt")
EVAL2000_DATA_FILES = ("eval2000.stm", "eval2000.glm")


class LdcLayoutError(ValueError):
    """A given LDC directory is missing or does not have the layout of the named corpus."""


@dataclass
class LdcPrepConfig:
    """How the licensed corpora become the parts ``train``, ``dev``, ``test_swb``, ``test_ch``."""

    num_dev: int = 4000
    max_duplicates: int = 300
    text: TrainingTextConfig = field(default_factory=TrainingTextConfig)
    #: The lexicon's phones: ``"msu"`` (the dictionary's own) or ``"cmu"`` (see :mod:`asr_bl.data.swbd_dict`).
    phone_set: str = "msu"
    #: Keep the noise tokens ([noise], [laughter], [vocalized-noise]) in the LM text (Kaldi does).
    lm_keep_noise: bool = True

    def dict_config(self) -> SwbdDictConfig:
        return SwbdDictConfig(text=self.text, phone_set=self.phone_set)


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
    foreign = [p for p in audio if not re.fullmatch(r"sw0\d{4}\.sph", p.name)]
    if foreign:
        raise LdcLayoutError(
            f"Switchboard-1 {SWBD_ID}: {audio_dir} holds {len(foreign)} .sph files not named sw0NNNN.sph, "
            f"e.g. {foreign[0]} (another corpus?); expected the LDC97S62 package root, with "
            "swb1_d1/data/sw02001.sph ..."
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


def find_eval2000_references(text_dir: Path) -> Tuple[Path, Path]:
    """``(STM, GLM)`` of LDC2002T43 under ``text_dir``: ``LDC2002T43/reference/`` (or, as Kaldi also
    accepts, ``LDC2002T43/2000_hub5_eng_eval_tr/reference/``); an error naming the missing file."""
    root = Path(text_dir) / EVAL2000_TRANSCRIPT_ID
    candidates = [root / "reference", root / "2000_hub5_eng_eval_tr" / "reference"]
    found = []
    for name, what in ((EVAL2000_STM_NAME, "the scoring reference, STM"),
                       (EVAL2000_GLM_NAME, "the word mappings, GLM")):
        hits = [d / name for d in candidates if (d / name).is_file()]
        if not hits:
            raise LdcLayoutError(
                f"Hub5'00 references {EVAL2000_TRANSCRIPT_ID}: missing {name} ({what}); expected "
                f"{candidates[0] / name}"
            )
        found.append(hits[0])
    return found[0], found[1]


def check_eval2000_layout(corpus_dir: Path, text_dir: Optional[Path] = None, scoring_files: bool = True) -> List[Path]:
    """Check a Hub5'00 tree (LDC2002S09 and LDC2002T43 side by side in ``corpus_dir``, or LDC2002T43
    in ``text_dir``); return its ``.sph`` files. ``scoring_files``: also require the STM and GLM."""
    text_dir = Path(text_dir) if text_dir is not None else corpus_dir
    audio = _require_files(
        corpus_dir / EVAL2000_AUDIO_ID / "hub5e_00" / "english", "*.sph", f"Hub5'00 audio {EVAL2000_AUDIO_ID}",
        f"expected {EVAL2000_AUDIO_ID}/hub5e_00/english/sw_4390.sph ...",
    )
    foreign = [p for p in audio if not re.fullmatch(r"(sw|en)_\d{4}\.sph", p.name)]
    if foreign:
        raise LdcLayoutError(
            f"Hub5'00 audio {EVAL2000_AUDIO_ID}: {len(foreign)} .sph files not named sw_NNNN.sph / en_NNNN.sph, "
            f"e.g. {foreign[0]} (another corpus?); expected {EVAL2000_AUDIO_ID}/hub5e_00/english/sw_4390.sph ..."
        )
    _require_files(
        text_dir / EVAL2000_TRANSCRIPT_ID / "reference" / "english", "*.txt",
        f"Hub5'00 references {EVAL2000_TRANSCRIPT_ID}",
        f"expected {EVAL2000_TRANSCRIPT_ID}/reference/english/sw_4390.txt ...",
    )
    if scoring_files:
        find_eval2000_references(text_dir)
    return audio


_ASIDE = re.compile(r"^<[be]_aside>$", re.IGNORECASE)


def fix_hub5_stm_line(line: str) -> str:
    """One line of LDC's Hub5'00 STM as our scorer (and hubscr) wants it; Kaldi's
    ``eval2000_data_prep.sh`` makes the same fixes with sed: ``<B_ASIDE>``/``<E_ASIDE>`` tags removed,
    and LDC's doubled parentheses of hard-to-hear words reduced, ``((word))`` -> ``(word)``
    (optionally deletable), the brackets around several words (``((i think))``, ``(( i think ))``)
    dropped with the words kept. Comment lines (``;;``) stay as they are."""
    if line.lstrip().startswith(";;") or not line.strip():
        return line
    fields = line.split()
    if len(fields) < 6:
        return line
    head, words = fields[:5], fields[5:]
    labels = [words.pop(0)] if words and words[0].startswith("<") and words[0].endswith(">") and \
        not _ASIDE.match(words[0]) else []
    out = []
    for w in words:
        if _ASIDE.match(w) or w in ("((", "))"):
            continue
        if w.startswith("((") and w.endswith("))") and len(w) > 4:
            w = "(" + w[2:-2] + ")"  # one uncertain word: optionally deletable
        else:  # the ends of a multi-word uncertain stretch: its words are scored
            w = w[2:] if w.startswith("((") else w
            w = w[:-2] if w.endswith("))") else w
        if w:
            out.append(w)
    return " ".join(head + labels + out)


def install_eval2000_references(text_dir: Pathlike, stm_out: Pathlike, glm_out: Pathlike) -> Tuple[Path, Path]:
    """Copy LDC2002T43's STM (fixed by :func:`fix_hub5_stm_line`) and GLM (as it is) to ``stm_out`` and
    ``glm_out``, each only if its content changed; both are parsed by the scorer's readers first, so
    a format they cannot read fails here, naming the file and line."""
    from asr_bl.scoring.glm import read_glm
    from asr_bl.scoring.trans import read_stm

    stm, glm = find_eval2000_references(Path(text_dir))
    lines = stm.read_text(encoding="latin-1").splitlines()
    fixed = "".join(fix_hub5_stm_line(line) + "\n" for line in lines)
    write_if_changed(stm_out, fixed)
    segments = read_stm(stm_out)
    if not segments:
        raise LdcLayoutError(f"{stm}: the Hub5'00 STM has no segments")
    rules = read_glm(glm)
    write_if_changed(glm_out, glm.read_bytes())
    logger.info("eval2000 references: %d STM segments -> %s, %d GLM rules -> %s",
                len(segments), stm_out, len(rules.rules), glm_out)
    return Path(stm_out), Path(glm_out)


def _normalise_training(supervisions: Iterable[SupervisionSegment],
                        config: TrainingTextConfig) -> List[SupervisionSegment]:
    kept = []
    for sup in supervisions:
        text = normalize_training_text(sup.text or "", config)
        if text:
            kept.append(replace(sup, text=text))
    return kept


def prepare_switchboard(
    audio_dir: Pathlike, transcripts_dir: Pathlike, config: Optional[LdcPrepConfig] = None,
    sphere_decoder: str = "auto", audio_cache_dir: Optional[Pathlike] = None, num_jobs: int = 1,
) -> Tuple[RecordingSet, SupervisionSet]:
    """Switchboard-1 recordings and normalised supervisions, one speaker per conversation side.

    Supervisions are sorted in Kaldi's order (conversation, side, start) so that the first
    ``num_dev`` are Kaldi's ``train_dev``. Audio: see :func:`asr_bl.data.sphere.sphere_recordings`
    (``audio_cache_dir`` receives the FLAC files when desphere decodes).
    """
    from lhotse.qa import fix_manifests
    from lhotse.recipes.switchboard import make_segments

    config = config if config is not None else LdcPrepConfig()
    audio_dir, transcripts_dir = Path(audio_dir), Path(transcripts_dir)
    sph = check_switchboard_layout(audio_dir, transcripts_dir)
    recordings = sphere_recordings(sph, sphere_decoder, audio_cache_dir, num_jobs, desc="Switchboard recordings")
    texts = {p.name.split("-")[0]: p for p in transcripts_dir.rglob("*trans.text")}
    sups: List[SupervisionSegment] = []
    for recording in recordings:
        name = recording.id.replace("sw0", "sw", 1)
        for channel, side in enumerate("AB"):
            # omit_silence=False: lhotse drops any segment whose *first* word is [silence]; the
            # normaliser drops [silence] tokens and then only segments left without words.
            for sup in make_segments(texts[f"{name}{side}"], recording, channel, omit_silence=False):
                sups.append(replace(sup, speaker=f"{recording.id}-{side}"))
    sups = _normalise_training(sups, config.text)
    sups.sort(key=lambda s: (s.recording_id, s.channel, s.start))
    return fix_manifests(recordings, SupervisionSet.from_segments(sups))


def prepare_fisher(
    corpus_dir: Pathlike,
    config: Optional[LdcPrepConfig] = None,
    audio_ids: Sequence[str] = FISHER_AUDIO_IDS,
    transcript_ids: Sequence[str] = FISHER_TRANSCRIPT_IDS,
    text_dir: Optional[Pathlike] = None,
    num_jobs: int = 4,
    sphere_decoder: str = "auto",
    audio_cache_dir: Optional[Pathlike] = None,
) -> Tuple[RecordingSet, SupervisionSet]:
    """Fisher English recordings and normalised supervisions (speaker = the side's caller PIN).

    Transcripts are parsed here rather than by lhotse's recipe, whose parser drops a fixed number of
    leading lines; this one skips exactly the ``#`` header and blank lines. Recordings are probed
    (sph2pipe) or decoded (desphere) by ``num_jobs`` workers.
    """
    from lhotse.qa import fix_manifests

    config = config if config is not None else LdcPrepConfig()
    corpus_dir = Path(corpus_dir)
    sph, texts, tables = check_fisher_layout(
        corpus_dir, audio_ids, transcript_ids, Path(text_dir) if text_dir is not None else None
    )
    sessions = read_fisher_calldata(tables)
    wanted = {p.stem for p in texts}
    audio = [p for p in sph if p.stem in wanted]
    recordings = sphere_recordings(audio, sphere_decoder, audio_cache_dir, num_jobs, desc="Fisher recordings")
    sups: List[SupervisionSegment] = []
    for path in tqdm(texts, desc="Fisher transcripts"):
        call_id = path.stem.split("_")[-1]
        sups += read_fisher_transcript(path, path.stem, sessions.get(call_id))
    sups = _normalise_training(sups, config.text)
    sups.sort(key=lambda s: (s.recording_id, s.channel, s.start))
    recordings, supervisions = fix_manifests(recordings, SupervisionSet.from_segments(sups))
    return recordings, supervisions


def prepare_eval2000(
    corpus_dir: Pathlike, text_dir: Optional[Pathlike] = None, sphere_decoder: str = "auto",
    audio_cache_dir: Optional[Pathlike] = None, num_jobs: int = 1,
) -> Tuple[RecordingSet, SupervisionSet]:
    """Hub5'00 recordings and supervisions with normalised references (raw text in ``custom``)."""
    from lhotse.qa import fix_manifests
    from lhotse.recipes.eval2000 import make_segments

    corpus_dir = Path(corpus_dir)
    text_root = Path(text_dir) if text_dir is not None else corpus_dir
    sph = check_eval2000_layout(corpus_dir, text_root, scoring_files=False)
    recordings = sphere_recordings(sph, sphere_decoder, audio_cache_dir, num_jobs, desc="Hub5'00 recordings")
    references = text_root / EVAL2000_TRANSCRIPT_ID / "reference" / "english"
    sups = []
    for sup in make_segments(references):
        raw = sup.text or ""
        custom = dict(sup.custom or {})
        custom["raw_text"] = raw
        sups.append(replace(sup, text=normalize_hub5_reference(raw), custom=custom))
    sups.sort(key=lambda s: (s.recording_id, s.channel, s.start))
    return fix_manifests(recordings, SupervisionSet.from_segments(sups))


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


def lm_texts(
    swbd: SupervisionSet, fisher: Optional[SupervisionSet], num_dev: int, keep_noise: bool = True
) -> Tuple[List[str], List[str]]:
    """``(LM training text, LM dev text)``: SWB minus Kaldi's dev plus Fisher, and the dev utterances,
    one normalised utterance per line in Kaldi order, without the duplicate cap of the acoustic
    training set. ``keep_noise=False`` drops the noise tokens (lines left empty go)."""
    train, dev = split_dev(swbd, num_dev)
    ordered = list(train) + (sorted(fisher, key=lambda s: (s.recording_id, s.channel, s.start)) if fisher else [])

    def lines(sups: Iterable[SupervisionSegment]) -> List[str]:
        out = []
        for sup in sups:
            words = [w for w in (sup.text or "").split() if keep_noise or w not in NOISE_TOKENS]
            if words:
                out.append(" ".join(words))
        return out

    return lines(ordered), lines(dev)


def write_lang_inputs(
    data_dir: Pathlike,
    swbd_transcripts_dir: Pathlike,
    swbd: SupervisionSet,
    fisher: Optional[SupervisionSet] = None,
    config: Optional[LdcPrepConfig] = None,
    eval2000_text_dir: Optional[Pathlike] = None,
) -> List[Path]:
    """Write ``data_dir/{lexicon.txt, lexicon_oov.txt, lm_text.txt, lm_dev.txt}`` and, with
    ``eval2000_text_dir``, ``eval2000.stm`` and ``eval2000.glm``; each only if its content changed.

    The lexicon is the MSU dictionary of ``swbd_transcripts_dir`` (:func:`asr_bl.data.swbd_dict.swbd_lexicon`)
    plus the SWB and Fisher training words it lacks that CMUdict has; the rest are listed, with
    their counts, in ``lexicon_oov.txt``. Returns the paths written.
    """
    config = config if config is not None else LdcPrepConfig()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        msu = read_msu_dict(find_msu_dict(swbd_transcripts_dir))
    except DictionaryError as e:
        raise LdcLayoutError(str(e)) from e
    dict_config = config.dict_config()
    lexicon = swbd_lexicon(msu, dict_config)
    texts = [s.text or "" for s in swbd] + ([s.text or "" for s in fisher] if fisher is not None else [])
    lexicon, oov = add_missing_words(lexicon, count_words(texts), dict_config)
    lm_train, lm_dev = lm_texts(swbd, fisher, config.num_dev, config.lm_keep_noise)
    paths = [data_dir / name for name in DATA_FILES]
    write_lexicon(lexicon, paths[0])
    write_word_counts(oov, paths[1])
    write_if_changed(paths[2], "".join(line + "\n" for line in lm_train))
    write_if_changed(paths[3], "".join(line + "\n" for line in lm_dev))
    logger.info("lexicon: %d entries, %d words -> %s; %d OOV word types; LM text %d lines, dev %d lines",
                len(lexicon), len({w for w, _ in lexicon}), paths[0], len(oov), len(lm_train), len(lm_dev))
    if eval2000_text_dir is not None:
        stm, glm = (data_dir / name for name in EVAL2000_DATA_FILES)
        install_eval2000_references(eval2000_text_dir, stm, glm)
        paths += [stm, glm]
    return paths


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
    data_dir: Optional[Pathlike] = None,
    sphere_decoder: str = "auto",
    audio_cache_dir: Optional[Pathlike] = None,
) -> List[Path]:
    """Check every given tree first, then build and write the four parts (and, with ``data_dir``,
    the lexicon, LM texts and Hub5'00 scoring files, :func:`write_lang_inputs`); return the paths.

    ``sphere_decoder``: ``auto`` (sph2pipe when on PATH, else desphere), ``sph2pipe`` or ``desphere``;
    desphere decodes into ``audio_cache_dir`` (default ``<output_dir>/audio``).
    Skipped (logged) when ``<output_dir>/{corpus}_done.json`` records a preparation with the same
    settings and corpus directories whose outputs are unchanged; ``force`` redoes it. The LDC
    trees are read-only releases: they are recorded by path, not hashed.
    """
    config = config if config is not None else LdcPrepConfig()
    dirs = {"swbd": swbd_audio_dir, "swbd_text": swbd_transcripts_dir, "fisher": fisher_dir,
            "fisher_text": fisher_text_dir, "eval2000": eval2000_dir, "eval2000_text": eval2000_text_dir}
    wanted = list(PARTS) if eval2000_dir is not None else ["train", "dev"]
    outputs = [p for part in wanted for p in manifest_paths(output_dir, corpus, part)]
    if data_dir is not None:
        names = DATA_FILES + (EVAL2000_DATA_FILES if eval2000_dir is not None else ())
        outputs += [Path(data_dir) / name for name in names]
    decoder = resolve_sphere_decoder(sphere_decoder)
    cache = Path(audio_cache_dir) if audio_cache_dir is not None else Path(output_dir) / "audio"
    stage = Stage(Path(output_dir) / f"{corpus}_done.json", f"prepare {corpus}",
                  args={"config": asdict(config), "corpus": corpus,
                        "dirs": {k: (str(Path(v).resolve()) if v is not None else None) for k, v in dirs.items()},
                        "data_dir": str(data_dir) if data_dir is not None else None,
                        "sphere_decoder": decoder, "audio_cache": str(cache) if decoder == "desphere" else None})
    if stage.is_done(force):
        return outputs
    fisher_text = Path(fisher_text_dir) if fisher_text_dir is not None else None
    eval2000_text = Path(eval2000_text_dir) if eval2000_text_dir is not None else (
        Path(eval2000_dir) if eval2000_dir is not None else None)
    # Check all layouts before the (slow) reading of any, so a wrong path fails in seconds.
    check_switchboard_layout(Path(swbd_audio_dir), Path(swbd_transcripts_dir))
    if data_dir is not None:
        try:
            find_msu_dict(swbd_transcripts_dir)
        except DictionaryError as e:
            raise LdcLayoutError(str(e)) from e
    if fisher_dir is not None:
        check_fisher_layout(Path(fisher_dir), text_dir=fisher_text)
    if eval2000_dir is not None:
        check_eval2000_layout(Path(eval2000_dir), eval2000_text, scoring_files=data_dir is not None)
    audio = {"sphere_decoder": decoder, "audio_cache_dir": cache, "num_jobs": num_jobs}
    swbd = prepare_switchboard(swbd_audio_dir, swbd_transcripts_dir, config, **audio)
    fisher = prepare_fisher(fisher_dir, config, text_dir=fisher_text, **audio) if fisher_dir is not None else None
    eval2000 = prepare_eval2000(eval2000_dir, eval2000_text, **audio) if eval2000_dir is not None else None
    parts = build_parts(swbd, fisher, eval2000, config)
    written = write_parts(parts, output_dir, corpus)
    if data_dir is not None:
        written += write_lang_inputs(data_dir, swbd_transcripts_dir, swbd[1], fisher[1] if fisher else None,
                                     config, eval2000_text if eval2000_dir is not None else None)
    stage.finish(outputs=written, summary={part: len(sups) for part, (_, sups) in parts.items()})
    return written


__all__ = [
    "DATA_FILES",
    "EVAL2000_DATA_FILES",
    "EVAL2000_GLM_NAME",
    "EVAL2000_STM_NAME",
    "LdcLayoutError",
    "LdcPrepConfig",
    "PARTS",
    "build_parts",
    "check_eval2000_layout",
    "check_fisher_layout",
    "check_switchboard_layout",
    "find_eval2000_references",
    "fix_hub5_stm_line",
    "install_eval2000_references",
    "lm_texts",
    "manifest_paths",
    "prepare_eval2000",
    "prepare_fisher",
    "prepare_ldc",
    "prepare_switchboard",
    "read_fisher_calldata",
    "read_fisher_transcript",
    "remove_duplicates",
    "split_dev",
    "write_lang_inputs",
    "write_manifest_atomic",
    "write_parts",
]
