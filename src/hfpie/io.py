"""Reading and writing image files faithfully.

What is kept from input to output: the file format (unless the output name says otherwise), the bit
depth (8 or 16 bits per channel), greyscale vs colour, the alpha channel, EXIF (with the orientation
reset, since it is applied on reading; a TIFF's EXIF without its own layout tags, and written to TIFF
outputs of any depth with its EXIF and GPS sub-IFDs), the ICC profile, the resolution (dpi, times the scale after
super-resolution), XMP, and a PNG's text and colour chunks (:mod:`hfpie.metadata`). Palette images
come back as RGB(A).

Reading decodes the whole file and refuses incomplete data (a PNG whose pixel data stops early, or a
JPEG cut short with its end marker put back, is decoded silently by Pillow: we count the PNG's rows
and probe the JPEG's scan data), animated and multi-page files (one frame would be
lost), and modes that cannot be kept. CMYK is converted to RGB, through its ICC profile when it has one.

A file is read once, and every check runs on those bytes, so pipes, ``/dev/stdin`` and ``-``
(standard input) work as inputs.

Writes are atomic: the whole file is encoded in memory, written to a temporary file beside the
target and renamed over it (or, when an existing file must not be replaced, linked to its name,
which fails if the name is taken), so a crash or Ctrl-C never leaves a half-written image. A new file gets
the permissions of an ordinary write (0666 less the umask); a replaced file keeps its own.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import stat
import struct
import sys
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageChops, ImageCms, ImageOps, UnidentifiedImageError

from . import metadata
from .errors import ImageReadError, ImageWriteError, OutputExistsError, UnsupportedImageError

__all__ = [
    "DEFAULT_QUALITY",
    "ImageFile",
    "READ_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "atomic_write_bytes",
    "check_can_encode",
    "check_quality",
    "decode_image",
    "encode_image",
    "format_for",
    "image_file_from_pil",
    "is_stdio",
    "read_image",
    "to_pil",
    "write_image",
]

# Pillow format name for each output suffix we write.
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP", ".bmp": "BMP"}
WRITABLE_SUFFIXES = tuple(sorted(_FORMATS))
READ_SUFFIXES = frozenset({*_FORMATS, ".gif"})
"""Suffixes of the files a folder contributes (to the CLI's batches and to training sets)."""
"""Output suffixes hfpie writes."""
STDIO = "-"
"""The file name of standard input (as an input) and standard output (as an output)."""
_SUPPORTED_MODES = {"L", "LA", "RGB", "RGBA", "P", "PA", "I;16", "I;16B", "I;16L", "I", "CMYK"}
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
"""The passes of an interlaced PNG: first column, first row, column step, row step."""


@dataclass(frozen=True)
class ImageFile:
    """Decoded pixels plus what must be written back.

    ``pixels`` is HxWx1 (grey) or HxWx3 (RGB), uint8 or uint16, already turned upright by the EXIF
    orientation; ``alpha`` is HxW of the same dtype or None.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    exif: bytes | None = None
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    """Resolution in dots per inch, when the file gives one."""
    xmp: bytes | None = None
    png_chunks: tuple[tuple[bytes, bytes], ...] = ()
    """A PNG's text and colour chunks, (type, body), written back verbatim to a PNG output."""
    webp_lossless: bool = False
    """The file was a lossless WebP: a WebP output is written lossless too (else at quality 95)."""

    def with_pixels(self, pixels: np.ndarray, alpha: np.ndarray | None) -> ImageFile:
        """This file with new pixels (the same size, or ``scale`` times larger): its metadata kept, the
        resolution and EXIF's pixel dimensions scaled with the image."""
        factor = pixels.shape[1] // self.pixels.shape[1]
        return replace(self, pixels=pixels, alpha=alpha,
                       dpi=None if self.dpi is None else (self.dpi[0] * factor, self.dpi[1] * factor),
                       exif=metadata.rescaled_exif(self.exif, factor, (pixels.shape[1], pixels.shape[0])))

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def is_grey(self) -> bool:
        return self.pixels.shape[2] == 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1-8 to an HxW(xC) array (the same transforms as ImageOps.exif_transpose)."""
    operations = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    operation = operations.get(orientation)
    return np.ascontiguousarray(operation(array)) if operation else array


def read_image(path: str | os.PathLike[str]) -> ImageFile:
    """Decode an image file with its metadata; raise a one-line error naming the file if it cannot.

    Raises:
        ImageReadError: missing file, not an image, truncated or incomplete data, empty image, or more
            pixels than Pillow's decompression-bomb limit allows.
        UnsupportedImageError: a mode hfpie cannot process faithfully (1-bit, float...), or an
            animated or multi-page file. CMYK is converted to RGB (through its ICC profile if any).
    """
    path = Path(path)
    return decode_image(_read_bytes(path), path)


def decode_image(data: bytes, name: str | os.PathLike[str] = "image") -> ImageFile:
    """:func:`read_image` of a file's bytes (read from a URI, an object store, a data frame...);
    ``name`` (the file's path or URI) starts its error messages. Raises as :func:`read_image`."""
    path = name
    try:
        with Image.open(io.BytesIO(data)) as opened:
            _refuse_animation(opened, path)
            if opened.format == "PNG":
                _refuse_incomplete_png(data, path)
            elif opened.format in {"JPEG", "MPO"}:
                _refuse_incomplete_jpeg(data, opened, path)
            opened.load()
            image_format = opened.format or "PNG"
            mode = opened.mode
            orientation = opened.getexif().get(0x0112, 1)
            upright = ImageOps.exif_transpose(opened)
            # a TIFF's EXIF is its first IFD, which Pillow does not carry to the transposed copy
            exif = metadata.picture_exif(opened.getexif()) if opened.format == "TIFF" else upright.getexif()
            exif_bytes = exif.tobytes() if len(exif) or exif.get_ifd(0x8769) or exif.get_ifd(0x8825) else None
            # Pillow opens as mode I only files of more than 8 bits a sample (16-bit PGM, signed or
            # 32-bit TIFF, 16-bit grey PNG in older Pillow): values past 16 bits are refused there.
            decoded = image_file_from_pil(upright, str(path), bit_depth=16 if mode == "I" else None)
            icc = decoded.icc_profile if mode == "CMYK" else opened.info.get("icc_profile") or None
            pixels, alpha = decoded.pixels, decoded.alpha
            dpi, xmp = metadata.read_dpi(opened), metadata.read_xmp(opened)
            chunks = metadata.png_chunks(data) if image_format == "PNG" else ()
            deeper = _more_than_8_bits(opened, data)
            exif_bytes, dpi, xmp, chunks = metadata.upright(orientation, exif=exif_bytes, dpi=dpi, xmp=xmp, chunks=chunks)
    except UnidentifiedImageError as error:
        raise ImageReadError(f"{path}: not a readable image ({error.__class__.__name__})") from None
    except Image.DecompressionBombError as error:
        raise ImageReadError(
            f"{path}: refused as a possible decompression bomb ({error}); if the file is genuine, "
            "raise PIL.Image.MAX_IMAGE_PIXELS"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: cannot decode the image, it may be truncated or corrupted ({error})") from None
    if deeper and pixels.dtype == np.uint8 and pixels.shape[2] == 3:
        # Pillow reads 16-bit colour as 8-bit: take the pixels from OpenCV (only then: no second decode).
        deep = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if deep is not None and deep.dtype == np.uint16 and deep.ndim == 3:
            deep = _orient(deep, orientation)
            pixels = np.ascontiguousarray(deep[..., 2::-1])
            alpha = np.ascontiguousarray(deep[..., 3]) if deep.shape[2] == 4 else None
    return ImageFile(pixels=pixels, alpha=alpha, format=image_format, exif=exif_bytes, icc_profile=icc,
                     dpi=dpi, xmp=xmp, png_chunks=chunks, webp_lossless=image_format == "WEBP" and _is_lossless_webp(data))


def _is_lossless_webp(data: bytes) -> bool:
    """Whether a (still) WebP's image chunk is VP8L, the lossless codec, rather than VP8 (lossy, with an
    ALPH chunk for alpha). The chunks follow the 12-byte RIFF header, each a type, a little-endian size
    and the body padded to an even length; an extended file (VP8X) has others before the image's."""
    offset = 12
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        offset += 8 + size + (size & 1)
    return False


def _more_than_8_bits(opened: Image.Image, data: bytes) -> bool:
    """Whether a PNG or TIFF stores more than 8 bits a sample (its header says so; nothing is decoded)."""
    if opened.format == "PNG":
        return data[24] > 8  # IHDR's bit depth: signature 8, length 4, type 4, width 4, height 4
    if opened.format == "TIFF":
        bits = getattr(opened, "tag_v2", {}).get(258, 8)
        return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return False


def _read_bytes(path: Path) -> bytes:
    """The bytes of the file ``path``, read once: a pipe, ``/dev/stdin`` or ``-`` (standard input) can be read
    only once, so every check runs on these bytes rather than opening the file again."""
    if is_stdio(path):
        return sys.stdin.buffer.read()
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    try:
        return path.read_bytes()
    except OSError as error:
        raise ImageReadError(f"{path}: cannot read the file ({error.strerror or error})") from None


def is_stdio(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``-``: standard input as an input, standard output as an output (as Unix tools read it)."""
    return os.fspath(path) == STDIO


def image_file_from_pil(image: Image.Image, name: str = "image", *, bit_depth: int | None = None) -> ImageFile:
    """Pixels and alpha of a PIL image (format PNG, no EXIF); ``name`` is used in error messages.

    ``bit_depth`` (8 or 16) says what a mode ``I`` image holds: Pillow gives that mode to 8-bit data
    converted with ``.convert("I")`` as well as to some 16-bit files, so the pixels cannot tell. A
    mode ``I`` image without it is refused.
    """
    if image.mode not in _SUPPORTED_MODES:
        raise UnsupportedImageError(
            f"{name}: images of mode {image.mode} are not supported; convert it to RGB or greyscale first"
        )
    if image.width == 0 or image.height == 0:
        raise ImageReadError(f"{name}: the image has no pixels")
    if image.mode == "CMYK":
        image = _cmyk_to_rgb(image, name)
    pixels, alpha = _pixels_from_pil(image, name, bit_depth)
    return ImageFile(pixels=pixels, alpha=alpha, format="PNG", icc_profile=image.info.get("icc_profile") or None)


def _refuse_animation(image: Image.Image, path: Path) -> None:
    """Raise for animated or multi-page files: processing one frame would drop the others.

    MPO (camera JPEGs with an embedded second picture, such as a preview) are read as their first,
    main picture, as every viewer shows them.
    """
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":
        raise UnsupportedImageError(
            f"{path}: {image.format} with {frames} frames (animated or multi-page); hfpie processes still "
            "images only: extract the frames first (e.g. ffmpeg -i in.gif frame%04d.png)"
        )


def _refuse_incomplete_png(data: bytes, path: Path) -> None:
    """Raise when the PNG ``data`` (of the file ``path``) stops before its last row.

    Pillow decodes a complete zlib stream that holds too few rows without an error (the missing rows
    come out black), so the rows the header promises are counted here, before any decoding:
    inflating stops as soon as enough bytes are seen, so a huge size claimed by a tiny file costs nothing.
    """
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    bits = depth * _PNG_SAMPLES.get(colour_type, 4)
    needed = 0
    for first_column, first_row, column_step, row_step in _ADAM7 if interlace else ((0, 0, 1, 1),):
        columns = -(-(width - first_column) // column_step)
        rows = -(-(height - first_row) // row_step)
        if columns > 0 and rows > 0:
            needed += rows * (1 + -(-columns * bits // 8))  # a filter byte, then the packed samples
    inflater, inflated, position = zlib.decompressobj(), 0, 8
    try:
        while position + 8 <= len(data) and inflated < needed:
            length, kind = struct.unpack(">I4s", data[position : position + 8])
            piece = data[position + 8 : position + 8 + length] if kind == b"IDAT" else b""
            while piece and inflated < needed:
                inflated += len(inflater.decompress(piece, 1 << 24))
                piece = inflater.unconsumed_tail
            position += 12 + length
    except zlib.error:
        return  # corrupted, not short: Pillow's decoder reports it
    if inflated < needed:
        raise ImageReadError(
            f"{path}: the image data is incomplete ({100 * inflated // needed}% of the {width}x{height} pixels "
            "are in the file); it is truncated or damaged, so get the file again"
        )


_JPEG_SCAN_END = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")
"""The marker that ends a JPEG scan's entropy-coded data: 0xFF then neither a stuffed 0x00 nor a restart."""
_JPEG_PROBE = bytes((index * 73 + 0x9B) % 255 for index in range(512))
"""Bytes that read as entropy-coded data (no 0xFF; the first bit set, where a decoder out of data reads 0s)."""
_JPEG_HUFFMAN_FRAMES = {0xC0, 0xC1, 0xC2}
"""Start-of-frame markers of Huffman-coded JPEGs (baseline, extended, progressive): at least 1 bit per block."""


def _jpeg_layout(data: bytes) -> tuple[int | None, int | None, bool]:
    """Where the first image of a JPEG ends (the offset of its EOI marker, None if it has none), its
    start-of-frame marker, and whether it has restart intervals; header segments are skipped by length."""
    position, frame, restarts = 2, None, False
    while position + 2 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xD9:
            return position, frame, restarts
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # fill byte, parameterless markers
            position += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in {0xC4, 0xC8, 0xCC} and frame is None:
            frame = marker
        if marker == 0xDD:  # define restart interval: MCUs per interval, 0 for none
            restarts = restarts or int.from_bytes(data[position + 4 : position + 6], "big") > 0
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:
            end = _JPEG_SCAN_END.search(data, position)
            if end is None:
                break
            position = end.end() - 2
    return None, frame, restarts


def _refuse_incomplete_jpeg(data: bytes, image: Image.Image, name: str | os.PathLike[str]) -> None:
    """Raise when the JPEG ``data`` stops before its last pixel; else load ``image``, opened from it.

    libjpeg decodes a scan cut short and closed by an end marker with a warning only (Pillow drops
    it): the missing blocks come out flat grey. So the file is decoded again with a run of made-up
    entropy-coded bytes put before its end marker: a complete scan never reads them (the decoder
    skips bytes before a marker), an incomplete one does, and its pixels change. A file with restart
    intervals cut right at the end of one would skip them too (the decoder looks for the next restart
    marker), so it gets two more probes that start with restart markers 0 and 4: whichever number it
    expects, libjpeg resumes decoding at one of the two.
    Before any decoding, a Huffman-coded file smaller than one bit per 8x8 block of the size its
    header claims is refused outright (a tiny file claiming a huge image would otherwise be decoded).
    """
    end, frame, restarts = _jpeg_layout(data)
    width, height = image.size

    def refuse(why: str) -> ImageReadError:
        return ImageReadError(
            f"{name}: the image data is incomplete ({why}); it is truncated or damaged, so get the file again"
        )

    blocks = -(-width // 8) * -(-height // 8)
    if frame in _JPEG_HUFFMAN_FRAMES and 8 * len(data) < blocks:
        raise refuse(f"{len(data)} bytes cannot hold the {width}x{height} pixels the header claims")
    image.load()
    if end is None:
        return  # no end marker: Pillow reports the truncation itself
    probes = [b""] + ([b"\xff\xd0", b"\xff\xd4"] if restarts else [])
    for restart in probes:
        try:
            with Image.open(io.BytesIO(data[:end] + restart + _JPEG_PROBE + data[end:])) as probe:
                probe.load()
                changed = probe.mode != image.mode or ImageChops.difference(probe, image).getbbox() is not None
        except (OSError, SyntaxError, ValueError):
            changed = True  # the made-up bytes were decoded, and broke the scan
        if changed:
            raise refuse(f"the compressed data stops before the last of the {width}x{height} pixels")


def _cmyk_to_rgb(image: Image.Image, name: str) -> Image.Image:
    """RGB of a CMYK image: through its ICC profile into sRGB (which the result then carries), else Pillow's
    plain conversion, as most viewers do for untagged CMYK."""
    profile = image.info.get("icc_profile")
    if not profile:
        converted = image.convert("RGB")
        converted.info.pop("icc_profile", None)
        return converted
    srgb = ImageCms.createProfile("sRGB")
    try:
        converted = ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(profile)), srgb,
                                              outputMode="RGB")
    except (ImageCms.PyCMSError, OSError) as error:
        raise UnsupportedImageError(f"{name}: its CMYK ICC profile cannot be used ({error}); convert it to RGB first") from None
    converted.info["icc_profile"] = ImageCms.ImageCmsProfile(srgb).tobytes()
    return converted


def _pixels_from_pil(image: Image.Image, name: str, bit_depth: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    mode = image.mode
    if mode in {"P", "PA"}:
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode == "I" and bit_depth not in (8, 16):
        raise UnsupportedImageError(
            f"{name}: a mode I image may hold 8-bit or 16-bit values; say which by converting it: "
            "image.convert('L') for 8-bit values, image.convert('I;16') for 16-bit"
        )
    if mode in {"I;16", "I;16B", "I;16L", "I"}:
        array = np.asarray(image)
        if mode == "I" and (array.min() < 0 or array.max() >= 1 << bit_depth):
            if bit_depth == 16:
                raise UnsupportedImageError(f"{name}: 32-bit integer images are not supported; save it as 16-bit")
            raise UnsupportedImageError(f"{name}: values {array.min()} to {array.max()} do not fit in 8 bits; "
                                        "pass bit_depth=16")
        dtype = np.uint8 if bit_depth == 8 else np.uint16
        return array.astype(dtype)[..., None], _colour_key_alpha(image, array, dtype)
    array = np.asarray(image)
    if mode == "L":
        return array[..., None].copy(), _colour_key_alpha(image, array, np.uint8)
    if mode == "LA":
        return array[..., :1].copy(), array[..., 1].copy()
    if mode == "RGB":
        return array.copy(), _colour_key_alpha(image, array, np.uint8)
    return array[..., :3].copy(), array[..., 3].copy()  # RGBA


def _colour_key_alpha(image: Image.Image, array: np.ndarray, dtype: type) -> np.ndarray | None:
    """A grey or colour PNG's colour key (tRNS) as an alpha channel: 0 where a pixel has the key's value."""
    key = image.info.get("transparency")
    if key is None or isinstance(key, bytes):  # none, or a palette's (handled by converting to RGBA)
        return None
    keyed = array == key if array.ndim == 2 else np.all(array == np.asarray(key, array.dtype), axis=-1)
    return np.where(keyed, 0, np.iinfo(dtype).max).astype(dtype)


def format_for(path: str | os.PathLike[str], fallback: str) -> str:
    """The format to write ``path`` in: from its suffix, else ``fallback``."""
    suffix = Path(path).suffix.lower()
    if suffix in _FORMATS:
        return _FORMATS[suffix]
    if suffix:
        raise UnsupportedImageError(
            f"{path}: cannot write {suffix} files; use one of {', '.join(WRITABLE_SUFFIXES)}"
        )
    return fallback


def check_can_encode(image: ImageFile, image_format: str) -> None:
    """Raise UnsupportedImageError when ``image_format`` cannot hold ``image`` (cheap: call it before the work)."""
    image_format = "JPEG" if image_format == "MPO" else image_format
    if image_format not in set(_FORMATS.values()):
        raise UnsupportedImageError(
            f"cannot write {image_format} files; name the output {', '.join(WRITABLE_SUFFIXES)}"
        )
    if image_format in {"JPEG", "BMP"} and image.alpha is not None:
        raise UnsupportedImageError(f"{image_format} cannot hold an alpha channel; write a .png output instead")


def to_pil(image: ImageFile) -> Image.Image | np.ndarray:
    """A PIL image of ``image`` (its ICC profile in ``info``), or, for 16-bit colour or 16-bit grey with
    alpha (which no PIL mode holds), an HxWxC uint16 array (RGB, RGBA or grey+alpha)."""
    channels = [image.pixels] + ([image.alpha[..., None]] if image.alpha is not None else [])
    if image.bit_depth == 16:
        if image.is_grey and image.alpha is None:
            return Image.fromarray(image.pixels[..., 0].astype(np.uint16))
        return np.concatenate(channels, axis=2)
    array = np.concatenate(channels, axis=2) if len(channels) > 1 else image.pixels
    pil = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    if image.icc_profile:
        pil.info["icc_profile"] = image.icc_profile
    return pil


DEFAULT_QUALITY = 95
"""The quality of JPEG and lossy WebP outputs when none is asked for."""


def check_quality(quality: int | None) -> int | None:
    """``quality`` itself, or ValueError when it is not a JPEG/WebP quality (an integer 1-100, or None)."""
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100):
        raise ValueError(f"quality must be an integer from 1 (smallest file) to 100 (best), got {quality!r}; "
                         f"leave it out for {DEFAULT_QUALITY}")
    return quality


def encode_image(image: ImageFile, image_format: str, *, quality: int | None = None) -> bytes:
    """Encode ``image`` in ``image_format`` (PNG, JPEG, TIFF, WEBP, BMP) with its metadata.

    ``quality`` (1-100) sets a JPEG's or WebP's; without it a JPEG is written at 95 and a WebP at 95,
    or lossless when the input was a lossless WebP. The other formats are lossless and ignore it."""
    image_format = "JPEG" if image_format == "MPO" else image_format
    check_quality(quality)
    check_can_encode(image, image_format)
    if image_format in {"JPEG", "BMP", "WEBP"} and image.bit_depth == 16:
        image = _to_8bit(image)  # these formats have no 16-bit variant
    if image_format == "TIFF":
        return _encode_tiff(image)
    if image.bit_depth == 16 and not image.is_grey:
        return _encode_deep_colour(image, image_format)
    if image.bit_depth == 16 and image.alpha is not None:
        return _encode_deep_colour(image, image_format)
    pil = to_pil(image)
    assert isinstance(pil, Image.Image)  # what to_pil cannot hold in PIL went to _encode_deep_colour above
    options = metadata.save_options(image_format, dpi=image.dpi, xmp=image.xmp,
                                    chunks=image.png_chunks if image_format == "PNG" else ())
    if image.exif:
        options["exif"] = image.exif
    if image.icc_profile:
        options["icc_profile"] = image.icc_profile
    lossy_quality = DEFAULT_QUALITY if quality is None else quality
    if image_format == "JPEG":
        options.update(quality=lossy_quality, subsampling=0)
    elif image_format == "WEBP":
        if image.webp_lossless and quality is None:  # exact: keep the colour under fully transparent pixels
            options.update(lossless=True, exact=True)
        else:
            options.update(quality=lossy_quality)
    buffer = io.BytesIO()
    pil.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _to_8bit(image: ImageFile) -> ImageFile:
    def convert(array: np.ndarray) -> np.ndarray:
        return np.round(array.astype(np.float64) / 257.0).astype(np.uint8)

    return replace(image, pixels=convert(image.pixels), alpha=None if image.alpha is None else convert(image.alpha))


def _encode_deep_colour(image: ImageFile, image_format: str) -> bytes:
    """16-bit colour (or grey + alpha) as a PNG, which no PIL mode holds: through OpenCV, with its ICC,
    EXIF and other chunks put back (:func:`hfpie.metadata.png_extra_chunks`)."""
    pixels = image.pixels if not image.is_grey else np.repeat(image.pixels, 3, axis=2)
    bgr = pixels[..., ::-1]
    if image.alpha is not None:
        bgr = np.concatenate([bgr, image.alpha[..., None]], axis=2)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise UnsupportedImageError(f"OpenCV could not encode a 16-bit {image_format} image")
    data = encoded.tobytes()
    extra = b"".join(metadata.png_chunk(kind, body) for kind, body in metadata.png_extra_chunks(
        icc_profile=image.icc_profile, exif=image.exif, dpi=image.dpi, xmp=image.xmp, chunks=image.png_chunks))
    header_end = 8 + 25  # signature + IHDR chunk
    return data[:header_end] + extra + data[header_end:]


def _encode_tiff(image: ImageFile) -> bytes:
    """A TIFF of any depth through tifffile (deflate with a predictor), with its ICC profile, resolution
    and XMP; the EXIF's descriptive tags go in as extra tags and its EXIF and GPS sub-IFDs are appended
    after (:func:`hfpie.metadata.tiff_exif`: neither tifffile nor Pillow with compression writes them)."""
    import tifffile

    grey = image.is_grey and not (image.bit_depth == 16 and image.alpha is not None)  # no reader opens 16-bit LA
    pixels = image.pixels[..., 0] if grey else np.repeat(image.pixels, 3, axis=2) if image.is_grey else image.pixels
    samples = pixels if image.alpha is None else np.dstack([pixels, image.alpha])
    described, subs = metadata.tiff_exif(image.exif)
    big = samples.nbytes > 2**32 - 2**25  # tifffile's own threshold for a BigTIFF
    if big and subs:
        warnings.warn("the EXIF and GPS sub-IFDs are not written to a BigTIFF (over 4 GB) output; "
                      "its camera tags are", stacklevel=3)
        subs = {}
    extratags = [(700, "B", len(image.xmp), image.xmp, True)] if image.xmp else []
    for tag, (kind, value) in described.items():
        if kind == 2:  # ASCII
            extratags.append((tag, "s", 0, str(value), True))
    # tifffile refuses the sub-IFD pointers: private placeholders, given their tags once the file is laid out
    extratags += [(metadata.TIFF_PLACEHOLDERS[pointer], "I", 1, 0, True) for pointer in subs]
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer, np.ascontiguousarray(samples), photometric="minisblack" if grey else "rgb",
        compression="zlib", predictor=True, extrasamples=["unassalpha"] if image.alpha is not None else None,
        iccprofile=image.icc_profile, resolution=image.dpi, resolutionunit="INCH" if image.dpi else None,
        metadata=None, software=False, extratags=extratags or None, bigtiff=big, byteorder="<")
    return metadata.attach_tiff_ifds(buffer.getvalue(), subs) if subs else buffer.getvalue()


_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
"""What os.link raises on file systems without hard links (FAT, exFAT, some network and FUSE mounts)."""


def _publish_new(temporary: Path, path: Path) -> None:
    """Give the finished ``temporary`` the name ``path`` unless a file has it: FileExistsError then, and it is kept.

    A hard link fails when the name is taken, so of two runs writing the same output one wins and the
    other hears of it (a rename would silently replace the first). Without hard links the name is
    claimed with an exclusive create, then the finished file renamed over that claim.
    """
    try:
        os.link(temporary, path)
    except OSError as error:
        if isinstance(error, FileExistsError) or error.errno not in _NO_HARD_LINKS:
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # FileExistsError if taken
        try:
            os.replace(temporary, path)
        except BaseException:
            path.unlink(missing_ok=True)  # our own empty claim
            raise
        return
    with contextlib.suppress(OSError):
        temporary.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: all or nothing.

    The file gets the permissions an ordinary write gives it (0666 less the umask, as ``open`` does),
    or keeps those of the file it replaces. With ``overwrite=False`` an existing ``path`` is never
    replaced, even one that appeared while ``data`` was being made (another run writing the same
    output): OutputExistsError then, and that file is kept. Raises ImageWriteError naming ``path``
    (never the temporary file) when it cannot be written; the temporary file is always removed.
    """
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = None
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(temporary, flags, 0o666), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        if overwrite:
            os.replace(temporary, path)
        else:
            _publish_new(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        if isinstance(error, FileExistsError):
            raise OutputExistsError(f"{path}: already exists (another run may have written it meanwhile); "
                                    "it was kept") from None
        if isinstance(error, OSError) and not isinstance(error, ImageWriteError):
            raise ImageWriteError(f"{path}: cannot write the file ({error.strerror or error})") from None
        raise


def write_image(path: str | os.PathLike[str], image: ImageFile, image_format: str | None = None, *,
                overwrite: bool = True, quality: int | None = None) -> None:
    """Encode ``image`` (format from ``image_format``, else the suffix, else ``image.format``; ``quality``
    as in :func:`encode_image`) atomically; ``overwrite=False`` never replaces an existing file (see
    :func:`atomic_write_bytes`)."""
    data = encode_image(image, image_format or format_for(path, image.format), quality=quality)
    atomic_write_bytes(path, data, overwrite=overwrite)
