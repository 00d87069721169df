"""Render one planned conversation into a 2-channel 8 kHz recording and its supervisions.

This is the unit of parallel work (one process per conversation at a time). Its output depends
only on the conversation's plan and the corpus seed, never on the process that runs it or on what
ran before, so builds with any ``--num-jobs`` and any resume history are identical.
"""
import json
import logging
import os
import zlib
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf

from asr_bl.corpus import channel as ch
from asr_bl.corpus.engines import Synthesizer, Voice
from asr_bl.io import atomic_path, write_text

logger = logging.getLogger(__name__)

NOISE_KINDS = ("white", "pink", "brown", "babble")


@dataclass
class Turn:
    """One utterance of a conversation: which side speaks (0 = A, 1 = B) and what."""

    side: int
    text: str


@dataclass
class ConversationPlan:
    """Everything needed to render one conversation; sides are recorded on channels 0 and 1."""

    conversation_id: str
    split: str
    voices: Tuple[Voice, Voice]
    turns: List[Turn]
    #: The line's conditions (``channel.SWB_CHANNEL``, or ``CH_CHANNEL`` for test_ch).
    channel: ch.ChannelConfig = ch.SWB_CHANNEL
    #: Harsher conditions for a share of the utterances (training only), or None.
    augment: Optional[ch.UtteranceAugment] = None

    def to_dict(self) -> Dict:
        return {
            "conversation_id": self.conversation_id,
            "split": self.split,
            "voices": [v.to_dict() for v in self.voices],
            "turns": [asdict(t) for t in self.turns],
            "channel": asdict(self.channel),
            "augment": asdict(self.augment) if self.augment is not None else None,
        }

    @staticmethod
    def from_dict(d: Dict) -> "ConversationPlan":
        return ConversationPlan(
            conversation_id=d["conversation_id"],
            split=d["split"],
            voices=(Voice.from_dict(d["voices"][0]), Voice.from_dict(d["voices"][1])),
            turns=[Turn(**t) for t in d["turns"]],
            channel=ch.channel_from_dict(d["channel"]),
            augment=ch.augment_from_dict(d.get("augment")),
        )


def audio_path(out_dir: str, plan: ConversationPlan) -> str:
    return os.path.join(out_dir, "audio", plan.split, plan.conversation_id + ".flac")


def sidecar_path(out_dir: str, plan: ConversationPlan) -> str:
    """The JSON written after the audio: its presence marks the conversation as finished."""
    return os.path.join(out_dir, "audio", plan.split, plan.conversation_id + ".json")


def is_rendered(out_dir: str, plan: ConversationPlan) -> bool:
    return os.path.isfile(sidecar_path(out_dir, plan)) and os.path.isfile(audio_path(out_dir, plan))


def conversation_rng(seed: int, conversation_id: str) -> np.random.Generator:
    """A generator that depends only on the corpus seed and the conversation id (crc32 is stable
    across processes, unlike Python's salted ``hash``)."""
    return np.random.default_rng([seed, zlib.crc32(conversation_id.encode())])


def _trim_silence(x: np.ndarray, rate: int, threshold_db: float = -40.0, margin_s: float = 0.05) -> np.ndarray:
    """Cut leading/trailing engine silence, keeping ``margin_s`` around the speech."""
    if len(x) == 0:
        return x
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        return x[:0]
    loud = np.nonzero(np.abs(x) > peak * 10 ** (threshold_db / 20))[0]
    margin = int(margin_s * rate)
    return x[max(0, loud[0] - margin): loud[-1] + margin + 1]


def render_conversation(plan: ConversationPlan, out_dir: str, seed: int, work_dir: Optional[str] = None) -> Dict:
    """Synthesise, place, degrade and write one conversation; returns its sidecar record.

    Writes ``audio/<split>/<id>.flac`` then ``<id>.json`` (each to a temporary name first, then
    renamed), so an interrupted build never leaves a half-written file that looks finished.
    """
    rng = conversation_rng(seed, plan.conversation_id)
    config = plan.channel
    augment = plan.augment
    rate = ch.TELEPHONE_RATE

    # 1. Synthesis: one batch per side (festival starts once per side).
    synthesizer = Synthesizer(work_dir)
    try:
        side_waves: List[Dict[int, np.ndarray]] = [{}, {}]
        for side in (0, 1):
            indices = [i for i, t in enumerate(plan.turns) if t.side == side]
            if not indices:
                continue
            waves, engine_rate = synthesizer.synthesize([plan.turns[i].text for i in indices], plan.voices[side])
            for i, wave in zip(indices, waves):
                side_waves[side][i] = (wave, engine_rate)
    finally:
        synthesizer.close()

    # 2. Per-side conditions.
    side_gain_db = rng.uniform(-26.0, -16.0, size=2)
    noise_kind = [NOISE_KINDS[int(k)] for k in rng.integers(len(NOISE_KINDS), size=2)]
    floor_db = rng.uniform(*config.noise_floor_db, size=2)
    crosstalk_db = rng.uniform(*config.crosstalk_db, size=2)
    band = [
        (config.band_hz[0] + rng.uniform(*config.band_jitter_hz),
         config.band_hz[1] - rng.uniform(*config.band_jitter_hz))
        for _ in range(2)
    ]
    use_mulaw = rng.random(2) < config.mulaw_prob
    use_clip = rng.random(2) < config.clip_prob

    # 3. Per-utterance processing: speed perturbation (with the voice's warp), level, reverb.
    # An augmented utterance (training only) draws its SNR and reverberation from harsher ranges.
    utterances: List[Tuple[int, np.ndarray, np.ndarray, float]] = []  # (turn, dry, wet, snr)
    augmented: List[bool] = []
    for i, turn in enumerate(plan.turns):
        wave, engine_rate = side_waves[turn.side][i]
        speed = rng.uniform(*config.speed)
        x = ch.to_telephone_rate(wave, engine_rate, speed * plan.voices[turn.side].warp)
        x = _trim_silence(x, rate)
        if len(x) < int(0.1 * rate):
            raise RuntimeError(f"{plan.conversation_id}: engine produced no audio for {turn.text!r}")
        level = ch.rms(x)
        x = x * (10 ** (side_gain_db[turn.side] / 20) / max(level, 1e-9))
        # The augmentation draw is made only where augmentation is configured, so parts without
        # it render exactly as they would without this feature.
        harsh = augment is not None and rng.random() < augment.share
        reverb_prob, rt60_s, snr_db = ((augment.reverb_prob, augment.rt60_s, augment.snr_db) if harsh else
                                       (config.reverb_prob, config.rt60_s, config.snr_db))
        wet = x
        if rng.random() < reverb_prob:
            wet = ch.reverberate(x, ch.synthetic_rir(rng, rng.uniform(*rt60_s)))
        utterances.append((i, x, wet, float(rng.uniform(*snr_db))))
        augmented.append(bool(harsh))

    # 4. Conversation timeline: alternate turns with gaps, sometimes a short overlap.
    starts: List[int] = []
    last_end = [0, 0]
    cursor = int(rng.uniform(0.3, 1.0) * rate)
    for k, (i, dry, _wet, _) in enumerate(utterances):
        side = plan.turns[i].side
        if k > 0 and plan.turns[utterances[k - 1][0]].side != side and rng.random() < 0.15:
            gap = -rng.uniform(0.1, 0.5)  # barge-in over the other side's last words
        else:
            gap = rng.uniform(0.15, 1.0)
        start = max(cursor + int(gap * rate), last_end[side] + int(0.15 * rate), 0)
        starts.append(start)
        last_end[side] = start + len(dry)
        cursor = max(cursor, start + len(dry))
    total = max(s + len(u[2]) for s, u in zip(starts, utterances)) + int(rng.uniform(0.3, 1.0) * rate)

    clean = np.zeros((2, total), dtype=np.float32)
    for start, (i, _, wet, _) in zip(starts, utterances):
        clean[plan.turns[i].side, start: start + len(wet)] += wet
    # The 4-wire/2-wire hybrid leaks each side faintly into the other channel.
    mixed = clean.copy()
    for side in (0, 1):
        mixed[side] += clean[1 - side] * 10 ** (crosstalk_db[side] / 20)

    # 5. Noise: one noise source per side, heard at a steady floor between utterances and raised
    # to each utterance's own SNR while it is spoken (ramped over 0.2 s at both ends).
    pad = int(0.2 * rate)
    for side in (0, 1):
        speech_level = 10 ** (side_gain_db[side] / 20)
        noise = ch.colored_noise(rng, total, noise_kind[side]) * speech_level
        gain = np.full(total, 10 ** (-floor_db[side] / 20), dtype=np.float32)
        for start, (i, dry, _, snr) in zip(starts, utterances):
            if plan.turns[i].side != side:
                continue
            a, b = max(0, start - pad), min(total, start + len(dry) + pad)
            ramp = np.minimum(1.0, np.minimum(np.arange(b - a), np.arange(b - a)[::-1]) / max(pad, 1))
            gain[a:b] = np.maximum(gain[a:b], ramp * 10 ** (-snr / 20))
        mixed[side] += noise * gain

    # 6. The line: band limit, optional clipping, G.711 companding.
    for side in (0, 1):
        y = ch.band_limit(mixed[side], *band[side])
        if use_clip[side]:
            y = np.clip(y * 10 ** (rng.uniform(6.0, 14.0) / 20), -0.25, 0.25) * 2.0
        if use_mulaw[side]:
            y = ch.mulaw_roundtrip(y)
        mixed[side] = y
    peak = float(np.max(np.abs(mixed)))
    if peak > 0.99:
        mixed *= 0.99 / peak

    # 7. Write audio, then the sidecar (its presence marks completion).
    path = audio_path(out_dir, plan)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), mixed.T, rate, subtype="PCM_16", format="FLAC")

    supervisions = []
    for n, (start, (i, dry, _, snr)) in enumerate(zip(starts, utterances)):
        side = plan.turns[i].side
        voice = plan.voices[side]
        supervisions.append(
            {
                "id": f"{plan.conversation_id}-{'AB'[side]}-{n:04d}",
                "start": round(start / rate, 4),
                "duration": round(len(dry) / rate, 4),
                "channel": side,
                "text": plan.turns[i].text,
                "speaker": voice.voice_id,
                "gender": voice.gender,
                "snr_db": round(snr, 1),
                "augmented": augmented[n],
            }
        )
    record = {
        "conversation_id": plan.conversation_id,
        "split": plan.split,
        "num_samples": int(total),
        "sampling_rate": rate,
        "supervisions": supervisions,
        "conditions": {
            "noise": noise_kind,
            "band_hz": [[round(lo), round(hi)] for lo, hi in band],
            "mulaw": [bool(m) for m in use_mulaw],
            "clipped": [bool(c) for c in use_clip],
        },
    }
    write_text(sidecar_path(out_dir, plan), json.dumps(record))
    return record
