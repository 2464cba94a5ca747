"""Tests of hfpie.training.metrics against known values, scikit-image and a naive SSIM oracle."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from hfpie.training import metrics


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    clean = ndimage.uniform_filter(rng.integers(0, 256, size=(33, 41, 3)).astype(np.float64), size=(3, 3, 1))
    clean = np.clip(np.round(clean), 0, 255).astype(np.uint8)
    noisy = np.clip(np.round(clean + rng.normal(0, 12, clean.shape)), 0, 255).astype(np.uint8)
    return clean, noisy


def naive_ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 written out: a Gaussian-weighted window at every position fully inside."""
    offsets = np.arange(11) - 5
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for top in range(x.shape[0] - 10):
        for left in range(x.shape[1] - 10):
            px = x[top : top + 11, left : left + 11]
            py = y[top : top + 11, left : left + 11]
            mx, my = (window * px).sum(), (window * py).sum()
            vx = (window * (px - mx) ** 2).sum()
            vy = (window * (py - my) ** 2).sum()
            cov = (window * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


# --------------------------------------------------------------------------------------------------
# PSNR and luma
# --------------------------------------------------------------------------------------------------


def test_psnr_known_values() -> None:
    a = np.full((8, 9, 3), 100, np.uint8)
    # MSE 1: 20 log10(255) = 48.13 dB; a - (a + 1) must not wrap around in uint8
    assert metrics.psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-12)
    assert metrics.psnr(a, a + 2) == pytest.approx(20 * math.log10(255) - 20 * math.log10(2), abs=1e-12)
    assert metrics.psnr(a, a) == math.inf
    assert metrics.psnr(a + 1, a) == pytest.approx(20 * math.log10(255), abs=1e-12)


def test_psnr_data_range_and_grey(pair: tuple[np.ndarray, np.ndarray]) -> None:
    clean, noisy = pair
    expected = metrics.psnr(clean, noisy)
    assert metrics.psnr(clean / 255.0, noisy / 255.0, data_range=1.0) == pytest.approx(expected, abs=1e-9)
    assert metrics.psnr(clean[..., 0], noisy[..., 0]) == pytest.approx(metrics.psnr(clean[..., :1], noisy[..., :1]))
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(clean, noisy[:-1])
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(clean, noisy, data_range=0)


def test_psnr_crop_border() -> None:
    a = np.full((20, 20, 3), 50, np.uint8)
    b = a.copy()
    b[:3] = 0
    b[:, -2:] = 255
    assert metrics.psnr(a, b) < 20
    assert metrics.psnr(a, b, crop_border=3) == math.inf
    assert metrics.psnr(a, b, crop_border=2) < math.inf
    with pytest.raises(ValueError, match="crop_border"):
        metrics.psnr(a, b, crop_border=10)


def test_rgb_to_y() -> None:
    assert metrics.rgb_to_y(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16.0)
    assert metrics.rgb_to_y(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0)
    pixel = np.array([[[10, 200, 30]]], np.uint8)
    expected = 16.0 + (65.481 * 10 + 128.553 * 200 + 24.966 * 30) / 255.0
    assert metrics.rgb_to_y(pixel)[0, 0] == pytest.approx(expected, abs=1e-12)
    assert metrics.rgb_to_y(pixel / 255.0, data_range=1.0)[0, 0] == pytest.approx(expected / 255.0, abs=1e-12)
    assert metrics.rgb_to_y(pixel).shape == (1, 1)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        metrics.rgb_to_y(np.zeros((2, 2, 1)))


def test_psnr_y_channel() -> None:
    a = np.full((10, 10, 3), 100, np.uint8)
    # +1 on R, G and B moves Y by (65.481 + 128.553 + 24.966) / 255 = 219 / 255
    expected = 20 * math.log10(255 / (219 / 255))
    assert metrics.psnr(a, a + 1, y_channel=True) == pytest.approx(expected, abs=1e-9)
    b = a.copy()
    b[..., 2] += 10  # blue matters little in the luma
    assert metrics.psnr(a, b, y_channel=True) > metrics.psnr(a, b)


# --------------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------------


def test_ssim_identical_is_one(pair: tuple[np.ndarray, np.ndarray]) -> None:
    clean, _ = pair
    assert metrics.ssim(clean, clean) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ssim(clean, clean, y_channel=True, crop_border=4) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_skimage(pair: tuple[np.ndarray, np.ndarray]) -> None:
    # skimage filters the whole image (reflect padding), then averages the SSIM map cropped by
    # (win_size - 1) // 2 = 5 pixels: exactly the window positions inside the image.
    clean, noisy = pair
    options = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    expected_rgb = structural_similarity(clean.astype(np.float64), noisy.astype(np.float64), channel_axis=-1, **options)
    assert metrics.ssim(clean, noisy) == pytest.approx(expected_rgb, abs=1e-4)
    assert abs(metrics.ssim(clean, noisy) - expected_rgb) < 1e-9
    y_clean, y_noisy = metrics.rgb_to_y(clean), metrics.rgb_to_y(noisy)
    expected_y = structural_similarity(y_clean, y_noisy, **options)
    assert metrics.ssim(clean, noisy, y_channel=True) == pytest.approx(expected_y, abs=1e-4)
    _, full_map = structural_similarity(y_clean, y_noisy, full=True, **options)
    assert float(full_map[5:-5, 5:-5].mean()) == pytest.approx(expected_y, abs=1e-12)


def test_ssim_matches_naive_oracle() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(14, 13, 3)).astype(np.uint8)
    y = np.clip(x + rng.normal(0, 30, x.shape), 0, 255).astype(np.uint8)
    expected = np.mean([naive_ssim_channel(x[..., c].astype(float), y[..., c].astype(float)) for c in range(3)])
    assert metrics.ssim(x, y) == pytest.approx(expected, abs=1e-9)
    assert metrics.ssim(x / 255.0, y / 255.0, data_range=1.0) == pytest.approx(expected, abs=1e-9)


def test_ssim_crop_border_and_errors(pair: tuple[np.ndarray, np.ndarray]) -> None:
    clean, noisy = pair
    cropped = metrics.ssim(clean[4:-4, 4:-4], noisy[4:-4, 4:-4])
    assert metrics.ssim(clean, noisy, crop_border=4) == pytest.approx(cropped)
    assert metrics.ssim(clean, noisy) < 1.0
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(clean[:10], noisy[:10])
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(clean, noisy, crop_border=12)


# --------------------------------------------------------------------------------------------------
# Power spectrum
# --------------------------------------------------------------------------------------------------


def test_radial_power_spectrum_white_noise_is_flat() -> None:
    noise = np.random.default_rng(0).normal(0.0, 0.1, size=(64, 64))
    frequencies, power = metrics.radial_power_spectrum(noise, data_range=1.0)
    assert frequencies.shape == power.shape == (33,)
    assert frequencies[0] == 0.0 and frequencies[-1] == pytest.approx(0.5)
    assert np.median(power[4:]) == pytest.approx(0.01, rel=0.2)


def test_spectrum_error_detects_over_smoothing(pair: tuple[np.ndarray, np.ndarray]) -> None:
    clean, _ = pair
    blurred = ndimage.gaussian_filter(clean.astype(np.float64), sigma=(2, 2, 0))
    assert metrics.spectrum_error(clean, clean) == 0.0
    assert metrics.spectrum_error(blurred, clean) > 0.5
    _, clean_power = metrics.radial_power_spectrum(clean)
    _, blurred_power = metrics.radial_power_spectrum(blurred)
    assert blurred_power[-1] < 0.1 * clean_power[-1]
    with pytest.raises(ValueError, match="same shape"):
        metrics.spectrum_error(clean, clean[:-1])


# --------------------------------------------------------------------------------------------------
# LPIPS (optional)
# --------------------------------------------------------------------------------------------------


Pair = tuple[np.ndarray, np.ndarray]


def test_lpips_returns_none_without_the_package(monkeypatch: pytest.MonkeyPatch, pair: Pair) -> None:
    monkeypatch.setitem(sys.modules, "lpips", None)  # makes `import lpips` raise ImportError
    metrics._load_lpips.cache_clear()
    try:
        assert metrics.lpips_distance(*pair) is None
    finally:
        metrics._load_lpips.cache_clear()


def test_lpips_returns_none_when_weights_fail(monkeypatch: pytest.MonkeyPatch, pair: Pair) -> None:
    module = types.ModuleType("lpips")

    def failing(**kwargs: object) -> None:
        raise RuntimeError("no network")

    module.LPIPS = failing  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lpips", module)
    metrics._load_lpips.cache_clear()
    try:
        assert metrics.lpips_distance(*pair) is None
    finally:
        metrics._load_lpips.cache_clear()


def test_lpips_uses_the_package_when_present(monkeypatch: pytest.MonkeyPatch, pair: Pair) -> None:
    seen: list[torch.Tensor] = []

    class FakeLPIPS(torch.nn.Module):
        def __init__(self, net: str, verbose: bool) -> None:
            super().__init__()

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            seen.extend([a, b])
            return (a - b).abs().mean().reshape(1, 1, 1, 1)

    module = types.ModuleType("lpips")
    module.LPIPS = FakeLPIPS  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lpips", module)
    metrics._load_lpips.cache_clear()
    try:
        clean, noisy = pair
        distance = metrics.lpips_distance(clean, noisy)
        assert isinstance(distance, float) and distance > 0
        assert tuple(seen[0].shape) == (1, 3, 33, 41)
        assert -1.0 <= float(seen[0].min()) and float(seen[0].max()) <= 1.0
        assert metrics.lpips_distance(clean, clean) == 0.0
    finally:
        metrics._load_lpips.cache_clear()


def test_all_is_sorted_and_complete() -> None:
    assert metrics.__all__ == sorted(metrics.__all__)
    assert all(hasattr(metrics, name) for name in metrics.__all__)


def test_flat_region_noise_flags_texture_painted_on_flat_areas() -> None:
    rng = np.random.default_rng(0)
    target = np.full((96, 128, 3), 120.0) + rng.normal(0, 0.5, (96, 128, 3))  # flat, with a faint grain
    target[:, 64:] += rng.normal(0, 30, (96, 64, 3))  # textured right half
    assert metrics.flat_region_noise(target, target) == pytest.approx(1.0)
    dots = target.copy()
    dots[::4, 0:64:4] += 12.0  # a periodic dot grid on the flat half
    assert metrics.flat_region_noise(dots, target) > 10.0
    smooth = target.copy()
    smooth[:, :64] = 120.0  # no fine detail where the target is flat
    assert metrics.flat_region_noise(smooth, target) < 0.1
    textured = target[:, 64:]
    assert metrics.flat_region_noise(textured, textured) is None  # nothing flat: undefined, not a guess
    with pytest.raises(ValueError, match="same shape"):
        metrics.flat_region_noise(target, target[:10])
