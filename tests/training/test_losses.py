"""Tests of hfpie.training.losses: pixel losses, gradient magnitude similarity and the GMS masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hfpie.training.losses import (
    DEFAULT_OPENING_SIZE,
    GMS_CONSTANT,
    GMSWeightedL1Loss,
    GradientMagnitudeSimilarity,
    HardGMSMask,
    L1Loss,
    SoftGMSMask,
    charbonnier_loss,
    dilate,
    erode,
    gaussian_blur,
    gms_map,
    gms_weighted_l1_loss,
    hard_gms_mask,
    l1_loss,
    masked_loss,
    open_morphologically,
    prewitt_gradient_magnitude,
    rgb_to_luma,
    soft_gms_mask,
)



def make_step_edge(size: int = 24, column: int = 12, low: float = 0.2, high: float = 0.8) -> torch.Tensor:
    """An RGB image with a vertical step edge between columns ``column - 1`` and ``column``."""
    image = torch.full((1, 3, size, size), low)
    image[..., column:] = high
    return image


# --------------------------------------------------------------------------------------------------
# Pixel losses


def test_l1_loss_without_mask_is_mean_absolute_error():
    generator = torch.Generator().manual_seed(0)
    output, target = torch.rand(2, 3, 8, 8, generator=generator), torch.rand(2, 3, 8, 8, generator=generator)
    assert torch.allclose(l1_loss(output, target), (output - target).abs().mean())
    assert torch.allclose(L1Loss()(output, target), F.l1_loss(output, target))


def test_l1_loss_with_mask_multiplies_both_images():
    generator = torch.Generator().manual_seed(1)
    output, target = torch.rand(2, 3, 8, 8, generator=generator), torch.rand(2, 3, 8, 8, generator=generator)
    mask = torch.rand(2, 1, 8, 8, generator=generator)
    expected = (mask * output - mask * target).abs().mean()
    assert torch.allclose(l1_loss(output, target, mask), expected)
    assert torch.allclose(masked_loss(output, target, mask, base="mse"), ((mask * (output - target)) ** 2).mean())
    assert l1_loss(output, target, torch.zeros_like(mask)) == 0


def test_charbonnier_loss_is_close_to_l1_for_large_errors():
    output, target = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    assert math.isclose(charbonnier_loss(output, target).item(), math.sqrt(1 + 1e-6), rel_tol=1e-6)


def test_pixel_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        l1_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 7))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        l1_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="base"):
        masked_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), None, base="huber")


# --------------------------------------------------------------------------------------------------
# Gradient magnitude and GMS


def test_rgb_to_luma_uses_bt601_weights():
    image = torch.zeros(1, 3, 2, 2)
    image[:, 0], image[:, 1], image[:, 2] = 1.0, 0.5, 0.25
    expected = 0.299 + 0.587 * 0.5 + 0.114 * 0.25
    assert torch.allclose(rgb_to_luma(image), torch.full((1, 1, 2, 2), expected))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        rgb_to_luma(torch.zeros(1, 2, 4, 4))


def test_prewitt_magnitude_of_a_step_is_the_step_height_next_to_it():
    gray = rgb_to_luma(make_step_edge(low=0.2, high=0.8))
    magnitude = prewitt_gradient_magnitude(gray)[0, 0]
    assert torch.allclose(magnitude[:, 11:13], torch.full((24, 2), 0.6), atol=1e-6)
    assert magnitude[:, :11].abs().max() < 1e-6 and magnitude[:, 13:].abs().max() < 1e-6
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        prewitt_gradient_magnitude(torch.zeros(1, 3, 4, 4))


def test_gms_of_identical_images_is_one_and_masks_are_empty():
    generator = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 16, 16, generator=generator)
    assert torch.allclose(gms_map(image, image), torch.ones(2, 1, 16, 16))
    assert hard_gms_mask(image, image).abs().max() == 0
    assert soft_gms_mask(image, image).abs().max() == 0


def test_gms_value_matches_a_hand_computation():
    rows = [
        [0.1, 0.2, 0.3, 0.4, 0.5],
        [0.0, 0.3, 0.6, 0.2, 0.9],
        [0.5, 0.1, 0.8, 0.7, 0.2],
        [0.4, 0.4, 0.0, 1.0, 0.6],
        [0.3, 0.9, 0.2, 0.1, 0.5],
    ]
    target = torch.tensor(rows).view(1, 1, 5, 5)
    output = target.clone()
    output[0, 0, 1, 1] = 0.9  # perturb a neighbour of the centre pixel
    c = 0.01

    def magnitude_at_centre(values: torch.Tensor) -> float:
        x = values[0, 0].tolist()
        # hx = [[1, 0, -1]] * 3 / 3 applied as cross-correlation around (2, 2).
        gx = sum(x[r][1] - x[r][3] for r in (1, 2, 3)) / 3
        gy = sum(x[1][col] - x[3][col] for col in (1, 2, 3)) / 3
        return math.sqrt(gx**2 + gy**2)

    m_r, m_d = magnitude_at_centre(target), magnitude_at_centre(output)
    expected = (2 * m_r * m_d + c) / (m_r**2 + m_d**2 + c)
    assert math.isclose(gms_map(output, target, c=c)[0, 0, 2, 2].item(), expected, rel_tol=1e-5)
    assert expected < 0.99  # the perturbation is visible at the centre


def test_gms_constant_scales_with_the_square_of_the_intensity_range():
    generator = torch.Generator().manual_seed(3)
    target = torch.rand(1, 3, 16, 16, generator=generator)
    output = (target + 0.1 * torch.randn(1, 3, 16, 16, generator=generator)).clamp(0, 1)
    unit_range = gms_map(output, target, c=170 / 255**2)
    byte_range = gms_map(output * 255, target * 255, c=170)
    assert math.isclose(GMS_CONSTANT, 170 / 255**2)
    assert torch.allclose(unit_range, byte_range, atol=1e-5)
    assert torch.allclose(GradientMagnitudeSimilarity()(output, target), unit_range)
    assert (unit_range > 0).all() and (unit_range <= 1 + 1e-6).all()


# --------------------------------------------------------------------------------------------------
# Morphology and masks


def test_hard_mask_marks_a_removed_edge_and_nothing_far_from_it():
    target = make_step_edge(column=12)
    output = torch.full_like(target, 0.5)  # the edge is gone
    mask = hard_gms_mask(output, target)
    assert mask.shape == (1, 1, 24, 24)
    assert (mask[0, 0, :, 11:13] == 1).all()
    assert mask[0, 0, :, :10].abs().max() == 0 and mask[0, 0, :, 14:].abs().max() == 0
    assert torch.equal(HardGMSMask()(output, target), mask)


def test_opening_removes_an_isolated_pixel_and_keeps_a_block():
    for size in (DEFAULT_OPENING_SIZE, 3):
        image = torch.zeros(1, 1, 20, 20)
        image[0, 0, 3, 3] = 1.0
        image[0, 0, 10:15, 10:15] = 1.0
        opened = open_morphologically(image, size)
        expected = torch.zeros_like(image)
        expected[0, 0, 10:15, 10:15] = 1.0
        assert torch.equal(opened, expected), size


def test_even_sized_opening_is_idempotent_and_below_the_input():
    generator = torch.Generator().manual_seed(4)
    maps = (torch.rand(2, 1, 16, 16, generator=generator) > 0.5).float()
    opened = open_morphologically(maps, 2)
    assert (opened <= maps).all()
    assert torch.equal(open_morphologically(opened, 2), opened)
    assert torch.equal(erode(maps, 1), maps) and torch.equal(dilate(maps, 1), maps)


def test_gaussian_blur_preserves_constants_and_range():
    constant = torch.full((1, 2, 9, 9), 0.3)
    assert torch.allclose(gaussian_blur(constant, 5, 1.0), constant)
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(constant, 4, 1.0)


def test_soft_mask_is_smooth_in_range_and_zero_far_from_the_edge():
    target = make_step_edge(size=32, column=16)
    output = torch.full_like(target, 0.5)
    soft = soft_gms_mask(output, target)
    assert soft.shape == (1, 1, 32, 32)
    assert (soft >= 0).all() and (soft <= 1).all()
    assert soft[0, 0, :, :8].abs().max() == 0 and soft[0, 0, :, 24:].abs().max() == 0
    between = (soft > 0.01) & (soft < 0.99)
    assert between.any()
    row = soft[0, 0, 16]
    assert row[15] == row.max() and row[14] < row[15] and row[13] < row[14]  # decays away from the edge
    assert torch.equal(SoftGMSMask()(output, target), soft)
    assert torch.equal(soft_gms_mask(output, target, iterations=0), hard_gms_mask(output, target))


def test_masks_carry_no_gradient():
    target = make_step_edge()
    output = torch.full_like(target, 0.5).requires_grad_(True)
    assert not soft_gms_mask(output, target).requires_grad
    assert not hard_gms_mask(output, target).requires_grad


def test_gms_weighted_l1_adds_the_masked_term_and_passes_gradients():
    target = make_step_edge()
    output = torch.full_like(target, 0.5).requires_grad_(True)
    plain = l1_loss(output, target)
    weighted = gms_weighted_l1_loss(output, target, weight=2.0)
    mask = soft_gms_mask(output, target)
    assert torch.allclose(weighted, plain + 2.0 * l1_loss(output, target, mask))
    assert weighted > plain
    assert torch.allclose(gms_weighted_l1_loss(output, target, weight=0.0), plain)
    assert torch.allclose(GMSWeightedL1Loss(weight=2.0)(output, target), weighted)
    weighted.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
