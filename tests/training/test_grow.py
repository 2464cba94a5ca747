"""Growing a trained network deeper or wider keeps its outputs, and the trainer can start from a grown network."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hfpie.models import HFPIENet, config_from_preset
from hfpie.training.config import TrainConfig
from hfpie.training.grow import grow_state
from hfpie.training.trainer import export_weights, train



def _images(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"img{index}.png")
    return folder


def _trained(config) -> HFPIENet:
    torch.manual_seed(1)
    network = HFPIENet(config).eval()
    with torch.no_grad():  # non-zero everywhere, like trained weights (fresh attention convs start at zero)
        for parameter in network.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return network


def _grown_and_source(scale: int, **changes) -> tuple[HFPIENet, HFPIENet, torch.Tensor]:
    """A trained-like tiny network, the network grown from it by ``changes``, and a test image."""
    source = config_from_preset("tiny", scale=scale)
    network = _trained(source)
    grown = HFPIENet(dataclasses.replace(source, **changes)).eval()
    grown.load_state_dict(grow_state(network.state_dict(), source, grown.config))
    return grown, network, torch.rand(2, 3, 32, 48)


@pytest.mark.parametrize("scale", [1, 2])
def test_grown_network_gives_the_same_outputs(scale: int) -> None:
    grown, network, image = _grown_and_source(scale, num_blocks=(2, 3, 5))
    with torch.no_grad():
        torch.testing.assert_close(grown(image), network(image), rtol=0, atol=1e-6)
        # the new blocks are real blocks: once their last convolution moves, the output changes
        grown.scales[2].body[3].conv2.weight.add_(0.1)
        assert (grown(image) - network(image)).abs().max() > 1e-4


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("features", [24, 80])  # the channel attentions' hidden layers grow too (4 -> 6, 20)
def test_wider_network_gives_the_same_outputs(scale: int, features: int) -> None:
    grown, network, image = _grown_and_source(scale, num_features=features, num_blocks=(2, 3, 5))
    with torch.no_grad():
        torch.testing.assert_close(grown(image), network(image), rtol=0, atol=1e-5)
    # The new channels carry features, and the zero weights that connect them to the old ones get a
    # gradient: training can put them to use (zero activations would leave them dead).
    grown.train()
    grown(image).square().mean().backward()
    old = network.config.num_features
    assert grown.scales[0].body[0].conv1.weight.grad[:old, old:].abs().max() > 0
    assert grown.scales[0].tail[-1].weight.grad[:, old:].abs().max() > 0


def test_only_depth_and_width_can_grow() -> None:
    source = config_from_preset("tiny")
    state = HFPIENet(source).state_dict()
    with pytest.raises(ValueError, match="reduction"):
        grow_state(state, source, dataclasses.replace(source, reduction=8, num_blocks=(2, 3, 5)))
    with pytest.raises(ValueError, match="shrink num_blocks"):
        grow_state(state, source, dataclasses.replace(source, num_blocks=(1, 1, 2)))
    with pytest.raises(ValueError, match="shrink num_features"):
        grow_state(state, source, dataclasses.replace(source, num_features=source.num_features - 4))


def test_training_starts_from_a_grown_checkpoint(tmp_path: Path) -> None:
    folder = _images(tmp_path / "data")
    small = _trained(config_from_preset("tiny"))
    weights = export_weights(small, tmp_path / "small.safetensors")
    config = TrainConfig(task="denoise", preset="tiny", model={"num_blocks": (1, 3, 4)}, train_folders=(str(folder),),
                         patch_size=16, batch_size=2, steps=1, learning_rate=0.0, ema_decay=0.0, log_every=1,
                         checkpoint_every=1, val_every=1000, init_weights=str(weights), init_grow=True, threads=1,
                         degradation={"sigma_range": (25.0, 25.0)}, precision="fp32")
    grown = train(config, tmp_path / "run", progress=False).eval()
    assert grown.config.num_blocks == (1, 3, 4)
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grown(image), small(image), rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError):  # without init_grow the shapes must match exactly
        train(config.replace(init_grow=False), tmp_path / "strict", progress=False)


def test_training_switches_the_sr_tail_and_keeps_the_rest(tmp_path: Path) -> None:
    """A direct-tail SR network started from a progressive-tail one: every other tensor as trained, deepened
    as asked, and the new tail at zero, so the first output is the bilinear upsampling of the input."""
    folder = _images(tmp_path / "data")
    small = _trained(config_from_preset("tiny", scale=4))
    weights = export_weights(small, tmp_path / "small.safetensors")
    config = TrainConfig(task="sr", scale=4, preset="tiny", model={"num_blocks": (2, 2, 2), "sr_tail": "direct"},
                         train_folders=(str(folder),), patch_size=32, batch_size=2, steps=1, learning_rate=0.0,
                         ema_decay=0.0, log_every=1, checkpoint_every=1, val_every=1000, init_weights=str(weights),
                         init_grow=True, threads=1, precision="fp32")
    switched = train(config, tmp_path / "run", progress=False).eval()
    assert switched.config.sr_tail == "direct" and switched.config.num_blocks == (2, 2, 2)
    tail = switched.scales[0].tail
    assert isinstance(tail[1], torch.nn.PixelShuffle) and tail[0].out_channels == 3 * 4**2
    assert torch.count_nonzero(tail[0].weight) == 0
    image = torch.rand(1, 3, 8, 12)
    with torch.no_grad():
        torch.testing.assert_close(switched(image), F.interpolate(image, scale_factor=4, mode="bilinear",
                                                                   align_corners=False), rtol=0, atol=1e-6)
    grown = dataclasses.replace(small.config, num_blocks=(2, 2, 2))
    expected = grow_state(small.state_dict(), small.config, grown)
    kept = {name: value for name, value in switched.state_dict().items() if not name.startswith("scales.0.tail.")}
    assert kept.keys() == {name for name in expected if not name.startswith("scales.0.tail.")}
    for name, value in kept.items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("scale", [2, 4])
def test_a_progressive_tail_becomes_a_5x5_direct_tail_with_the_same_output_inside_the_border(scale: int) -> None:
    """The progressive tail is linear, so one 5x5 convolution computes it; it only differs within two
    input pixels of the border, where its intermediate maps are zero-padded. Deeper and wider at once."""
    grown, network, image = _grown_and_source(scale, sr_tail="direct", sr_tail_kernel=5, num_blocks=(2, 3, 5),
                                              num_features=24)
    assert grown.scales[0].tail[0].kernel_size == (5, 5)
    with torch.no_grad():
        difference = (grown(image) - network(image)).abs()
    border = 2 * scale
    assert difference[..., border:-border, border:-border].max() < 1e-5
    assert difference.max() > 1e-3  # the border is not the same: the test can tell the tails apart
    with pytest.raises(ValueError, match="sr_tail_kernel"):
        config_from_preset("tiny", scale=4, sr_tail="direct", sr_tail_kernel=4)


def test_a_direct_tail_too_small_for_the_progressive_one_starts_at_zero_and_a_larger_kernel_is_exact() -> None:
    small, _, image = _grown_and_source(4, sr_tail="direct")  # 3x3 cannot hold the 5x5 map
    assert torch.count_nonzero(small.scales[0].tail[0].weight) == 0
    wider_kernel = HFPIENet(dataclasses.replace(small.config, sr_tail_kernel=7)).eval()
    with torch.no_grad():
        small.scales[0].tail[0].weight.normal_(0, 0.05)
        wider_kernel.load_state_dict(grow_state(small.state_dict(), small.config, wider_kernel.config))
        torch.testing.assert_close(wider_kernel(image), small(image), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="cannot shrink sr_tail_kernel"):
        grow_state(wider_kernel.state_dict(), wider_kernel.config, small.config)


def test_the_direct_sr_tail_upsamples_with_one_shuffle() -> None:
    network = HFPIENet(config_from_preset("tiny", scale=4, sr_tail="direct"))
    assert network(torch.rand(1, 3, 8, 12)).shape == (1, 3, 32, 48)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in network.scales[0].tail.modules()) == 1
    restore = HFPIENet(config_from_preset("tiny", sr_tail="direct"))  # no effect at scale 1
    assert restore.state_dict().keys() == HFPIENet(config_from_preset("tiny")).state_dict().keys()
    with pytest.raises(ValueError, match="sr_tail"):
        config_from_preset("tiny", scale=4, sr_tail="bicubic")
