"""enhance(): type, dtype and range round trips; sizes; errors; thread safety."""

from __future__ import annotations

import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hfpie
from conftest import make_identity, make_network
from hfpie import HfpieError, NoPretrainedWeightsError, UnsupportedImageError, enhance
from hfpie.errors import DeviceNotAvailableError, NonFiniteOutputError
from hfpie.api import run_network


@pytest.fixture(scope="module")
def identity():
    return make_identity()


@pytest.fixture(scope="module")
def sr4():
    return make_network(4)


def test_public_exports() -> None:
    assert hfpie.__all__ == sorted(hfpie.__all__)
    for name in hfpie.__all__:
        assert hasattr(hfpie, name)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(21, 17), (21, 17, 1), (21, 17, 3), (21, 17, 4)])
def test_numpy_round_trip_keeps_shape_dtype_and_values(identity, dtype, shape) -> None:
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        array = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    else:
        array = rng.random(shape).astype(dtype)
    if len(shape) == 3 and shape[2] in (1,):
        pass
    output = enhance(array, model=identity)
    assert output.shape == array.shape and output.dtype == array.dtype
    if np.issubdtype(dtype, np.integer):
        np.testing.assert_array_equal(output, array)  # identity network: exact for 8 and 16 bits
    else:
        np.testing.assert_allclose(output, array, atol=1e-6)


def test_sr_output_is_exactly_scale_times_the_input(sr4) -> None:
    for shape in [(1, 1, 3), (7, 5, 3), (33, 18)]:
        output = enhance(np.zeros(shape, np.uint8), task="sr", scale=4, model=sr4)
        assert output.shape[:2] == (shape[0] * 4, shape[1] * 4)
        assert output.ndim == len(shape)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "P"])
def test_pil_round_trip_keeps_mode(identity, mode) -> None:
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 255, (15, 22, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, (15, 22), dtype=np.uint16))
    elif mode == "P":
        image = base.quantize(16)
    else:
        image = base.convert(mode)
    output = enhance(image, model=identity)
    assert isinstance(output, Image.Image) and output.size == image.size
    assert output.mode == ("RGB" if mode == "P" else mode)
    expected = np.asarray(image.convert("RGB") if mode == "P" else image)
    np.testing.assert_array_equal(np.asarray(output), expected)


def test_pil_sr_resizes_alpha(sr4) -> None:
    image = Image.new("RGBA", (10, 6), (10, 20, 30, 128))
    output = enhance(image, task="sr", model=sr4)
    assert output.mode == "RGBA" and output.size == (40, 24)
    assert np.all(np.asarray(output)[..., 3] == 128)


def test_torch_round_trip_keeps_layout_dtype_and_device(identity, sr4) -> None:
    x = torch.rand(3, 12, 9)
    y = enhance(x, model=identity)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    torch.testing.assert_close(y, x)
    batch = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    out = enhance(batch, task="sr", model=sr4)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float64
    assert enhance(torch.rand(1, 1, 8, 8), model=identity).shape == (1, 1, 8, 8)


def test_path_gives_a_pil_image(identity, tmp_path: Path) -> None:
    array = np.random.default_rng(2).integers(0, 255, (9, 14, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "in.png")
    output = enhance(tmp_path / "in.png", model=identity)
    assert isinstance(output, Image.Image)
    np.testing.assert_array_equal(np.asarray(output), array)
    assert isinstance(enhance(str(tmp_path / "in.png"), model=identity), Image.Image)


def test_output_values_stay_in_range() -> None:
    network = make_network(gain=3.0)
    output = enhance(np.random.default_rng(0).random((16, 16, 3)), model=network)
    assert output.min() >= 0.0 and output.max() <= 1.0


def test_errors_say_what_to_do(identity, sr4, monkeypatch) -> None:
    import hfpie.hub

    monkeypatch.setattr(hfpie.hub, "load_manifest", dict)  # an install without pretrained weights
    monkeypatch.setattr(hfpie.hub, "_CACHE", {})  # nor models loaded by earlier tests
    with pytest.raises(NoPretrainedWeightsError, match="No pretrained weights are installed for task 'deblur'"):
        enhance(np.zeros((8, 8, 3), np.uint8), task="deblur")
    with pytest.raises(ValueError, match="task must be one of"):
        enhance(np.zeros((8, 8, 3), np.uint8), task="colorize", model=identity)
    with pytest.raises(ValueError, match="needs a x2 model"):
        enhance(np.zeros((8, 8, 3), np.uint8), task="sr", scale=2, model=sr4)
    with pytest.raises(ValueError, match="needs a scale-1 model"):
        enhance(np.zeros((8, 8, 3), np.uint8), task="denoise", model=sr4)
    with pytest.raises(UnsupportedImageError, match="uint8, uint16 or float"):
        enhance(np.zeros((8, 8, 3), np.int32), model=identity)
    with pytest.raises(UnsupportedImageError, match="channels"):
        enhance(np.zeros((8, 8, 5), np.uint8), model=identity)
    with pytest.raises(UnsupportedImageError, match="with pixels"):
        enhance(np.zeros((0, 8, 3), np.uint8), model=identity)
    with pytest.raises(TypeError, match="takes a path"):
        enhance([1, 2, 3], model=identity)


def test_enhance_is_thread_safe() -> None:
    network = make_network(gain=2.0, attention_window=8)
    images = [np.random.default_rng(i).random((40, 40, 3)).astype(np.float32) for i in range(4)]
    expected = [enhance(image, model=network) for image in images]
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        results[index] = enhance(images[index % 4], model=network, tile=16)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(8):
        np.testing.assert_allclose(results[index], expected[index % 4], atol=1e-4)


def test_heap_reuse_is_scoped_and_can_be_switched_off(monkeypatch) -> None:
    from hfpie import cpu_memory

    network = make_network(1, gain=2.0)
    image = torch.rand(1, 3, 40, 40)
    with cpu_memory.heap_reuse() as active:
        inside = run_network(network, image)  # nested use is fine
        assert cpu_memory._active == (1 if active else 0)
    assert cpu_memory._active == 0
    monkeypatch.setenv("HFPIE_HEAP_REUSE", "0")
    with cpu_memory.heap_reuse() as active:
        assert active is False
    assert torch.equal(run_network(network, image), inside)  # same numbers with and without it


def test_heap_is_trimmed_only_when_more_than_the_kept_amount_is_free(monkeypatch) -> None:
    from hfpie import cpu_memory

    class FakeLibc:
        def __init__(self, free: int) -> None:
            self.free, self.trims = free, 0

        def mallopt(self, option: int, value: int) -> int:
            return 1

        def mallinfo2(self):  # noqa: ANN201 - the fields read are those of struct mallinfo2
            return types.SimpleNamespace(fordblks=self.free)

        def malloc_trim(self, pad: int) -> int:
            self.trims += 1
            return 1

    for free, trims in ((cpu_memory.HEAP_KEEP_BYTES // 2, 0), (cpu_memory.HEAP_KEEP_BYTES + 1, 1)):
        libc = FakeLibc(free)
        monkeypatch.setattr(cpu_memory, "_libc", libc)
        monkeypatch.delenv("HFPIE_HEAP_REUSE", raising=False)
        with cpu_memory.heap_reuse() as active:
            assert active
        assert libc.trims == trims
    cpu_memory.release_heap()  # always trims
    assert libc.trims == 2


def test_cmyk_pil_images_come_back_as_rgb(identity) -> None:
    output = enhance(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), model=identity)
    assert output.mode == "RGB" and output.getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_files_keep_16_bits(identity, tmp_path: Path, channels: int) -> None:
    import cv2

    deep = np.random.default_rng(3).integers(0, 65535, (9, 14, channels), endpoint=True, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)  # BGR(A) on disk
    output = enhance(tmp_path / "deep.png", model=identity)
    assert isinstance(output, np.ndarray) and output.dtype == np.uint16  # PIL has no 16-bit colour mode
    rgb = deep[..., [2, 1, 0, 3][:channels]]
    np.testing.assert_array_equal(output, rgb)
    grey = Image.fromarray(deep[..., 0])
    grey.save(tmp_path / "grey16.png")
    assert enhance(tmp_path / "grey16.png", model=identity).mode == "I;16"  # PIL holds 16-bit grey


def test_float_images_outside_0_1_are_refused(identity) -> None:
    array = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32) * 255  # a common mistake: 0-255 floats
    with pytest.raises(UnsupportedImageError, match=r"\[0, 1\].*255"):
        enhance(array, model=identity)
    with pytest.raises(UnsupportedImageError, match=r"\[0, 1\]"):
        enhance(torch.from_numpy(array).permute(2, 0, 1), model=identity)
    with pytest.raises(UnsupportedImageError, match=r"\[0, 1\]"):
        enhance(np.full((8, 8), np.nan, np.float32), model=identity)
    with pytest.raises(UnsupportedImageError, match=r"\[0, 1\]"):
        enhance(array / 127.5 - 1, model=identity)  # [-1, 1]
    edge = np.array([[0.0, 1.0]], np.float32)  # the ends of the range are fine
    np.testing.assert_allclose(enhance(edge, model=identity), edge, atol=1e-6)


def test_an_absent_device_is_one_clear_error(identity) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for device in ["cuda", "cuda:1", "gpu"]:
        with pytest.raises(DeviceNotAvailableError, match="devices here: cpu") as error:
            enhance(np.zeros((8, 8, 3), np.uint8), model=identity, device=device)
        assert isinstance(error.value, HfpieError) and "\n" not in str(error.value)
        assert repr(device) in str(error.value)


def test_non_finite_output_is_an_error_not_a_black_image() -> None:
    network = make_identity()
    with torch.no_grad():
        network.scales[0].tail[-1].bias[0] = float("nan")  # damaged weights
    with pytest.raises(NonFiniteOutputError, match="NaN"):
        enhance(np.zeros((8, 8, 3), np.uint8), model=network)
    with pytest.raises(NonFiniteOutputError):
        run_network(network, torch.rand(1, 3, 8, 8), half=False)


@pytest.mark.parametrize("shape", [(3, 0, 0), (3, 5, 0), (1, 3, 0, 4), (0, 3, 4, 4)])
def test_an_empty_tensor_is_a_clear_error(identity, shape) -> None:
    with pytest.raises(UnsupportedImageError, match="with pixels") as error:
        enhance(torch.zeros(shape), model=identity)
    assert str(tuple(shape)) in str(error.value)


def test_a_channels_first_numpy_image_is_refused_with_the_fix(identity) -> None:
    with pytest.raises(UnsupportedImageError, match="channels-first.*np.moveaxis"):
        enhance(np.zeros((3, 40, 48), np.uint8), model=identity)
    assert enhance(np.zeros((3, 40, 4), np.uint8), model=identity).shape == (3, 40, 4)  # 3 rows of RGBA


@pytest.mark.parametrize("dtype", [">u2", "<u2", ">f4", ">f8"])
def test_numpy_images_of_either_byte_order_are_accepted(identity, dtype) -> None:
    rng = np.random.default_rng(3)
    native = rng.integers(0, 65535, (9, 7, 3), dtype=np.uint16) if "u" in dtype else rng.random((9, 7, 3))
    image = native.astype(dtype)
    output = enhance(image, model=identity)
    assert output.dtype == np.dtype(dtype)  # the caller's dtype back, its byte order too
    np.testing.assert_allclose(output.astype(np.float64), native.astype(np.float64), rtol=0, atol=1e-6)
    network = make_network(gain=2.0)
    np.testing.assert_array_equal(enhance(image, model=network), enhance(image.astype(np.dtype(dtype).newbyteorder("=")),
                                                                          model=network))


def test_a_mode_i_image_is_not_guessed_to_be_16_bit(identity, tmp_path: Path) -> None:
    grey = Image.fromarray(np.random.default_rng(4).integers(0, 255, (10, 12), dtype=np.uint8))
    grey.save(tmp_path / "x.png")
    with pytest.raises(UnsupportedImageError, match=r"convert\('L'\).*convert\('I;16'\)") as error:
        enhance(Image.open(tmp_path / "x.png").convert("L").convert("I"), model=identity)
    assert "\n" not in str(error.value)
    # A file Pillow opens as mode I is deeper than 8 bits (here a 16-bit PGM): read as 16-bit, kept as mode I.
    deep = np.random.default_rng(5).integers(0, 65535, (10, 12), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.pgm")
    with Image.open(tmp_path / "deep.pgm") as opened:
        assert opened.mode == "I"
        output = enhance(opened, model=identity)
    assert output.mode == "I"
    np.testing.assert_array_equal(np.asarray(output), deep)
    from_path = enhance(tmp_path / "deep.pgm", model=identity)
    np.testing.assert_array_equal(np.asarray(from_path), deep)
    # Told the depth, the low-level conversion takes an in-memory mode I image.
    from hfpie.io import image_file_from_pil

    pixels = image_file_from_pil(grey.convert("I"), bit_depth=8).pixels
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels[..., 0], np.asarray(grey))
