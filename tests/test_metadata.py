"""Resolution, XMP and a PNG's text and colour chunks go from input to output (hfpie.metadata)."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from conftest import make_network
from hfpie.api import enhance_image_file
from hfpie.io import ImageFile, read_image, write_image
from hfpie.metadata import png_chunks

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmp:Rating="5"/></rdf:RDF></x:xmpmeta>'
PROMPT = "a lighthouse at dusk, Steps: 30, Sampler: Euler a"


def _rgb(height: int = 16, width: int = 20) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


def _tagged_png(path: Path) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", PROMPT)
    info.add_text("Comment", "zipped " * 20, zip=True)
    info.add_itxt("Title", "phare \u00e0 la tomb\u00e9e")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add(b"gAMA", struct.pack(">I", 45455))
    info.add(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
    Image.fromarray(_rgb()).save(path, pnginfo=info, dpi=(300, 300))
    return path


def _chunks(path: Path) -> list[tuple[bytes, bytes]]:
    return list(png_chunks(path.read_bytes()))


@pytest.mark.parametrize("deep", [False, True])
def test_a_png_keeps_its_text_colour_chunks_xmp_and_resolution(tmp_path: Path, deep: bool) -> None:
    source = _tagged_png(tmp_path / "in.png")
    if deep:  # the same chunks on a 16-bit colour PNG (encoded through OpenCV)
        cv2.imwrite(str(tmp_path / "deep.png"), (_rgb().astype(np.uint16) * 257)[..., ::-1])
        image = read_image(tmp_path / "deep.png")
        tagged = read_image(source)
        image = tagged.with_pixels(image.pixels, None)
        assert image.bit_depth == 16
    else:
        image = read_image(source)
    write_image(tmp_path / "out.png", image)
    assert _chunks(tmp_path / "out.png") == _chunks(source)  # text, zipped text, iTXt, XMP, gAMA, cHRM
    with Image.open(tmp_path / "out.png") as written:
        assert written.text["parameters"] == PROMPT
        assert written.info["xmp"] == XMP
        assert written.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert written.info["gamma"] == pytest.approx(0.45455)


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".tif", ".png"])
def test_xmp_and_resolution_cross_formats(tmp_path: Path, suffix: str) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "in.tif", tiffinfo={700: XMP}, dpi=(240, 240))
    image = read_image(tmp_path / "in.tif")
    assert image.xmp == XMP and image.dpi == (240, 240)
    write_image(tmp_path / f"out{suffix}", image)
    with Image.open(tmp_path / f"out{suffix}") as written:
        xmp = written.info.get("xmp") or written.tag_v2.get(700)  # type: ignore[attr-defined]
        assert xmp == XMP
        if suffix != ".webp":  # WebP has no resolution field
            assert written.info["dpi"] == pytest.approx((240, 240), abs=0.01)
    assert read_image(tmp_path / f"out{suffix}").xmp == XMP


def test_text_chunks_go_to_png_outputs_only(tmp_path: Path) -> None:
    image = read_image(_tagged_png(tmp_path / "in.png"))
    write_image(tmp_path / "out.jpg", image)
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.info["xmp"] == XMP and "parameters" not in written.info


def test_super_resolution_scales_the_resolution_and_exif_dimensions(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[282], exif[283], exif[296] = 300.0, 300.0, 2
    details = exif.get_ifd(0x8769)
    details[0xA002], details[0xA003] = 20, 16
    Image.fromarray(_rgb()).save(tmp_path / "scan.jpg", dpi=(300, 300), exif=exif.tobytes(), xmp=XMP)
    image = read_image(tmp_path / "scan.jpg")
    upscaled = enhance_image_file(image, make_network(scale=2).eval(), device="cpu", precision="fp32")
    write_image(tmp_path / "scan_x2.jpg", upscaled)
    with Image.open(tmp_path / "scan_x2.jpg") as written:
        assert written.size == (40, 32)
        assert written.info["dpi"] == (600, 600)  # the same print size
        assert written.info["xmp"] == XMP
        exif = written.getexif()
        assert (float(exif[282]), float(exif[283])) == (600.0, 600.0)
        assert (exif.get_ifd(0x8769)[0xA002], exif.get_ifd(0x8769)[0xA003]) == (40, 32)
    denoised = enhance_image_file(image, make_network(scale=1).eval(), device="cpu", precision="fp32")
    assert denoised.dpi == (300, 300) and denoised.exif == image.exif


def test_an_xmp_packet_too_long_for_a_jpeg_is_left_out_with_a_warning(tmp_path: Path) -> None:
    big = XMP.replace(b"<rdf:RDF>", b"<rdf:RDF>" + b" " * 70000)
    Image.fromarray(_rgb()).save(tmp_path / "in.png", pnginfo=_xmp_info(big))
    image = read_image(tmp_path / "in.png")
    assert image.xmp == big
    with pytest.warns(UserWarning, match="does not fit in a JPEG"):
        write_image(tmp_path / "out.jpg", image)
    with Image.open(tmp_path / "out.jpg") as written:
        assert "xmp" not in written.info
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_image(tmp_path / "out.png", image)  # a PNG holds it
    assert read_image(tmp_path / "out.png").xmp == big


def _xmp_info(xmp: bytes) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


def test_files_without_metadata_get_none(tmp_path: Path) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "plain.png")
    image = read_image(tmp_path / "plain.png")
    assert (image.dpi, image.xmp, image.png_chunks) == (None, None, ())
    write_image(tmp_path / "out.png", image)
    with Image.open(tmp_path / "out.png") as written:
        assert "dpi" not in written.info and not written.text


@pytest.mark.parametrize("alpha", [False, True])
def test_a_16_bit_colour_tiff_keeps_its_icc_profile_xmp_and_resolution(tmp_path: Path, alpha: bool) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 65535, (9, 11, 3), dtype=np.uint16)
    icc = b"\x00\x00\x02\x0cprophoto-like-profile" * 4
    image = ImageFile(pixels, rng.integers(0, 65535, (9, 11), dtype=np.uint16) if alpha else None, "TIFF",
                      icc_profile=icc, xmp=XMP, dpi=(300.5, 300.5))
    write_image(tmp_path / "deep.tif", image)
    again = read_image(tmp_path / "deep.tif")
    assert again.bit_depth == 16
    np.testing.assert_array_equal(again.pixels, pixels)
    if alpha:
        np.testing.assert_array_equal(again.alpha, image.alpha)
    assert (again.icc_profile, again.xmp, again.dpi) == (icc, XMP, (300.5, 300.5))


def _camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "hfpie-camera", "model 7", "2026:12:04 10:00:00"
    details = exif.get_ifd(0x8769)
    details[0x829A], details[0x9003], details[0x829D] = 1 / 250, "2026:12:04 09:59:58", 2.8
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 30.0, 1.5)})
    return exif


def _assert_camera_exif(exif: Image.Exif) -> None:
    assert (exif.get(0x010F), exif.get(0x0110), exif.get(0x0132)) == ("hfpie-camera", "model 7", "2026:12:04 10:00:00")
    details = exif.get_ifd(0x8769)
    assert (float(details[0x829A]), details[0x9003], float(details[0x829D])) == (1 / 250, "2026:12:04 09:59:58", 2.8)
    gps = exif.get_ifd(0x8825)
    assert gps[1] == "N" and tuple(float(v) for v in gps[2]) == (52.0, 30.0, 1.5)


def test_a_16_bit_colour_tiff_keeps_its_exif(tmp_path: Path) -> None:
    """tifffile has no EXIF writer: the camera tags go in the first IFD, the EXIF and GPS sub-IFDs after."""
    import tifffile

    pixels = np.random.default_rng(2).integers(0, 65535, (9, 11, 3), dtype=np.uint16)
    write_image(tmp_path / "deep.tif", ImageFile(pixels, None, "TIFF", exif=_camera_exif().tobytes(), xmp=XMP))
    with Image.open(tmp_path / "deep.tif") as written:
        _assert_camera_exif(written.getexif())
    with tifffile.TiffFile(tmp_path / "deep.tif") as written:
        codes = [tag.code for tag in written.pages[0].tags.values()]
        np.testing.assert_array_equal(written.asarray(), pixels)
    assert codes == sorted(codes) and 34665 in codes and 34853 in codes and max(codes) < 65000
    again = read_image(tmp_path / "deep.tif")
    np.testing.assert_array_equal(again.pixels, pixels)
    exif = Image.Exif()
    exif.load(again.exif)
    _assert_camera_exif(exif)
    assert again.xmp == XMP


@pytest.mark.parametrize("output", ["jpg", "tif", "png"])
def test_a_tiffs_exif_goes_to_the_output_without_the_tiffs_layout_tags(tmp_path: Path, output: str) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "in.tif", exif=_camera_exif().tobytes())
    image = read_image(tmp_path / "in.tif")
    write_image(tmp_path / f"out.{output}", image)
    with Image.open(tmp_path / f"out.{output}") as written:
        exif = written.getexif()
        _assert_camera_exif(exif)
        if output != "tif":  # a TIFF's own layout tags are its own; no other file gets the input's
            assert not {256, 257, 258, 259, 273, 278, 279} & set(exif)


ROTATED_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
               b'tiff:Orientation="6" xmp:Rating="5"/></rdf:RDF></x:xmpmeta>')


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_pixels_turned_upright_are_not_turned_again_by_their_xmp(tmp_path: Path, suffix: str) -> None:
    """EXIF and XMP both say 'turn a quarter': the output is upright and says so in both, its x and y
    resolution swapped with the axes, its other XMP kept; reading the output again turns nothing."""
    pil = Image.fromarray(_rgb(16, 32))
    exif = pil.getexif()
    exif[0x0112] = 6
    if suffix == ".jpg":
        pil.save(tmp_path / "in.jpg", exif=exif.tobytes(), xmp=ROTATED_XMP, dpi=(300, 100), quality=95)
    else:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", ROTATED_XMP.decode(), zip=True)  # a compressed XMP chunk
        pil.save(tmp_path / "in.png", exif=exif.tobytes(), pnginfo=info, dpi=(300, 100))
    image = read_image(tmp_path / f"in{suffix}")
    assert image.pixels.shape[:2] == (32, 16)
    write_image(tmp_path / f"out{suffix}", image)
    with Image.open(tmp_path / f"out{suffix}") as written:
        assert written.getexif().get(0x0112, 1) == 1, "Pillow falls back to the XMP orientation: none is left"
        assert written.size == (16, 32)
        assert written.info["dpi"] == pytest.approx((100, 300), abs=0.01)
        assert b'xmp:Rating="5"' in (written.info["xmp"] if isinstance(written.info["xmp"], bytes)
                                    else written.info["xmp"].encode())
    again = read_image(tmp_path / f"out{suffix}")
    assert again.pixels.shape[:2] == (32, 16)


def test_an_xmp_orientation_alone_turns_the_pixels_once(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", ROTATED_XMP.decode())
    Image.fromarray(_rgb(16, 32)).save(tmp_path / "in.png", pnginfo=info)
    image = read_image(tmp_path / "in.png")
    assert image.pixels.shape[:2] == (32, 16)
    write_image(tmp_path / "out.png", image)
    assert read_image(tmp_path / "out.png").pixels.shape[:2] == (32, 16)
