"""Tiled inference equals whole-image inference; fp16 fallback; out-of-memory splitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_identity, make_network
from hfpie.api import run_network
from hfpie.tiling import TileSpec, forward_tile, pad_to_multiple, pad_to_working_size, tile_cores, tiled_forward


def _spec(network, halo: int) -> TileSpec:
    config = network.config
    return TileSpec(scale=config.scale, multiple_of=config.multiple_of, alignment=config.alignment, halo=halo)


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("tile", [16, 40, 64])
def test_tiled_output_equals_whole_image_output(scale: int, tile: int) -> None:
    network = make_network(scale, gain=2.0, attention_window=8)
    radius = network.config.receptive_radius()
    torch.manual_seed(1)
    image = torch.rand(1, 3, 136, 100)
    with torch.inference_mode():
        whole = network(image)
    for halo in (radius, radius + 9):
        tiled = tiled_forward(network, image, _spec(network, halo), tile=tile)
        error = (tiled - whole).abs().max()
        assert error < 1e-4, f"tile {tile}, halo {halo}: max abs error {error:.2e}"
    # Without context the seams show: this is what the halo is for (and why the test can fail).
    seams = (tiled_forward(network, image, _spec(network, 0), tile=tile) - whole).abs().max()
    assert seams > 1e-3


def test_run_network_pads_odd_sizes_and_tiles_exactly() -> None:
    network = make_network(2, gain=2.0, attention_window=8)
    image = torch.rand(1, 3, 101, 77)
    whole = run_network(network, image)  # fits in memory: one pass
    tiled = run_network(network, image, tile=24, halo="exact")
    assert whole.shape == tiled.shape == (1, 3, 202, 154)
    assert (whole - tiled).abs().max() < 1e-4
    capped = run_network(network, image, tile=24, halo=8)  # a small halo is allowed, not exact
    assert capped.shape == whole.shape
    with pytest.raises(ValueError, match="halo must be"):
        run_network(network, image, halo="large")


def test_pad_to_multiple_and_cores() -> None:
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    padded, padding = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 8) and padding == (1, 3)
    torch.testing.assert_close(padded[..., 3, :5], x[..., 1, :])  # reflection of the row before last
    single = pad_to_multiple(torch.ones(1, 1, 1, 1), 4)[0]
    assert single.shape == (1, 1, 4, 4)
    cores = tile_cores(10, 7, 4)
    covered = torch.zeros(10, 7)
    for top, bottom, left, right in cores:
        covered[top:bottom, left:right] += 1
    assert (covered == 1).all()


def test_half_precision_tiles_that_overflow_are_redone_in_float32() -> None:
    calls = []

    def fragile(x: torch.Tensor) -> torch.Tensor:
        autocast = torch.is_autocast_enabled(x.device.type)
        calls.append(autocast)
        return torch.full_like(x, float("inf")) if autocast else x * 2

    image = torch.rand(1, 3, 32, 32)
    output = tiled_forward(fragile, image, TileSpec(), tile=16, half=True)
    torch.testing.assert_close(output, image * 2)
    assert calls == [True, False] * 4  # every tile: fp16 attempt, then fp32 retry
    finite = forward_tile(lambda x: x + 1, image, half=True)
    torch.testing.assert_close(finite, image + 1, atol=1e-2, rtol=0)


def test_out_of_memory_halves_the_tile_and_retries() -> None:
    sizes = []

    def small_memory(x: torch.Tensor) -> torch.Tensor:
        sizes.append(tuple(x.shape[-2:]))
        if x.shape[-1] * x.shape[-2] > 32 * 32:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return x

    image = torch.rand(1, 3, 128, 96)
    output = tiled_forward(small_memory, image, TileSpec(), tile=128, min_tile=16)
    torch.testing.assert_close(output, image)
    assert sizes[0] == (128, 96) and max(h * w for h, w in sizes[-3:]) <= 32 * 32
    with pytest.raises(torch.OutOfMemoryError):
        tiled_forward(small_memory, image, TileSpec(), tile=128, min_tile=64)


def test_other_errors_are_not_swallowed() -> None:
    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        tiled_forward(broken, torch.rand(1, 3, 64, 64), TileSpec(), tile=16)


def test_progress_reaches_the_total() -> None:
    seen = []
    tiled_forward(lambda x: x, torch.rand(1, 3, 40, 40), TileSpec(), tile=16, progress=lambda d, t: seen.append((d, t)))
    assert len(seen) == 9 and seen[-1] == (1600, 1600)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("scale", [1, 4])
def test_batched_tiles_equal_one_tile_at_a_time(scale: int) -> None:
    network = make_network(scale, gain=2.0, attention_window=8)
    spec = _spec(network, network.config.receptive_radius())
    image = torch.rand(2, 3, 136, 100)  # two images: each batched window keeps its own rows
    shapes = []

    def counting(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return network(x)

    single = tiled_forward(network, image, spec, tile=16)
    batched = tiled_forward(counting, image, spec, tile=16, batch=4)
    assert (batched - single).abs().max() < 1e-4
    assert max(shape[0] for shape in shapes) == 8  # 4 tiles x 2 images in one pass
    assert len(shapes) < len(tile_cores(136, 100, 16))
    with pytest.raises(ValueError, match="batch must be"):
        tiled_forward(network, image, spec, tile=16, batch=0)


def test_out_of_memory_halves_the_batch_before_the_tile() -> None:
    batches = []

    def small_memory(x: torch.Tensor) -> torch.Tensor:
        batches.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return x

    image = torch.rand(1, 3, 64, 64)
    output = tiled_forward(small_memory, image, TileSpec(), tile=16, batch=8)
    torch.testing.assert_close(output, image)
    assert batches[:3] == [8, 4, 2] and max(batches[3:]) <= 2  # no halo: 16 equal windows; halved twice


def test_run_network_batches_tiles_on_request() -> None:
    network = make_network(2, gain=2.0, attention_window=8)
    image = torch.rand(1, 3, 101, 77)
    one = run_network(network, image, tile=24, halo="exact")
    many = run_network(network, image, tile=24, halo="exact", batch=6)
    assert (one - many).abs().max() < 1e-4


def test_small_sides_are_padded_to_the_working_size_with_the_image_in_the_middle() -> None:
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded, (top, left) = pad_to_working_size(x, 4, 16)
    assert padded.shape == (1, 1, 16, 16) and (top, left) == (7, 6)
    torch.testing.assert_close(padded[..., top : top + 2, left : left + 3], x)
    torch.testing.assert_close(padded[0, 0, :top, left : left + 3], x[0, 0, :1].expand(top, 3))  # edge repeated
    torch.testing.assert_close(padded[0, 0, top + 2, left - 2 : left + 5], torch.tensor([3.0, 3, 3, 4, 5, 5, 5]))
    dot = pad_to_working_size(torch.full((1, 3, 1, 1), 0.5), 4, 16)[0]  # one pixel: repeated
    assert dot.shape == (1, 3, 16, 16) and bool((dot == 0.5).all())
    strip = torch.rand(1, 3, 5, 100)
    padded, (top, left) = pad_to_working_size(strip, 4, 64)
    assert padded.shape == (1, 3, 64, 100) and (top, left) == (29, 0)
    torch.testing.assert_close(padded[..., top : top + 5, :], strip)
    large = torch.rand(1, 3, 70, 67)  # sides past the minimum: padded at the end only, as before
    padded, offset = pad_to_working_size(large, 4, 64)
    assert offset == (0, 0) and torch.equal(padded, pad_to_multiple(large, 4)[0])
    exact = large[..., :68, :64]
    assert pad_to_working_size(exact, 4, 64)[0] is exact  # nothing to pad: no copy


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 1), (5, 100), (100, 6)])
def test_run_network_crops_the_working_padding_off(size) -> None:
    x = torch.rand(1, 3, *size)
    torch.testing.assert_close(run_network(make_identity(), x, device="cpu"), x, rtol=0, atol=1e-6)
    assert run_network(make_network(2), x, device="cpu").shape == (1, 3, size[0] * 2, size[1] * 2)


@pytest.mark.parametrize(("scale", "core"), [(1, 512), (2, 512), (3, 340), (4, 256)])
def test_cpu_cores_shrink_for_large_scales(scale: int, core: int) -> None:
    """x1 and x2 models take 512 px cores on the CPU; x4 takes 256, so that its upsampler's feature maps
    stay near those of x2 (64 MP of x4 output: 1.35 GB peak instead of 2.9, docs/speed.md)."""
    from hfpie import runner

    network = make_network(scale)
    side = runner.suggest_tile_size(network, torch.device("cpu"), half=False, halo=16)
    alignment = network.config.alignment
    assert side == core // alignment * alignment


def test_the_8_bit_table_holds_numpys_division_and_every_device_path_agrees() -> None:
    from hfpie.tiling import UINT8_TO_UNIT, as_unit

    levels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(UINT8_TO_UNIT.numpy(), levels.astype(np.float32) / 255.0)
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 7, 9), dtype=np.uint8))
    assert torch.equal(as_unit(image), UINT8_TO_UNIT[image.int()])  # the CPU path and the table (CUDA) path
    floats = torch.rand(1, 3, 4, 4)
    assert as_unit(floats) is floats
