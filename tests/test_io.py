"""Reading and writing files faithfully: bit depth, alpha, EXIF orientation, ICC, atomic writes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from hfpie import ImageReadError, UnsupportedImageError
from hfpie.io import ImageFile, atomic_write_bytes, read_image, write_image

ICC = b"\x00\x00\x02\x0cfake-icc-profile-bytes" * 4


def _rgb(height=12, width=17, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_on_reading(tmp_path: Path, orientation: int) -> None:
    pil = Image.fromarray(_rgb())
    exif = pil.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "oriented.png"
    pil.save(path, exif=exif.tobytes())
    with Image.open(path) as reference:
        expected = np.asarray(ImageOps.exif_transpose(reference))
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, expected)
    write_image(tmp_path / "out.png", image)
    with Image.open(tmp_path / "out.png") as written:
        assert written.getexif().get(0x0112, 1) == 1  # upright pixels, orientation reset


def test_16_bit_colour_png_keeps_every_bit_and_metadata(tmp_path: Path) -> None:
    deep = np.random.default_rng(0).integers(0, 65535, (10, 13, 4), dtype=np.uint16)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), deep)
    image = read_image(path)
    assert image.bit_depth == 16 and image.alpha is not None
    np.testing.assert_array_equal(image.pixels, deep[..., 2::-1])
    exif = Image.Exif()
    exif[0x010F] = "hfpie-test-camera"
    tagged = ImageFile(image.pixels, image.alpha, "PNG", exif=exif.tobytes(), icc_profile=ICC)
    write_image(tmp_path / "copy.png", tagged)
    again = cv2.imread(str(tmp_path / "copy.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(again, deep)
    with Image.open(tmp_path / "copy.png") as written:
        assert written.info.get("icc_profile") == ICC
        assert written.getexif().get(0x010F) == "hfpie-test-camera"


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_modes_round_trip_losslessly(tmp_path: Path, mode: str, suffix: str) -> None:
    if mode == "I;16":
        pil = Image.fromarray(np.random.default_rng(0).integers(0, 65535, (9, 11), dtype=np.uint16))
    else:
        pil = Image.fromarray(_rgb(9, 11)).convert(mode)
    source = tmp_path / f"in{suffix}"
    pil.save(source, icc_profile=ICC)
    image = read_image(source)
    target = tmp_path / f"out{suffix}"
    write_image(target, image)
    with Image.open(target) as written, Image.open(source) as original:
        assert written.mode == original.mode and written.format == original.format
        np.testing.assert_array_equal(np.asarray(written), np.asarray(original))
        assert written.info.get("icc_profile") == ICC


def test_jpeg_keeps_exif_and_icc(tmp_path: Path) -> None:
    pil = Image.fromarray(_rgb(32, 32))
    exif = pil.getexif()
    exif[0x010F] = "camera"
    pil.save(tmp_path / "in.jpg", exif=exif.tobytes(), icc_profile=ICC, quality=90)
    image = read_image(tmp_path / "in.jpg")
    assert image.format == "JPEG"
    write_image(tmp_path / "out.jpg", image)
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.format == "JPEG"
        assert written.getexif().get(0x010F) == "camera" and written.info.get("icc_profile") == ICC


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("not an image")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "full.png").read_bytes()[:200])
    Image.new("CMYK", (4, 4)).save(tmp_path / "cmyk.jpg")
    Image.new("1", (4, 4)).save(tmp_path / "bilevel.png")
    cases = {
        "missing.png": (ImageReadError, "no such file"),
        "text.png": (ImageReadError, "not a readable image"),
        "truncated.png": (ImageReadError, "truncated"),
        "cmyk.jpg": (UnsupportedImageError, "mode CMYK"),
        "bilevel.png": (UnsupportedImageError, "mode 1"),
    }
    for name, (kind, text) in cases.items():
        with pytest.raises(kind, match=text) as error:
            read_image(tmp_path / name)
        assert str(tmp_path / name) in str(error.value) and "\n" not in str(error.value)


def test_zero_pixel_image_is_rejected(tmp_path: Path) -> None:
    # A PNG whose header says 0 x 0 pixels: a valid chunk layout with an empty image.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "empty.png").write_bytes(data)
    with pytest.raises(ImageReadError, match="empty.png"):
        read_image(tmp_path / "empty.png")


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous content")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C between writing the temporary file and renaming it

    monkeypatch.setattr("hfpie.io.os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_outputs_that_cannot_hold_the_data_are_refused(tmp_path: Path) -> None:
    image = ImageFile(_rgb(), np.zeros((12, 17), np.uint8), "PNG")
    with pytest.raises(UnsupportedImageError, match="alpha"):
        write_image(tmp_path / "out.jpg", image)
    with pytest.raises(UnsupportedImageError, match="cannot write .gif"):
        write_image(tmp_path / "out.gif", image)
    assert not list(tmp_path.iterdir())
