"""``strength``: 0 is the input (bit for bit), 1 the model as trained, values between mix the two."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from conftest import make_network, save_checkpoint
from hfpie import enhance
from hfpie.api import MAX_STRENGTH
from hfpie.cli import app


@pytest.fixture(scope="module")
def restorer():
    """A tiny random network that changes every pixel a lot (so mixing is visible)."""
    return make_network(gain=3.0)


@pytest.fixture(scope="module")
def sr2():
    return make_network(2, gain=3.0)


def _image(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize(("shape", "dtype"), [((19, 23, 3), np.uint8), ((19, 23, 4), np.uint16),
                                              ((19, 23), np.float32), ((19, 23, 2), np.uint8)])
def test_strength_zero_returns_the_numpy_input_bit_for_bit(restorer, shape, dtype) -> None:
    image = _image(shape, dtype)
    assert not np.array_equal(enhance(image, model=restorer), image)  # the network does change it
    out = enhance(image, model=restorer, strength=0)
    assert out.dtype == image.dtype and out is not image
    np.testing.assert_array_equal(out, image)


def test_strength_zero_returns_pil_torch_and_file_inputs_unchanged(restorer, tmp_path: Path) -> None:
    rgba = Image.fromarray(_image((17, 21, 4), np.uint8), "RGBA")
    out = enhance(rgba, model=restorer, strength=0.0)
    assert out.mode == "RGBA" and out.tobytes() == rgba.tobytes()

    tensor = torch.rand(2, 3, 17, 21, dtype=torch.float64)
    out = enhance(tensor, model=restorer, strength=0)
    assert out.dtype == torch.float64 and out.data_ptr() != tensor.data_ptr()
    assert torch.equal(out, tensor)

    path = tmp_path / "grey16.png"
    grey16 = _image((17, 21), np.uint16)
    Image.fromarray(grey16).save(path)
    np.testing.assert_array_equal(np.asarray(enhance(path, model=restorer, strength=0)), grey16)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_strength_one_is_the_default(restorer, dtype) -> None:
    image = _image((21, 18, 3), dtype)
    np.testing.assert_array_equal(enhance(image, model=restorer, strength=1.0), enhance(image, model=restorer))


def test_intermediate_strength_mixes_input_and_output(restorer) -> None:
    image = _image((24, 20, 3), np.float32)
    full = enhance(image, model=restorer)
    outputs = {s: enhance(image, model=restorer, strength=s) for s in (0.25, 0.5, 0.75)}
    low, high = np.minimum(image, full), np.maximum(image, full)
    for strength, out in outputs.items():
        assert np.all(out >= low - 1e-6) and np.all(out <= high + 1e-6)  # between, pixel by pixel
        np.testing.assert_allclose(out, image + strength * (full - image), atol=1e-6)
    distances = [np.abs(outputs[s] - image).mean() for s in (0.25, 0.5, 0.75)]
    assert distances[0] < distances[1] < distances[2] < np.abs(full - image).mean()


def test_sr_strength_zero_is_bicubic_and_between_is_a_mix(sr2) -> None:
    image = torch.rand(1, 3, 10, 13)
    bicubic = F.interpolate(image, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.allclose(enhance(image, "sr", scale=2, model=sr2, strength=0), bicubic, atol=1e-6)
    full = enhance(image, "sr", scale=2, model=sr2)
    half = enhance(image, "sr", scale=2, model=sr2, strength=0.5)
    assert half.shape == (1, 3, 20, 26)
    assert torch.allclose(half, (bicubic + full) / 2, atol=1e-6)


def test_sr_strength_zero_resizes_grey_and_alpha_like_the_model() -> None:
    image = _image((9, 11, 2), np.uint8)  # grey + alpha
    out = enhance(image, "sr", scale=2, model=make_network(2), strength=0)
    assert out.shape == (18, 22, 2) and out.dtype == np.uint8


def test_denoise_strength_above_one_mixes_in_a_second_pass(restorer) -> None:
    image = torch.rand(1, 3, 22, 19)
    once = enhance(image, model=restorer)
    twice = enhance(once, model=restorer)
    assert (twice - once).abs().mean() > 0.01  # a second pass does change it
    assert torch.allclose(enhance(image, model=restorer, strength=2), twice, atol=1e-6)
    assert torch.allclose(enhance(image, model=restorer, strength=1.25), once + 0.25 * (twice - once), atol=1e-6)

    calls: list[tuple[int, int]] = []
    enhance(image, model=restorer, strength=1.5, tile=8, progress=lambda done, total: calls.append((done, total)))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)  # one bar over both passes
    assert calls[-1][0] == calls[-1][1] and len({total for _, total in calls}) == 1


def test_strength_above_one_is_refused_for_sr_models_below_the_api(sr2) -> None:
    from hfpie.api import enhance_image_file
    from hfpie.io import image_file_from_pil

    image = image_file_from_pil(Image.fromarray(_image((8, 8, 3), np.uint8)))
    with pytest.raises(ValueError, match="strength above 1 needs a restoration"):
        enhance_image_file(image, sr2, strength=1.5)


@pytest.mark.parametrize(("task", "strength"), [("denoise", -0.1), ("denoise", math.nan), ("denoise", math.inf),
                                                ("denoise", MAX_STRENGTH["denoise"] + 0.01), ("deblur", 1.5),
                                                ("sr", 1.01), ("denoise", "0.5"), ("denoise", True)])
def test_out_of_range_strength_is_refused_with_the_allowed_range(restorer, sr2, task, strength) -> None:
    with pytest.raises(ValueError) as error:
        enhance(_image((8, 8, 3), np.uint8), task, scale=2, model=sr2 if task == "sr" else restorer, strength=strength)
    maximum = MAX_STRENGTH[task]
    assert f"strength for {task!r} must be between 0" in str(error.value)
    assert f"and {maximum:g}" in str(error.value) and repr(strength) in str(error.value)


def test_cli_strength(tmp_path: Path) -> None:
    checkpoint = save_checkpoint(make_network(gain=3.0), tmp_path / "net.safetensors")
    source = tmp_path / "in.png"
    pixels = _image((15, 17, 3), np.uint8)
    Image.fromarray(pixels).save(source)
    runner = CliRunner()

    result = runner.invoke(app, ["denoise", str(source), "-o", str(tmp_path / "zero.png"), "--model", str(checkpoint),
                                 "--strength", "0"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "zero.png")), pixels)

    result = runner.invoke(app, ["denoise", str(source), "-o", str(tmp_path / "half.png"), "--model", str(checkpoint),
                                 "--strength", "0.5"])
    assert result.exit_code == 0, result.output
    expected = enhance(pixels, model=checkpoint, strength=0.5)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "half.png")), expected)

    result = runner.invoke(app, ["deblur", str(source), "-o", str(tmp_path / "bad.png"), "--model", str(checkpoint),
                                 "--strength", "-1"])
    assert result.exit_code == 2
    assert "error: strength for 'deblur' must be between 0 (the input unchanged) and 1" in result.output
    assert not (tmp_path / "bad.png").exists()
