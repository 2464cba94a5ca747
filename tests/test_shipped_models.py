"""The bundled pretrained models do their job on a small image (no Hub, no ../shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hfpie import enhance, hub

ROOT = Path(__file__).resolve().parents[1]
CLEAN = np.asarray(Image.open(ROOT / "examples" / "clean.png").convert("RGB"))[:96, :128]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def _shipped(name: str) -> None:
    if name not in hub.load_manifest():
        pytest.skip(f"{name} is not shipped in this build")


def test_denoise_removes_gaussian_noise() -> None:
    _shipped("denoise")
    noisy = np.clip(np.round(CLEAN + np.random.default_rng(0).normal(0, 25, CLEAN.shape)), 0, 255).astype(np.uint8)
    restored = enhance(noisy, task="denoise")
    assert restored.dtype == np.uint8 and restored.shape == noisy.shape
    assert _psnr(restored, CLEAN) > _psnr(noisy, CLEAN) + 5.0


def test_deblur_sharpens_a_gaussian_blur() -> None:
    _shipped("deblur")
    import cv2

    blurry = cv2.GaussianBlur(CLEAN, (0, 0), 1.6, borderType=cv2.BORDER_REFLECT)
    assert _psnr(enhance(blurry, task="deblur"), CLEAN) > _psnr(blurry, CLEAN) + 0.5


@pytest.mark.parametrize("scale", [2, 4])
def test_super_resolution_beats_bicubic(scale: int) -> None:
    _shipped(f"sr-x{scale}")
    low = np.asarray(Image.fromarray(CLEAN).resize((128 // scale, 96 // scale), Image.BICUBIC))
    bicubic = np.asarray(Image.fromarray(low).resize((128, 96), Image.BICUBIC))
    output = enhance(low, task="sr", scale=scale)
    assert output.shape == CLEAN.shape
    assert _psnr(output, CLEAN) > _psnr(bicubic, CLEAN) + 0.3


def test_every_task_default_is_shipped_and_extras_are_not_defaults() -> None:
    entries = hub.load_manifest()
    if not entries:
        pytest.skip("no weights shipped in this build")
    defaults = {(e.task, e.scale) for e in entries.values() if e.default}
    assert {("denoise", 1), ("deblur", 1), ("sr", 2), ("sr", 4)} <= defaults
    assert not entries["sr-x4-gan"].default and not entries["denoise-real"].default
    for entry in entries.values():  # provenance travels with every checkpoint
        assert entry.training_data and entry.extra["training_command"] and entry.extra["steps"], entry.name


def test_default_cpu_tiles_match_the_whole_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past one CPU window enhance() tiles by default; with the default halo the seams stay invisible."""
    _shipped("denoise")
    import torch

    from hfpie import api, runner

    monkeypatch.setattr(runner, "CPU_TILE", 64)  # the real 512 needs a 0.4 MP image: same code, slower test
    network = hub.load_model("denoise", device="cpu")
    photo = np.array(Image.open(ROOT / "examples" / "noisy.png").convert("RGB"))  # 256 x 256 > one (64 + 2 x 64)^2 window
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    calls: list[int] = []
    tiled = api.run_network(network, image, device="cpu", progress=lambda done, total: calls.append(done),
                            precision="fp32")
    whole = api.run_network(network, image, device="cpu", tile=256, precision="fp32")
    assert len(calls) == 16  # 64 px cores: 4 rows x 4 columns
    assert (tiled - whole).abs().max() < 1e-4


def test_bf16_tiles_stay_within_one_8_bit_level_of_the_whole_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under bf16 the default tiles and halo still change no pixel by more than one 8-bit level."""
    _shipped("denoise")
    import torch

    from hfpie import api, runner

    monkeypatch.setattr(runner, "CPU_TILE", 64)
    network = hub.load_model("denoise", device="cpu")
    photo = np.array(Image.open(ROOT / "examples" / "noisy.png").convert("RGB"))
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    tiled = api.run_network(network, image, device="cpu", precision="bf16")
    whole = api.run_network(network, image, device="cpu", tile=256, precision="bf16")
    levels = (torch.round(tiled * 255) - torch.round(whole * 255)).abs()
    assert levels.max() <= 1


def test_fp32_enhance_is_the_network_itself_bit_for_bit() -> None:
    """enhance() in fp32 adds nothing to the network's own output (padding, runner, tiler, conversions)."""
    _shipped("denoise")
    import torch

    network = hub.load_model("denoise", device="cpu")
    photo = np.array(Image.open(ROOT / "examples" / "noisy.png").convert("RGB"))[:96, :128]  # multiples of 4
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        direct = network(x).clamp(0, 1)
    expected = np.round(direct[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert np.array_equal(enhance(photo, task="denoise", device="cpu", precision="fp32"), expected)


_TASKS = {"denoise": ("denoise", 1), "deblur": ("deblur", 1), "sr-x2": ("sr", 2), "sr-x4": ("sr", 4)}


@pytest.mark.parametrize("name", list(_TASKS))
def test_tiny_flat_images_stay_flat(name: str) -> None:
    """Images of 1 x 1 to 8 x 8 pixels lie all within reach of the network's zero-padded borders unless
    padded to a working size first (a flat 1 x 1 image used to come back up to 25 levels off)."""
    _shipped(name)
    task, scale = _TASKS[name]
    network = hub.load_model(name, device="cpu")
    colour = np.array([200, 100, 50])
    for height in range(1, 9):
        for width in range(1, 9):
            flat = np.empty((height, width, 3), np.uint8)
            flat[:] = colour
            output = enhance(flat, task=task, scale=scale, model=network, device="cpu", precision="fp32")
            assert output.shape == (height * scale, width * scale, 3)
            assert np.abs(output.astype(int) - colour).max() <= 1, (height, width)


@pytest.mark.parametrize("task", ["denoise", "deblur"])
def test_thin_strips_lose_nothing_for_lack_of_rows(task: str) -> None:
    """Strips 1 to 16 pixels thick, across and down, come out as good as the same pixels enhanced
    inside the whole photo, or better than they went in (a 3000 x 6 strip used to lose 0.4 dB, its edge
    rows 5 dB). Some rows of this photo come out below their input even inside the whole photo: the
    lack of rows must not add to that.
    Deblurring a strip of 2-3 pixels is ill-posed (the blur took its values from rows that are not in
    it): there it may stay up to 1 dB under the input; from 4 pixels on it must beat the input."""
    _shipped(task)
    import cv2

    network = hub.load_model(task, device="cpu")
    photo = np.asarray(Image.open(ROOT / "examples" / "clean.png").convert("RGB"))
    if task == "denoise":
        degraded = np.clip(np.round(photo + np.random.default_rng(2).normal(0, 12, photo.shape)), 0, 255)
    else:
        degraded = cv2.GaussianBlur(photo, (0, 0), 1.6, borderType=cv2.BORDER_REFLECT)
    degraded = degraded.astype(np.uint8)
    whole = enhance(degraded, task=task, model=network, device="cpu", precision="fp32")
    for thickness in range(1, 17):
        for rows in (slice(100, 100 + thickness), slice(None)):
            columns = slice(None) if rows.start is not None else slice(100, 100 + thickness)
            strip, truth = degraded[rows, columns], photo[rows, columns]
            output = enhance(strip, task=task, model=network, device="cpu", precision="fp32")
            before, inside, after = _psnr(strip, truth), _psnr(whole[rows, columns], truth), _psnr(output, truth)
            if task == "denoise":
                assert after > min(before, inside) - 0.2, (thickness, strip.shape, before, inside, after)
            else:
                assert after > before - (1.0 if thickness < 4 else 0.0), (thickness, strip.shape, before, after)
