"""Tests of hfpie.training.datasets on temporary folders of tiny generated images."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hfpie.errors import ImageReadError
from hfpie.training import datasets as ds
from hfpie.training.degradations import (
    make_degradation,
    protocol_bicubic_lr,
    protocol_blur,
    protocol_gaussian_noise,
)


class IdentityDegradation:
    """Returns the clean patch: isolates cropping and augmentation."""

    scale = 1

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return clean


def random_image(seed: int, height: int, width: int, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "train"
    (folder / "nested").mkdir(parents=True)
    Image.fromarray(random_image(0, 48, 64)).save(folder / "a.png")
    Image.fromarray(random_image(1, 40, 40)).save(folder / "nested" / "b.PNG")
    Image.fromarray(random_image(2, 36, 52, channels=1)).save(folder / "c_grey.png")
    Image.fromarray(random_image(3, 64, 48)).save(folder / "d.jpg", quality=95)
    Image.fromarray(random_image(4, 12, 12)).save(folder / "e_tiny.bmp")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_list_images_recursive_sorted(image_folder: Path) -> None:
    names = [path.relative_to(image_folder).as_posix() for path in ds.list_images(image_folder)]
    assert names == ["a.png", "c_grey.png", "d.jpg", "e_tiny.bmp", "nested/b.PNG"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ds.list_images(image_folder / "missing")


def test_read_image_converts_to_rgb_uint8(image_folder: Path, tmp_path: Path) -> None:
    grey = ds.read_image(image_folder / "c_grey.png")
    assert grey.shape == (36, 52, 3) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    np.testing.assert_array_equal(grey[..., 0], random_image(2, 36, 52, channels=1))
    assert ds.read_image(image_folder / "a.png", downscale=2).shape == (24, 32, 3)
    deep = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 257)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(ds.read_image(tmp_path / "deep.png")[..., 1], (deep // 257).astype(np.uint8))
    with pytest.raises(ImageReadError, match="cannot read"):
        ds.read_image(image_folder / "notes.txt")


def test_flip_rotate_is_the_dihedral_group() -> None:
    image = random_image(5, 4, 6)
    variants = [ds.flip_rotate(image, code) for code in range(8)]
    np.testing.assert_array_equal(variants[0], image)
    assert len({variant.tobytes() + bytes(variant.shape) for variant in variants}) == 8
    assert variants[1].shape == (6, 4, 3)
    with pytest.raises(ValueError, match="0..7"):
        ds.flip_rotate(image, 8)


@pytest.mark.parametrize(
    ("task", "options", "patch", "low_side"), [("denoise", {}, 32, 32), ("sr", {"scale": 4}, 32, 8)]
)
def test_items_have_the_right_shapes_and_range(
    image_folder: Path, task: str, options: dict, patch: int, low_side: int
) -> None:
    dataset = ds.PairedPatchDataset(image_folder, make_degradation(task, **options), patch, length=6, seed=3)
    assert len(dataset) == 6
    for index in range(len(dataset)):
        degraded, clean = dataset[index]
        assert degraded.dtype == torch.float32 and clean.dtype == torch.float32
        assert tuple(clean.shape) == (3, patch, patch)
        assert tuple(degraded.shape) == (3, low_side, low_side)
        assert 0.0 <= float(degraded.min()) and float(degraded.max()) <= 1.0
        assert 0.0 <= float(clean.min()) and float(clean.max()) <= 1.0
        assert clean.is_contiguous() and degraded.is_contiguous()
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert tuple(batch[0].shape) == (3, 3, low_side, low_side)


def test_items_are_reproducible_and_depend_on_seed_and_epoch(image_folder: Path) -> None:
    degradation = make_degradation("deblur")
    make = lambda seed: ds.PairedPatchDataset(image_folder, degradation, 24, length=4, seed=seed)  # noqa: E731
    first, again, other = make(0), make(0), make(1)
    for index in range(4):
        for a, b in zip(first[index], again[index]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.equal(first[i][1], other[i][1]) for i in range(4))
    before = [first[i][1] for i in range(4)]
    first.set_epoch(1)
    assert any(not torch.equal(first[i][1], before[i]) for i in range(4))
    again.set_epoch(1)
    torch.testing.assert_close(first[2][0], again[2][0], rtol=0, atol=0)
    first.set_epoch(0)
    torch.testing.assert_close(first[2][1], before[2], rtol=0, atol=0)
    with pytest.raises(ValueError, match="non-negative"):
        first.set_epoch(-1)


def test_items_do_not_depend_on_global_state_or_order(image_folder: Path) -> None:
    dataset = ds.PairedPatchDataset(image_folder, make_degradation("denoise"), 16, length=5, seed=9)
    expected = dataset[3][0]
    np.random.seed(123)
    torch.manual_seed(123)
    _ = [dataset[i] for i in (4, 0, 1)]
    torch.testing.assert_close(dataset[3][0], expected, rtol=0, atol=0)
    copied = pickle.loads(pickle.dumps(dataset))  # what a spawned DataLoader worker receives
    torch.testing.assert_close(copied[3][0], expected, rtol=0, atol=0)


def test_uncached_dataset_gives_the_same_items(image_folder: Path) -> None:
    degradation = make_degradation("sr", scale=2)
    cached = ds.PairedPatchDataset(image_folder, degradation, 16, length=4, seed=2)
    lazy = ds.PairedPatchDataset(image_folder, degradation, 16, length=4, seed=2, cache=False)
    for index in range(4):
        torch.testing.assert_close(cached[index][0], lazy[index][0], rtol=0, atol=0)


def test_flips_and_rotations_occur(tmp_path: Path) -> None:
    image = random_image(6, 8, 8)
    Image.fromarray(image).save(tmp_path / "only.png")
    variants = {ds.flip_rotate(image, code).tobytes(): code for code in range(8)}
    dataset = ds.PairedPatchDataset(tmp_path, IdentityDegradation(), 8, length=48)
    seen = set()
    for index in range(len(dataset)):
        degraded, clean = dataset[index]
        torch.testing.assert_close(degraded, clean)
        patch = np.round(clean.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        assert patch.tobytes() in variants
        seen.add(variants[patch.tobytes()])
    assert len(seen) >= 6
    plain = ds.PairedPatchDataset(tmp_path, IdentityDegradation(), 8, length=8, augment=False)
    for index in range(len(plain)):
        np.testing.assert_array_equal(np.round(plain[index][1].permute(1, 2, 0).numpy() * 255).astype(np.uint8), image)


def test_small_images_are_skipped(image_folder: Path) -> None:
    dataset = ds.PairedPatchDataset(image_folder, make_degradation("denoise"), 40, length=3)
    assert [path.name for path in dataset.skipped_paths] == ["c_grey.png", "e_tiny.bmp"]
    assert [path.name for path in dataset.paths] == ["a.png", "d.jpg", "b.PNG"]
    with pytest.raises(ValueError, match="smaller than patch_size"):
        ds.PairedPatchDataset(image_folder, make_degradation("denoise"), 100)


def test_constructor_errors(image_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of the degradation's scale"):
        ds.PairedPatchDataset(image_folder, make_degradation("sr", scale=3), 32)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        ds.PairedPatchDataset(empty, make_degradation("denoise"), 16)
    with pytest.raises(ValueError, match="weighting"):
        ds.PairedPatchDataset(
            image_folder, make_degradation("denoise"), 16, weighting="random"  # type: ignore[arg-type]
        )
    dataset = ds.PairedPatchDataset(image_folder, make_degradation("denoise"), 16, length=2)
    with pytest.raises(IndexError):
        dataset[2]


def test_default_length_weighting_and_jpeg_downscale(image_folder: Path) -> None:
    dataset = ds.PairedPatchDataset(image_folder, IdentityDegradation(), 16)
    total_area = 48 * 64 + 40 * 40 + 36 * 52 + 64 * 48
    assert len(dataset) == total_area // 256
    halved = ds.PairedPatchDataset(image_folder, IdentityDegradation(), 16, jpeg_downscale=2, weighting="uniform")
    sizes = {path.name: halved.image(i).shape[:2] for i, path in enumerate(halved.paths)}
    assert sizes["d.jpg"] == (32, 24) and sizes["a.png"] == (48, 64)
    # area weighting: the big images are drawn more often than the small one
    counts = {path.name: 0 for path in dataset.paths}
    for index in range(len(dataset)):
        generator = dataset.item_generator(index)
        image_index = int(np.searchsorted(dataset._cumulative_weights, generator.random(), side="right"))
        counts[dataset.paths[image_index].name] += 1
    assert sum(counts.values()) == len(dataset) and min(counts.values()) > 0


def test_measure_data_time(image_folder: Path) -> None:
    dataset = ds.PairedPatchDataset(image_folder, make_degradation("denoise"), 16, length=8)
    seconds = ds.measure_data_time(dataset, batch_size=4, num_batches=3)  # cycles past the dataset's end
    assert 0.0 < seconds < 5.0
    with pytest.raises(ValueError, match="batch_size"):
        ds.measure_data_time(dataset, batch_size=16, num_batches=1)


# --------------------------------------------------------------------------------------------------
# Validation pairs
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def validation_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "val"
    folder.mkdir()
    for index, name in enumerate(["img2.png", "img1.png", "img3.bmp"]):
        Image.fromarray(random_image(10 + index, 26, 31)).save(folder / name)
    return folder


def test_validation_pairs_denoise(validation_folder: Path) -> None:
    pairs = ds.ImageFolderPairs(validation_folder, "denoise", sigma=25)
    assert len(pairs) == 3 and pairs.names() == ["img1", "img2", "img3"]
    for index, (name, degraded, clean) in enumerate(pairs):
        assert degraded.dtype == np.uint8 and clean.dtype == np.uint8
        suffix = "bmp" if name == "img3" else "png"
        np.testing.assert_array_equal(clean, ds.read_image(validation_folder / f"{name}.{suffix}"))
        np.testing.assert_array_equal(degraded, protocol_gaussian_noise(clean, 25, index))
    assert pairs[-1][0] == "img3"
    with pytest.raises(ValueError, match="sigma"):
        ds.ImageFolderPairs(validation_folder, "denoise")


def test_validation_pairs_deblur_and_sr(validation_folder: Path) -> None:
    name, degraded, clean = ds.ImageFolderPairs(validation_folder, "deblur")[1]
    assert name == "img2"
    np.testing.assert_array_equal(degraded, protocol_blur(clean, 1)[0])
    pairs = ds.ImageFolderPairs(validation_folder, "sr", scale=4)
    name, low, high = pairs[0]
    expected_high, expected_low = protocol_bicubic_lr(ds.read_image(validation_folder / "img1.png"), 4)
    np.testing.assert_array_equal(high, expected_high)
    np.testing.assert_array_equal(low, expected_low)
    assert high.shape == (24, 28, 3) and low.shape == (6, 7, 3)
    with pytest.raises(ValueError, match="scale"):
        ds.ImageFolderPairs(validation_folder, "sr")
    with pytest.raises(ValueError, match="choose one of"):
        ds.ImageFolderPairs(validation_folder, "colorize")


def test_validation_pairs_real_noise(tmp_path: Path) -> None:
    folder = tmp_path / "real"
    folder.mkdir()
    for index, prefix in enumerate(["Canon_1", "Nikon_2"]):
        Image.fromarray(random_image(20 + index, 16, 24)).save(folder / f"{prefix}_real.JPG")
        Image.fromarray(random_image(30 + index, 16, 24)).save(folder / f"{prefix}_mean.JPG")
    pairs = ds.ImageFolderPairs(folder, "denoise-real")
    assert pairs.names() == ["Canon_1", "Nikon_2"]
    name, noisy, clean = pairs[1]
    np.testing.assert_array_equal(noisy, ds.read_image(folder / "Nikon_2_real.JPG"))
    np.testing.assert_array_equal(clean, ds.read_image(folder / "Nikon_2_mean.JPG"))
    (folder / "Nikon_2_mean.JPG").unlink()
    with pytest.raises(ValueError, match="counterpart"):
        ds.ImageFolderPairs(folder, "denoise-real")


def test_all_is_sorted_and_complete() -> None:
    assert ds.__all__ == sorted(ds.__all__)
    assert all(hasattr(ds, name) for name in ds.__all__)
