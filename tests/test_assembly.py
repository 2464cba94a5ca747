"""The output is assembled tile by tile in its final dtype: bit for bit the old whole-image conversion,
and no float32 copy of the whole output is ever allocated."""

from __future__ import annotations

import gc
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_network
from hfpie import api
from hfpie.api import enhance, enhance_image_file, run_network
from hfpie.io import ImageFile


def _old_conversion(x: torch.Tensor, network, dtype: np.dtype, **settings) -> np.ndarray:
    """What enhance() did before: the whole float output (colour, grey mean, alpha resized), then one
    ``np.round(np.clip(y, 0, 1) * max)`` over all of it."""
    channels = x.shape[1]
    grey, has_alpha = channels in (1, 2), channels in (2, 4)
    colour = x[:, :1].expand(-1, 3, -1, -1) if grey else x[:, :3]
    y = run_network(network, colour, **settings)
    parts = [y.mean(dim=1, keepdim=True) if grey else y]
    if has_alpha:
        alpha = x[:, -1:].float()
        scale = network.config.scale
        if scale != 1:
            alpha = F.interpolate(alpha, scale_factor=scale, mode="bicubic", align_corners=False).clamp_(0, 1)
        parts.append(alpha)
    merged = torch.cat(parts, dim=1)[0].permute(1, 2, 0).numpy()
    maximum = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype))
    if maximum is None:
        return merged.astype(dtype)
    return np.round(np.clip(merged, 0, 1) * maximum).astype(dtype)


def _to_float(array: np.ndarray) -> torch.Tensor:
    maximum = {np.uint8: 255.0, np.uint16: 65535.0}[array.dtype.type]
    return torch.from_numpy(array.astype(np.float32) / maximum).permute(2, 0, 1)[None]


@pytest.mark.parametrize(("dtype", "channels", "scale"), [
    (np.uint8, 3, 1), (np.uint8, 3, 2), (np.uint16, 3, 2), (np.uint8, 1, 2), (np.uint8, 4, 2), (np.uint16, 2, 1),
])
def test_tile_by_tile_assembly_equals_the_whole_image_conversion_bit_for_bit(dtype, channels: int, scale: int) -> None:
    network = make_network(scale, seed=3, gain=2.0)
    rng = np.random.default_rng(channels + scale)
    maximum = np.iinfo(dtype).max
    array = rng.integers(0, maximum + 1, size=(53, 70, channels)).astype(dtype)
    settings = dict(device="cpu", tile=16, halo=8, precision="fp32")  # many tiles, edge tiles of other shapes
    old = _old_conversion(_to_float(array), network, dtype, **settings)
    new = enhance(array, model=network, task="sr" if scale > 1 else "denoise", scale=scale, **settings)
    assert new.dtype == dtype and new.shape == old.shape
    assert np.array_equal(new, old)
    # The file path (separate pixel and alpha arrays, contiguous) gives the same pixels.
    image = ImageFile(pixels=array[..., : 1 if channels in (1, 2) else 3],
                      alpha=array[..., -1] if channels in (2, 4) else None, format="PNG")
    restored = enhance_image_file(image, network, **settings)
    assert restored.pixels.flags.c_contiguous and np.array_equal(restored.pixels, old[..., : image.pixels.shape[2]])
    if image.alpha is not None:
        assert np.array_equal(restored.alpha, old[..., -1])


@pytest.mark.parametrize("strength", [0.0, 0.4])
def test_strengths_other_than_one_convert_in_strips_bit_for_bit(strength: float) -> None:
    network = make_network(1, seed=4, gain=2.0)
    array = np.random.default_rng(5).integers(0, 256, size=(300, 41, 3)).astype(np.uint8)  # more rows than a strip
    settings = dict(device="cpu", tile=32, precision="fp32")
    x = _to_float(array)
    expected = api._restore_colour(network, x, strength, api.Settings(**settings))
    expected = np.round(np.clip(expected[0].permute(1, 2, 0).numpy(), 0, 1) * 255.0).astype(np.uint8)
    assert np.array_equal(enhance(array, model=network, strength=strength, **settings), expected)
    if strength == 0:
        assert np.array_equal(expected, array)


def _largest_live_float_tensor() -> int:
    """Bytes of the largest floating-point torch tensor alive now (tensors are tracked by the gc)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance() on some deprecated torch objects warns
        return max((o.numel() * o.element_size() for o in gc.get_objects()
                    if isinstance(o, torch.Tensor) and o.is_floating_point()), default=0)


def test_no_full_size_float_buffer_is_allocated() -> None:
    network = make_network(4, seed=6)
    side = 256
    array = np.random.default_rng(7).integers(0, 256, size=(side, side, 3)).astype(np.uint8)
    output_bytes = (4 * side) ** 2 * 3          # the uint8 result itself
    float_bytes = 4 * output_bytes             # a float32 copy of it: what must never exist
    settings = dict(device="cpu", tile=64, halo=8, precision="fp32")

    tracemalloc.start()  # numpy's buffers (the conversion's temporaries, the output array)
    try:
        result = enhance(array, model=network, task="sr", scale=4, **settings)
        _, numpy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.shape == (4 * side, 4 * side, 3)
    assert numpy_peak < output_bytes + float_bytes // 4, (numpy_peak, output_bytes)

    seen: list[int] = []  # torch's side, looked at after every tile
    enhance(array, model=network, task="sr", scale=4, progress=lambda *_: seen.append(_largest_live_float_tensor()),
            **settings)
    assert len(seen) == 16 and max(seen) < float_bytes // 4, (max(seen), float_bytes)
    # The check can fail: the float32 path (run_network without write) holds the whole output.
    whole: list[int] = []
    run_network(network, _to_float(array), progress=lambda *_: whole.append(_largest_live_float_tensor()), **settings)
    assert max(whole) >= float_bytes


def test_an_8_bit_input_is_read_as_float_one_window_at_a_time() -> None:
    network = make_network(1, seed=8)
    side = 512
    array = np.random.default_rng(9).integers(0, 256, size=(side, side, 3)).astype(np.uint8)
    float_bytes = side * side * 3 * 4  # a float32 copy of the whole input: what must not exist
    settings = dict(device="cpu", tile=64, halo=8, precision="fp32")
    seen: list[int] = []
    result = enhance(array, model=network, progress=lambda *_: seen.append(_largest_live_float_tensor()), **settings)
    assert len(seen) == 64 and max(seen) < float_bytes // 2, (max(seen), float_bytes)
    # The check can fail: a float input is held whole; and both give the same bytes.
    whole: list[int] = []
    as_float = enhance(array.astype(np.float32) / 255.0, model=network,
                       progress=lambda *_: whole.append(_largest_live_float_tensor()), **settings)
    assert max(whole) >= float_bytes
    assert np.array_equal(result, np.round(np.clip(as_float, 0, 1) * 255.0).astype(np.uint8))
