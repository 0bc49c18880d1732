from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.data.images import ImageError, draft_request, load_image


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = load_image(_bytes(im, "JPEG", exif=exif))
    assert out.size == (20, 40)


def test_palette_with_transparency_goes_on_white():
    im = Image.new("P", (8, 8), 0)
    im.putpalette([0, 0, 0] * 256)
    im.info["transparency"] = 0
    out = load_image(_bytes(im, "PNG", transparency=0))
    assert out.mode == "RGB" and out.getpixel((3, 3)) == (255, 255, 255)


def test_rgba_alpha_composited_on_white():
    im = Image.new("RGBA", (8, 8), (0, 0, 255, 0))
    im.putpixel((0, 0), (0, 0, 255, 255))
    out = load_image(_bytes(im, "PNG"))
    assert out.getpixel((5, 5)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 255)


def test_cmyk_and_16bit_modes():
    cmyk = load_image(_bytes(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    assert cmyk.mode == "RGB" and cmyk.getpixel((4, 4))[0] > 200
    arr = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    grey16 = load_image(_bytes(Image.fromarray(arr), "PNG"))
    assert grey16.mode == "RGB" and grey16.getpixel((0, 0)) == (0, 0, 0) and grey16.getpixel((7, 7))[0] == 255


def test_huge_image_refused_before_decoding():
    with pytest.raises(ImageError, match="too large"):
        load_image(_bytes(Image.new("L", (300, 300)), "PNG"), max_pixels=10_000)


def test_max_side_downscales(tmp_path):
    p = tmp_path / "big.jpg"
    Image.new("RGB", (1000, 500), (10, 20, 30)).save(p)
    assert max(load_image(p, max_side=100).size) == 100


@pytest.mark.parametrize("size", [(1024, 724), (724, 1024), (4000, 3000), (2048, 1000), (1030, 515), (600, 300), (513, 9)])
def test_jpeg_draft_keeps_the_long_side_and_reduces_non_square_photos(size):
    """The draft decodes at the smallest DCT scale that keeps the long side >= max_side, whatever the
    aspect (a square request left a 1024 x 724 photo at full size); the result is then reduced to it."""
    w, h = size
    im = Image.open(io.BytesIO(_bytes(Image.new("RGB", size, (90, 120, 150)), "JPEG")))
    im.draft("RGB", draft_request(w, h, 512))
    scale = w / im.size[0]
    assert max(im.size) >= 512
    assert scale == 8 or max(w, h) / (2 * scale) < 512  # one more halving would cut the long side below 512
    assert max(load_image(_bytes(Image.new("RGB", size), "JPEG"), max_side=512).size) == min(512, max(w, h))
    if size == (1024, 724):
        assert im.size == (512, 362)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"", "empty"), (b"hello, I am text", "not a decodable image"), (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "image")],
)
def test_bad_bytes_raise_image_error(payload, reason):
    with pytest.raises(ImageError, match=reason):
        load_image(payload)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")
