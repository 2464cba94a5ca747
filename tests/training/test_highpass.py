"""Tests of hfpie.training.highpass: the FFT high-pass target, HighPassNet and the HPF loss."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from hfpie.training.highpass import (
    HighPassLoss,
    HighPassNet,
    HighPassNetConfig,
    evaluate_highpass_net,
    fft_highpass,
    freeze_highpass_net,
    highpass_loss,
    load_highpass_net,
    read_highpass_net_metadata,
    save_highpass_net,
    train_highpass_net,
)

SMALL = HighPassNetConfig(widths=(16, 16), kernel_size=3)



def make_synthetic_images(count: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth colour gradients plus one random straight step edge per image, in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coordinates = torch.arange(size, dtype=torch.float32)
    ys, xs = torch.meshgrid(coordinates, coordinates, indexing="ij")
    images = []
    for _ in range(count):
        amplitude = torch.rand(3, 1, 1, generator=generator)
        frequency_x, frequency_y = (torch.rand(2, generator=generator) * 0.05).tolist()
        image = 0.5 + 0.2 * amplitude * torch.sin(2 * math.pi * (frequency_x * xs + frequency_y * ys))
        position = int(torch.randint(4, size - 4, (1,), generator=generator))
        step = 0.3 * torch.rand(3, 1, 1, generator=generator)
        edge = (xs >= position) if torch.rand(1, generator=generator) < 0.5 else (ys >= position)
        images.append((image + step * edge).clamp(0, 1))
    return torch.stack(images)


def make_sinusoid(cycles: int, size: int = 32) -> torch.Tensor:
    xs = torch.arange(size, dtype=torch.float32).view(1, size).expand(size, size)
    return (0.5 + 0.3 * torch.sin(2 * math.pi * cycles * xs / size + 0.3)).expand(2, 3, size, size)


# --------------------------------------------------------------------------------------------------
# fft_highpass


def test_fft_highpass_removes_constants_and_low_frequencies():
    constant = torch.full((2, 3, 32, 32), 0.7)
    assert fft_highpass(constant).abs().max() < 1e-6
    low = make_sinusoid(cycles=1)  # 1 / 32 cycles per pixel, below the 0.1 default cut-off
    assert fft_highpass(low).abs().max() < 1e-5


def test_fft_highpass_keeps_high_frequencies():
    high = make_sinusoid(cycles=8)  # 0.25 cycles per pixel
    filtered = fft_highpass(high)
    assert filtered.shape == high.shape
    assert torch.allclose(filtered, high - 0.5, atol=1e-5)


def test_fft_highpass_is_linear_and_zero_mean():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 16, 20, generator=generator), torch.rand(2, 3, 16, 20, generator=generator)
    assert torch.allclose(fft_highpass(2 * a - 3 * b), 2 * fft_highpass(a) - 3 * fft_highpass(b), atol=1e-5)
    for soft in (False, True):
        assert fft_highpass(a, soft=soft).mean(dim=(2, 3)).abs().max() < 1e-6


def test_fft_highpass_radius_units_agree_on_square_images():
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 40, 40, generator=generator)
    assert torch.allclose(fft_highpass(image, 0.11), fft_highpass(image, 4.4, units="bins"), atol=1e-6)
    with pytest.raises(ValueError, match="units"):
        fft_highpass(image, 0.1, units="pixels")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        fft_highpass(image[0])


# --------------------------------------------------------------------------------------------------
# HighPassNet, training, files


def test_highpass_net_shapes():
    net = HighPassNet(HighPassNetConfig(widths=(8, 12)))
    x = torch.rand(2, 3, 17, 23)
    assert net(x).shape == x.shape
    first, second = net.features(x)
    assert first.shape == (2, 8, 17, 23) and second.shape == (2, 12, 17, 23)
    assert (first >= 0).all() and (second >= 0).all()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.rand(2, 1, 8, 8))


def test_config_validates_and_round_trips():
    config = HighPassNetConfig(widths=[8, 4], kernel_size=3, padding_mode="reflect")
    assert config.widths == (8, 4)
    assert HighPassNetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="kernel_size"):
        HighPassNetConfig(kernel_size=4)


def test_training_lowers_the_error_on_held_out_images():
    train_images = make_synthetic_images(32, seed=0)
    held_out = make_synthetic_images(8, seed=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = HighPassNet(SMALL)
    before = evaluate_highpass_net(untrained, held_out)
    net, report = train_highpass_net(
        train_images, steps=120, config=SMALL, batch_size=8, patch_size=24, learning_rate=3e-3, seed=0
    )
    after = evaluate_highpass_net(net, held_out)
    assert report["final_loss"] < 0.5 * report["initial_loss"]
    assert after["mse"] < 0.5 * before["mse"]
    assert after["psnr"] > after["baseline_psnr"] + 1
    assert after["correlation"] > 0.5
    assert not net.training
    json.dumps(report)  # the report can go in the file's metadata


def test_training_accepts_callables_and_iterables():
    images = make_synthetic_images(4, size=16)
    _, from_callable = train_highpass_net(lambda: images, steps=2, config=SMALL)
    _, from_list = train_highpass_net([images, images], steps=3, config=SMALL)
    assert from_callable["steps"] == 2 and from_list["steps"] == 3
    with pytest.raises(ValueError, match="ran out"):
        train_highpass_net(iter([images]), steps=2, config=SMALL)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        train_highpass_net(lambda: images[:, :1], steps=1, config=SMALL)


def test_save_and_load_round_trip(tmp_path):
    net = HighPassNet(SMALL)
    path = tmp_path / "highpass.safetensors"
    save_highpass_net(net, path, metadata={"radius": 0.1, "note": "test"})
    loaded = load_highpass_net(path)
    assert loaded.config == net.config
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert read_highpass_net_metadata(path) == {"radius": 0.1, "note": "test"}
    save_highpass_net(freeze_highpass_net(net), tmp_path / "frozen.safetensors")
    with torch.no_grad():
        assert torch.equal(load_highpass_net(tmp_path / "frozen.safetensors")(x), net(x))


def test_load_rejects_wrong_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_highpass_net(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 not a safetensors file at all")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_highpass_net(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not a HighPassNet"):
        load_highpass_net(foreign)
    mismatched = tmp_path / "mismatched.safetensors"
    tensors = {name: tensor.contiguous() for name, tensor in HighPassNet(SMALL).state_dict().items()}
    header = {
        "format": "hfpie.highpass_net",
        "format_version": "1",
        "config": json.dumps(HighPassNetConfig(widths=(8, 8), kernel_size=3).to_dict()),
    }
    save_file(tensors, str(mismatched), metadata=header)
    with pytest.raises(ValueError, match="does not hold the tensors"):
        load_highpass_net(mismatched)


# --------------------------------------------------------------------------------------------------
# HPF loss


def test_highpass_loss_is_zero_for_identical_images_and_positive_otherwise():
    loss = HighPassLoss(HighPassNet(SMALL))
    images = make_synthetic_images(2, size=16)
    assert loss(images, images.clone()) == 0
    assert loss(images.flip(-1), images) > 0
    assert highpass_loss(images.flip(-1), images, HighPassNet(SMALL), weights=(0.0, 0.0)) == 0
    with pytest.raises(ValueError, match="criterion"):
        HighPassLoss(HighPassNet(SMALL), criterion="huber")


def test_highpass_loss_gradients_reach_the_output_only():
    net = HighPassNet(SMALL)
    loss = HighPassLoss(net)
    assert list(loss.parameters()) == []
    target = make_synthetic_images(2, size=16)
    output = (target + 0.05 * torch.randn_like(target)).requires_grad_(True)
    loss(output, target).backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in net.parameters())  # the original is untouched


def test_loss_network_stays_frozen_through_training_of_a_model():
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Conv2d(3, 3, 3, padding=1)
            self.loss = HighPassLoss(HighPassNet(SMALL))

    model = Model()
    model.requires_grad_(True)
    model.train()
    assert not model.loss.network.training
    assert {name for name, _ in model.named_parameters()} == {"body.weight", "body.bias"}
    frozen_before = {name: tensor.clone() for name, tensor in model.loss.state_dict().items()}
    body_before = model.body.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    target = make_synthetic_images(2, size=16)
    model.loss(model.body(target.flip(-1)), target).backward()
    optimizer.step()
    assert not torch.equal(model.body.weight, body_before)
    for name, tensor in model.loss.state_dict().items():
        assert torch.equal(tensor, frozen_before[name]), name
    assert all(buffer.grad is None for buffer in model.loss.buffers())
