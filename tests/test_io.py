"""Reading and writing files faithfully: bit depth, alpha, EXIF orientation, ICC, atomic writes."""

from __future__ import annotations

import io
import os
import stat
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import PIL.ImageFile
from PIL import Image, ImageOps

from conftest import png_bytes
from hfpie import HfpieError, ImageReadError, UnsupportedImageError
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
    Image.new("1", (4, 4)).save(tmp_path / "bilevel.png")
    cases = {
        "missing.png": (ImageReadError, "no such file"),
        "text.png": (ImageReadError, "not a readable image"),
        "truncated.png": (ImageReadError, "truncated"),
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


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_get_the_permissions_of_an_ordinary_write(tmp_path: Path, mask: int) -> None:
    previous = os.umask(mask)
    try:
        atomic_write_bytes(tmp_path / "new.png", b"data")
        (tmp_path / "ordinary.png").write_bytes(b"data")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "new.png").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "ordinary.png").stat().st_mode) == 0o666 & ~mask


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "shared.png"
    target.write_bytes(b"old")
    target.chmod(0o664)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o664


def test_a_failed_write_names_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "not-a-folder" / "out.png"
    (tmp_path / "not-a-folder").write_bytes(b"a file where a folder should be")
    with pytest.raises(OSError) as error:
        atomic_write_bytes(target, b"data")
    assert isinstance(error.value, HfpieError) and str(target) in str(error.value)
    assert ".tmp" not in str(error.value) and "\n" not in str(error.value)


def _rows(array: np.ndarray) -> bytes:
    """Filter type 0 scanlines of an HxWxC big-endian-ready array."""
    return b"".join(b"\x00" + row.tobytes() for row in array)


@pytest.mark.parametrize("depth", [8, 16])
def test_png_with_missing_rows_is_refused(tmp_path: Path, depth: int) -> None:
    # A valid header and a complete zlib stream that holds 16 of 64 rows: Pillow decodes it silently
    # as a mostly black image, libpng calls it "Not enough image data".
    dtype = np.dtype(">u2") if depth == 16 else np.dtype(np.uint8)
    array = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(dtype)
    path = tmp_path / "short.png"
    path.write_bytes(png_bytes(64, 64, _rows(array[:16]), depth=depth))
    with pytest.raises(ImageReadError, match="incomplete") as error:
        read_image(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    path.write_bytes(png_bytes(64, 64, _rows(array), depth=depth))
    np.testing.assert_array_equal(read_image(path).pixels.astype(np.int64), array.astype(np.int64))


def test_a_tiny_png_claiming_100_megapixels_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(10_000, 10_000, b"\x00" * 30_001 * 10))  # 10 rows of 10 000
    assert path.stat().st_size < 2000
    with pytest.raises(ImageReadError, match="incomplete"):
        read_image(path)


def _adam7_rows(array: np.ndarray) -> bytes:
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    return b"".join(_rows(array[y0::dy, x0::dx]) for x0, y0, dx, dy in passes if array[y0::dy, x0::dx].size)


@pytest.mark.parametrize("size", [(13, 11), (3, 2), (1, 1), (9, 1)])
def test_complete_interlaced_pngs_still_read(tmp_path: Path, size) -> None:
    height, width = size
    array = np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)
    path = tmp_path / "interlaced.png"
    path.write_bytes(png_bytes(width, height, _adam7_rows(array), interlace=1))
    np.testing.assert_array_equal(read_image(path).pixels, array)


def test_complete_low_bit_depth_png_still_reads(tmp_path: Path) -> None:
    palette = Image.fromarray(_rgb(13, 11)).quantize(4)
    palette.save(tmp_path / "p2.png", bits=2)
    assert (tmp_path / "p2.png").read_bytes()[24] == 2  # IHDR bit depth: rows of packed 2-bit samples
    with Image.open(tmp_path / "p2.png") as written:
        expected = np.asarray(written.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "p2.png").pixels, expected)


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp", ".tif"])
def test_animated_and_multi_page_images_are_refused_clearly(tmp_path: Path, suffix: str) -> None:
    frames = [Image.fromarray(_rgb(seed=seed)) for seed in range(3)]
    path = tmp_path / f"moving{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedImageError, match="3 frames") as error:
        read_image(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    frames[0].save(tmp_path / f"still{suffix}")
    assert read_image(tmp_path / f"still{suffix}").pixels.shape == (12, 17, 3)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _cmyk_profile() -> bytes:
    """A minimal ICC v2 CMYK printer profile: a 2-point lut16 from CMYK to Lab, paper L=60, any full ink L=10."""
    def lab(lightness: float) -> bytes:
        return struct.pack(">3H", round(lightness / 100 * 0xFF00), 0x8000, 0x8000)

    identity_table = struct.pack(">2H", 0, 65535)
    lut = (b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
           + struct.pack(">HH", 2, 2) + identity_table * 4
           + b"".join(lab(60 if corner == 0 else 10) for corner in range(16)) + identity_table * 3)
    white = b"XYZ " + bytes(4) + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    tags = [(b"A2B0", lut), (b"wtpt", white)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    header = (struct.pack(">I", offset + len(body)) + bytes(4) + struct.pack(">I", 0x02100000) + b"prtrCMYKLab "
              + bytes(12) + b"acsp" + bytes(28) + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + bytes(48))
    return header + table + body


def test_cmyk_is_converted_to_rgb_through_its_icc_profile(tmp_path: Path) -> None:
    from PIL import ImageCms

    cmyk = Image.new("CMYK", (6, 5), (0, 0, 0, 64))
    cmyk.save(tmp_path / "plain.jpg", quality=100)
    plain = read_image(tmp_path / "plain.jpg")
    assert plain.pixels.shape == (5, 6, 3) and plain.icc_profile is None
    with Image.open(tmp_path / "plain.jpg") as reference:
        np.testing.assert_array_equal(plain.pixels, np.asarray(reference.convert("RGB")))

    profile = _cmyk_profile()
    cmyk.save(tmp_path / "profiled.tif", icc_profile=profile)
    managed = read_image(tmp_path / "profiled.tif")
    expected = ImageCms.profileToProfile(cmyk, ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                         ImageCms.createProfile("sRGB"), outputMode="RGB")
    np.testing.assert_array_equal(managed.pixels, np.asarray(expected))
    assert abs(int(managed.pixels[0, 0, 0]) - 191) > 50  # not the naive 255 - 64 of a conversion without the profile
    assert managed.icc_profile is not None and managed.icc_profile != profile
    assert ImageCms.ImageCmsProfile(io.BytesIO(managed.icc_profile)).profile.xcolor_space.strip() == "RGB"


def test_a_decompression_bomb_is_a_one_line_error_saying_what_to_do(tmp_path: Path, monkeypatch) -> None:
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels: over twice the limit
    with pytest.raises(ImageReadError, match="decompression bomb.*MAX_IMAGE_PIXELS") as error:
        read_image(tmp_path / "big.png")
    assert str(tmp_path / "big.png") in str(error.value) and "\n" not in str(error.value)


def _photo_jpeg(**options) -> bytes:
    """A 256 x 256 photo as a JPEG written by Pillow (``options``: progressive, restart markers...)."""
    photo = Image.open(Path(__file__).resolve().parents[1] / "examples" / "clean.png").convert("RGB")
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"restart_marker_rows": 1}, {"subsampling": 0}],
                         ids=["baseline", "progressive", "restarts", "444"])
@pytest.mark.parametrize("kept", [0.6, 0.97])
def test_a_jpeg_cut_short_with_its_end_marker_put_back_is_refused(tmp_path: Path, options, kept: float) -> None:
    # libjpeg decodes such a file with a warning only (Pillow drops it): the rest comes out flat grey.
    data = _photo_jpeg(**options)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * kept)] + b"\xff\xd9")
    with Image.open(path) as pillow:
        pillow.load()  # what hfpie used to take: the whole image, its missing part grey
    with pytest.raises(ImageReadError, match="incomplete") as error:
        read_image(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    path.write_bytes(data)
    with Image.open(io.BytesIO(data)) as reference:
        np.testing.assert_array_equal(read_image(path).pixels, np.asarray(reference))


def test_a_jpeg_cut_at_each_restart_marker_is_refused(tmp_path: Path) -> None:
    """Cut right where a restart interval ends, a scan leaves no data unread before the end marker."""
    data = _photo_jpeg(restart_marker_rows=1)
    start = data.index(b"\xff\xda")
    cuts = [i for i in range(start, len(data) - 2) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
    assert len(cuts) == 15  # one interval per row of 16 x 16 MCUs
    path = tmp_path / "cut.jpg"
    for cut in cuts[:8]:  # every restart number 0-7, before and after its marker
        for end in (cut, cut + 2):
            path.write_bytes(data[:end] + b"\xff\xd9")
            with pytest.raises(ImageReadError, match="incomplete"):
                read_image(path)


def test_complete_jpegs_still_read(tmp_path: Path) -> None:
    photo = Image.open(Path(__file__).resolve().parents[1] / "examples" / "clean.png").convert("RGB")
    cases = {"grey.jpg": photo.convert("L"), "cmyk.jpg": photo.convert("CMYK")}
    for name, image in cases.items():
        image.save(tmp_path / name, quality=90)
    (tmp_path / "trailer.jpg").write_bytes(_photo_jpeg() + b"camera maker's trailer")
    photo.save(tmp_path / "two.mpo", "MPO", save_all=True, append_images=[photo.resize((64, 64))])
    for name in ["grey.jpg", "cmyk.jpg", "trailer.jpg", "two.mpo"]:
        with Image.open(tmp_path / name) as reference:
            expected = np.asarray(reference.convert("RGB") if reference.mode == "CMYK" else reference)
        pixels = read_image(tmp_path / name).pixels
        np.testing.assert_array_equal(pixels[..., 0] if name == "grey.jpg" else pixels, expected)


def test_a_tiny_jpeg_claiming_81_megapixels_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 200)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", 9000, 9000)  # the header's height and width
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bytes(data))
    assert len(data) < 1000
    with Image.open(path) as claimed:
        assert claimed.size == (9000, 9000)

    def no_decoding(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageReadError, match="incomplete.*9000x9000") as error:
        read_image(path)
    assert "\n" not in str(error.value)


def test_a_write_that_must_not_overwrite_keeps_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    from hfpie.errors import OutputExistsError

    target = tmp_path / "x.png"
    atomic_write_bytes(target, b"the first run's result", overwrite=False)  # published while the second one worked
    with pytest.raises(OutputExistsError, match="already exists") as error:
        atomic_write_bytes(target, b"the second run's result", overwrite=False)
    assert str(target) in str(error.value) and ".tmp" not in str(error.value) and "\n" not in str(error.value)
    assert target.read_bytes() == b"the first run's result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]  # the loser's temporary file is gone
    atomic_write_bytes(target, b"asked to replace it")  # overwrite=True, the default, still replaces
    assert target.read_bytes() == b"asked to replace it"


def test_without_hard_links_a_write_still_never_replaces(tmp_path: Path, monkeypatch) -> None:
    import errno

    from hfpie.errors import OutputExistsError

    def no_hard_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")  # what FAT or exFAT answer to link()

    monkeypatch.setattr("hfpie.io.os.link", no_hard_links)
    target = tmp_path / "x.png"
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"first", overwrite=False)
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"first" and stat.S_IMODE(target.stat().st_mode) == 0o644
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_an_image_is_read_once_so_a_named_pipe_works(tmp_path: Path) -> None:
    import threading

    Image.fromarray(_rgb(20, 24)).save(tmp_path / "x.png")
    Image.fromarray(_rgb(20, 24, seed=1)).save(tmp_path / "x.jpg", quality=95)
    for name in ["x.png", "x.jpg"]:
        pipe = tmp_path / f"pipe-{name}"
        os.mkfifo(pipe)
        data = (tmp_path / name).read_bytes()
        result: dict[str, object] = {}
        reader = threading.Thread(target=lambda: result.setdefault("image", read_image(pipe)), daemon=True)
        reader.start()
        with open(pipe, "wb") as writer:
            writer.write(data)
        reader.join(timeout=30)
        if reader.is_alive():  # it opened the pipe a second time: let it go before failing
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail(f"read_image({name} through a pipe) hangs: it opens the file twice")
        np.testing.assert_array_equal(result["image"].pixels, read_image(tmp_path / name).pixels)


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("channels, alpha", [(1, False), (1, True), (3, False), (3, True)])
def test_tiffs_of_every_kind_come_back_as_written(tmp_path: Path, depth: int, channels: int, alpha: bool) -> None:
    """TIFFs are written by tifffile: every depth, grey or colour, with or without alpha reads back the same
    (16-bit grey with alpha as colour, which every reader opens)."""
    dtype, top = (np.uint8, 255) if depth == 8 else (np.uint16, 65535)
    rng = np.random.default_rng(channels + 2 * alpha)
    pixels = rng.integers(0, top, (7, 9, channels)).astype(dtype)
    mask = rng.integers(0, top, (7, 9)).astype(dtype) if alpha else None
    write_image(tmp_path / "out.tif", ImageFile(pixels, mask, "TIFF"))
    again = read_image(tmp_path / "out.tif")
    assert again.pixels.dtype == dtype and again.format == "TIFF"
    np.testing.assert_array_equal(again.pixels, np.broadcast_to(pixels, again.pixels.shape))
    if alpha:
        np.testing.assert_array_equal(again.alpha, mask)


@pytest.mark.parametrize("mode, key", [("L", 0), ("RGB", (0, 0, 0)), ("I;16", 0)])
def test_a_png_colour_key_becomes_alpha(tmp_path: Path, mode: str, key) -> None:
    """tRNS on a grey, colour or 16-bit grey PNG: the keyed pixels stay transparent in the output."""
    values = np.full((8, 6, 3), 200, np.uint8)
    values[:4] = 0  # the top half has the key colour
    pil = Image.fromarray(values)
    pil = pil.convert("L") if mode == "L" else Image.fromarray(values[..., 0].astype(np.uint16) * 257) if mode == "I;16" else pil
    pil.save(tmp_path / "keyed.png", transparency=key)
    image = read_image(tmp_path / "keyed.png")
    assert image.alpha is not None
    top = 0
    full = np.iinfo(image.alpha.dtype).max
    assert (image.alpha[:4] == top).all() and (image.alpha[4:] == full).all()
    write_image(tmp_path / "out.png", image)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode in {"LA", "RGBA"} or "transparency" in written.info
        np.testing.assert_array_equal(read_image(tmp_path / "out.png").alpha, image.alpha)


@pytest.mark.parametrize("alpha", [False, True])
def test_a_lossless_webp_is_written_back_lossless(tmp_path: Path, alpha: bool) -> None:
    pixels = _rgb(24, 31, seed=5)
    mode_pixels = np.dstack([pixels, np.where(np.arange(31) < 9, 0, 200).astype(np.uint8)[None].repeat(24, 0)]) \
        if alpha else pixels
    Image.fromarray(mode_pixels).save(tmp_path / "lossless.webp", lossless=True, exact=True)
    Image.fromarray(mode_pixels).save(tmp_path / "lossy.webp", quality=90)
    assert read_image(tmp_path / "lossless.webp").webp_lossless
    assert not read_image(tmp_path / "lossy.webp").webp_lossless  # VP8 (and ALPH for the alpha), not VP8L

    changed = np.ascontiguousarray(255 - pixels)  # what a model would write: new pixels, the same file
    image = read_image(tmp_path / "lossless.webp")
    write_image(tmp_path / "out.webp", image.with_pixels(changed, image.alpha))
    written = read_image(tmp_path / "out.webp")
    assert written.webp_lossless
    np.testing.assert_array_equal(written.pixels, changed)  # also under the fully transparent columns
    if alpha:
        np.testing.assert_array_equal(written.alpha, mode_pixels[..., 3])

    lossy = read_image(tmp_path / "lossy.webp")
    write_image(tmp_path / "out-lossy.webp", lossy.with_pixels(changed, lossy.alpha))
    assert not read_image(tmp_path / "out-lossy.webp").webp_lossless  # a lossy input stays lossy (quality 95)


def test_quality_sets_jpeg_and_webp_outputs_and_is_checked(tmp_path: Path) -> None:
    from hfpie.io import check_quality, encode_image

    pixels = _rgb(32, 40, seed=7)
    image = ImageFile(pixels=pixels, alpha=None, format="PNG")

    def pil_bytes(image_format: str, **options) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=image_format, **options)
        return buffer.getvalue()

    assert encode_image(image, "JPEG") == pil_bytes("JPEG", quality=95, subsampling=0)  # the default
    assert encode_image(image, "JPEG", quality=40) == pil_bytes("JPEG", quality=40, subsampling=0)
    assert encode_image(image, "WEBP", quality=40) == pil_bytes("WEBP", quality=40)
    assert len(encode_image(image, "JPEG", quality=40)) < len(encode_image(image, "JPEG"))
    assert encode_image(image, "PNG", quality=40) == encode_image(image, "PNG")  # lossless formats ignore it

    lossless = ImageFile(pixels=pixels, alpha=None, format="WEBP", webp_lossless=True)
    write_image(tmp_path / "kept.webp", lossless)
    write_image(tmp_path / "asked.webp", lossless, quality=80)
    assert read_image(tmp_path / "kept.webp").webp_lossless
    assert not read_image(tmp_path / "asked.webp").webp_lossless  # a quality given makes it lossy, as asked

    for bad in (0, 101, 9.5, True, "95"):
        with pytest.raises(ValueError, match="quality must be an integer from 1"):
            encode_image(image, "JPEG", quality=bad)  # type: ignore[arg-type]
    assert check_quality(None) is None and check_quality(1) == 1 and check_quality(100) == 100
