"""Phrase quality: how many of the top-3 phrases of test images are not web-query-like, raw vs cleaned.

For each dataset and seed the pipeline is fitted twice (no maps), once with the raw phrase
extraction (every token as written: ``extract_phrases(..., clean=False)``) and once with the
default cleaned vocabulary (``core.phrases.vocab``: identifiers, hex strings, counters,
file-name fragments and handles dropped). For each fit it reports

* the share of noisy phrases among the top-3 phrases of the test images, by kind
  (:func:`core.phrases.vocab.noise_kind`: ``hex``, ``number``, ``identifier``), and examples;
* the share of noisy phrases in the vocabulary;
* every model's test top-1 and macro-F1, so the cleaning's cost or gain in accuracy is seen.

Results: ``bench/results/phrase_quality.json``, written after every fit (a re-run replaces the
entries of the datasets and seeds it runs and keeps the others). A dataset whose every image
gets the same phrases either way (tuxpaint) is fitted once: its two fits would be identical.

    python bench/phrase_quality.py assets/demo ../shared/datasets/tuxpaint --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core.pipeline  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.phrases.vocab import extract_phrases, noise_kind  # noqa: E402
from core.pipeline import FitConfig, fit  # noqa: E402
from core.progress import silent  # noqa: E402
from core.workspace import Workspace  # noqa: E402

K = 3


def phrase_report(ws: Workspace, k: int = K) -> dict:
    """Noisy shares of the test images' top-``k`` phrases and of the vocabulary."""
    test = np.flatnonzero(ws.items["is_test"].to_numpy())
    top = [p for i in test for p, _ in ws.item_phrases(int(i), k)]
    kinds = Counter(kind for p in top if (kind := noise_kind(p)))
    vocab_noisy = sum(noise_kind(p) is not None for p in ws.phrases)
    examples = Counter(p for p in top if noise_kind(p))
    return {
        "test_images": len(test),
        "top_phrases": len(top),
        "noisy_share": sum(kinds.values()) / max(len(top), 1),
        "noisy_by_kind": {kind: n / max(len(top), 1) for kind, n in sorted(kinds.items())},
        "images_with_noisy_phrase": int(sum(any(noise_kind(p) for p, _ in ws.item_phrases(int(i), k)) for i in test)),
        "noisy_examples": [p for p, _ in examples.most_common(12)],
        "vocabulary": len(ws.phrases),
        "vocabulary_noisy_share": vocab_noisy / max(len(ws.phrases), 1),
    }


def run(data: Path, seed: int, clean: bool, tmp: Path) -> dict:
    """Fit ``data`` with the raw or the cleaned phrase extraction and report its phrases and metrics."""
    t = time.perf_counter()
    cfg = FitConfig(seed=seed, projections=False)
    with mock.patch.object(core.pipeline, "extract_phrases", partial(extract_phrases, clean=clean)):
        ws = fit(data, tmp / f"{'clean' if clean else 'raw'}-{seed}", cfg, progress=silent)
    return {
        "seed": seed,
        "vocabulary_mode": "cleaned" if clean else "raw",
        **phrase_report(ws),
        "metrics": {m: {"top1": v["top1"], "macro_f1": v["macro_f1"]} for m, v in ws.metrics.items()},
        "fit_s": round(time.perf_counter() - t, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "phrase_quality.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for data in args.datasets:
            name = "demo" if data.resolve() == (ROOT / "assets" / "demo").resolve() else data.name
            items = load_dataset(data).items
            same = all(extract_phrases(t, g, clean=False) == extract_phrases(t, g) for t, g in zip(items["text"], items["tags"]))
            for seed in args.seeds:
                clean = {"dataset": name, **run(data, seed, True, Path(tmp))}
                report(clean, args.out)
                # Identical phrase lists give an identical (seeded) fit: no need to fit it again.
                raw = {**clean, "vocabulary_mode": "raw", "same_phrase_lists": True} if same else None
                report(raw or {"dataset": name, **run(data, seed, False, Path(tmp))}, args.out)


def report(r: dict, out: Path) -> None:
    """Print one fit's line and save it."""
    m = r["metrics"]
    print(
        f"{r['dataset']:10s} seed {r['seed']} {r['vocabulary_mode']:7s} vocab {r['vocabulary']:5d} "
        f"noisy top-{K} {r['noisy_share']:6.1%} ({r['images_with_noisy_phrase']}/{r['test_images']} images)  "
        f"top-1 baseline {m['baseline']['top1']:.3f} multimodal {m['multimodal']['top1']:.3f} "
        f"text_only {m['text_only']['top1']:.3f}  {r['fit_s']:.0f} s",
        flush=True,
    )
    save(out, r)


def save(out: Path, run: dict) -> None:
    """Add ``run`` to the JSON at ``out``, replacing an earlier run of the same dataset, seed and mode."""
    key = (run["dataset"], run["seed"], run["vocabulary_mode"])
    old = json.loads(out.read_text())["runs"] if out.is_file() else []
    runs = [r for r in old if (r["dataset"], r["seed"], r["vocabulary_mode"]) != key] + [run]
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "k": K, "split": "test"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**meta, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
