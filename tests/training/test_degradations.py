"""Tests of hfpie.training.degradations: samplers, deterministic operations and the eval protocol."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from hfpie.training import degradations as deg

# --------------------------------------------------------------------------------------------------
# Oracle: the evaluation protocol's reference code, copied verbatim
# --------------------------------------------------------------------------------------------------


def reference_add_gaussian_noise(clean, sigma, i):
    rng = np.random.default_rng(10_000 * sigma + i)
    return np.clip(np.round(clean.astype(np.float64) + sigma * rng.standard_normal(clean.shape)), 0, 255).astype(
        np.uint8
    )


def reference_bicubic_lr(hr, s):
    hr = hr[: hr.shape[0] - hr.shape[0] % s, : hr.shape[1] - hr.shape[1] % s]
    h, w = hr.shape[:2]
    return hr, np.asarray(Image.fromarray(hr).resize((w // s, h // s), Image.BICUBIC))


def reference_blur_and_noise(clean, i):
    rng = np.random.default_rng(20_000 + i)
    sx, sy, theta = rng.uniform(0.6, 3.0), rng.uniform(0.6, 3.0), rng.uniform(0.0, np.pi)
    y, x = np.mgrid[-10:11, -10:11].astype(np.float64)
    u = np.cos(theta) * x + np.sin(theta) * y
    v = -np.sin(theta) * x + np.cos(theta) * y
    k = np.exp(-0.5 * (u**2 / sx**2 + v**2 / sy**2))
    k /= k.sum()
    blurred = np.stack([ndimage.convolve(clean[..., c].astype(np.float64), k, mode="reflect") for c in range(3)], -1)
    noisy = np.clip(np.round(blurred + 2.0 * rng.standard_normal(blurred.shape)), 0, 255).astype(np.uint8)
    return noisy, k


def reference_kernel(sx, sy, t):
    y, x = np.mgrid[-10:11, -10:11]
    u = np.cos(t) * x + np.sin(t) * y
    v = -np.sin(t) * x + np.cos(t) * y
    k = np.exp(-0.5 * (u**2 / sx**2 + v**2 / sy**2))
    k /= k.sum()
    return k


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def image_u8() -> np.ndarray:
    rng = np.random.default_rng(1234)
    base = rng.integers(0, 256, size=(37, 43, 3), dtype=np.uint8)
    # smooth structure plus texture, so that blur and JPEG have something to change
    return np.clip(ndimage.uniform_filter(base.astype(np.float64), size=(5, 5, 1)) * 0.5 + base * 0.5, 0, 255).astype(
        np.uint8
    )


@pytest.fixture
def image_float(image_u8: np.ndarray) -> np.ndarray:
    return image_u8.astype(np.float32) / 255.0


def is_on_8bit_grid(image: np.ndarray) -> bool:
    return bool(np.allclose(image * 255.0, np.round(image * 255.0), atol=1e-3))


SAMPLERS = {
    "gaussian_noise": lambda image, rng: deg.random_gaussian_noise(image, rng),
    "real_noise": lambda image, rng: deg.random_real_noise(image, rng, jpeg_probability=0.5),
    "jpeg": lambda image, rng: deg.random_jpeg(image, rng),
    "downscale": lambda image, rng: deg.random_downscale(image, 2, rng, blur_probability=0.5),
    "blur_kernel": lambda image, rng: deg.random_blur_kernel(rng),
    "task_denoise": lambda image, rng: deg.make_degradation("denoise")(image, rng),
    "task_denoise_real": lambda image, rng: deg.make_degradation("denoise-real")(image, rng),
    "task_deblur": lambda image, rng: deg.make_degradation("deblur", jpeg_probability=0.5)(image, rng),
    "task_sr": lambda image, rng: deg.make_degradation("sr", scale=2, blur_probability=0.5)(image[:36, :42], rng),
}


# --------------------------------------------------------------------------------------------------
# Samplers: determinism, ranges, shapes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_are_seeded_and_deterministic(name: str, image_float: np.ndarray) -> None:
    sampler = SAMPLERS[name]
    first = sampler(image_float, np.random.default_rng(7))
    again = sampler(image_float, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    different = [sampler(image_float, np.random.default_rng(seed)) for seed in (8, 9, 10)]
    assert any(d.shape != first.shape or not np.array_equal(d, first) for d in different)


@pytest.mark.parametrize("name", sorted(name for name in SAMPLERS if name != "blur_kernel"))
def test_samplers_return_float32_in_unit_range_on_8bit_grid(name: str, image_float: np.ndarray) -> None:
    for seed in range(4):
        out = SAMPLERS[name](image_float, np.random.default_rng(seed))
        assert out.dtype == np.float32
        assert out.ndim == 3 and out.shape[2] == 3
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert is_on_8bit_grid(out)


@pytest.mark.parametrize(
    ("task", "options", "expected_shape"),
    [
        ("denoise", {}, (36, 42, 3)),
        ("denoise-real", {}, (36, 42, 3)),
        ("deblur", {}, (36, 42, 3)),
        ("sr", {"scale": 2}, (18, 21, 3)),
        ("sr", {"scale": 3}, (12, 14, 3)),
    ],
)
def test_make_degradation_shapes(task: str, options: dict, expected_shape: tuple, image_float: np.ndarray) -> None:
    degradation = deg.make_degradation(task, **options)
    assert degradation.scale == options.get("scale", 1)
    out = degradation(image_float[:36, :42], np.random.default_rng(0))
    assert out.shape == expected_shape


def test_make_degradation_errors() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        deg.make_degradation("inpaint")
    with pytest.raises(TypeError, match="valid options"):
        deg.make_degradation("denoise", scale=2)
    with pytest.raises(ValueError, match="sigma_range"):
        deg.make_degradation("denoise", sigma_range=(30, 10))
    with pytest.raises(ValueError, match="probability"):
        deg.make_degradation("deblur", jpeg_probability=1.5)
    with pytest.raises(ValueError, match="crop_to_multiple"):
        deg.make_degradation("sr", scale=4)(np.zeros((10, 12, 3), np.float32), np.random.default_rng(0))


def test_degradations_are_frozen() -> None:
    degradation = deg.make_degradation("denoise")
    with pytest.raises(AttributeError):
        degradation.sigma_range = (0, 10)  # type: ignore[misc]


def test_input_validation(image_u8: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        deg.add_gaussian_noise(image_u8[..., 0], 10, rng)
    with pytest.raises(TypeError, match="dtype"):
        deg.add_gaussian_noise(image_u8.astype(np.int32), 10, rng)
    with pytest.raises(ValueError, match="sigma"):
        deg.add_gaussian_noise(image_u8, -1.0, rng)


# --------------------------------------------------------------------------------------------------
# Gaussian noise
# --------------------------------------------------------------------------------------------------


def test_gaussian_noise_level_and_quantization() -> None:
    flat = np.full((128, 128, 3), 0.5, np.float32)
    noisy = deg.add_gaussian_noise(flat, 25.0, np.random.default_rng(0), quantize=False)
    assert abs(float(np.std(noisy - flat)) * 255.0 - 25.0) < 0.5
    quantized = deg.add_gaussian_noise(flat, 25.0, np.random.default_rng(0), quantize=True)
    assert is_on_8bit_grid(quantized)
    np.testing.assert_allclose(quantized, noisy, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(deg.add_gaussian_noise(flat, 0.0, np.random.default_rng(0)), flat * 0 + 128 / 255)


def test_gaussian_noise_clips_to_unit_range() -> None:
    image = np.zeros((32, 32, 3), np.float32)
    image[:16] = 1.0
    out = deg.add_gaussian_noise(image, 50.0, np.random.default_rng(0), quantize=False)
    assert out.min() == 0.0 and out.max() == 1.0


def test_random_gaussian_noise_sigma_range() -> None:
    flat = np.full((64, 64, 3), 0.5, np.float32)
    noisy = [
        deg.random_gaussian_noise(flat, np.random.default_rng(seed), sigma_range=(10, 20), quantize=False)
        for seed in range(6)
    ]
    stds = [float(np.std(image - flat)) * 255 for image in noisy]
    assert all(9.0 < std < 21.0 for std in stds)
    assert max(stds) - min(stds) > 1.0  # the level is drawn, not fixed


# --------------------------------------------------------------------------------------------------
# Real noise
# --------------------------------------------------------------------------------------------------


def test_poisson_gaussian_variance_grows_with_signal() -> None:
    rng = np.random.default_rng(0)
    shot, read = 4e-3, 1e-2
    variances = []
    for level in (0.1, 0.4, 0.8):
        flat = np.full((96, 96, 3), level, np.float32)
        noisy = deg.add_poisson_gaussian_noise(flat, shot, read, rng, gamma=1.0, quantize=False)
        variances.append(float(np.var(noisy)))
        expected = shot * level + read**2
        assert abs(variances[-1] - expected) < 0.1 * expected
    assert variances[0] < variances[1] < variances[2]


def test_poisson_gaussian_in_linear_light_with_gamma() -> None:
    rng = np.random.default_rng(1)
    variances = []
    for level in (0.2, 0.6):
        flat = np.full((96, 96, 3), level, np.float32)
        noisy = deg.add_poisson_gaussian_noise(flat, 4e-3, 1e-3, rng, gamma=2.2, quantize=False)
        variances.append(float(np.var(noisy.astype(np.float64) ** 2.2)))  # back to linear light
    assert variances[0] < variances[1]


def test_real_noise_without_jpeg_is_quantized_poisson_gaussian(image_float: np.ndarray) -> None:
    out = deg.random_real_noise(image_float, np.random.default_rng(3), jpeg_probability=0.0)
    assert is_on_8bit_grid(out)
    assert not np.array_equal(out, image_float)


# --------------------------------------------------------------------------------------------------
# Blur
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sx", "sy", "t"), [(0.6, 0.6, 0.0), (3.0, 0.7, 0.4), (1.3, 2.9, 2.8), (2.0, 2.0, 1.0)])
def test_gaussian_kernel_matches_reference(sx: float, sy: float, t: float) -> None:
    kernel = deg.gaussian_kernel(21, sx, sy, t)
    assert kernel.shape == (21, 21) and kernel.dtype == np.float64
    np.testing.assert_array_equal(kernel, reference_kernel(sx, sy, t))
    assert abs(kernel.sum() - 1.0) < 1e-12
    assert np.unravel_index(np.argmax(kernel), kernel.shape) == (10, 10)


def test_gaussian_kernel_isotropic_and_errors() -> None:
    kernel = deg.gaussian_kernel(7, 1.2)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[::-1], atol=1e-15)
    for size in (0, 6, -3):
        with pytest.raises(ValueError, match="odd"):
            deg.gaussian_kernel(size, 1.0)
    with pytest.raises(ValueError, match="> 0"):
        deg.gaussian_kernel(5, 0.0)


def test_add_blur_equals_scipy_reflect_convolution(image_float: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    asymmetric = rng.random((5, 7))  # a non-symmetric kernel catches correlation-vs-convolution bugs
    asymmetric /= asymmetric.sum()
    for kernel in (asymmetric, deg.gaussian_kernel(21, 2.5, 0.8, 0.7)):
        blurred = deg.add_blur(image_float, kernel)
        expected = np.stack(
            [ndimage.convolve(image_float[..., c].astype(np.float64), kernel, mode="reflect") for c in range(3)], -1
        )
        assert blurred.shape == image_float.shape and blurred.dtype == np.float32
        np.testing.assert_allclose(blurred, expected, atol=1e-5)


def test_add_blur_grey_and_tiny_image() -> None:
    grey = np.random.default_rng(0).random((6, 5, 1)).astype(np.float32)  # smaller than the kernel
    kernel = deg.gaussian_kernel(21, 3.0)
    blurred = deg.add_blur(grey, kernel)
    assert blurred.shape == (6, 5, 1)
    expected = ndimage.convolve(grey[..., 0].astype(np.float64), kernel, mode="reflect")
    np.testing.assert_allclose(blurred[..., 0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="odd"):
        deg.add_blur(grey, np.ones((4, 4)) / 16)


def test_random_blur_kernel_properties() -> None:
    sizes, isotropic = set(), 0
    for seed in range(40):
        kernel = deg.random_blur_kernel(np.random.default_rng(seed), size_range=(7, 21), isotropic_probability=0.5)
        assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1 and 7 <= kernel.shape[0] <= 21
        assert abs(kernel.sum() - 1.0) < 1e-12 and kernel.min() >= 0.0
        sizes.add(kernel.shape[0])
        isotropic += int(np.allclose(kernel, kernel.T) and np.allclose(kernel, kernel[::-1]))
    assert len(sizes) > 3
    assert 5 < isotropic < 35
    with pytest.raises(ValueError, match="odd"):
        deg.random_blur_kernel(np.random.default_rng(0), size_range=(8, 8))


def test_deblur_degradation_blurs(image_float: np.ndarray) -> None:
    degradation = deg.DeblurDegradation(
        kernel_size_range=(21, 21), kernel_sigma_range=(2.5, 3.0), noise_sigma_range=(0, 0)
    )
    out = degradation(image_float, np.random.default_rng(0))
    high_frequency = lambda image: float(np.abs(np.diff(image, axis=1)).mean())  # noqa: E731
    assert high_frequency(out) < 0.5 * high_frequency(image_float)


# --------------------------------------------------------------------------------------------------
# JPEG
# --------------------------------------------------------------------------------------------------


def test_add_jpeg_changes_image_and_keeps_shape(image_u8: np.ndarray, image_float: np.ndarray) -> None:
    for quality in (10, 60, 95):
        out = deg.add_jpeg(image_float, quality)
        assert out.shape == image_float.shape and out.dtype == np.float32
        assert is_on_8bit_grid(out) and 0.0 <= out.min() and out.max() <= 1.0
        assert not np.array_equal(out, image_float)
    error = lambda quality: float(np.abs(deg.add_jpeg(image_u8, quality) - image_float).mean())  # noqa: E731
    assert error(10) > error(95)
    grey = deg.add_jpeg(image_float[..., :1], 50)
    assert grey.shape == (37, 43, 1)
    with pytest.raises(ValueError, match="1..100"):
        deg.add_jpeg(image_float, 0)
    with pytest.raises(ValueError, match="RGB"):
        deg.add_jpeg(image_float[..., :2], 50)


def test_add_jpeg_keeps_colours() -> None:
    red = np.zeros((16, 16, 3), np.float32)
    red[..., 0] = 1.0
    out = deg.add_jpeg(red, 95)
    assert out[..., 0].mean() > 0.9 and out[..., 2].mean() < 0.1  # no RGB/BGR swap


# --------------------------------------------------------------------------------------------------
# Downscaling
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscale_bicubic_uint8_equals_pil(image_u8: np.ndarray, scale: int) -> None:
    low = deg.downscale_bicubic(image_u8, scale)
    height, width = image_u8.shape[0] // scale, image_u8.shape[1] // scale
    cropped = image_u8[: height * scale, : width * scale]
    expected = np.asarray(Image.fromarray(cropped).resize((width, height), Image.BICUBIC))
    assert low.dtype == np.uint8
    np.testing.assert_array_equal(low, expected)


@pytest.mark.parametrize("scale", [2, 4])
def test_downscale_bicubic_float_is_close_to_uint8(image_u8: np.ndarray, image_float: np.ndarray, scale: int) -> None:
    low = deg.downscale_bicubic(image_float, scale)
    assert low.dtype == np.float32 and low.shape == (37 // scale, 43 // scale, 3)
    assert 0.0 <= low.min() and low.max() <= 1.0
    # Pillow's 8-bit path rounds between its horizontal and vertical passes: at most ~1 level apart
    np.testing.assert_allclose(low * 255.0, deg.downscale_bicubic(image_u8, scale).astype(np.float32), atol=1.01)


def test_random_downscale_blur_option(image_float: np.ndarray) -> None:
    sharp = deg.random_downscale(image_float, 2, np.random.default_rng(0), blur_probability=0.0)
    np.testing.assert_array_equal(sharp, deg.quantize_to_8bit(deg.downscale_bicubic(image_float, 2)))
    soft = deg.random_downscale(image_float, 2, np.random.default_rng(0), blur_probability=1.0)
    assert soft.shape == sharp.shape and not np.array_equal(soft, sharp)


def test_crop_to_multiple() -> None:
    image = np.zeros((10, 13, 3))
    assert deg.crop_to_multiple(image, 4).shape == (8, 12, 3)
    with pytest.raises(ValueError, match="smaller"):
        deg.crop_to_multiple(np.zeros((3, 8, 3)), 4)


# --------------------------------------------------------------------------------------------------
# Evaluation protocol
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [15, 25, 50])
@pytest.mark.parametrize("index", [0, 3, 67])
def test_protocol_gaussian_noise_equals_reference(image_u8: np.ndarray, sigma: int, index: int) -> None:
    out = deg.protocol_gaussian_noise(image_u8, sigma, index)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, reference_add_gaussian_noise(image_u8, sigma, index))


def test_protocol_gaussian_noise_validation(image_u8: np.ndarray) -> None:
    with pytest.raises(TypeError, match="uint8"):
        deg.protocol_gaussian_noise(image_u8.astype(np.float32), 25, 0)
    with pytest.raises(ValueError, match="integer"):
        deg.protocol_gaussian_noise(image_u8, 25.5, 0)
    expected = reference_add_gaussian_noise(image_u8, 25, 1)
    np.testing.assert_array_equal(deg.protocol_gaussian_noise(image_u8, 25.0, 1), expected)


@pytest.mark.parametrize("index", [0, 1, 42])
def test_protocol_blur_equals_reference(image_u8: np.ndarray, index: int) -> None:
    degraded, kernel = deg.protocol_blur(image_u8, index)
    expected_degraded, expected_kernel = reference_blur_and_noise(image_u8, index)
    assert degraded.dtype == np.uint8 and kernel.shape == (21, 21)
    np.testing.assert_array_equal(kernel, expected_kernel)
    np.testing.assert_array_equal(degraded, expected_degraded)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_protocol_bicubic_lr_equals_reference(image_u8: np.ndarray, scale: int) -> None:
    hr, lr = deg.protocol_bicubic_lr(image_u8, scale)
    expected_hr, expected_lr = reference_bicubic_lr(image_u8, scale)
    np.testing.assert_array_equal(hr, expected_hr)
    np.testing.assert_array_equal(lr, expected_lr)
    assert lr.shape == (image_u8.shape[0] // scale, image_u8.shape[1] // scale, 3)


def test_all_is_sorted_and_complete() -> None:
    assert deg.__all__ == sorted(deg.__all__)
    assert all(hasattr(deg, name) for name in deg.__all__)


def test_random_motion_kernel_is_a_normalised_path_of_the_drawn_length():
    from hfpie.training.degradations import random_motion_kernel

    rng = np.random.default_rng(3)
    for _ in range(5):
        kernel = random_motion_kernel(rng, size=25, length_range=(10.0, 12.0))
        assert kernel.shape == (25, 25) and kernel.min() >= 0
        assert abs(kernel.sum() - 1.0) < 1e-9
        rows, cols = np.nonzero(kernel > kernel.max() * 0.05)
        extent = max(np.ptp(rows), np.ptp(cols))
        assert 8 <= extent <= 16, extent  # the path's extent (plus a pixel or two of thickening)
    with pytest.raises(ValueError, match="odd"):
        random_motion_kernel(rng, size=24)


def test_deblur_degradation_mixes_motion_kernels_when_asked():
    from hfpie.training.degradations import make_degradation

    clean = np.zeros((48, 48, 3), np.float32)
    clean[24, 24] = 1.0  # a point: the output shows the kernel
    gaussian = make_degradation("deblur", noise_sigma_range=(0.0, 0.0))
    motion = make_degradation("deblur", noise_sigma_range=(0.0, 0.0), motion_probability=1.0)
    assert gaussian(clean, np.random.default_rng(0)).shape == motion(clean, np.random.default_rng(0)).shape
    with pytest.raises(ValueError):
        make_degradation("deblur", motion_probability=1.5)


def test_real_noise_can_leave_some_samples_clean() -> None:
    clean = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32)
    always = deg.RealNoiseDegradation(clean_probability=1.0)
    np.testing.assert_array_equal(always(clean, np.random.default_rng(1)), deg.quantize_to_8bit(clean))
    never = deg.RealNoiseDegradation()
    assert np.abs(never(clean, np.random.default_rng(1)) - clean).mean() > 1 / 255
    mixed = deg.RealNoiseDegradation(clean_probability=0.5)
    rng = np.random.default_rng(2)
    untouched = [np.array_equal(mixed(clean, rng), deg.quantize_to_8bit(clean)) for _ in range(200)]
    assert 70 < sum(untouched) < 130
    with pytest.raises(ValueError, match="clean_probability"):
        deg.RealNoiseDegradation(clean_probability=1.5)
