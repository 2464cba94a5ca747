"""Tests of hfpie.training.batched_degradations against the NumPy reference, hfpie.training.degradations."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from hfpie.training import batched_degradations as bd
from hfpie.training import degradations as deg


def synthetic_images(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(count, H, W, 3)`` uint8 images like photos: smooth waves, flat shapes with edges, mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    images = np.empty((count, height, width, 3))
    for image in images:
        image[:] = 0.5
        for channel in range(3):
            for _ in range(4):
                fy, fx, phase = rng.uniform(0.02, 0.4), rng.uniform(0.02, 0.4), rng.uniform(0, 2 * np.pi)
                image[..., channel] += rng.uniform(0.05, 0.2) * np.sin(fy * yy + fx * xx + phase)
        for _ in range(5):
            top, left = rng.integers(0, height - 4), rng.integers(0, width - 4)
            image[top : top + rng.integers(3, height // 2), left : left + rng.integers(3, width // 2)] += rng.uniform(
                -0.3, 0.3, 3
            )
        image += 0.02 * rng.standard_normal(image.shape)
    return np.clip(np.round(images * 255), 0, 255).astype(np.uint8)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def to_numpy(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def on_8bit_grid(images: torch.Tensor) -> bool:
    return bool(torch.allclose(images * 255, torch.round(images * 255), atol=1e-3))


def spread(kernel: np.ndarray) -> float:
    """Root mean square distance of a kernel's mass from its centroid, in pixels."""
    kernel = np.asarray(kernel, np.float64)
    y, x = np.mgrid[: kernel.shape[0], : kernel.shape[1]]
    cy, cx = (kernel * y).sum(), (kernel * x).sum()
    return float(np.sqrt((kernel * ((y - cy) ** 2 + (x - cx) ** 2)).sum()))


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------------------


def test_gaussian_noise_has_the_standard_deviation_of_each_sample_like_the_reference() -> None:
    sigmas = torch.tensor([2.0, 15.0, 25.0, 50.0])
    clean = torch.full((4, 3, 64, 64), 0.5)
    noisy = bd.add_gaussian_noise(clean, sigmas, generator())
    assert noisy.shape == clean.shape and noisy.dtype == torch.float32 and on_8bit_grid(noisy)
    measured = ((noisy - clean) * 255).flatten(1).std(dim=1)
    for sigma, value in zip(sigmas.tolist(), measured.tolist()):
        reference = deg.add_gaussian_noise(np.full((64, 64, 3), 0.5, np.float32), sigma, np.random.default_rng(0))
        reference_std = float(np.std((reference - 0.5) * 255))
        expected = math.sqrt(sigma**2 + 1 / 12)  # rounding to 8 bits adds 1/12 level^2
        assert value == pytest.approx(expected, rel=0.03)
        assert value == pytest.approx(reference_std, rel=0.04)


def test_gaussian_noise_clips_and_can_skip_quantization() -> None:
    clean = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 16, 16).contiguous()
    noisy = bd.add_gaussian_noise(clean, torch.tensor([30.0, 30.0]), generator(), quantize=False)
    assert noisy.min() >= 0 and noisy.max() <= 1 and not on_8bit_grid(noisy)
    assert (noisy[0] > 0).float().mean() == pytest.approx(0.5, abs=0.08)  # half the noise is clipped away


def test_denoise_draws_sigma_uniformly_per_sample() -> None:
    clean = torch.full((256, 3, 16, 16), 0.5)
    noisy = bd.degrade_batch(deg.DenoiseDegradation(sigma_range=(10.0, 30.0)), clean, generator())
    measured = ((noisy - clean) * 255).flatten(1).std(dim=1)
    assert measured.min() > 8.5 and measured.max() < 33
    assert measured.mean() == pytest.approx(20.0, abs=1.0)
    assert (measured < 15).float().mean() == pytest.approx(0.25, abs=0.08)


def test_poisson_gaussian_noise_matches_the_reference_per_intensity() -> None:
    levels = torch.tensor([0.1, 0.5, 0.9])
    clean = levels.view(3, 1, 1, 1).expand(3, 3, 64, 64).contiguous()
    shot, read = 4e-3, 1e-2
    noisy = bd.add_poisson_gaussian_noise(clean, torch.full((3,), shot), torch.full((3,), read), generator())
    for index, level in enumerate(levels.tolist()):
        reference = deg.add_poisson_gaussian_noise(
            np.full((64, 64, 3), level, np.float32), shot, read, np.random.default_rng(index), quantize=False
        )
        assert float(noisy[index].std()) == pytest.approx(float(reference.std()), rel=0.05)
        assert float(noisy[index].mean()) == pytest.approx(float(reference.mean()), abs=2e-3)


def test_real_noise_leaves_the_clean_share_untouched() -> None:
    clean = to_tensor(synthetic_images(400, 8, 8))
    degradation = deg.RealNoiseDegradation(clean_probability=0.3)
    noisy = bd.degrade_batch(degradation, clean, generator())
    untouched = (noisy == clean).flatten(1).all(dim=1).float().mean().item()
    assert untouched == pytest.approx(0.3, abs=0.07)
    assert on_8bit_grid(noisy)
    never_clean = bd.degrade_batch(deg.RealNoiseDegradation(), clean, generator())
    assert (never_clean == clean).flatten(1).all(dim=1).sum() == 0


def _neighbour_correlation(noise: np.ndarray) -> float:
    """Correlation of horizontally adjacent values of ``(..., H, W)`` noise."""
    left, right = noise[..., :, :-1].ravel(), noise[..., :, 1:].ravel()
    return float(np.corrcoef(left, right)[0, 1])


def test_demosaiced_noise_is_correlated_and_the_same_in_both_pipelines() -> None:
    rng = np.random.default_rng(0)
    white = rng.standard_normal((64, 64, 3)).astype(np.float32)
    reference = deg.demosaic_noise(white)
    batched = bd.demosaic_noise(torch.from_numpy(white).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(batched, reference, atol=1e-5)  # same kernels, same borders
    np.testing.assert_array_equal(reference * deg.bayer_masks(64, 64), white * deg.bayer_masks(64, 64))  # samples kept
    assert abs(_neighbour_correlation(white.transpose(2, 0, 1))) < 0.05
    assert _neighbour_correlation(reference.transpose(2, 0, 1)) > 0.3


def test_real_noise_demosaic_share() -> None:
    clean = torch.full((200, 3, 16, 16), 0.5)
    degradation = deg.RealNoiseDegradation(shot_noise_range=(1e-2, 1e-2), read_noise_range=(2e-2, 2e-2),
                                           jpeg_probability=0.0, demosaic_probability=1.0)
    correlated = bd.degrade_batch(degradation, clean, generator()) - clean
    white = bd.degrade_batch(dataclasses.replace(degradation, demosaic_probability=0.0), clean, generator()) - clean
    assert _neighbour_correlation(correlated.numpy()) > 0.3 > 0.05 > abs(_neighbour_correlation(white.numpy()))
    reference = np.stack([degradation(np.full((16, 16, 3), 0.5, np.float32), np.random.default_rng(i)) - 0.5
                          for i in range(50)])
    assert _neighbour_correlation(reference.transpose(0, 3, 1, 2)) == pytest.approx(
        _neighbour_correlation(correlated.numpy()), abs=0.08)
    assert float(reference.std()) == pytest.approx(float(correlated.std()), rel=0.1)
    # 0 draws nothing more: noise levels, then the noise field, as before the option existed
    image = np.full((16, 16, 3), 0.4, np.float32)
    rng = np.random.default_rng(3)
    shot = math.exp(rng.uniform(math.log(1e-4), math.log(1e-2)))
    read = math.exp(rng.uniform(math.log(1e-3), math.log(2e-2)))
    by_hand = deg.add_poisson_gaussian_noise(image, shot, read, rng)
    np.testing.assert_array_equal(deg.random_real_noise(image, np.random.default_rng(3), jpeg_probability=0.0), by_hand)


def test_real_noise_jpeg_share() -> None:
    clean = to_tensor(synthetic_images(300, 16, 16))
    noiseless = deg.RealNoiseDegradation(shot_noise_range=(1e-9, 1e-9), read_noise_range=(1e-9, 1e-9),
                                         jpeg_probability=0.0)
    assert torch.equal(bd.degrade_batch(noiseless, clean, generator()), clean)  # the 8-bit image itself
    compressed = bd.degrade_batch(dataclasses.replace(noiseless, jpeg_probability=0.4), clean, generator())
    assert (compressed != clean).flatten(1).any(dim=1).float().mean() == pytest.approx(0.4, abs=0.08)


# --------------------------------------------------------------------------------------------------
# Blur
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sigma_x", "sigma_y", "angle", "radius"), [(0.6, 0.6, 0.0, 3), (2.5, 1.1, 1.0, 10), (1.3, 2.9, 2.5, 5)]
)
def test_gaussian_kernels_equal_the_reference(sigma_x: float, sigma_y: float, angle: float, radius: int) -> None:
    kernel = bd.gaussian_kernels(
        torch.tensor([sigma_x]), torch.tensor([sigma_y]), torch.tensor([angle]), torch.tensor([radius]), 21
    )[0]
    reference = np.pad(deg.gaussian_kernel(2 * radius + 1, sigma_x, sigma_y, angle), 10 - radius)
    np.testing.assert_allclose(kernel.numpy(), reference, atol=1e-6)


def test_add_blur_equals_the_reference_with_reflected_borders() -> None:
    images = synthetic_images(3, 37, 43).astype(np.float32) / 255
    motion = bd.random_motion_kernels(1, generator(2))[:, 2:-2, 2:-2]  # cropped to 21x21 to stack
    kernels = torch.cat([bd.random_blur_kernels(2, generator(1)), motion])
    blurred = to_numpy(bd.add_blur(torch.from_numpy(images).permute(0, 3, 1, 2), kernels))
    for image, kernel, result in zip(images, kernels, blurred):
        np.testing.assert_allclose(result, deg.add_blur(image, kernel.double().numpy()), atol=1e-5)


def test_add_blur_errors() -> None:
    with pytest.raises(ValueError, match="too large for 8x8 images"):
        bd.add_blur(torch.rand(1, 3, 8, 8), torch.ones(1, 21, 21) / 441)
    with pytest.raises(ValueError, match=r"shape \(B, k, k\)"):
        bd.add_blur(torch.rand(2, 3, 16, 16), torch.ones(1, 5, 5))


def test_random_blur_kernels_match_the_reference_distribution() -> None:
    kernels = bd.random_blur_kernels(2000, generator())
    assert kernels.shape == (2000, 21, 21) and kernels.min() >= 0
    torch.testing.assert_close(kernels.sum(dim=(1, 2)), torch.ones(2000))
    wide = bd.random_blur_kernels(2000, generator(), sigma_range=(3.0, 3.0))  # no value underflows to 0
    sides = (wide > 0).any(dim=1).sum(dim=1)
    assert set(sides.tolist()) == set(range(7, 22, 2))
    assert torch.bincount(sides).max() < 2000 / 8 * 1.25  # sides 7, 9, ..., 21 equally often
    isotropic = torch.isclose(kernels, kernels.transpose(1, 2), atol=1e-7).flatten(1).all(dim=1).float().mean()
    assert isotropic == pytest.approx(0.5, abs=0.05)
    rng = np.random.default_rng(0)
    reference = [spread(deg.random_blur_kernel(rng)) for _ in range(2000)]
    tensor = [spread(kernel) for kernel in kernels.numpy()]
    assert np.mean(tensor) == pytest.approx(np.mean(reference), rel=0.03)
    np.testing.assert_allclose(np.percentile(tensor, [10, 50, 90]), np.percentile(reference, [10, 50, 90]), rtol=0.06)


def test_random_motion_kernels_match_the_reference_distribution() -> None:
    kernels = bd.random_motion_kernels(1000, generator())
    assert kernels.shape == (1000, 25, 25) and kernels.min() >= 0
    torch.testing.assert_close(kernels.sum(dim=(1, 2)), torch.ones(1000))
    rng = np.random.default_rng(0)
    reference = [spread(deg.random_motion_kernel(rng)) for _ in range(1000)]
    tensor = [spread(kernel) for kernel in kernels.numpy()]
    assert np.mean(tensor) == pytest.approx(np.mean(reference), rel=0.05)
    np.testing.assert_allclose(np.percentile(tensor, [10, 50, 90]), np.percentile(reference, [10, 50, 90]), rtol=0.08)
    short = bd.random_motion_kernels(200, generator(), length_range=(4.0, 4.0))
    long = bd.random_motion_kernels(200, generator(), length_range=(20.0, 20.0))
    assert max(spread(kernel) for kernel in short.numpy()) < min(spread(kernel) for kernel in long.numpy())


def test_deblur_with_fixed_parameters_equals_the_reference() -> None:
    images = synthetic_images(4, 32, 40)
    fixed = deg.DeblurDegradation(kernel_size_range=(13, 13), kernel_sigma_range=(2.0, 2.0),
                                  isotropic_probability=1.0, noise_sigma_range=(0.0, 0.0))
    degraded = to_numpy(bd.degrade_batch(fixed, to_tensor(images), generator()))
    for image, result in zip(images, degraded):
        reference = fixed(image.astype(np.float32) / 255, np.random.default_rng(0))
        assert np.abs(result - reference).max() <= 1 / 255 + 1e-6  # a half-level tie may round either way
        assert np.mean(np.round(result * 255) == np.round(reference * 255)) > 0.99


# --------------------------------------------------------------------------------------------------
# Bicubic downscaling
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscale_bicubic_matches_pillow(scale: int) -> None:
    images = synthetic_images(4, 60, 72)
    small = bd.quantize_to_8bit(bd.downscale_bicubic(to_tensor(images), scale))
    assert small.shape == (4, 3, 60 // scale, 72 // scale)
    for image, result in zip(images, to_numpy(small)):
        levels = np.round(result * 255).astype(int)
        protocol = deg.downscale_bicubic(image, scale).astype(int)  # Pillow uint8: the evaluation protocol
        training = deg.quantize_to_8bit(deg.downscale_bicubic(image.astype(np.float32) / 255, scale))  # Pillow "F"
        assert np.abs(levels - protocol).max() <= 1 and np.mean(levels == protocol) > 0.99
        assert psnr(result, protocol / 255.0) > 60.0  # measured on real images: 67-84 dB
        assert psnr(result, training) > 50.0  # the NumPy reference skips Pillow's rounding between passes


def test_super_resolution_without_blur_is_the_protocols_bicubic() -> None:
    images = synthetic_images(3, 48, 48)
    degraded = to_numpy(bd.degrade_batch(deg.SuperResolutionDegradation(scale=4), to_tensor(images), generator()))
    for image, result in zip(images, degraded):
        _, protocol = deg.protocol_bicubic_lr(image, 4)
        assert result.shape == protocol.shape == (12, 12, 3)
        assert np.abs(np.round(result * 255) - protocol).max() <= 1


def test_super_resolution_pre_blur_softens_a_share() -> None:
    images = to_tensor(synthetic_images(200, 16, 16))
    plain = bd.degrade_batch(deg.SuperResolutionDegradation(scale=2), images, generator())
    pre_blur = deg.SuperResolutionDegradation(scale=2, blur_probability=0.5, blur_sigma_range=(0.6, 0.8))
    blurred = bd.degrade_batch(pre_blur, images, generator())
    changed = (plain != blurred).flatten(1).any(dim=1).float().mean()
    assert changed == pytest.approx(0.5, abs=0.1)


def test_downscale_bicubic_errors() -> None:
    with pytest.raises(ValueError, match="not a multiple of scale 4"):
        bd.downscale_bicubic(torch.rand(1, 3, 30, 32), 4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        bd.downscale_bicubic(torch.rand(3, 32, 32), 2)


# --------------------------------------------------------------------------------------------------
# JPEG
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(40, 56), (33, 45)])
@pytest.mark.parametrize("quality", [10, 30, 60, 90, 100])
def test_add_jpeg_is_close_to_opencv(size: tuple[int, int], quality: int) -> None:
    images = synthetic_images(6, *size, seed=quality)
    compressed = bd.add_jpeg(to_tensor(images), torch.full((6,), quality))
    assert compressed.shape == (6, 3, *size) and on_8bit_grid(compressed)
    to_tensor_jpeg = [psnr(result, deg.add_jpeg(image, quality)) for image, result in zip(images, to_numpy(compressed))]
    jpeg_error = [psnr(image / 255.0, deg.add_jpeg(image, quality)) for image in images]
    # measured on these images: 54-61 dB (mean); JPEG itself changes them by 21-30 dB
    assert np.mean(to_tensor_jpeg) > 45.0
    assert np.mean(to_tensor_jpeg) > np.mean(jpeg_error) + 15.0


def test_add_jpeg_quality_per_sample() -> None:
    images = to_tensor(np.repeat(synthetic_images(1, 32, 32), 3, axis=0))
    compressed = bd.add_jpeg(images, torch.tensor([10, 50, 95]))
    errors = [psnr(result, images[0].permute(1, 2, 0).numpy()) for result in to_numpy(compressed)]
    assert errors[0] < errors[1] < errors[2]
    luma, chroma = bd.jpeg_quantization_tables(torch.tensor([50, 100]))
    assert luma[0, 0, 0] == 16 and chroma[0, 0, 0] == 17 and luma[1].max() == 1 and chroma[1].max() == 1


# --------------------------------------------------------------------------------------------------
# degrade_batch
# --------------------------------------------------------------------------------------------------


CASES = {  # name: (degradation, scale, whether it is random)
    "denoise": (deg.make_degradation("denoise"), 1, True),
    "denoise-real": (deg.make_degradation("denoise-real", clean_probability=0.25), 1, True),
    "deblur": (deg.make_degradation("deblur", motion_probability=0.5, jpeg_probability=0.5), 1, True),
    "sr-x2-blur": (deg.make_degradation("sr", scale=2, blur_probability=0.5), 2, True),
    "sr-x4": (deg.make_degradation("sr", scale=4), 4, False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_degrade_batch_shapes_range_grid_and_determinism(name: str) -> None:
    degradation, scale, random = CASES[name]
    clean = to_tensor(synthetic_images(6, 32, 32))
    degraded = bd.degrade_batch(degradation, clean, generator(7))
    assert degraded.shape == (6, 3, 32 // scale, 32 // scale) and degraded.dtype == torch.float32
    assert degraded.min() >= 0 and degraded.max() <= 1 and on_8bit_grid(degraded)
    assert torch.equal(degraded, bd.degrade_batch(degradation, clean, generator(7)))
    assert torch.equal(degraded, bd.degrade_batch(degradation, clean, generator(8))) is not random


class IdentityDegradation:
    scale = 1

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return clean


def test_degrade_batch_errors() -> None:
    clean = torch.rand(2, 3, 16, 16)
    with pytest.raises(TypeError, match="no batched version of IdentityDegradation"):
        bd.degrade_batch(IdentityDegradation(), clean, generator())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float tensor of shape"):
        bd.degrade_batch(deg.DenoiseDegradation(), (clean * 255).to(torch.uint8), generator())
    with pytest.raises(ValueError, match="not a multiple of scale 3"):
        bd.degrade_batch(deg.SuperResolutionDegradation(scale=3), clean, generator())


def test_all_is_sorted() -> None:
    assert bd.__all__ == sorted(bd.__all__)
    assert all(callable(getattr(bd, name)) for name in bd.__all__)
