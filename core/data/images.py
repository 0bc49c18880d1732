"""Robust image decoding: EXIF orientation, odd modes, huge images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Images with more pixels than this are refused instead of decoded (decompression bombs).
MAX_PIXELS = 100_000_000


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


def load_image(source: str | Path | bytes, *, max_side: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an image to RGB, applying EXIF orientation.

    Args:
        source: A path or the raw bytes of an image file.
        max_side: If given, downscale (never upscale) so the longest side is at most this.
            JPEGs are decoded at reduced size directly, which makes large photos cheap.
        max_pixels: Refuse images with more pixels than this.

    Returns:
        An RGB ``PIL.Image``.

    Raises:
        ImageError: if the file is missing, empty, not an image, truncated or too large.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError("file not found")
        if path.stat().st_size == 0:
            raise ImageError("empty file (0 bytes)")
        data = path.read_bytes()
    else:
        data = source
        if not data:
            raise ImageError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(f"image too large ({w}x{h} pixels, limit {max_pixels:,})")
            if max_side and im.format == "JPEG":
                im.draft("RGB", (max_side, max_side))
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(im)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageError(f"not a decodable image ({exc.__class__.__name__})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image ({exc})") from exc
    if max_side and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb
