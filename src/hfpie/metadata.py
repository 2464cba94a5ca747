"""What a file says about its pixels besides EXIF and ICC, kept from input to output.

- **Resolution** (PNG ``pHYs``, JPEG JFIF density, TIFF and BMP resolution) in dots per inch. Super-
  resolution multiplies it by the scale, so a 300 dpi scan upscaled 4x becomes 1200 dpi and prints at
  the size it had; the EXIF resolution and pixel dimensions are updated the same way.
- **XMP** (ratings, keywords, captions, edit history): written back to PNG, JPEG, WebP and TIFF.
- **EXIF in TIFFs** (written by tifffile, which has no EXIF writer): the descriptive
  tags of the first IFD (camera, date, artist, copyright...) as tags of the output's, and the EXIF
  and GPS sub-IFDs appended to the file and pointed to (``tiff_exif``, ``attach_tiff_ifds``). The
  interoperability sub-IFD is left out (its pointer would dangle); a maker note is copied as it is.
- **PNG text and colour chunks** (``tEXt``, ``zTXt``, ``iTXt`` such as a generator's prompt, ``gAMA``,
  ``cHRM``, ``sRGB``): copied verbatim when the output is a PNG too; other formats have no place for them.

XMP is copied as it is, but for its orientation (``tiff:Orientation``), removed when the pixels are
turned upright (``upright``), as EXIF's is: a reader that falls back to the XMP orientation would turn
them again. Other fields inside it that describe the pixels (``tiff:ImageWidth``...) are not rewritten. A JPEG holds at most 65502 bytes of XMP; a longer packet (from a PNG or TIFF) is left out
of a JPEG output with a warning.

    dpi = read_dpi(opened)                 # from an open PIL image: (x, y) or None
    chunks = png_chunks(data)              # from a PNG's bytes: ((b"tEXt", b"..."), ...)
    options = save_options("JPEG", dpi=dpi, xmp=xmp, chunks=chunks)   # for PIL's Image.save
"""

from __future__ import annotations

import io
import math
import re
import struct
import warnings
import zlib

from PIL import Image, PngImagePlugin, TiffImagePlugin

__all__ = ["PNG_COPIED", "attach_tiff_ifds", "png_chunk", "png_chunks", "png_extra_chunks", "read_dpi", "read_xmp",
           "picture_exif", "rescaled_exif", "save_options", "tiff_exif", "TIFF_PLACEHOLDERS", "upright"]

PNG_COPIED = frozenset({b"tEXt", b"zTXt", b"iTXt", b"gAMA", b"cHRM", b"sRGB"})
"""The ancillary PNG chunks copied to a PNG output (iCCP, eXIf and pHYs are written from their fields)."""
_XMP_KEYWORD = b"XML:com.adobe.xmp"
_JPEG_XMP_LIMIT = 65502  # one APP1 segment: 65533 bytes less the XMP namespace header
_METRES_PER_INCH = 0.0254
_X_RESOLUTION, _Y_RESOLUTION, _EXIF_IFD, _PIXEL_X, _PIXEL_Y = 282, 283, 0x8769, 0xA002, 0xA003


def read_dpi(image: Image.Image) -> tuple[float, float] | None:
    """The resolution Pillow found in ``image`` (dots per inch), or None when the file gives none."""
    dpi = image.info.get("dpi")
    try:
        x, y = (float(value) for value in dpi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (x, y) if all(math.isfinite(v) and v > 0 for v in (x, y)) else None


def read_xmp(image: Image.Image) -> bytes | None:
    """The XMP packet of ``image`` (JPEG, PNG, WebP or TIFF), or None."""
    xmp = image.info.get("xmp")
    if xmp is None and image.format == "TIFF":
        xmp = getattr(image, "tag_v2", {}).get(700)
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return bytes(xmp) if xmp else None


def png_chunks(data: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """The chunks of the PNG ``data`` whose type is in :data:`PNG_COPIED`, in file order."""
    chunks, offset = [], 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset: offset + 8])
        if kind == b"IEND":
            break
        if kind in PNG_COPIED:
            chunks.append((kind, data[offset + 8: offset + 8 + length]))
        offset += 12 + length
    return tuple(chunks)


def _has_xmp(chunks: tuple[tuple[bytes, bytes], ...]) -> bool:
    return any(kind == b"iTXt" and body.startswith(_XMP_KEYWORD + b"\x00") for kind, body in chunks)


def _with_xmp(chunks: tuple[tuple[bytes, bytes], ...], xmp: bytes | None) -> list[tuple[bytes, bytes]]:
    """``chunks``, plus an iTXt chunk holding ``xmp`` unless one of them holds an XMP packet already."""
    if not xmp or _has_xmp(chunks):
        return list(chunks)
    # keyword, null, compression flag 0, method 0, empty language tag, empty translated keyword
    return [*chunks, (b"iTXt", _XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp)]


def save_options(image_format: str, *, dpi: tuple[float, float] | None, xmp: bytes | None,
                 chunks: tuple[tuple[bytes, bytes], ...]) -> dict[str, object]:
    """The keyword arguments of PIL's ``Image.save`` that write this metadata in ``image_format``."""
    options: dict[str, object] = {}
    if dpi and image_format in {"PNG", "JPEG", "TIFF", "BMP"}:
        options["dpi"] = dpi
    if image_format == "PNG" and (chunks or xmp):
        info = PngImagePlugin.PngInfo()
        for kind, body in _with_xmp(chunks, xmp):
            info.add(kind, body)
        options["pnginfo"] = info
    elif xmp and image_format == "JPEG":
        if len(xmp) > _JPEG_XMP_LIMIT:
            warnings.warn(f"the XMP packet ({len(xmp)} bytes) does not fit in a JPEG ({_JPEG_XMP_LIMIT} at most); "
                          "it is left out: write a PNG, TIFF or WebP to keep it", stacklevel=3)
        else:
            options["xmp"] = xmp
    elif xmp and image_format == "WEBP":
        options["xmp"] = xmp
    elif xmp and image_format == "TIFF":
        options["tiffinfo"] = {700: xmp}
    return options


def png_extra_chunks(*, icc_profile: bytes | None, exif: bytes | None, dpi: tuple[float, float] | None,
                     xmp: bytes | None, chunks: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """(type, body) of every metadata chunk of a PNG encoded without Pillow (16-bit colour through
    OpenCV), to go right after its IHDR: ICC profile, EXIF, resolution, the copied chunks and XMP."""
    extra = []
    if icc_profile:
        extra.append((b"iCCP", b"icc\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        extra.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    if dpi:
        extra.append((b"pHYs", struct.pack(">IIB", *(round(v / _METRES_PER_INCH) for v in dpi), 1)))
    return extra + _with_xmp(chunks, xmp)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


_XMP_ORIENTATION = (re.compile(rb'\s*tiff:Orientation="[0-9]"'), re.compile(rb"\s*<tiff:Orientation>[0-9]</tiff:Orientation>"))


def _without_xmp_orientation(xmp: bytes) -> bytes:
    for pattern in _XMP_ORIENTATION:
        xmp = pattern.sub(b"", xmp)
    return xmp


def _without_orientation_chunk(kind: bytes, body: bytes) -> tuple[bytes, bytes]:
    """A PNG chunk, its XMP orientation removed when it is the XMP iTXt (compressed or not)."""
    if kind != b"iTXt" or not body.startswith(_XMP_KEYWORD + b"\x00"):
        return kind, body
    try:
        compressed = body[len(_XMP_KEYWORD) + 1] == 1
        head_end = body.index(b"\x00", body.index(b"\x00", len(_XMP_KEYWORD) + 3) + 1) + 1  # language, translated keyword
        text = _without_xmp_orientation(zlib.decompress(body[head_end:]) if compressed else body[head_end:])
    except (IndexError, ValueError, zlib.error):  # a malformed chunk: copied as it is, like the other chunks
        return kind, body
    return kind, body[:head_end] + (zlib.compress(text) if compressed else text)


def upright(orientation: int, *, exif: bytes | None, dpi: tuple[float, float] | None, xmp: bytes | None,
            chunks: tuple[tuple[bytes, bytes], ...]):
    """The metadata of a picture whose pixels were turned upright by its ``orientation`` (EXIF's, 1-8):
    ``(exif, dpi, xmp, chunks)`` with no orientation left in the XMP either (EXIF's is gone already), and
    after a quarter turn (5-8) the x and y resolution and EXIF pixel dimensions swapped with the axes."""
    if orientation not in range(2, 9):
        return exif, dpi, xmp, chunks
    xmp = None if xmp is None else _without_xmp_orientation(xmp)
    chunks = tuple(_without_orientation_chunk(kind, body) for kind, body in chunks)
    if orientation >= 5:
        dpi = None if dpi is None else (dpi[1], dpi[0])
        if exif:
            parsed = Image.Exif()
            parsed.load(exif)
            if _X_RESOLUTION in parsed and _Y_RESOLUTION in parsed:
                parsed[_X_RESOLUTION], parsed[_Y_RESOLUTION] = parsed[_Y_RESOLUTION], parsed[_X_RESOLUTION]
            details = parsed.get_ifd(_EXIF_IFD)
            if _PIXEL_X in details and _PIXEL_Y in details:
                details[_PIXEL_X], details[_PIXEL_Y] = details[_PIXEL_Y], details[_PIXEL_X]
            exif = parsed.tobytes()
    return exif, dpi, xmp, chunks


def rescaled_exif(exif: bytes | None, factor: int, size: tuple[int, int]) -> bytes | None:
    """``exif`` for the image resized by ``factor`` to ``size`` (width, height): resolution times the
    factor, pixel dimensions (where the EXIF gives them) set to the new size."""
    if not exif or factor == 1:
        return exif
    parsed = Image.Exif()
    parsed.load(exif)
    for tag in (_X_RESOLUTION, _Y_RESOLUTION):
        if tag in parsed:
            parsed[tag] = float(parsed[tag]) * factor
    details = parsed.get_ifd(_EXIF_IFD)
    for tag, value in ((_PIXEL_X, size[0]), (_PIXEL_Y, size[1])):
        if tag in details:
            details[tag] = value
    return parsed.tobytes()


_GPS_IFD, _INTEROP_IFD = 0x8825, 0xA005
TIFF_DESCRIPTIVE = (270, 271, 272, 305, 306, 315, 33432)
"""First-IFD tags that describe the picture, not the file's layout: ImageDescription, Make, Model,
Software, DateTime, Artist, Copyright."""


def picture_exif(source: Image.Exif) -> Image.Exif:
    """The EXIF of a TIFF (its first IFD, layout and all) less the tags that describe the file's layout
    (sizes, strips, compression...), which would be wrong for any other file: the descriptive tags
    and the EXIF and GPS sub-IFDs. Orientation is left out: the pixels are read upright."""
    kept = Image.Exif()
    for tag in TIFF_DESCRIPTIVE:
        if tag in source:
            kept[tag] = source[tag]
    for pointer in (_EXIF_IFD, _GPS_IFD):
        sub = source.get_ifd(pointer)
        if sub:
            kept.get_ifd(pointer).update({tag: value for tag, value in sub.items() if tag != _INTEROP_IFD})
    return kept


def _directory(tiff: bytes, offset: int) -> TiffImagePlugin.ImageFileDirectory_v2:
    directory = TiffImagePlugin.ImageFileDirectory_v2(ifh=tiff[:8])
    stream = io.BytesIO(tiff)
    stream.seek(offset)
    directory.load(stream)
    return directory


def tiff_exif(exif: bytes | None) -> tuple[dict[int, tuple[int, object]], dict[int, TiffImagePlugin.ImageFileDirectory_v2]]:
    """What of ``exif`` (as :class:`PIL.Image.Exif` serialises it) a TIFF writer must add: the
    descriptive first-IFD tags, ``{tag: (TIFF type, value)}``, and the EXIF and GPS sub-IFDs, by the
    tag that points to each. Empty for no EXIF, or EXIF that cannot be parsed."""
    if not exif:
        return {}, {}
    tiff = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    try:
        order = "<" if tiff[:2] == b"II" else ">"
        first = _directory(tiff, struct.unpack(order + "I", tiff[4:8])[0])
        tags = {tag: (first.tagtype[tag], first[tag]) for tag in TIFF_DESCRIPTIVE if tag in first}
        subs = {}
        for pointer in (_EXIF_IFD, _GPS_IFD):
            if pointer in first:
                sub = _directory(tiff, int(first[pointer]))
                if pointer == _EXIF_IFD and _INTEROP_IFD in sub:
                    del sub[_INTEROP_IFD]
                if len(sub):
                    subs[pointer] = sub
    except (struct.error, SyntaxError, ValueError, KeyError, TypeError, OSError):
        return {}, {}
    return tags, subs


TIFF_PLACEHOLDERS = {_EXIF_IFD: 65000, _GPS_IFD: 65001}
"""Private tags a TIFF writer that refuses the sub-IFD pointers (tifffile) writes in their place, as a
LONG: :func:`attach_tiff_ifds` gives them their real tags."""


def attach_tiff_ifds(data: bytes, subs: dict[int, TiffImagePlugin.ImageFileDirectory_v2]) -> bytes:
    """``data`` (a classic TIFF whose first IFD holds a LONG placeholder of :data:`TIFF_PLACEHOLDERS`
    for each pointer of ``subs``) with each sub-IFD appended, and its placeholder turned into the
    pointer to it (the first IFD's entries kept in ascending order of tag, as TIFF requires)."""
    order = "<" if data[:2] == b"II" else ">"
    out = bytearray(data)
    first = struct.unpack_from(order + "I", out, 4)[0]
    count = struct.unpack_from(order + "H", out, first)[0]
    table = first + 2
    entries = [bytes(out[table + 12 * i: table + 12 * (i + 1)]) for i in range(count)]
    real = {placeholder: pointer for pointer, placeholder in TIFF_PLACEHOLDERS.items() if pointer in subs}
    renamed = []
    for entry in entries:
        tag = struct.unpack_from(order + "H", entry)[0]
        renamed.append(struct.pack(order + "H", real.get(tag, tag)) + entry[2:])
    renamed.sort(key=lambda entry: struct.unpack_from(order + "H", entry)[0])
    out[table: table + 12 * count] = b"".join(renamed)
    where = {struct.unpack_from(order + "H", entry)[0]: table + 12 * i + 8 for i, entry in enumerate(renamed)}
    for pointer, sub in subs.items():
        if pointer not in where:
            raise ValueError(f"the TIFF has no placeholder for sub-IFD {pointer:#x}")
        out += b"\x00" * (len(out) % 2)  # IFDs start on a word boundary
        start = len(out)
        rewritten = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II" if order == "<" else b"MM")
        for key in sub:
            rewritten[key] = sub[key]
            rewritten.tagtype[key] = sub.tagtype[key]
        out += rewritten.tobytes(start)
        struct.pack_into(order + "I", out, where[pointer], start)
    return bytes(out)
