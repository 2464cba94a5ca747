"""Tests of hfpie.training.batched: crops, flips and rotations on the device, seeding, the dataset bridge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from hfpie.training.batched import DevicePatchBatches
from hfpie.training.datasets import PairedPatchDataset, flip_rotate
from hfpie.training.degradations import make_degradation

PATCH = 4


def random_image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.fixture
def images() -> list[np.ndarray]:
    """Two noise images (every 4x4 patch unique): 24x24 (area 576) and 12x12 (area 144)."""
    return [random_image(0, 24, 24), random_image(1, 12, 12)]


def patch_origins(images: list[np.ndarray]) -> dict[bytes, tuple[int, int]]:
    """Every flipped/rotated PATCH x PATCH crop of the images, mapped to (image index, flip/rotation code)."""
    origins = {}
    for image_index, image in enumerate(images):
        windows = sliding_window_view(image, (PATCH, PATCH), axis=(0, 1)).transpose(0, 1, 3, 4, 2)
        for crop in windows.reshape(-1, PATCH, PATCH, 3):
            for code in range(8):
                origins[np.ascontiguousarray(flip_rotate(crop, code)).tobytes()] = (image_index, code)
    return origins


def as_uint8(patches: torch.Tensor) -> np.ndarray:
    return np.round(patches.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)


def test_patches_are_flipped_and_rotated_crops_drawn_by_area(images: list[np.ndarray]) -> None:
    batches = DevicePatchBatches(images, make_degradation("denoise"), PATCH, seed=3)
    patches = batches.clean_patches(2000, batches.generator(0))
    assert patches.shape == (2000, 3, PATCH, PATCH) and patches.dtype == torch.float32
    origins = patch_origins(images)
    found = [origins.get(patch.tobytes()) for patch in as_uint8(patches)]
    assert None not in found, "every patch is a crop of an image, flipped and rotated"
    image_index, code = np.array(found).T
    assert np.mean(image_index == 0) == pytest.approx(576 / 720, abs=0.03)
    assert np.bincount(code, minlength=8) == pytest.approx(np.full(8, 250), abs=60)


def test_uniform_weighting_and_no_augmentation(images: list[np.ndarray]) -> None:
    batches = DevicePatchBatches(images, make_degradation("denoise"), PATCH, weighting="uniform", augment=False)
    patches = batches.clean_patches(1000, batches.generator(0))
    origins = patch_origins(images)
    image_index, code = np.array([origins[patch.tobytes()] for patch in as_uint8(patches)]).T
    assert np.mean(image_index == 0) == pytest.approx(0.5, abs=0.05)
    assert set(code) == {0}


def test_crops_reach_every_position() -> None:
    image = random_image(2, 6, 9)
    batches = DevicePatchBatches([image], make_degradation("denoise"), PATCH, augment=False)
    patches = as_uint8(batches.clean_patches(600, batches.generator(0)))
    windows = sliding_window_view(image, (PATCH, PATCH), axis=(0, 1)).transpose(0, 1, 3, 4, 2)
    positions = {
        np.ascontiguousarray(windows[top, left]).tobytes(): (top, left)
        for top in range(windows.shape[0])
        for left in range(windows.shape[1])
    }
    seen = {positions[patch.tobytes()] for patch in patches}
    assert seen == set(positions.values())  # first and last rows and columns included


def test_batches_are_a_pure_function_of_seed_and_block(images: list[np.ndarray]) -> None:
    degradation = make_degradation("sr", scale=2)
    batches = DevicePatchBatches(images, degradation, 8, seed=5)
    degraded, clean = batches.batch(3, 6)
    assert degraded.shape == (6, 3, 4, 4) and clean.shape == (6, 3, 8, 8)
    assert degraded.device == clean.device == torch.device("cpu")
    again = DevicePatchBatches(images, degradation, 8, seed=5).batch(3, 6)
    assert torch.equal(again[0], degraded) and torch.equal(again[1], clean)
    assert not torch.equal(batches.batch(4, 6)[1], clean)
    assert not torch.equal(DevicePatchBatches(images, degradation, 8, seed=6).batch(3, 6)[1], clean)


def test_steps_follow_the_trainers_block_layout(images: list[np.ndarray]) -> None:
    batches = DevicePatchBatches(images, make_degradation("denoise"), 8)
    rank_one = list(batches.steps(2, 5, 3, rank=1, world_size=2))
    assert len(rank_one) == 3
    for step, (degraded, clean) in zip(range(2, 5), rank_one):
        expected = batches.batch(step * 2 + 1, 3)
        assert torch.equal(degraded, expected[0]) and torch.equal(clean, expected[1])
    repeated = list(batches.steps(4, 7, 3, repeat_first=True))
    assert all(torch.equal(clean, batches.batch(0, 3)[1]) for _, clean in repeated)


def test_from_dataset_uses_the_datasets_images_and_settings(tmp_path: Path) -> None:
    Image.fromarray(random_image(0, 20, 30)).save(tmp_path / "a.png")
    Image.fromarray(random_image(1, 16, 16)).save(tmp_path / "b.png")
    Image.fromarray(random_image(2, 6, 6)).save(tmp_path / "too_small.png")
    dataset = PairedPatchDataset(tmp_path, make_degradation("denoise"), 8, seed=4, weighting="uniform")
    batches = DevicePatchBatches.from_dataset(dataset, "cpu")
    assert (batches.patch_size, batches.seed, batches.degradation) == (8, 4, dataset.degradation)
    direct = DevicePatchBatches([dataset.image(0), dataset.image(1)], dataset.degradation, 8, seed=4,
                                weighting="uniform")
    assert torch.equal(batches.batch(0, 5)[1], direct.batch(0, 5)[1])


def test_constructor_errors(images: list[np.ndarray]) -> None:
    denoise = make_degradation("denoise")
    with pytest.raises(ValueError, match="no images given"):
        DevicePatchBatches([], denoise, 8)
    with pytest.raises(ValueError, match="smaller than patch_size 16; leave it out"):
        DevicePatchBatches(images, denoise, 16)
    with pytest.raises(ValueError, match="multiple of the degradation's scale 4"):
        DevicePatchBatches(images, make_degradation("sr", scale=4), 10)
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\) array"):
        DevicePatchBatches([images[0].astype(np.float32)], denoise, 8)
    with pytest.raises(ValueError, match="weighting"):
        DevicePatchBatches(images, denoise, 8, weighting="size")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block must be a non-negative integer"):
        DevicePatchBatches(images, denoise, 8).batch(-1, 4)
