"""The embedded demo dataset: loads with our loader, matches its provenance, respects the size limits."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.data import load_dataset
from tests.conftest import DEMO, ROOT

MAX_SIDE = 256


def build_script():
    spec = importlib.util.spec_from_file_location("build_demo_dataset", ROOT / "scripts" / "build_demo_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_dataset_matches_provenance_and_limits():
    prov = json.loads((DEMO / "PROVENANCE.json").read_text())
    ds = load_dataset(DEMO)
    counts = Counter(ls[0] for ls in ds.items["labels"])
    assert dict(counts) == prov["per_label"]
    assert len(counts) >= 30 and sum(n >= 25 for n in counts.values()) >= 30
    assert len(ds) >= 2500
    assert (ds.items["split"] == "test").sum() == prov["counts"]["test"]
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert total <= 25 * 1024 * 1024
    assert prov["rules"]["max_side"] == MAX_SIDE
    sides = []
    for path in list((DEMO / "images").iterdir())[::25]:
        with Image.open(path) as im:
            assert max(im.size) <= MAX_SIDE and im.mode == "RGB"
            sides.append(max(im.size))
    assert np.median(sides) == MAX_SIDE  # drawings are large: most fill the limit, none was upscaled


def placeholder(size: tuple[int, int], fill: tuple[int, int, int], mark: str = "x") -> Image.Image:
    """A drawing on white with a red square like Inkscape's missing-image placeholder (``mark``: x, plus or none)."""
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    x0, y0, w, h = 30, 20, size[0] // 3, size[1] // 3
    d.rectangle([x0, y0, x0 + w, y0 + h], fill=fill)
    t = max(2, w // 10)
    if mark == "x":
        d.line([x0 + 0.28 * w, y0 + 0.28 * h, x0 + 0.72 * w, y0 + 0.72 * h], fill="white", width=t)
        d.line([x0 + 0.72 * w, y0 + 0.28 * h, x0 + 0.28 * w, y0 + 0.72 * h], fill="white", width=t)
    elif mark == "plus":
        d.line([x0 + 0.5 * w, y0 + 0.2 * h, x0 + 0.5 * w, y0 + 0.8 * h], fill="white", width=t)
        d.line([x0 + 0.2 * w, y0 + 0.5 * h, x0 + 0.8 * w, y0 + 0.5 * h], fill="white", width=t)
    d.text((x0, y0 + h + 5), "Linked Image Not Found", fill="black")
    return im


def test_missing_image_placeholder_is_recognised():
    detect = build_script().shows_missing_image_placeholder
    assert detect(placeholder((300, 300), (255, 0, 0)))
    stretched = placeholder((400, 300), (255, 112, 112))  # translucent (pink) and stretched
    ImageDraw.Draw(stretched).line([0, 0, 400, 300], fill="black", width=2)  # the drawing's own stroke over it
    assert detect(stretched)
    assert not detect(placeholder((300, 300), (255, 0, 0), mark="plus"))  # a red-cross sign
    assert not detect(placeholder((300, 300), (255, 0, 0), mark="none"))  # a red square
    assert not detect(placeholder((300, 300), (200, 30, 30)))  # not the placeholder's pure red


@pytest.mark.slow
def test_demo_holds_no_missing_image_placeholder():
    detect = build_script().shows_missing_image_placeholder
    prov = json.loads((DEMO / "PROVENANCE.json").read_text())
    assert prov["counts"]["missing_image_placeholders"] == len(prov["placeholders_excluded"]) >= 5
    shown = []
    for path in sorted((DEMO / "images").iterdir()):
        with Image.open(path) as im:
            if detect(im.convert("RGB")):
                shown.append(path.name)
    assert shown == []
    assert not set(prov["placeholders_excluded"]) & {f"images/{p.name}" for p in DEMO.glob("images/*")}
