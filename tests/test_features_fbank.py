"""The front end: frame grid identity with lhotse's Fbank, shapes, and agreement with kaldi-native-fbank."""
import math
import warnings

import kaldi_native_fbank as knf
import numpy as np
import pytest
from lhotse.features.kaldi.extractors import Fbank
from lhotse.utils import compute_num_frames

from asr_bl.features import (
    FbankConfig,
    compute_deltas,
    compute_fbank,
    delta_kernels,
    lhotse_fbank_config,
    num_frames,
    stack_deltas,
)

SR = 8000


def speechlike(num_samples: int, seed: int = 0) -> np.ndarray:
    """A chirp + harmonics + noise mixture with an amplitude envelope (non-stationary, band-limited)."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SR
    f0 = 120.0 + 60.0 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    signal = 0.2 * envelope * voiced + 0.01 * rng.standard_normal(num_samples)
    return (signal / np.max(np.abs(signal)) * 0.5).astype(np.float32)


def knf_fbank(samples: np.ndarray, config: FbankConfig) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = config.sampling_rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = config.snip_edges
    opts.frame_opts.frame_shift_ms = config.frame_shift * 1000
    opts.frame_opts.frame_length_ms = config.frame_length * 1000
    opts.mel_opts.num_bins = config.num_mel_bins
    opts.mel_opts.low_freq = config.low_freq
    opts.mel_opts.high_freq = config.high_freq
    online = knf.OnlineFbank(opts)
    # kaldi-native-fbank, like Kaldi, works on 16-bit sample values.
    online.accept_waveform(config.sampling_rate, (samples * 32768.0).tolist())
    online.input_finished()
    return np.stack([online.get_frame(i) for i in range(online.num_frames_ready)])


def test_config_defaults_are_the_contract():
    c = FbankConfig()
    assert (c.num_mel_bins, c.sampling_rate, c.frame_length, c.frame_shift) == (64, 8000, 0.025, 0.01)
    assert (c.dither, c.snip_edges, c.delta_window, c.cmvn) == (0.0, False, 2, "mean")
    assert (c.window_length_samples, c.window_shift_samples) == (200, 80)
    assert FbankConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="cmvn"):
        FbankConfig(cmvn="utterance")


@pytest.mark.parametrize("snip_edges", [False, True])
def test_num_frames_equals_lhotse_fbank_rows(snip_edges):
    config = FbankConfig(snip_edges=snip_edges)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lhotse warns about snip_edges=True
        extractor = Fbank(lhotse_fbank_config(config))
    audio = speechlike(3000)
    # Lengths around the window and shift boundaries, where off-by-one errors live.
    lengths = [200, 201, 239, 240, 241, 279, 280, 281, 399, 400, 401, 1000, 1039, 1040, 2999]
    for n in lengths:
        rows = extractor.extract(audio[:n], SR).shape[0]
        assert num_frames(n, SR, config) == rows, (n, snip_edges)
        assert compute_fbank(audio[:n], SR, config).shape == (rows, 64)
    if not snip_edges:
        # Centred frames: also lhotse's duration-based count, used for cuts and supervisions.
        for n in lengths:
            assert num_frames(n, SR, config) == compute_num_frames(n / SR, 0.01, SR)
    else:
        assert num_frames(199, SR, config) == 0


def test_compute_fbank_rejects_wrong_rate_and_shape():
    config = FbankConfig()
    with pytest.raises(ValueError, match="resample"):
        compute_fbank(np.zeros(1600, dtype=np.float32), 16000, config)
    with pytest.raises(ValueError, match="mono"):
        compute_fbank(np.zeros((2, 1600), dtype=np.float32), SR, config)


@pytest.mark.parametrize("snip_edges", [False, True])
def test_fbank_agrees_with_kaldi_native_fbank(snip_edges):
    config = FbankConfig(snip_edges=snip_edges)
    audio = speechlike(2 * SR + 37, seed=1)
    ours = compute_fbank(audio, SR, config)
    theirs = knf_fbank(audio, config) - math.log(32768.0**2)  # undo the int16 power scale
    assert ours.shape == theirs.shape
    assert np.max(np.abs(ours - theirs)) < 2e-3  # measured ~1e-4 (float32 FFT differences)
    # Not trivially equal: the features vary a lot over time and frequency.
    assert ours.std() > 1.0


def test_deltas_agree_with_kaldi_native_fbank():
    audio = speechlike(SR, seed=2)
    feats = compute_fbank(audio, SR, FbankConfig())
    opts = knf.DeltaOptions()
    opts.window = 2
    opts.order = 2
    theirs = knf.compute_deltas(opts, feats).reshape(feats.shape[0], 3, 64).transpose(1, 0, 2)
    ours = compute_deltas(feats, window=2, order=2)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    stacked = stack_deltas(feats, window=2)
    assert stacked.shape == (3, 64, feats.shape[0]) and stacked.dtype == np.float32
    np.testing.assert_allclose(stacked[0], feats.T, atol=1e-6)


def test_delta_kernels_and_edge_replication():
    k = delta_kernels(2, 2)
    np.testing.assert_allclose(k[1, 2:7], np.array([-2, -1, 0, 1, 2]) / 10.0)
    assert k.shape == (3, 9) and abs(k[2].sum()) < 1e-12
    # A linear ramp has slope 1 away from the edges and 0 second derivative there.
    ramp = np.arange(20, dtype=np.float32)[:, None].repeat(3, axis=1)
    d = compute_deltas(ramp, 2, 2)
    np.testing.assert_allclose(d[1, 4:-4], 1.0, atol=1e-6)
    np.testing.assert_allclose(d[2, 4:-4], 0.0, atol=1e-6)
    # At the first frame the window sees frames clamped to 0: (0*-2 + 0*-1 + 0 + 1 + 2*2)/10 = 0.5.
    np.testing.assert_allclose(d[1, 0], 0.5, atol=1e-6)
