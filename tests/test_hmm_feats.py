"""GMM features share the network's conversation sides and CMVN statistics (one definition each)."""
import numpy as np
import pytest
import soundfile as sf
from lhotse import MonoCut, MultiCut, Recording, RecordingSet, SupervisionSegment, SupervisionSet

import asr_bl.features as features
from asr_bl.features import CMVN_MODES, FbankConfig, compute_cmvn_stats, compute_fbank, side_key, utterance_cuts
from asr_bl.hmm import feats as gmm_feats
from asr_bl.hmm.feats import GmmFeatureConfig, compute_gmm_features

SR = 8000


@pytest.fixture()
def stereo_recording(tmp_path):
    """A two-sided conversation: each channel a gated tone of its own pitch and level, plus noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(4.0 * SR)) / SR
    sides = []
    for f0, level in ((140.0, 0.3), (220.0, 0.05)):
        gate = (np.sin(2 * np.pi * 0.7 * t + level * 10) > 0).astype(float)
        sides.append(level * gate * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.shape))
    path = tmp_path / "conv.wav"
    sf.write(str(path), np.stack(sides, axis=1), SR, subtype="PCM_16")
    return Recording.from_file(path)


def test_side_key_is_one_function_and_names_every_channel_of_a_multichannel_cut(stereo_recording):
    rec = stereo_recording
    assert gmm_feats.side_key is features.side_key  # the GMM groups by the network's key
    mono = MonoCut(id="a", start=0.0, duration=1.0, channel=1, recording=rec)
    assert side_key(mono) == f"{rec.id}:1"
    # A cut on both channels mixes the two sides: its key is neither side's, and channel order
    # does not matter.
    both = MultiCut(id="b", start=0.0, duration=1.0, channel=[1, 0], recording=rec)
    assert side_key(both) == f"{rec.id}:0+1"
    assert side_key(MultiCut(id="c", start=0.0, duration=1.0, channel=[0, 1], recording=rec)) == f"{rec.id}:0+1"
    assert side_key(MultiCut(id="d", start=0.0, duration=1.0, channel=[1], recording=rec)) == side_key(mono)
    assert GmmFeatureConfig().cmvn in CMVN_MODES
    with pytest.raises(ValueError, match="cmvn must be one of"):
        GmmFeatureConfig(cmvn="per-utterance")


@pytest.mark.parametrize("mode", ["mean", "meanvar"])
def test_gmm_cmvn_is_the_network_cmvn_per_side(stereo_recording, mode):
    """The GMM's per-side CMVN normalises with exactly the statistics the network's pipeline
    accumulates for the same sides (fbank GMM features, no deltas: the static rows)."""
    sups = [
        SupervisionSegment(id=f"u{i}", recording_id=stereo_recording.id, start=0.1 + 0.9 * i, duration=0.8,
                           channel=i % 2, text="hello")
        for i in range(4)
    ]
    cuts = utterance_cuts(RecordingSet.from_recordings([stereo_recording]), SupervisionSet.from_segments(sups))
    gmm = compute_gmm_features(cuts, GmmFeatureConfig(kind="fbank", cmvn=mode, delta_order=0), progress=False)
    stats = compute_cmvn_stats(cuts, FbankConfig(), source="audio")
    assert sorted(stats.keys) == [f"{stereo_recording.id}:0", f"{stereo_recording.id}:1"]
    for cut in cuts:
        mean, std = stats.mean_std(side_key(cut))
        expected = compute_fbank(cut.load_audio(), SR) - mean
        if mode == "meanvar":
            expected = expected / std
        np.testing.assert_allclose(gmm[cut.id], expected, atol=1e-4)
    # The two sides really differ, so grouping by anything but the side would fail above.
    means = [stats.mean_std(k)[0] for k in stats.keys]
    assert np.abs(means[0] - means[1]).max() > 0.5
