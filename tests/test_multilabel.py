"""Multi-label datasets (a ``labels`` column): sigmoid heads and the multi-label metrics."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT, quick_fit


def test_multilabel_fit_and_evaluate(small_dataset, cache_dir, tmp_path):

    with (small_dataset / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    data = tmp_path / "ml"
    data.mkdir()
    (data / "images").symlink_to(small_dataset / "images")
    with (data / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "labels", "text", "tags", "split"])
        w.writeheader()
        for r in rows:  # each image: its sub-category and its top-level category
            w.writerow(
                {
                    "image": r["image"],
                    "labels": f"{r['label']};{r['label'].split('/')[0]}",
                    "text": r["text"],
                    "tags": r["tags"],
                    "split": r["split"],
                }
            )
    ws = quick_fit(data, tmp_path / "ws", cache_dir, epochs=10, max_epochs=60)
    assert ws.multilabel and len(ws.labels) == 12
    for model in ("baseline", "multimodal", "text_only", "zeroshot"):
        assert set(ws.metrics[model]) == {"mAP", "mAP_img", "precision_at_3", "recall_at_3"}
    assert ws.metrics["baseline"]["mAP"] > 0.5
    p = ws.predictions["multimodal"]
    assert not np.allclose(p.sum(1), 1)  # sigmoid, not softmax
    r = subprocess.run(
        [sys.executable, "-m", "core", "evaluate", "--workspace", str(ws.path), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert "mAP" in json.loads(r.stdout)["multimodal"]
