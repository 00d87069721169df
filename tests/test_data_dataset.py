"""The frame-level dataset: dense chunks equal the paper's windows frame by frame; sampling; errors."""
import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from asr_bl.data import (
    IGNORE_LABEL,
    FrameDataConfig,
    FrameLevelDataset,
    attach_alignment,
    chunk_utterance,
    make_sampler,
    window_examples,
)
from asr_bl.data.dataset import chunk_offset
from asr_bl.features import CmvnStats, FbankConfig, compute_and_store, cut_num_frames, feature_paths, utterance_cuts

SR = 8000
NUM_PDFS = 37


def chirp_noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    sweep = np.sin(2 * np.pi * (200 * t + 300 * t**2))
    return 0.3 * sweep + 0.02 * rng.standard_normal(t.shape)


@pytest.fixture()
def aligned_cuts(tmp_path):
    """Precomputed-feature cuts of 2 two-sided conversations with random pdf/phone alignments attached."""
    recordings, sups = [], []
    for r in range(2):
        path = tmp_path / f"conv{r}.wav"
        sf.write(str(path), np.stack([chirp_noise(5.0, 2 * r), chirp_noise(5.0, 2 * r + 1)], axis=1), SR)
        rec = Recording.from_file(path)
        recordings.append(rec)
        for i, (start, dur) in enumerate([(0.1, 0.37), (0.6, 1.234), (2.0, 2.1), (4.2, 0.55)]):
            sups.append(SupervisionSegment(
                id=f"{rec.id}-{i}", recording_id=rec.id, start=start, duration=dur, channel=i % 2,
                speaker=f"{rec.id}-{'AB'[i % 2]}",
            ))
    cuts = utterance_cuts(RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(sups))
    cuts = compute_and_store(cuts, tmp_path / "fbank", "synth", "train", FbankConfig())
    rng = np.random.default_rng(0)
    pdf_ali, phone_ali = {}, {}
    for cut in cuts:
        num_t = cut_num_frames(cut, FbankConfig())
        pdf_ali[cut.id] = rng.integers(0, NUM_PDFS, num_t)
        phone_ali[cut.id] = rng.integers(0, 5, num_t)
    with_ali = attach_alignment(cuts, {"pdf_ali": pdf_ali, "phone_ali": phone_ali}, tmp_path / "ali.h5")
    stats = CmvnStats.load(feature_paths(tmp_path / "fbank", "synth", "train")["cmvn"])
    return with_ali, stats


def test_alignment_round_trip(aligned_cuts):
    cuts, _ = aligned_cuts
    for cut in cuts:
        ali = cut.load_custom("pdf_ali")
        assert ali.dtype == np.int32 and ali.shape == (cut_num_frames(cut, FbankConfig()),)


def test_attach_alignment_writes_one_hdf5_file_exactly(aligned_cuts, tmp_path):
    cuts, _ = aligned_cuts
    rng = np.random.default_rng(1)
    extremes = np.array([np.iinfo(np.int32).min, -100, 0, np.iinfo(np.int32).max])
    labels = {c.id: rng.permutation(np.resize(extremes, cut_num_frames(c, FbankConfig()))) for c in cuts}
    out = attach_alignment(cuts, {"tri_ali": labels}, tmp_path / "store" / "tri")
    # One file for all cuts, under its final name (the temporary one is gone); earlier fields kept.
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["tri.h5"]
    assert {c.custom["tri_ali"].array.storage_path for c in out} == {str(tmp_path / "store" / "tri.h5")}
    for cut in out:
        got = cut.load_custom("tri_ali")
        assert got.dtype == np.int32 and np.array_equal(got, labels[cut.id])
        assert np.array_equal(cut.load_custom("pdf_ali"), cuts[cut.id].load_custom("pdf_ali"))
    # Rewriting the file this process has open (lhotse caches the handle) must not read stale arrays.
    reversed_labels = {k: v[::-1].copy() for k, v in labels.items()}
    again = attach_alignment(cuts, {"tri_ali": reversed_labels}, tmp_path / "store" / "tri.h5")
    for cut in again:
        assert np.array_equal(cut.load_custom("tri_ali"), labels[cut.id][::-1])
    with pytest.raises(KeyError, match="no 'tri_ali' labels"):
        attach_alignment(cuts, {"tri_ali": {cuts[0].id: labels[cuts[0].id]}}, tmp_path / "store" / "partial")
    with pytest.raises(ValueError, match="int32 holds exactly"):
        too_big = {k: v.astype(np.int64) + 2**31 for k, v in labels.items()}
        attach_alignment(cuts, {"tri_ali": too_big}, tmp_path / "store" / "big")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["tri.h5"]


def test_chunk_utterance_shapes_and_coverage():
    feats = np.random.default_rng(0).standard_normal((3, 64, 130)).astype(np.float32)
    labels = np.arange(130)
    for offset in (0, 1, 37, 49):
        x, y, starts = chunk_utterance(feats, labels, chunk_frames=50, context=24, offset=offset)
        assert x.shape == (y.shape[0], 3, 64, 50 + 48) and y.shape[1] == 50
        valid = y[y != IGNORE_LABEL]
        assert sorted(valid.tolist()) == list(range(130))  # every frame exactly once
        assert starts[0] == 0 and starts[-1] == 130 - 50  # inside the utterance, first to last frame
        # Target i of chunk k is frame starts[k] + i (the labels here are the frame indices).
        positions = starts[:, None] + np.arange(50)[None, :]
        assert np.array_equal(y[y != IGNORE_LABEL], positions[y != IGNORE_LABEL])
    with pytest.raises(ValueError, match="labels"):
        chunk_utterance(feats, labels[:-1], 50, 24)
    with pytest.raises(ValueError, match="offset"):
        chunk_utterance(feats, labels, 50, 24, offset=50)


def test_chunks_stay_inside_the_utterance():
    """For T >= C no chunk position is an out-of-utterance (padding) frame, and the only ignored
    positions are the overlap de-duplication: ceil(T / C) chunks, ceil(T / C) * C - T ignored."""
    rng = np.random.default_rng(3)
    chunk_frames, context = 100, 24
    grids = {}
    for num_t in list(rng.integers(100, 401, 60)) + [100, 101, 199, 200, 201, 399, 400]:
        num_t = int(num_t)
        feats = rng.standard_normal((3, 8, num_t)).astype(np.float32)
        labels = np.arange(num_t)
        for offset in (0, 1, 17, 50, 99):
            x, y, starts = chunk_utterance(feats, labels, chunk_frames, context, offset)
            num_chunks = -(-num_t // chunk_frames)
            assert y.shape == (num_chunks, chunk_frames)
            positions = starts[:, None] + np.arange(chunk_frames)[None, :]
            assert positions.min() == 0 and positions.max() == num_t - 1  # no padding position
            assert int((y == IGNORE_LABEL).sum()) == num_chunks * chunk_frames - num_t
            assert sorted(y[y != IGNORE_LABEL].tolist()) == list(range(num_t))
            # The labelled centre of every position is the real frame: inputs are not edge copies.
            np.testing.assert_array_equal(
                x[:, :, :, context : context + chunk_frames], feats[:, :, positions].transpose(2, 0, 1, 3)
            )
            grids.setdefault(num_t, set()).add((tuple(starts.tolist()), y.tobytes()))
    # The offset still moves the grid (where the chunks sit, or with two chunks which of them labels
    # the overlap) wherever there is slack to move it in, i.e. T not a multiple of C.
    assert all(len(g) > 1 for t, g in grids.items() if t % chunk_frames)
    assert len(grids[200]) == 1 and next(iter(grids[200]))[0] == (0, 100)
    # Shorter than C: one chunk at frame 0, its positions past the end edge copies labelled ignore.
    feats = rng.standard_normal((3, 8, 37)).astype(np.float32)
    x, y, starts = chunk_utterance(feats, np.arange(37), chunk_frames, context, offset=64)
    assert starts.tolist() == [0] and y[0, :37].tolist() == list(range(37)) and (y[0, 37:] == IGNORE_LABEL).all()
    np.testing.assert_array_equal(x[0, :, :, context + 37 :], np.repeat(feats[:, :, -1:], 63 + context, axis=-1))


@pytest.mark.parametrize("epoch", [0, 3])
def test_chunks_equal_windows_frame_by_frame(aligned_cuts, epoch):
    cuts, stats = aligned_cuts
    chunk_ds = FrameLevelDataset(FrameDataConfig(mode="chunk", chunk_frames=40), cmvn_stats=stats)
    window_ds = FrameLevelDataset(FrameDataConfig(mode="window"), cmvn_stats=stats)
    chunk_ds.set_epoch(epoch)
    chunks = chunk_ds[cuts]
    windows = window_ds[cuts]
    assert chunks["inputs"].shape[1:] == (3, 64, 88) and chunks["targets"].shape[1] == 40
    assert windows["inputs"].shape[1:] == (3, 64, 49) and windows["targets"].dim() == 1
    total = sum(cut_num_frames(c, FbankConfig()) for c in cuts)
    assert windows["inputs"].shape[0] == total
    # Index the windows by (cut, frame).
    window_index = {(cid, int(t)): i for i, (cid, t) in enumerate(zip(windows["cut_ids"], windows["starts"]))}
    seen = 0
    for k, (cid, start) in enumerate(zip(chunks["cut_ids"], chunks["starts"].tolist())):
        for i, label in enumerate(chunks["targets"][k].tolist()):
            if label == IGNORE_LABEL:
                continue
            w = window_index[(cid, start + i)]
            assert label == int(windows["targets"][w])
            assert torch.equal(chunks["inputs"][k, :, :, i : i + 49], windows["inputs"][w])
            seen += 1
    assert seen == total  # each frame labelled exactly once per epoch


def test_offsets_change_with_epoch_and_are_deterministic(aligned_cuts):
    cuts, stats = aligned_cuts
    ds = FrameLevelDataset(FrameDataConfig(chunk_frames=40), cmvn_stats=stats)
    starts = []
    for epoch in (0, 1, 0):
        ds.set_epoch(epoch)
        starts.append(ds[cuts]["starts"])
    assert torch.equal(starts[0], starts[2]) and not torch.equal(starts[0], starts[1])
    offsets = {chunk_offset(c.id, 5, 0, 40) for c in cuts}
    assert len(offsets) > 1 and all(0 <= o < 40 for o in offsets)


def test_sampler_splits_cuts_over_ddp_ranks(aligned_cuts):
    cuts, stats = aligned_cuts
    seen = []
    for rank in (0, 1):
        sampler = make_sampler(cuts, max_duration=3.0, world_size=2, rank=rank, num_buckets=None, seed=1)
        sampler.set_epoch(0)
        ids = [c.id for batch in sampler for c in batch]
        assert ids
        seen.append(set(ids))
    # lhotse keeps ranks in step by padding the last round with copies named '<id>_dup<k>'.
    originals = [{i.split("_dup")[0] for i in ids if "_dup" not in i} for ids in seen]
    assert not originals[0] & originals[1]
    assert originals[0] | originals[1] == set(cuts.ids)


@pytest.mark.filterwarnings("ignore:You are using DynamicBucketingSampler")
def test_dataloader_with_workers_and_bucketing(aligned_cuts):
    cuts, stats = aligned_cuts
    # Read every alignment here first: the parent then holds the HDF5 file open in lhotse's handle
    # cache, which the forked workers inherit; they must still read the right labels.
    expected = {c.id: c.load_custom("pdf_ali") for c in cuts}
    ds = FrameLevelDataset(FrameDataConfig(chunk_frames=30), cmvn_stats=stats)
    sampler = make_sampler(cuts.to_eager(), max_duration=2.5, num_buckets=2, seed=0)
    loader = torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None, num_workers=2)
    rebuilt = {k: np.full(v.shape, IGNORE_LABEL, np.int64) for k, v in expected.items()}
    for batch in loader:
        assert batch["inputs"].dtype == torch.float32 and batch["inputs"].shape[-1] == 78
        for cut_id, start, targets in zip(batch["cut_ids"], batch["starts"].tolist(), batch["targets"].numpy()):
            keep = targets != IGNORE_LABEL
            rebuilt[cut_id][start + np.flatnonzero(keep)] = targets[keep]
    for cut_id, labels in expected.items():
        assert np.array_equal(rebuilt[cut_id], labels), cut_id


def test_phone_targets_and_spec_augment(aligned_cuts):
    cuts, stats = aligned_cuts
    plain = FrameLevelDataset(FrameDataConfig(target="phone_ali", chunk_frames=40), cmvn_stats=stats)[cuts]
    assert int(plain["targets"].max()) < 5
    masked = FrameLevelDataset(
        FrameDataConfig(target="phone_ali", chunk_frames=40, spec_augment=True), cmvn_stats=stats
    )[cuts]
    assert torch.equal(plain["targets"], masked["targets"])
    assert (masked["inputs"] == 0).float().mean() > (plain["inputs"] == 0).float().mean()


def test_missing_or_misaligned_targets_are_errors(aligned_cuts, tmp_path):
    cuts, stats = aligned_cuts
    ds = FrameLevelDataset(FrameDataConfig(target="tri_ali"), cmvn_stats=stats)
    with pytest.raises(KeyError, match="no 'tri_ali' alignment"):
        ds[cuts.subset(first=1)]
    cut = cuts[0]
    one_short = np.zeros(cut_num_frames(cut, FbankConfig()) - 1)
    short = attach_alignment([cut], {"pdf_ali": {cut.id: one_short}}, tmp_path / "bad")
    with pytest.raises(AssertionError, match="frame grid"):
        FrameLevelDataset(cmvn_stats=stats)[short]


def test_window_examples_edge_replication():
    feats = np.arange(5, dtype=np.float32).reshape(1, 1, 5).repeat(3, axis=0)
    windows, labels = window_examples(feats, np.arange(5), context=2)
    np.testing.assert_array_equal(windows[0, 0, 0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(windows[4, 0, 0], [2, 3, 4, 4, 4])


def test_chunks_through_the_model_equal_window_outputs():
    """With the real acoustic model (eval mode), chunk outputs equal the paper's per-window outputs."""
    from asr_bl.models import build_model

    model = build_model("bl-resnet22-a4-b1", num_classes=11, width=0.25).eval()
    feats = np.random.default_rng(0).standard_normal((3, 64, 57)).astype(np.float32)
    labels = np.arange(57)
    inputs, targets, _ = chunk_utterance(feats, labels, chunk_frames=20, context=24, offset=7)
    windows, _ = window_examples(feats, labels, context=24)
    with torch.no_grad():
        chunk_out = model(torch.from_numpy(inputs))  # (K, 20, 11)
        window_out = model(torch.from_numpy(windows))  # (57, 1, 11)
    assert chunk_out.shape == (inputs.shape[0], 20, 11) and window_out.shape == (57, 1, 11)
    valid = targets != IGNORE_LABEL
    frames = torch.from_numpy(targets[valid])  # the label is the frame index here
    torch.testing.assert_close(chunk_out[torch.from_numpy(valid)], window_out[frames, 0], atol=1e-5, rtol=1e-5)
