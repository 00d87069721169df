"""Plan and build the embedded synthetic telephone corpus (``synth``).

Layout of ``out_dir`` (the shared contract of the recipe)::

    synth_recordings_{train,dev,test_swb,test_ch}.jsonl.gz    lhotse RecordingSet, 2-channel 8 kHz
    synth_supervisions_{...}.jsonl.gz                          lhotse SupervisionSet (speaker, channel)
    manifests/       relative symlinks to the manifests above (where the recipe collects them)
    lexicon.txt      Kaldi lexicon (CMUdict, stress removed) of every word in the corpus and LM text
    lm_text.txt      LM training sentences: train transcripts + extra text, none from dev/test
    SUMMARY.md, summary.json                                    hours, speakers, engines, build time
    plan.json        what was planned (voices, sentences per conversation) for resuming
    done.json        the stage record (asr_bl.stage): settings and every output's fingerprint
    audio/<part>/<conversation>.flac (+ .json once finished)

Re-running: a finished build with the same size, seed and engines whose outputs are all intact is
skipped ("corpus: skipping ..."); otherwise it is redone, the reason logged, rendering only the
conversations that are not finished (resume) and rewriting only the files whose content changed
(manifests are deterministic gzip), so the stages after it see unchanged inputs.

Splits mirror Switchboard/Hub5'00: conversation sides are speakers (one per channel); ``dev`` and
``test_swb`` use voices seen in training, ``test_ch`` (the CallHome-like half) uses voices never
seen in training and a harsher channel. No sentence is shared by two splits, and the LM text holds
no dev or test sentence.

Determinism: the plan is drawn in one process from the seed; each conversation is then rendered
from its own generator (seed, conversation id), so the result is the same for any ``num_jobs``
and after any interruption and resume.
"""
import json
import logging
import multiprocessing
import os
import resource
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from asr_bl.corpus.channel import (
    CH_CHANNEL,
    SWB_CHANNEL,
    TRAIN_AUGMENT,
    ChannelConfig,
    UtteranceAugment,
)
from asr_bl.corpus.engines import (
    FEMALE_BASE_VOICES,
    VOICE_COST_S,
    EngineMissingError,
    Voice,
    available_engines,
)
from asr_bl.corpus.render import (
    ConversationPlan,
    Turn,
    audio_path,
    is_rendered,
    render_conversation,
    sidecar_path,
)
from asr_bl.corpus.text import SentencePool, _write_lines, load_cmudict, source_sentences, write_lexicon
from asr_bl.io import write_if_changed, write_json
from asr_bl.machine import cpu_model
from asr_bl.manifests import PARTS, TRAIN_PART, manifest_name, write_manifest
from asr_bl.stage import Stage

logger = logging.getLogger(__name__)

CORPUS_NAME = "synth"
PLAN_VERSION = 2  # 2: calibrated test_ch, training augmentation, LM covers the lexicon
# Planned seconds per word and per sentence, calibrated on the engines' average speaking rate.
_SECONDS_PER_WORD = 0.27
_SECONDS_PER_SENTENCE = 0.22


@dataclass(frozen=True)
class CorpusConfig:
    """Size and make-up of the synthetic corpus.

    Hours are of speech (the sum of supervision durations) per part; conversations hold about
    ``conversation_seconds`` of speech, split over two sides. ``lm_extra_ratio`` is how many extra
    LM-only sentences to write per training sentence (the Fisher-transcript role).
    """

    name: str = "default"
    train_hours: float = 10.0
    dev_hours: float = 0.5
    test_swb_hours: float = 0.5
    test_ch_hours: float = 0.5
    num_train_speakers: int = 60
    num_unseen_speakers: int = 12
    conversation_seconds: float = 300.0
    lm_extra_ratio: float = 2.0
    #: Vocal-tract warp of the training voices (dev and test_swb use the same voices).
    seen_warp: Tuple[float, float] = (0.93, 1.07)
    #: Warps of the unseen (test_ch) voices: half from each range, straddling the edges of
    #: ``seen_warp`` rather than beyond them (issue 16: hard, not hopeless).
    unseen_warp_low: Tuple[float, float] = (0.91, 0.95)
    unseen_warp_high: Tuple[float, float] = (1.05, 1.09)
    #: The line of train/dev/test_swb and of test_ch (asr_bl.corpus.channel).
    swb_channel: ChannelConfig = SWB_CHANNEL
    ch_channel: ChannelConfig = CH_CHANNEL
    #: Harsher conditions for a share of the training utterances (None: no augmentation).
    train_augment: Optional[UtteranceAugment] = TRAIN_AUGMENT
    # Share of speakers per engine family; the slow voices are kept a small share (see
    # engines.VOICE_COST_S). Families whose engine is missing are dropped and the rest rescaled.
    family_weights: Tuple[Tuple[str, float], ...] = (
        ("espeak", 0.45),
        ("flite:kal", 0.08),
        ("flite:kal16", 0.07),
        ("festival:kal_diphone", 0.10),
        ("festival:ked_diphone", 0.10),
        ("flite:awb", 0.05),
        ("flite:rms", 0.05),
        ("flite:slt", 0.05),
        ("festival:cmu_us_slt_arctic_hts", 0.05),
    )

    def part_hours(self, part: str) -> float:
        return {"train": self.train_hours, "dev": self.dev_hours, "test_swb": self.test_swb_hours,
                "test_ch": self.test_ch_hours}[part]


SIZES: Dict[str, CorpusConfig] = {
    "default": CorpusConfig(),
    # Seconds to build: for tests and smoke runs.
    "tiny": CorpusConfig(
        name="tiny", train_hours=120 / 3600, dev_hours=30 / 3600, test_swb_hours=30 / 3600,
        test_ch_hours=30 / 3600, num_train_speakers=6, num_unseen_speakers=2,
        conversation_seconds=30.0, lm_extra_ratio=2.0,
    ),
}


# ------------------------------------------------------------------------------------ planning
def _families(config: CorpusConfig, engines: Dict[str, List[str]]) -> List[Tuple[str, float]]:
    families = []
    for family, weight in config.family_weights:
        engine, _, base = family.partition(":")
        if engine in engines and (not base or base in engines[engine]):
            families.append((family, weight))
    if not families:
        raise EngineMissingError(
            "no TTS engine is available: install the pinned 'espeakng-loader' (pip) and/or "
            "Debian's flite / festival (sudo bash tools/setup_env.sh)"
        )
    total = sum(w for _, w in families)
    return [(f, w / total) for f, w in families]


def _allocate(count: int, families: Sequence[Tuple[str, float]]) -> List[str]:
    """``count`` family names in proportion to the weights (largest remainder), at least one of
    each family while there is room, interleaved so any prefix is mixed."""
    quotas = [w * count for _, w in families]
    alloc = [int(q) for q in quotas]
    if count >= len(families):
        alloc = [max(1, a) for a in alloc]
    while sum(alloc) > count:
        alloc[int(np.argmax(alloc))] -= 1
    order = sorted(range(len(families)), key=lambda i: alloc[i] - quotas[i])
    k = 0
    while sum(alloc) < count:
        alloc[order[k % len(order)]] += 1
        k += 1
    names: List[str] = []
    remaining = list(alloc)
    while any(remaining):
        for i, (family, _) in enumerate(families):
            if remaining[i]:
                names.append(family)
                remaining[i] -= 1
    return names


def _make_voice(voice_id: str, family: str, rng: np.random.Generator, config: CorpusConfig,
                unseen: bool = False) -> Voice:
    """Draw a speaker of ``family``. ``unseen`` voices (test_ch) take their vocal-tract warp from
    ranges at the edges of the training range (``config.unseen_warp_*``), so even a base voice
    that training also uses sounds new."""
    engine, _, base = family.partition(":")
    if engine == "espeak":
        gender = "female" if rng.random() < 0.5 else "male"
        base = "en-us"
    else:
        gender = "female" if base in FEMALE_BASE_VOICES else "male"
    pitch = rng.uniform(165, 235) if gender == "female" else rng.uniform(85, 140)
    rate = float(rng.uniform(0.85, 1.2))
    if unseen:
        warp = float(rng.uniform(*config.unseen_warp_high) if rng.random() < 0.5
                     else rng.uniform(*config.unseen_warp_low))
    else:
        warp = float(rng.uniform(*config.seen_warp))
    variant: List[str] = []
    if engine == "espeak":
        # espeak-ng variant file: base pitch and range (Hz), formant scaling per formant
        # (frequency %, strength %, width %), voice quality.
        formant_scale = rng.uniform(1.05, 1.18) if gender == "female" else rng.uniform(0.9, 1.04)
        variant = [f"name {voice_id}", f"gender {gender}",
                   f"pitch {int(pitch * 0.8)} {int(pitch * 1.3)}"]
        for n in range(6):
            variant.append(
                f"formant {n} {int(100 * formant_scale * rng.uniform(0.96, 1.04))} "
                f"{int(rng.uniform(80, 120))} {int(rng.uniform(85, 115))}"
            )
        variant += [f"roughness {int(rng.integers(0, 4))}", f"flutter {int(rng.integers(0, 10))}",
                    f"voicing {int(rng.uniform(85, 110))}", f"consonants {int(rng.uniform(80, 110))}"]
        if rng.random() < 0.3:
            variant.append("breath " + " ".join(str(int(v)) for v in rng.integers(0, 4, size=8)))
    return Voice(voice_id=voice_id, engine=engine, base_voice=base, gender=gender, pitch_hz=round(float(pitch), 1),
                 rate=round(rate, 3), warp=round(warp, 3), espeak_variant=variant)


def _estimated_seconds(sentence: str, rate: float) -> float:
    return (_SECONDS_PER_WORD * len(sentence.split()) + _SECONDS_PER_SENTENCE) / rate


def plan_corpus(config: CorpusConfig, seed: int, engines: Dict[str, List[str]],
                lexicon: Optional[Dict[str, List[Tuple[str, ...]]]] = None) -> Dict:
    """Draw voices, conversations, turns and LM text; a JSON-able dict (see :func:`build_corpus`).

    ``lexicon`` is :func:`asr_bl.corpus.text.load_cmudict`'s result (loaded here if not given).
    """
    rng = np.random.default_rng(seed)
    families = _families(config, engines)
    n_seen, n_unseen = config.num_train_speakers, config.num_unseen_speakers
    seen_families = _allocate(n_seen, families)
    unseen_families = _allocate(n_unseen, families)
    voices = [_make_voice(f"synth{i + 1:03d}", f, rng, config) for i, f in enumerate(seen_families)]
    voices += [_make_voice(f"synth{n_seen + i + 1:03d}", f, rng, config, unseen=True)
               for i, f in enumerate(unseen_families)]
    seen, unseen = voices[:n_seen], voices[n_seen:]

    if lexicon is None:
        lexicon = load_cmudict()
    sources, used_sources = source_sentences(lexicon)
    total_seconds = sum(config.part_hours(p) for p in PARTS) * 3600
    mean_seconds = float(np.mean([_estimated_seconds(s, 1.0) for s in sources]))
    expected = total_seconds / mean_seconds * (1 + config.lm_extra_ratio * config.train_hours * 3600 / total_seconds)
    pool = SentencePool(sources, int(expected), seed=int(rng.integers(2**62)))
    take = pool.take

    conversations: List[ConversationPlan] = []
    # Test and dev first, then train: every split draws fresh sentences from the shared pool.
    for part in ("test_ch", "test_swb", "dev", "train"):
        seconds = config.part_hours(part) * 3600
        num_conv = max(1, int(round(seconds / config.conversation_seconds)))
        speakers = unseen if part == "test_ch" else seen
        # Walk the speakers in shuffled order so each appears about equally often.
        order: List[Voice] = []
        while len(order) < 2 * num_conv:
            order += [speakers[int(i)] for i in rng.permutation(len(speakers))]
        per_conv = seconds / num_conv
        for c in range(num_conv):
            a, b = order[2 * c], order[2 * c + 1]
            if a.voice_id == b.voice_id:
                b = next(v for v in speakers if v.voice_id != a.voice_id)
            turns: List[Turn] = []
            planned = 0.0
            side = int(rng.integers(2))
            while planned < per_conv:
                for _ in range(1 if rng.random() < 0.8 else 2):
                    text = take()
                    turns.append(Turn(side=side, text=text))
                    planned += _estimated_seconds(text, (a, b)[side].rate)
                side = 1 - side
            conversations.append(
                ConversationPlan(
                    conversation_id=f"{CORPUS_NAME}_{part}_{c + 1:04d}", split=part, voices=(a, b),
                    turns=turns,
                    channel=config.ch_channel if part == "test_ch" else config.swb_channel,
                    augment=config.train_augment if part == TRAIN_PART else None,
                )
            )
    train_sentences = [t.text for c in conversations if c.split == TRAIN_PART for t in c.turns]
    num_extra = int(round(config.lm_extra_ratio * len(train_sentences)))
    lm_text = train_sentences + [take() for _ in range(num_extra)]
    # Every word of the corpus must be recognisable: a word that only dev or test sentences use
    # gets LM-only sentences of its own (never a dev or test sentence, so the LM stays disjoint).
    lm_words = {w for s in lm_text for w in s.split()}
    missing = sorted({w for c in conversations for t in c.turns for w in t.text.split()} - lm_words)
    lm_text += pool.cover(missing)

    return {
        "version": PLAN_VERSION,
        "config": asdict(config),
        "seed": seed,
        "engines": engines,
        "text_sources": used_sources,
        "voices": [v.to_dict() for v in voices],
        "seen_voices": [v.voice_id for v in seen],
        "unseen_voices": [v.voice_id for v in unseen],
        "conversations": [c.to_dict() for c in conversations],
        "lm_text": lm_text,
    }


# ------------------------------------------------------------------------------------ building
def _render_job(args: Tuple[Dict, str, int, str]) -> str:
    plan_dict, out_dir, seed, work_dir = args
    plan = ConversationPlan.from_dict(plan_dict)
    render_conversation(plan, out_dir, seed, work_dir)
    return plan.conversation_id


def _estimated_cost(plan: ConversationPlan) -> float:
    """CPU seconds to render, roughly: synthesis per utterance by voice plus channel processing."""
    return sum(VOICE_COST_S.get(plan.voices[t.side].engine_voice, 0.05) + 0.012 for t in plan.turns)


def render_all(plans: Sequence[ConversationPlan], out_dir: str, seed: int, num_jobs: int) -> Tuple[int, int]:
    """Render every unfinished conversation with ``num_jobs`` processes; returns (done, skipped)."""
    todo = [p for p in plans if not is_rendered(out_dir, p)]
    skipped = len(plans) - len(todo)
    if skipped:
        logger.info("resuming: %d of %d conversations already rendered", skipped, len(plans))
    if not todo:
        return 0, skipped
    work_dir = os.path.join(out_dir, "tmp")
    os.makedirs(work_dir, exist_ok=True)
    # Most expensive first (slow voices, many turns), so no process finishes alone at the end.
    todo.sort(key=lambda p: -_estimated_cost(p))
    jobs = [(p.to_dict(), out_dir, seed, work_dir) for p in todo]
    progress = tqdm(total=len(jobs), desc="conversations", unit="conv")
    try:
        if num_jobs <= 1:
            for job in jobs:
                _render_job(job)
                progress.update(1)
        else:
            # spawn: libespeak-ng and the BLAS pools must not be inherited half-initialised.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=num_jobs, mp_context=context) as pool:
                futures = {pool.submit(_render_job, job): job[0]["conversation_id"] for job in jobs}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        if future.exception() is not None:
                            for other in pending:
                                other.cancel()
                            raise RuntimeError(
                                f"rendering {futures[future]} failed; finished conversations are kept, "
                                f"re-run the same command to resume"
                            ) from future.exception()
                        progress.update(1)
    finally:
        progress.close()
    shutil.rmtree(work_dir, ignore_errors=True)
    return len(todo), skipped


def _write_manifests(plan: Dict, out_dir: str) -> Dict[str, Dict]:
    """Lhotse manifests per part from the sidecars; returns per-part statistics."""
    from lhotse import AudioSource, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    stats: Dict[str, Dict] = {}
    for part in PARTS:
        recordings, supervisions = [], []
        speakers, words, augmented = set(), 0, 0
        for conv in plan["conversations"]:
            if conv["split"] != part:
                continue
            cplan = ConversationPlan.from_dict(conv)
            with open(sidecar_path(out_dir, cplan)) as f:
                record = json.load(f)
            path = os.path.abspath(audio_path(out_dir, cplan))
            recordings.append(
                Recording(
                    id=cplan.conversation_id,
                    sources=[AudioSource(type="file", channels=[0, 1], source=path)],
                    sampling_rate=record["sampling_rate"],
                    num_samples=record["num_samples"],
                    duration=record["num_samples"] / record["sampling_rate"],
                )
            )
            for s in record["supervisions"]:
                supervisions.append(
                    SupervisionSegment(
                        id=s["id"], recording_id=cplan.conversation_id, start=s["start"], duration=s["duration"],
                        channel=s["channel"], text=s["text"], language="English", speaker=s["speaker"],
                        gender=s["gender"], custom={"snr_db": s["snr_db"], "augmented": s.get("augmented", False)},
                    )
                )
                speakers.add(s["speaker"])
                words += len(s["text"].split())
                augmented += bool(s.get("augmented", False))
        for manifest, kind in ((RecordingSet.from_recordings(recordings), "recordings"),
                               (SupervisionSet.from_segments(supervisions), "supervisions")):
            name = manifest_name(CORPUS_NAME, kind, part)
            write_manifest(manifest, os.path.join(out_dir, name))
            # The recipe collects manifests from <corpus>/manifests/ (as for the LDC preparation);
            # relative links keep one copy and survive moving the corpus directory.
            link = os.path.join(out_dir, "manifests", name)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.islink(link):
                os.symlink(os.path.join("..", name), link)
        stats[part] = {
            "conversations": len(recordings),
            "recording_hours": round(sum(r.duration for r in recordings) / 3600, 3),
            "speech_hours": round(sum(s.duration for s in supervisions) / 3600, 3),
            "utterances": len(supervisions),
            "words": words,
            "speakers": len(speakers),
            "augmented_utterances": augmented,
        }
    return stats


def _check_plan(out_dir: str, plan: Dict) -> None:
    """Reconcile ``out_dir`` with this run's plan before rendering.

    A directory planned with another seed or plan version is refused (nothing of it could be kept;
    mixing would be silent). When only the configuration (or the TTS engines) changed, the
    conversations whose own plan changed lose their audio and sidecar and are rendered again; every
    other conversation is kept as it is (each is a function of its plan and the seed alone), so
    recalibrating test_ch's channel does not re-render training.
    """
    path = os.path.join(out_dir, "plan.json")
    plan = json.loads(json.dumps(plan))  # tuples -> lists, as they come back from the file
    if not os.path.exists(path):
        write_if_changed(path, json.dumps(plan))
        return
    with open(path) as f:
        old = json.load(f)
    for key in ("version", "seed"):
        if old.get(key) != plan.get(key):
            raise ValueError(
                f"{out_dir} holds a corpus planned with a different {key} ({old.get(key)!r} vs {plan.get(key)!r}); "
                f"use another --out-dir, or delete {out_dir} to rebuild it"
            )
    if old == plan:
        return
    old_convs = {c["conversation_id"]: c for c in old.get("conversations", [])}
    new_ids = {c["conversation_id"] for c in plan["conversations"]}
    stale = [c for c in plan["conversations"] if old_convs.get(c["conversation_id"]) != c]
    dropped = [c for cid, c in old_convs.items() if cid not in new_ids]
    for conv in stale + dropped:
        cplan = ConversationPlan.from_dict(conv)
        # The sidecar first: its presence marks a finished conversation.
        for file in (sidecar_path(out_dir, cplan), audio_path(out_dir, cplan)):
            if os.path.exists(file):
                os.remove(file)
    changed = sorted(k for k in set(old.get("config", {})) | set(plan["config"])
                     if old.get("config", {}).get(k) != plan["config"].get(k))
    if old.get("engines") != plan.get("engines"):
        changed.append("TTS engines")
    logger.warning("%s was planned with other settings (%s): %d of %d conversations are rendered again, "
                   "%d removed, the rest kept", out_dir, ", ".join(changed) or "plan code",
                   len(stale), len(plan["conversations"]), len(dropped))
    write_if_changed(path, json.dumps(plan))  # last: an interrupted run finds the same difference again


def corpus_outputs(out_dir: str, plan_conversations: Sequence[Dict]) -> List[str]:
    """Every file a finished build consists of (the stage record's outputs)."""
    names = [manifest_name(CORPUS_NAME, kind, part) for part in PARTS for kind in ("recordings", "supervisions")]
    names += ["lexicon.txt", "lm_text.txt", "plan.json", "summary.json", "SUMMARY.md"]
    out = [os.path.join(out_dir, n) for n in names]
    for conv in plan_conversations:
        cplan = ConversationPlan.from_dict(conv)
        out += [audio_path(out_dir, cplan), sidecar_path(out_dir, cplan)]
    return out


def build_corpus(out_dir: str, size: str = "default", seed: int = 0, num_jobs: int = 2,
                 config: Optional[CorpusConfig] = None, force: bool = False) -> Dict:
    """Build (or finish building) the synthetic corpus in ``out_dir``; returns the summary dict.

    Skipped, returning the recorded summary, when ``out_dir/done.json`` records a finished build
    with the same configuration, seed and TTS engines and every output is unchanged (``force``
    redoes it: finished conversations are still reused). A directory planned with another
    configuration keeps every conversation whose own plan is unchanged and renders the others again.
    """
    if config is None:
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
        config = SIZES[size]
    t0, cpu0 = time.time(), _cpu_seconds()
    os.makedirs(out_dir, exist_ok=True)
    engines = available_engines()
    stage = Stage(os.path.join(out_dir, "done.json"), "corpus",
                  args={"version": PLAN_VERSION, "config": asdict(config), "seed": seed, "engines": engines})
    if stage.is_done(force):
        with open(os.path.join(out_dir, "summary.json")) as f:
            return json.load(f)
    logger.info("TTS engines found: %s", ", ".join(f"{e} ({', '.join(v)})" for e, v in engines.items()) or "none")
    missing = [e for e in ("espeak", "flite", "festival") if e not in engines]
    if missing:
        logger.warning("TTS engines missing (the corpus uses the others): %s", ", ".join(missing))
    lexicon = load_cmudict()
    plan = plan_corpus(config, seed, engines, lexicon)
    _check_plan(out_dir, plan)
    plan_time = time.time() - t0
    conversations = [ConversationPlan.from_dict(c) for c in plan["conversations"]]
    rendered, skipped = render_all(conversations, out_dir, seed, num_jobs)
    render_time = time.time() - t0 - plan_time

    stats = _write_manifests(plan, out_dir)
    vocabulary = {w for s in plan["lm_text"] for w in s.split()}
    vocabulary |= {w for c in plan["conversations"] for t in c["turns"] for w in t["text"].split()}
    lexicon_lines = write_lexicon(vocabulary, lexicon, os.path.join(out_dir, "lexicon.txt"))
    _write_lines(os.path.join(out_dir, "lm_text.txt"), plan["lm_text"])
    total_time = time.time() - t0
    cpu_time = _cpu_seconds() - cpu0

    summary = _summarise(plan, stats, len(vocabulary), lexicon_lines, num_jobs, rendered, skipped,
                         plan_time, render_time, total_time, cpu_time)
    _write_summary(out_dir, summary)
    stage.finish(outputs=corpus_outputs(out_dir, plan["conversations"]),
                 summary={"conversations_rendered": rendered, "conversations_resumed": skipped})
    return summary


# ------------------------------------------------------------------------------------- summary
def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (workers, flite, festival)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _summarise(plan: Dict, stats: Dict, vocab: int, lexicon_lines: int, num_jobs: int, rendered: int,
               skipped: int, plan_time: float, render_time: float, total_time: float, cpu_time: float) -> Dict:
    voices = {v["voice_id"]: v for v in plan["voices"]}
    speakers_by_engine: Dict[str, Dict[str, int]] = {}
    for part in PARTS:
        ids = {v["voice_id"] for c in plan["conversations"] if c["split"] == part for v in c["voices"]}
        counts: Dict[str, int] = {}
        for i in sorted(ids):
            v = voices[i]
            key = v["engine"] if v["engine"] == "espeak" else f"{v['engine']}:{v['base_voice']}"
            counts[key] = counts.get(key, 0) + 1
        speakers_by_engine[part] = counts
    conditions: Dict[str, Dict] = {}
    for part in PARTS:
        convs = [c for c in plan["conversations"] if c["split"] == part]
        if not convs:
            continue
        ids = sorted({v["voice_id"] for c in convs for v in c["voices"]})
        conditions[part] = {key: [min(voices[i][key] for i in ids), max(voices[i][key] for i in ids)]
                            for key in ("warp", "rate", "pitch_hz")}
        conditions[part].update(channel=convs[0]["channel"], augment=convs[0]["augment"])
    return {
        "corpus": CORPUS_NAME,
        "size": plan["config"]["name"],
        "seed": plan["seed"],
        "engines": plan["engines"],
        "text_sources": plan["text_sources"],
        "parts": stats,
        "speakers_by_engine": speakers_by_engine,
        "conditions": conditions,
        "seen_voices": len(plan["seen_voices"]),
        "unseen_voices": len(plan["unseen_voices"]),
        "vocabulary": vocab,
        "lexicon_entries": lexicon_lines,
        "lm_text_sentences": len(plan["lm_text"]),
        "build": {
            "num_jobs": num_jobs,
            "conversations_rendered": rendered,
            "conversations_resumed": skipped,
            "plan_seconds": round(plan_time, 1),
            "render_seconds": round(render_time, 1),
            "total_seconds": round(total_time, 1),
            "cpu_seconds": round(cpu_time, 1),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
        },
    }


def _write_summary(out_dir: str, summary: Dict) -> None:
    write_json(os.path.join(out_dir, "summary.json"), summary)
    b = summary["build"]
    lines = [
        f"# Synthetic telephone corpus `{summary['corpus']}` (size: {summary['size']}, seed {summary['seed']})",
        "",
        "Multi-speaker synthetic English conversations, 8 kHz, 2 channels (one conversation side per",
        "channel, as Switchboard). `dev` and `test_swb` use voices seen in training; `test_ch` uses",
        "voices never seen in training and a harsher channel (CallHome-like). No sentence is shared",
        "between parts; the LM text holds the training transcripts plus extra text, none of it from",
        "dev or test.",
        "",
        "| part | conversations | speakers | utterances | words | speech hours | recording hours |",
        "|---|---|---|---|---|---|---|",
    ]
    for part, s in summary["parts"].items():
        lines.append(f"| {part} | {s['conversations']} | {s['speakers']} | {s['utterances']} | {s['words']} | "
                     f"{s['speech_hours']:.3f} | {s['recording_hours']:.3f} |")
    lines += ["", "Speakers per engine and part:", ""]
    for part, counts in summary["speakers_by_engine"].items():
        lines.append(f"- {part}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    lines += ["", "Voices (ranges over each part's speakers) and line conditions (the ranges drawn from; "
              "`asr_bl.corpus.channel`):", "",
              "| part | warp | rate | pitch Hz | SNR dB | RT60 s (share reverberant) | band Hz | mu-law | clipped "
              "| augmented utterances |", "|---|---|---|---|---|---|---|---|---|---|"]
    for part, c in summary.get("conditions", {}).items():
        ch, aug = c["channel"], c["augment"]
        aug_text = "-"
        if aug:
            aug_text = (f"{summary['parts'][part]['augmented_utterances']} ({aug['share']:.0%} drawn: SNR "
                        f"{aug['snr_db'][0]:g}-{aug['snr_db'][1]:g}, RT60 {aug['rt60_s'][0]:g}-{aug['rt60_s'][1]:g}"
                        f" at {aug['reverb_prob']:.0%})")
        lines.append(
            f"| {part} | {c['warp'][0]:.3f}-{c['warp'][1]:.3f} | {c['rate'][0]:.2f}-{c['rate'][1]:.2f} | "
            f"{c['pitch_hz'][0]:.0f}-{c['pitch_hz'][1]:.0f} | {ch['snr_db'][0]:g}-{ch['snr_db'][1]:g} | "
            f"{ch['rt60_s'][0]:g}-{ch['rt60_s'][1]:g} ({ch['reverb_prob']:.0%}) | "
            f"{ch['band_hz'][0]:g}-{ch['band_hz'][1]:g} (edges -{ch['band_jitter_hz'][1]:g}) | "
            f"{ch['mulaw_prob']:.0%} | {ch['clip_prob']:.0%} | {aug_text} |")
    lines += [
        "",
        "- TTS engines used: " + "; ".join(f"{e} ({', '.join(v)})" for e, v in summary["engines"].items()),
        f"- Text sources: {', '.join(summary['text_sources'])} (+ trigram-generated sentences)",
        f"- Voices: {summary['seen_voices']} seen in training, {summary['unseen_voices']} unseen (test_ch only)",
        f"- Vocabulary: {summary['vocabulary']} words, {summary['lexicon_entries']} lexicon entries (CMUdict)",
        f"- LM text: {summary['lm_text_sentences']} sentences (`lm_text.txt`)",
        f"- Build: {b['total_seconds']} s total ({b['plan_seconds']} s planning, {b['render_seconds']} s rendering "
        f"{b['conversations_rendered']} conversations, {b['conversations_resumed']} resumed) with "
        f"{b['num_jobs']} processes on {b['cpu']} ({b['cpu_count']} cores); {b['cpu_seconds']} CPU-seconds; "
        f"load average {b['load_average_1min_at_end']} at the end (the machine may be shared)",
        "",
    ]
    _write_lines(os.path.join(out_dir, "SUMMARY.md"), lines)
