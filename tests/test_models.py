"""The network: presets, shapes, gradients, edge filters, feature attention, receptive radius."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import make_network
from hfpie.models import PRESETS, EdgeFilterBank, FeatureAttention, HFPIEConfig, HFPIENet, edge_filters, local_average
from hfpie.models.layers import attention_cell, expand_to_pixels


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_every_preset_builds_and_runs(preset: str, scale: int) -> None:
    config = dataclasses.replace(PRESETS[preset], scale=scale)
    network = HFPIENet(config).eval()
    with torch.inference_mode():
        output = network(torch.rand(1, 3, 16, 24))
    assert output.shape == (1, 3, 16 * scale, 24 * scale)
    assert torch.isfinite(output).all()


def test_paper_preset_has_the_paper_sizes() -> None:
    config = PRESETS["paper"]
    assert config.num_features == 64 and config.num_blocks == (4, 16, 64) and config.num_scales == 3
    network = HFPIENet(config)
    assert [len(scale.body) - 1 for scale in network.scales] == [4, 16, 64]  # RCABs + one closing conv


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(4, 4), (12, 20), (28, 8)])
def test_forward_shapes(scale: int, size: tuple[int, int]) -> None:
    network = make_network(scale)
    output = network(torch.rand(2, 3, *size))
    assert output.shape == (2, 3, size[0] * scale, size[1] * scale)


def test_forward_rejects_sizes_that_are_not_multiples() -> None:
    network = make_network()
    with pytest.raises(ValueError, match="multiples of 4"):
        network(torch.rand(1, 3, 10, 12))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        network(torch.rand(3, 12, 12))


@pytest.mark.parametrize("overrides", [{}, {"edge_filtering": False}, {"feature_attention": False},
                                       {"attention_window": None}])
@pytest.mark.parametrize("scale", [1, 4])
def test_every_parameter_gets_a_gradient(overrides: dict, scale: int) -> None:
    network = make_network(scale, **overrides).train()
    output = network(torch.rand(2, 3, 16, 16))
    (output - torch.rand_like(output)).square().mean().backward()
    missing = [name for name, p in network.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in network.parameters())
    # A tiny random network can have a dead ReLU in a 4-channel squeeze layer, and the bias of a feature
    # attention conv shifts every logit of one softmax alike, so its gradient is zero up to rounding;
    # nothing else may be zero.
    softmax_bias = {f"{name}.conv.bias" for name, m in network.named_modules() if isinstance(m, FeatureAttention)}
    zero = [name for name, p in network.named_parameters() if not p.grad.abs().sum() > 0 and name not in softmax_bias]
    assert all(".attention.squeeze" in name or ".attention.excite" in name for name in zero), zero


def test_ablations_remove_their_modules() -> None:
    no_edge = make_network(edge_filtering=False)
    assert not any(isinstance(m, EdgeFilterBank) for m in no_edge.modules())
    no_attention = make_network(feature_attention=False)
    assert not any(isinstance(m, FeatureAttention) for m in no_attention.modules())
    full = make_network()
    assert sum(isinstance(m, EdgeFilterBank) for m in full.modules()) == 3  # one per scale
    assert sum(isinstance(m, FeatureAttention) for m in full.modules()) == 6  # body input + tail, per scale


def test_edge_filters_start_as_the_named_filters() -> None:
    expected = {
        "sobel_x_3": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
        "sobel_y_3": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
        "prewitt_x_3": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
        "prewitt_y_3": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
        "laplacian_3": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
        "hessian_xx_3": [[1, -2, 1], [2, -4, 2], [1, -2, 1]],
        "hessian_xy_3": [[1, 0, -1], [0, 0, 0], [-1, 0, 1]],
    }
    filters = edge_filters((3, 5))
    for name, kernel in expected.items():
        kernel = torch.tensor(kernel, dtype=torch.float32)
        torch.testing.assert_close(filters[name], kernel / kernel.abs().sum())
    bank = EdgeFilterBank(3, 8, sizes=(3, 5))
    weight = bank.filters.weight  # (3 * num_filters, 1, 5, 5), depthwise
    assert weight.requires_grad, "edge filters must stay trainable"
    names = bank.filter_names
    for channel in range(3):
        index = channel * len(names) + names.index("sobel_x_3")
        torch.testing.assert_close(weight[index, 0, 1:4, 1:4], filters["sobel_x_3"])
        assert weight[index, 0, 0].abs().sum() == 0  # 3x3 filters sit centred in the 5x5 kernel
        index = channel * len(names) + names.index("laplacian_5")
        torch.testing.assert_close(weight[index, 0], filters["laplacian_5"])
    # A vertical step edge excites the x-derivative filter and not the y-derivative one.
    step = torch.zeros(1, 3, 9, 9)
    step[..., 5:] = 1.0
    responses = bank.filters(step)
    sobel_x = responses[0, names.index("sobel_x_3"), 4]
    sobel_y = responses[0, names.index("sobel_y_3"), 4]
    assert sobel_x[4:6].abs().min() > 0.1 and sobel_y[2:7].abs().max() < 1e-6


def test_feature_attention_weights_are_a_per_channel_softmax_over_inputs() -> None:
    torch.manual_seed(0)
    module = FeatureAttention(3, kernel_size=3, window=8)
    with torch.no_grad():
        module.conv.weight.normal_()
        module.conv.bias.normal_()
    maps = [torch.randn(2, 5, 16, 16) * (i + 1) for i in range(3)]
    weights = module.attention_weights(maps)
    assert weights.shape == (2, 3, 5, 16, 16)
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 5, 16, 16))
    output = module(maps)
    torch.testing.assert_close(output, sum(weights[:, i] * maps[i] for i in range(3)))
    # Weights of different inputs differ (the attention looks at the features) ...
    assert (weights[:, 0] - weights[:, 1]).abs().max() > 1e-3
    # ... and identical inputs come out unchanged, whatever the weights.
    same = torch.randn(1, 5, 16, 16)
    torch.testing.assert_close(module([same, same, same]), same)


def test_feature_attention_convolves_along_the_feature_axis_not_channels() -> None:
    module = FeatureAttention(3, kernel_size=3, window=None)
    with torch.no_grad():
        module.conv.weight.zero_()
        module.conv.weight[0, 0, 2, 0] = 5.0  # logit of input i = 5 * pooled value of input i + 1
    maps = [torch.zeros(1, 2, 4, 4) for _ in range(3)]
    maps[2][:, 0] = 1.0  # channel 0: input 1 has the largest next neighbour; channel 1: all equal
    weights = module.attention_weights(maps)  # (1, 3, 2, 1, 1) with global pooling
    assert weights.shape == (1, 3, 2, 1, 1)
    assert weights[0, 1, 0, 0, 0] > 0.9  # shifted along the feature axis
    torch.testing.assert_close(weights[0, :, 1, 0, 0], torch.full((3,), 1 / 3))  # channel 1 untouched
    # At initialisation the module averages its inputs.
    fresh = FeatureAttention(3, window=None)
    torch.testing.assert_close(fresh([torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)]),
                               torch.full((1, 1, 2, 2), 1 / 3))


def test_local_average_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 2, 13, 10)
    window = 8  # cells of 2 x 2 pixels, smoothed over 5 x 5 cells
    cells = local_average(x, window)
    assert cells.shape == (1, 2, 7, 5)
    cell = attention_cell(window)
    means = torch.zeros(1, 2, 7, 5)
    for i in range(7):
        for j in range(5):
            means[..., i, j] = x[..., i * cell:(i + 1) * cell, j * cell:(j + 1) * cell].mean(dim=(-2, -1))
    expected = torch.zeros_like(means)
    for i in range(7):
        for j in range(5):
            expected[..., i, j] = means[..., max(i - 2, 0):i + 3, max(j - 2, 0):j + 3].mean(dim=(-2, -1))
    torch.testing.assert_close(cells, expected)
    assert expand_to_pixels(cells, window, (13, 10)).shape == (1, 2, 13, 10)
    torch.testing.assert_close(local_average(x, None), x.mean(dim=(2, 3), keepdim=True))


@pytest.mark.parametrize("scale, tail", [(1, {}), (2, {}), (2, {"sr_tail": "direct", "sr_tail_kernel": 7})])
def test_receptive_radius_bounds_the_influence_of_a_pixel(scale: int, tail: dict) -> None:
    network = make_network(scale, gain=2.0, **tail).double()
    config = network.config
    radius = config.receptive_radius()
    size = 2 * radius + 24
    size += -size % config.alignment
    x = torch.rand(1, 3, size, size, dtype=torch.float64)
    centre = size // 2
    y = x.clone()
    y[..., centre, centre] += 1.0
    with torch.inference_mode():
        difference = (network(x) - network(y)).abs().amax(dim=(0, 1))
    changed = torch.nonzero(difference > 0)
    distance = ((changed.double() + 0.5) / scale - (centre + 0.5)).abs().max()
    assert distance <= radius, f"a pixel influenced outputs {float(distance):.0f} px away, radius bound {radius}"
    assert distance > radius / 8, "the bound is far from the real influence: check receptive_radius()"


def test_config_round_trips_through_a_dict_and_rejects_unknown_fields() -> None:
    config = HFPIEConfig(scale=2, num_blocks=(1, 2, 3))
    assert HFPIEConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown HFPIEConfig fields"):
        HFPIEConfig.from_dict({"num_feats": 3})
    with pytest.raises(ValueError, match="scale must be"):
        HFPIEConfig(scale=5)


@pytest.mark.parametrize("scale", [1, 4])
def test_inference_optimizations_keep_the_output(scale: int) -> None:
    from hfpie.models import optimize_for_inference

    network = make_network(scale, gain=1.5)
    with torch.no_grad():  # make the edge filters matter
        for module in network.modules():
            if isinstance(module, EdgeFilterBank):
                module.project.weight.mul_(5.0)
    optimized = optimize_for_inference(network)
    assert not any(isinstance(m, EdgeFilterBank) for m in optimized.modules())
    assert any(isinstance(m, EdgeFilterBank) for m in network.modules()), "the original is untouched"
    x = torch.rand(2, 3, 24, 20)
    with torch.inference_mode():
        expected, actual = network(x), optimized(x.contiguous(memory_format=torch.channels_last))
    assert (expected - actual).abs().max() < 1e-4
