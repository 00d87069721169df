"""Telephone channel simulation: resampling, speed perturbation, room reverberation, noise, band.

Everything here is a pure function of its inputs and a ``numpy.random.Generator``, so the corpus
is reproducible. Signals are float32 in [-1, 1].
"""
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, Optional, Tuple

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

TELEPHONE_RATE = 8000


@dataclass(frozen=True)
class ChannelConfig:
    """Ranges from which each conversation side / utterance draws its acoustic conditions.

    SNRs are of speech over the added noise, in dB; RT60 is the reverberation time in seconds.
    ``mulaw_prob`` is the chance a side passes through 8-bit mu-law (G.711) coding,
    ``crosstalk_db`` the level of the other side leaking into a channel (echo of the hybrid).
    """

    snr_db: Tuple[float, float] = (12.0, 35.0)
    noise_floor_db: Tuple[float, float] = (35.0, 50.0)  # speech-to-background between utterances
    rt60_s: Tuple[float, float] = (0.1, 0.4)
    reverb_prob: float = 0.5
    band_hz: Tuple[float, float] = (300.0, 3400.0)
    band_jitter_hz: Tuple[float, float] = (50.0, 150.0)  # per-side variation of the band edges
    mulaw_prob: float = 0.5
    clip_prob: float = 0.0
    crosstalk_db: Tuple[float, float] = (-45.0, -35.0)
    speed: Tuple[float, float] = (0.9, 1.1)


SWB_CHANNEL = ChannelConfig()
# CallHome-like: noisier, more reverberant, narrower band, always companded, sometimes clipped.
# Calibrated (issue 16) so that it is hard but learnable: every range overlaps the training
# channel's worse end rather than lying beyond it (SNR 10-24 dB against training's 12-35).
# Measured with one decoder (tri2 GMM, k2, beam 13, trigram, LM weight 12, penalty 0.5;
# test_swb 39.8%): the round-1 values (SNR 3-18, RT60 0.3-0.8 at 80%, band 400-3000, 30%
# clipped, crosstalk -30..-20 dB, warps 0.87-0.93 / 1.07-1.13) gave test_ch 83.8% (2.11x);
# SNR 8-22 with RT60 0.2-0.6 at 60% and 10% clipped 64.7% (1.63x); SNR 10-24 with RT60 0.2-0.5
# at 50% and 5% clipped 54.5% (1.37x, easier than CallHome); with RT60 and clipping as before
# 60.0%. These values lie between the last two: test_ch 56.4% against test_swb 40.0% (1.41x) in the
# recipe's own stage 7 (the same setting, tuned on dev).
CH_CHANNEL = ChannelConfig(
    snr_db=(10.0, 24.0),
    noise_floor_db=(28.0, 42.0),
    rt60_s=(0.2, 0.55),
    reverb_prob=0.55,
    band_hz=(350.0, 3250.0),
    band_jitter_hz=(0.0, 150.0),
    mulaw_prob=1.0,
    clip_prob=0.08,
    crosstalk_db=(-40.0, -30.0),
    speed=(0.9, 1.1),
)


@dataclass(frozen=True)
class UtteranceAugment:
    """Harsher conditions for a share of the training utterances (Kaldi's and lhotse's practice of
    reverberating and adding noise to part of the training data so that the models see the
    conditions of a worse channel). Each utterance draws whether it is augmented from its
    conversation's generator, so the choice is a function of the corpus seed; an augmented
    utterance takes its SNR and reverberation from these ranges instead of the channel's."""

    share: float = 0.25
    snr_db: Tuple[float, float] = (5.0, 18.0)
    rt60_s: Tuple[float, float] = (0.2, 0.7)
    reverb_prob: float = 0.8


TRAIN_AUGMENT = UtteranceAugment()


def channel_from_dict(d: Dict) -> ChannelConfig:
    """A :class:`ChannelConfig` from its JSON form (lists back to tuples)."""
    return ChannelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def augment_from_dict(d: Optional[Dict]) -> Optional[UtteranceAugment]:
    if d is None:
        return None
    return UtteranceAugment(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def resample(x: np.ndarray, rate_in: float, rate_out: int) -> np.ndarray:
    """Polyphase resampling from ``rate_in`` to ``rate_out``; the ratio is rounded to a fraction
    with denominator <= 100 (< 0.1% off), which keeps the anti-aliasing filter short."""
    ratio = Fraction(rate_out / rate_in).limit_denominator(100)
    if ratio == 1:
        return x.astype(np.float32)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def to_telephone_rate(x: np.ndarray, rate: int, speed: float = 1.0) -> np.ndarray:
    """Resample to 8 kHz while speeding up by ``speed`` (>1 is faster and higher, like Kaldi's
    speed perturbation and a shorter vocal tract)."""
    return resample(x, rate * speed, TELEPHONE_RATE)


def synthetic_rir(rng: np.random.Generator, rt60_s: float, rate: int = TELEPHONE_RATE) -> np.ndarray:
    """A room impulse response: a direct path, a few early reflections and an exponentially
    decaying noise tail reaching -60 dB at ``rt60_s``; normalised to a unit direct path."""
    length = max(1, int(rt60_s * rate))
    t = np.arange(length) / rate
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60_s)  # ln(1000) = 6.9078
    tail[: int(0.002 * rate)] = 0.0  # the diffuse tail starts after the early reflections
    rir = 0.3 * tail
    for _ in range(int(rng.integers(2, 6))):
        delay = int(rng.uniform(0.002, 0.02) * rate)
        if delay < length:
            rir[delay] += rng.uniform(-0.5, 0.5)
    rir[0] = 1.0
    return (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir`` and keep the original length plus the tail."""
    return signal.fftconvolve(x, rir)[: len(x) + len(rir) - 1].astype(np.float32)


def colored_noise(rng: np.random.Generator, num_samples: int, kind: str) -> np.ndarray:
    """Unit-RMS noise: 'white', 'pink' (1/f), 'brown' (1/f^2) or 'babble' (speech-shaped,
    syllable-rate modulated)."""
    # Shape the spectrum at an FFT-friendly length (prime lengths are ~100x slower), then cut.
    length = sp_fft.next_fast_len(max(num_samples, 1), real=True)
    white = rng.standard_normal(length, dtype=np.float32)
    if kind == "white":
        noise = white
    else:
        spectrum = sp_fft.rfft(white)  # float32 in, complex64 out: ~3x faster than numpy's
        freqs = np.fft.rfftfreq(length, 1.0 / TELEPHONE_RATE).astype(np.float32)
        freqs[0] = freqs[1] if len(freqs) > 1 else 1.0
        if kind == "pink":
            shape = 1.0 / np.sqrt(freqs)
        elif kind == "brown":
            shape = 1.0 / freqs
        elif kind == "babble":
            shape = np.exp(-0.5 * ((freqs - 500.0) / 600.0) ** 2) + 0.1
        else:
            raise ValueError(f"unknown noise kind {kind!r}")
        noise = sp_fft.irfft(spectrum * shape.astype(np.float32), n=length)
        if kind == "babble":
            t = np.arange(length) / TELEPHONE_RATE
            phase = rng.uniform(0, 2 * np.pi, size=3)
            envelope = 1.0 + 0.6 * sum(np.sin(2 * np.pi * f * t + p) for f, p in zip((3.1, 4.7, 5.3), phase)) / 3
            envelope = envelope.astype(np.float32)
            noise = noise * envelope
    noise = noise[:num_samples]
    rms = float(np.sqrt(np.mean(noise.astype(np.float64) ** 2))) if num_samples else 1.0
    return (noise / max(rms, 1e-12)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    """Root mean square over the samples above -50 dB of the peak (i.e. the active speech)."""
    if len(x) == 0:
        return 0.0
    active = x[np.abs(x) > 0.003 * np.max(np.abs(x))] if np.max(np.abs(x)) > 0 else x
    return float(np.sqrt(np.mean(active.astype(np.float64) ** 2))) if len(active) else 0.0


def band_limit(x: np.ndarray, low_hz: float, high_hz: float, rate: int = TELEPHONE_RATE) -> np.ndarray:
    """Telephone band-pass (4th-order Butterworth, zero phase)."""
    high_hz = min(high_hz, 0.49 * rate)
    sos = signal.butter(4, [low_hz, high_hz], btype="bandpass", fs=rate, output="sos")
    return signal.sosfiltfilt(sos, x).astype(np.float32)


def mulaw_roundtrip(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """Encode to 8-bit mu-law and decode again (G.711 quantisation noise)."""
    y = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1.0)) / np.log1p(mu)
    q = np.round((y + 1) / 2 * mu) / mu * 2 - 1
    return (np.sign(q) * ((1 + mu) ** np.abs(q) - 1) / mu).astype(np.float32)
