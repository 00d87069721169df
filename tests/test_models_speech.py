"""Speech acoustic models: shapes, structure, and dense inference == 49-frame windows, per preset."""
import pytest
import torch
from torch import nn

from asr_bl.data import IGNORE_LABEL, chunk_utterance
from asr_bl.models import CONTEXT_FRAMES, WINDOW_FRAMES, build_model, model_names
from asr_bl.models.context import dense_forward, frame_windows, pad_context, windowed_forward
from asr_bl.nn import BigLittleModule, MultiBranchModule

ALL_PRESETS = [
    "resnet22",
    "bl-resnet22-a4-b1",
    "bl-resnet22-a4-b2",
    "bl-resnet22-a4-b3",
    "bl-resnet22-a2-b3",
    "bl-resnet22-a4-b1-cat",
    "bl-pyr-resnet22-a4-b1",
]


def randomize_batchnorm(model: nn.Module) -> nn.Module:
    """Give every BN non-trivial statistics and affine parameters so eval mode is not an identity."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
            m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
    return model.eval()


def test_preset_list_is_table3():
    assert model_names() == ALL_PRESETS


def assert_dense_equals_windowed(model: nn.Module, num_frames: int, num_classes: int) -> float:
    x = torch.randn(1, 3, 64, num_frames)
    with torch.no_grad():
        dense = model(x)
    assert dense.shape == (1, num_frames - 48, num_classes)
    windowed = windowed_forward(model, x, batch_size=128)
    scale = dense.abs().max().item()
    assert scale > 0
    rel = (dense - windowed).abs().max().item() / scale
    assert rel < 1e-4, f"dense vs windowed relative max difference {rel:.2e}"
    return rel


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_dense_equals_windowed_for_every_preset(name):
    """A 300-frame utterance in one pass equals its 252 separate 49-frame windows. Half width keeps
    every structural feature of the preset (branches, strides, crops, merges) at a quarter of the cost."""
    model = randomize_batchnorm(build_model(name, num_classes=1000, width=0.5))
    assert_dense_equals_windowed(model, 300, 1000)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_PRESETS)
def test_dense_equals_windowed_full_size(name):
    """The same at the paper's size (full width, 32000 outputs)."""
    model = randomize_batchnorm(build_model(name))
    assert_dense_equals_windowed(model, 300, 32000)


@pytest.mark.parametrize("name", ["resnet22", "bl-resnet22-a2-b3", "bl-pyr-resnet22-a4-b1"])
def test_receptive_field_is_exactly_49_frames(name):
    """Changing input frame p changes exactly the outputs t with t <= p <= t + 48 (no time leakage)."""
    model = randomize_batchnorm(build_model(name, num_classes=7, width=0.25))
    x = torch.randn(1, 3, 64, 120)
    p = 60
    y = x.clone()
    y[..., p] += 1.0
    with torch.no_grad():
        diff = (model(x) - model(y)).abs().amax(dim=(0, 2))
    # Exact: an output outside the receptive field is computed from bit-identical inputs (an edge
    # frame of the field may move its output only slightly, so no relative threshold would do).
    changed = (diff > 0).nonzero().flatten().tolist()
    assert changed == list(range(p - 48, p + 1))


def test_minimum_input_and_shape_errors():
    model = build_model("bl-resnet22-a4-b1", num_classes=11, width=0.25).eval()
    assert model(torch.randn(2, 3, 64, WINDOW_FRAMES)).shape == (2, 1, 11)
    with pytest.raises(ValueError, match="at least 49 frames"):
        model(torch.randn(1, 3, 64, 48))
    with pytest.raises(ValueError, match=r"\(B, 3, 64, T\)"):
        model(torch.randn(1, 3, 40, 60))
    with pytest.raises(KeyError, match="resnet22"):
        build_model("resnet50")


def test_width_scales_channels_and_num_classes_sets_output():
    full = build_model("resnet22", num_classes=100)
    half = build_model("resnet22", num_classes=100, width=0.5)
    assert half.classifier.out_features == 100
    assert half.classifier.in_features == 256 and full.classifier.in_features == 512
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0.2 < count(half) / count(full) < 0.3  # conv weights scale with width**2


def test_bl_structure_follows_table11():
    m = build_model("bl-resnet22-a4-b1", num_classes=10)
    layer1 = m.body.layer1
    assert isinstance(layer1, BigLittleModule)
    # Big: 64 channels, blocks [2, 2, 1], first conv strided 2 in frequency only; Little: 16 channels.
    assert [blk.num_convs for blk in layer1.big] == [2, 2, 1]
    assert layer1.big[0].conv1.stride == (2, 1) and layer1.big[0].conv1.padding == (1, 0)
    assert layer1.little[0].conv1.out_channels == 16 and layer1.little_e[0].out_channels == 64
    assert m.body.transition1.num_convs == 1 and m.body.transition1.conv1.stride == (2, 1)
    assert [blk.num_convs for blk in m.body.layer4.little] == [2, 2]
    b3 = build_model("bl-resnet22-a4-b3", num_classes=10)
    assert [blk.num_convs for blk in b3.body.layer2.little] == [2]
    b2 = build_model("bl-resnet22-a4-b2", num_classes=10)
    assert [blk.num_convs for blk in b2.body.layer3.little] == [2, 1]
    a2b3 = build_model("bl-resnet22-a2-b3", num_classes=10)
    assert a2b3.body.layer1.little[0].conv1.out_channels == 32
    assert isinstance(a2b3.body.layer4, nn.Sequential) and len(a2b3.body.layer4) == 2  # unbranched stage 4
    cat = build_model("bl-resnet22-a4-b1-cat", num_classes=10)
    assert cat.body.layer1.little_e is None and cat.body.layer1.merge_conv[0].in_channels == 80
    pyr = build_model("bl-pyr-resnet22-a4-b1", num_classes=10)
    assert isinstance(pyr.body.layer1, MultiBranchModule) and pyr.body.layer1.num_branches == 4
    assert [b[0].conv1.out_channels for b in pyr.body.layer1.branches] == [256, 64, 16, 4]
    assert pyr.body.layer2.num_branches == 3 and isinstance(pyr.body.layer3, BigLittleModule)


def test_little_branch_is_cropped_in_time_before_merge():
    """In (α=2, β=3) the Little-Branch has 2 convs vs the Big's 5: it is 6 frames longer and centre-cropped."""
    m = randomize_batchnorm(build_model("bl-resnet22-a2-b3", num_classes=5, width=0.25))
    x = torch.randn(1, 16, 32, 45)
    with torch.no_grad():
        big, little = m.body.layer1.branch_outputs(x)
        assert big.shape[2:] == (16, 35) and little.shape[2:] == (32, 41)
        assert m.body.layer1(x).shape[2:] == (32, 35)


def test_pad_context_and_frame_windows():
    feats = torch.arange(5.0).view(1, 1, 5).expand(3, 2, 5)
    padded = pad_context(feats, context=2)
    assert padded[0, 0].tolist() == [0, 0, 0, 1, 2, 3, 4, 4, 4]
    w = frame_windows(torch.arange(52.0).view(1, 1, 1, 52))
    assert w.shape == (4, 1, 1, 49) and w[3, 0, 0, 0].item() == 3.0


def test_chunked_training_forward_aligns_with_labels():
    """Chunks of C+48 frames give C outputs, aligned with the utterance's labels: in eval mode the
    chunk outputs of the labelled positions equal dense inference on the padded utterance and the
    windowed reference. The chunks are the training ones (asr_bl.data.chunk_utterance, which
    FrameLevelDataset uses): they stay inside the utterance, so the last one starts at T - C and
    labels only the frames the previous chunk did not."""
    model = randomize_batchnorm(build_model("bl-resnet22-a4-b2", num_classes=13, width=0.25))
    num_frames = 70
    feats = torch.randn(3, 64, num_frames)
    labels = torch.arange(num_frames)
    chunks = chunk_utterance(feats.numpy(), labels.numpy(), chunk_frames=32)
    inputs, targets, starts = (torch.from_numpy(a) for a in chunks)
    valid = targets != IGNORE_LABEL
    assert starts.tolist() == [0, 32, 38]
    assert targets[2][valid[2]].tolist() == [64, 65, 66, 67, 68, 69]
    assert sorted(targets[valid].tolist()) == labels.tolist()  # every frame labelled once
    model.train()
    for x, y in zip(inputs, targets):
        out = model(x.unsqueeze(0).repeat(2, 1, 1, 1))
        assert out.shape == (2, y.shape[0], 13)
        target = torch.where(y == IGNORE_LABEL, y, y % 13).repeat(2)
        loss = nn.functional.cross_entropy(out.reshape(-1, 13), target, ignore_index=IGNORE_LABEL)
        loss.backward()
    model.eval()
    with torch.no_grad():
        chunked = model(inputs)  # (K, 32, 13)
    dense = dense_forward(model, feats.unsqueeze(0))
    assert dense.shape == (1, num_frames, 13)
    torch.testing.assert_close(chunked[valid], dense[0, targets[valid]], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dense_forward(model, feats.unsqueeze(0), chunk_frames=25), dense, rtol=1e-4, atol=1e-5)
    # Output t is the window centred on frame t of the utterance.
    padded = pad_context(feats.unsqueeze(0))
    t = 40
    with torch.no_grad():
        single = model(padded[..., t : t + WINDOW_FRAMES])
    torch.testing.assert_close(single[0, 0], dense[0, t], rtol=1e-4, atol=1e-5)
    assert CONTEXT_FRAMES == 24
    with pytest.raises(ValueError, match="one frame grid"):
        chunk_utterance(feats.numpy(), labels[:-1].numpy(), chunk_frames=32)


def test_dense_and_windowed_forward_refuse_train_mode():
    """In train mode BN would use per-pass batch statistics (dense != windowed) and update its
    running statistics: both helpers refuse, and leave the statistics untouched."""
    model = randomize_batchnorm(build_model("resnet22", num_classes=7, width=0.25))
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    feats = torch.randn(1, 3, 64, 60)
    model.train()
    before = bn.running_mean.clone()
    with pytest.raises(ValueError, match=r"call model\.eval\(\) first"):
        dense_forward(model, feats)
    with pytest.raises(ValueError, match=r"call model\.eval\(\) first"):
        windowed_forward(model, pad_context(feats))
    torch.testing.assert_close(bn.running_mean, before, rtol=0, atol=0)
    # One submodule left in train mode is enough to refuse.
    model.eval()
    bn.train()
    with pytest.raises(ValueError, match="eval mode"):
        dense_forward(model, feats)
    model.eval()
    assert dense_forward(model, feats).shape == (1, 60, 7)
