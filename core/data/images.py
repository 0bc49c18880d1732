"""Robust image decoding: EXIF orientation, odd modes, huge images."""

from __future__ import annotations

import contextlib
import io
import math
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Images with more pixels than this are refused from their header, before any pixel is decoded
#: (decompression bombs). 64 M pixels (8000 x 8000) is 100 times what the largest backbone input
#: needs, and bounds one decode to about 256 MB (RGBA) before it is reduced.
MAX_PIXELS = 64_000_000
#: Files larger than this are refused before they are read.
MAX_FILE_BYTES = 512 * 1024 * 1024
#: above this many pixels a full decode takes the process-wide lock below (about 64 MB as RGBA)
LARGE_PIXELS = 16_000_000
_LARGE_DECODE = threading.Lock()


class ImageError(ValueError):
    """An image that cannot be used, with a human-readable reason."""


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited onto white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        im = Image.fromarray(arr.astype(np.uint8), mode="L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "PA", "La"):
        im = im.convert("RGBA")
    if im.mode == "RGBa":
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        return background
    return im.convert("RGB")


def draft_request(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size to ask a JPEG's ``draft`` for so that it decodes at the smallest DCT scale (1/2,
    1/4, 1/8) that keeps the long side at least ``max_side``. Pillow reduces only while *both*
    sides stay at least the request, so a square ``(max_side, max_side)`` request decodes a
    1024 x 724 photo at full size; this asks for the photo's own aspect instead."""
    long = max(width, height)
    return math.ceil(max_side * width / long), math.ceil(max_side * height / long)


def load_image(source: str | Path | bytes, *, max_side: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an image to RGB, applying EXIF orientation, at a bounded memory cost.

    The size is read from the header first (an image over ``max_pixels`` is refused before any
    pixel is decoded); with ``max_side``, JPEGs are decoded at reduced scale (``draft``) and any
    other image is reduced right after decoding, before mode conversion and EXIF rotation copy it.

    Args:
        source: A path or the raw bytes of an image file.
        max_side: If given, downscale (never upscale) so the longest side is at most this.
        max_pixels: Refuse images with more pixels than this.

    Returns:
        An RGB ``PIL.Image``.

    Raises:
        ImageError: if the file is missing, a folder, empty, too big, not an image, truncated or too large.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            raise ImageError("is a folder, not an image file (give the image files, e.g. FOLDER/*.jpg)")
        if not path.is_file():
            raise ImageError("file not found")
        size = path.stat().st_size
        if size == 0:
            raise ImageError("empty file (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise ImageError(f"file too large ({size / 2**20:,.0f} MB, limit {MAX_FILE_BYTES // 2**20} MB)")
        data = path.read_bytes()
    else:
        data = source
        if not data:
            raise ImageError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels or w <= 0 or h <= 0:
                raise ImageError(f"image too large ({w}x{h} pixels, limit {max_pixels:,})")
            if max_side and im.format == "JPEG":
                im.draft("RGB", draft_request(w, h, max_side))
            # a large full-resolution decode (not a JPEG draft) costs hundreds of MB: one at a time
            # per process, so decoding threads never hold several at once
            large = w * h > LARGE_PIXELS and not (max_side and im.format == "JPEG")
            with _LARGE_DECODE if large else contextlib.nullcontext():
                im.load()
                if max_side and max(im.size) > max_side and im.mode in _REDUCIBLE:
                    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb(im)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageError(f"not a decodable image ({exc.__class__.__name__})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageError(f"corrupt or truncated image ({exc.__class__.__name__}: {str(exc)[:200]})") from exc
    if max_side and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb


#: modes that resample well as they are (palette and 1-bit images are converted first)
_REDUCIBLE = {"RGB", "RGBA", "L", "LA", "RGBa", "La", "CMYK", "YCbCr", "I", "F"}


def square_pixels(image: Image.Image, size: int) -> np.ndarray:
    """Pad an RGB image to a white square (clip art and wide photos keep all their content) and
    resize it to ``size`` x ``size``: ``(size, size, 3)`` uint8, what a backbone normalises."""
    w, h = image.size
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return np.asarray(canvas.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def decode_pixels(paths: list[str], size: int) -> tuple[list[int], np.ndarray, dict[int, str]]:
    """Decode image files to square ``size`` pixels (a plain function of picklable arguments, so
    decoding runs in worker threads or processes; uint8 is a quarter of float32 to send back).

    Returns:
        ``(ok, pixels, errors)``: the positions (into ``paths``) decoded, their ``(len(ok), size,
        size, 3)`` uint8 pixels, and ``{position: reason}`` for files that cannot be used.
    """
    ok: list[int] = []
    pixels = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    errors: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            pixels[len(ok)] = square_pixels(load_image(path, max_side=max(2 * size, 512)), size)
            ok.append(i)
        except ImageError as exc:
            errors[i] = str(exc)
    return ok, pixels[: len(ok)], errors
