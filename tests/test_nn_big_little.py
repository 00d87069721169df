"""The shared bL core: alignment primitives, merges, state_dict names, MAC counting."""
import pytest
import torch
from torch import nn

from asr_bl.nn import (
    BigLittleModule,
    MergeConfig,
    MultiBranchModule,
    center_crop,
    channel_matching,
    count_macs,
    merge_branches,
    resample_to,
)


def test_center_crop_takes_the_middle_and_refuses_odd_excess():
    x = torch.arange(10.0).view(1, 1, 1, 10)
    assert center_crop(x, 6, 3).flatten().tolist() == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert center_crop(x, 10, 3) is x
    with pytest.raises(ValueError, match="odd"):
        center_crop(x, 7, 3)
    with pytest.raises(ValueError, match="larger"):
        center_crop(x, 11, 3)


def test_resample_frequency_only_keeps_time_exact():
    x = torch.randn(2, 3, 4, 7)
    y = resample_to(x, [8], dims=(2,), mode="bilinear")
    assert y.shape == (2, 3, 8, 7)
    # Interpolating frequency only: each time column is resampled independently of its neighbours.
    for t in range(7):
        col = resample_to(x[..., t : t + 1], [8], dims=(2,), mode="bilinear")
        torch.testing.assert_close(y[..., t : t + 1], col)
    # Bilinear x2 up-sampling (align_corners=False): the first output equals the first input,
    # the second is a 3/4, 1/4 mix.
    torch.testing.assert_close(y[:, :, 1], 0.75 * x[:, :, 0] + 0.25 * x[:, :, 1])
    z = resample_to(x, [8, 14], dims=(2, 3), mode="nearest")
    torch.testing.assert_close(z[:, :, ::2, ::2], x)
    with pytest.raises(ValueError, match="unknown resampling mode"):
        resample_to(x, [8], dims=(2,), mode="cubic")


def test_speech_merge_crops_time_and_upsamples_frequency():
    big = torch.randn(1, 4, 2, 5)  # half frequency resolution, shorter in time (deeper)
    little = torch.randn(1, 4, 4, 9)
    out = merge_branches([big, little], MergeConfig.speech(), None)
    assert out.shape == (1, 4, 4, 5)
    expected = torch.relu(resample_to(big, [4], (2,)) + little[..., 2:7])
    torch.testing.assert_close(out, expected)


def test_add_merge_needs_equal_channels_and_concat_needs_merge_conv():
    a, b = torch.randn(1, 4, 2, 5), torch.randn(1, 2, 4, 5)
    with pytest.raises(ValueError, match="equal channels"):
        merge_branches([a, b], MergeConfig.speech(), None)
    with pytest.raises(ValueError, match="merge_conv"):
        merge_branches([a, b], MergeConfig.speech(mode="concat"), None)
    conv = nn.Conv2d(6, 4, 1)
    out = merge_branches([a, b], MergeConfig.speech(mode="concat"), conv)
    assert out.shape == (1, 4, 4, 5)
    assert (out >= 0).all()


def test_big_little_module_has_official_state_dict_names_and_merge():
    big = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False))
    little = nn.Sequential(nn.Conv2d(8, 2, 3, padding=1, bias=False))
    fusion = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False))
    module = BigLittleModule(big, little, channel_matching(2, 8), MergeConfig.vision(), fusion=fusion)
    names = set(module.state_dict())
    assert {"big.0.weight", "little.0.weight", "little_e.0.weight", "little_e.1.weight", "fusion.0.weight"} <= names
    assert not any(n.startswith("merge_conv") for n in names)
    module.eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        expected = fusion(torch.relu(resample_to(big(x), [6, 6], (2, 3), "nearest") + module.little_e(little(x))))
        torch.testing.assert_close(module(x), expected)
    plain = BigLittleModule(big, little, channel_matching(2, 8), MergeConfig.vision())
    assert not any(n.startswith(("fusion", "merge_conv")) for n in plain.state_dict())


def test_multi_branch_module_merges_three_scales():
    branches = [
        nn.Conv2d(3, 8, 3, stride=(4, 1), padding=(1, 0)),
        nn.Conv2d(3, 4, 3, stride=(2, 1), padding=(1, 0)),
        nn.Conv2d(3, 2, (3, 1), padding=(1, 0)),
    ]
    module = MultiBranchModule(branches, [None, channel_matching(4, 8), channel_matching(2, 8)], MergeConfig.speech())
    assert [n for n in module.state_dict() if n.endswith("weight")][:2] == ["branches.0.weight", "branches.1.weight"]
    out = module(torch.randn(2, 3, 16, 11))
    # frequency at the finest branch (16), time cropped to the deepest (11 - 2 = 9)
    assert out.shape == (2, 8, 16, 9)
    with pytest.raises(ValueError, match="at least 2"):
        MultiBranchModule([branches[0]])


def test_count_macs_counts_convs_and_linear_per_example():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=(2, 1), padding=(1, 0), bias=False), nn.Flatten(), nn.Linear(4 * 4 * 5, 10)
    )
    result = count_macs(model, torch.randn(3, 3, 8, 7))
    conv = 4 * 4 * 5 * 3 * 9  # out elements (4 ch x 4 freq x 5 time) x in_ch x kernel
    assert result.per_module == {"0": conv, "2": 80 * 10}
    assert result.macs == conv + 800
    assert result.params == 4 * 3 * 9 + 80 * 10 + 10
    assert model.training  # restored


def test_count_macs_divides_by_the_model_batch_not_the_layer_rows():
    """A Linear applied to (B * T, C) frames is counted for all T frames of each example."""

    class PerFrame(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.out = nn.Linear(4, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 4)
            b, t, c = x.shape
            return self.out(x.reshape(b * t, c)).view(b, t, 6)

    assert count_macs(PerFrame(), torch.randn(2, 5, 4)).macs == 5 * 4 * 6
