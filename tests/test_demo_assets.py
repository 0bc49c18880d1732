"""The embedded demo dataset: loads with our loader, matches its provenance, respects the size limits."""

from __future__ import annotations

import json
from collections import Counter

from PIL import Image

from core.data import load_dataset
from tests.conftest import DEMO


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
    for path in list((DEMO / "images").iterdir())[::50]:
        with Image.open(path) as im:
            assert max(im.size) <= 128 and im.mode == "RGB"
