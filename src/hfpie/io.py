"""Reading and writing image files faithfully.

What is kept from input to output: the file format (unless the output name says otherwise), the bit
depth (8 or 16 bits per channel), greyscale vs colour, the alpha channel, EXIF (with the orientation
reset, since it is applied on reading) and the ICC profile. Palette images come back as RGB(A).

Reading decodes the whole file and refuses incomplete data (a PNG whose pixel data stops early is
decoded silently by Pillow; we count its rows), animated and multi-page files (one frame would be
lost), and modes that cannot be kept. CMYK is converted to RGB, through its ICC profile when it has one.

Writes are atomic: the whole file is encoded in memory, written to a temporary file beside the
target and renamed over it, so a crash or Ctrl-C never leaves a half-written image. A new file gets
the permissions of an ordinary write (0666 less the umask); a replaced file keeps its own.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import stat
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import ImageReadError, ImageWriteError, UnsupportedImageError

__all__ = [
    "ImageFile",
    "READ_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "atomic_write_bytes",
    "check_can_encode",
    "encode_image",
    "format_for",
    "image_file_from_pil",
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
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    try:
        with Image.open(path) as opened:
            _refuse_animation(opened, path)
            if opened.format == "PNG":
                _refuse_incomplete_png(path)
            opened.load()
            image_format = opened.format or "PNG"
            mode = opened.mode
            orientation = opened.getexif().get(0x0112, 1)
            upright = ImageOps.exif_transpose(opened)
            exif = upright.getexif()
            exif_bytes = exif.tobytes() if len(exif) else None
            decoded = image_file_from_pil(upright, str(path))
            icc = decoded.icc_profile if mode == "CMYK" else opened.info.get("icc_profile") or None
            pixels, alpha = decoded.pixels, decoded.alpha
    except UnidentifiedImageError as error:
        raise ImageReadError(f"{path}: not a readable image ({error.__class__.__name__})") from None
    except Image.DecompressionBombError as error:
        raise ImageReadError(
            f"{path}: refused as a possible decompression bomb ({error}); if the file is genuine, "
            "raise PIL.Image.MAX_IMAGE_PIXELS"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: cannot decode the image, it may be truncated or corrupted ({error})") from None
    if image_format in {"PNG", "TIFF"} and pixels.dtype == np.uint8 and pixels.shape[2] == 3:
        # Pillow reads 16-bit colour as 8-bit: take the pixels from OpenCV when the file is deeper.
        deep = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if deep is not None and deep.dtype == np.uint16 and deep.ndim == 3:
            deep = _orient(deep, orientation)
            pixels = np.ascontiguousarray(deep[..., 2::-1])
            alpha = np.ascontiguousarray(deep[..., 3]) if deep.shape[2] == 4 else None
    return ImageFile(pixels=pixels, alpha=alpha, format=image_format, exif=exif_bytes, icc_profile=icc)


def image_file_from_pil(image: Image.Image, name: str = "image") -> ImageFile:
    """Pixels and alpha of a PIL image (format PNG, no EXIF); ``name`` is used in error messages."""
    if image.mode not in _SUPPORTED_MODES:
        raise UnsupportedImageError(
            f"{name}: images of mode {image.mode} are not supported; convert it to RGB or greyscale first"
        )
    if image.width == 0 or image.height == 0:
        raise ImageReadError(f"{name}: the image has no pixels")
    if image.mode == "CMYK":
        image = _cmyk_to_rgb(image, name)
    pixels, alpha = _pixels_from_pil(image, name)
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


def _refuse_incomplete_png(path: Path) -> None:
    """Raise when a PNG's pixel data stops before its last row.

    Pillow decodes a complete zlib stream that holds too few rows without an error (the missing rows
    come out black), so the rows the header promises are counted here, before any decoding:
    inflating stops as soon as enough bytes are seen, so a huge size claimed by a tiny file costs nothing.
    """
    data = path.read_bytes()
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


def _pixels_from_pil(image: Image.Image, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    mode = image.mode
    if mode in {"P", "PA"}:
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode in {"I;16", "I;16B", "I;16L", "I"}:
        array = np.asarray(image)
        if mode == "I" and (array.min() < 0 or array.max() > 65535):
            raise UnsupportedImageError(f"{name}: 32-bit integer images are not supported; save it as 16-bit")
        return array.astype(np.uint16)[..., None], None
    array = np.asarray(image)
    if mode == "L":
        return array[..., None].copy(), None
    if mode == "LA":
        return array[..., :1].copy(), array[..., 1].copy()
    if mode == "RGB":
        return array.copy(), None
    return array[..., :3].copy(), array[..., 3].copy()  # RGBA


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


def encode_image(image: ImageFile, image_format: str) -> bytes:
    """Encode ``image`` in ``image_format`` (PNG, JPEG, TIFF, WEBP, BMP) with its metadata."""
    image_format = "JPEG" if image_format == "MPO" else image_format
    check_can_encode(image, image_format)
    if image_format in {"JPEG", "BMP", "WEBP"} and image.bit_depth == 16:
        image = _to_8bit(image)  # these formats have no 16-bit variant
    if image.bit_depth == 16 and not image.is_grey:
        return _encode_deep_colour(image, image_format)
    if image.bit_depth == 16 and image.alpha is not None:
        return _encode_deep_colour(image, image_format)
    pil = to_pil(image)
    assert isinstance(pil, Image.Image)  # what to_pil cannot hold in PIL went to _encode_deep_colour above
    options: dict[str, object] = {}
    if image.exif:
        options["exif"] = image.exif
    if image.icc_profile:
        options["icc_profile"] = image.icc_profile
    if image_format == "JPEG":
        options.update(quality=95, subsampling=0)
    elif image_format == "WEBP":
        options.update(quality=95)
    elif image_format == "TIFF":
        options.update(compression="tiff_deflate")
    buffer = io.BytesIO()
    pil.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _to_8bit(image: ImageFile) -> ImageFile:
    def convert(array: np.ndarray) -> np.ndarray:
        return np.round(array.astype(np.float64) / 257.0).astype(np.uint8)

    return replace(image, pixels=convert(image.pixels), alpha=None if image.alpha is None else convert(image.alpha))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _encode_deep_colour(image: ImageFile, image_format: str) -> bytes:
    """16-bit colour (or grey + alpha) through OpenCV; PNG gets its ICC and EXIF chunks back."""
    pixels = image.pixels if not image.is_grey else np.repeat(image.pixels, 3, axis=2)
    bgr = pixels[..., ::-1]
    if image.alpha is not None:
        bgr = np.concatenate([bgr, image.alpha[..., None]], axis=2)
    suffix = ".png" if image_format == "PNG" else ".tiff"
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(bgr))
    if not ok:
        raise UnsupportedImageError(f"OpenCV could not encode a 16-bit {image_format} image")
    data = encoded.tobytes()
    if image_format != "PNG" or not (image.icc_profile or image.exif):
        return data
    extra = b""
    if image.icc_profile:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(image.icc_profile))
    if image.exif:
        exif = image.exif[6:] if image.exif.startswith(b"Exif\x00\x00") else image.exif
        extra += _png_chunk(b"eXIf", exif)
    header_end = 8 + 25  # signature + IHDR chunk
    return data[:header_end] + extra + data[header_end:]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: all or nothing.

    The file gets the permissions an ordinary write gives it (0666 less the umask, as ``open`` does),
    or keeps those of the file it replaces. Raises ImageWriteError naming ``path`` (never the
    temporary file) when it cannot be written.
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
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, ImageWriteError):
            raise ImageWriteError(f"{path}: cannot write the file ({error.strerror or error})") from None
        raise


def write_image(path: str | os.PathLike[str], image: ImageFile, image_format: str | None = None) -> None:
    """Encode ``image`` (format from ``image_format``, else the suffix, else ``image.format``) atomically."""
    atomic_write_bytes(path, encode_image(image, image_format or format_for(path, image.format)))
