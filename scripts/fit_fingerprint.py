"""Fingerprint of small fits, to check that a refactoring changed no behaviour.

Fits the 84-image demo subset of the tests (six labels, seed 0, 2 folds, generator 10 epochs,
classifiers at most 60 epochs) once per phrase source and prints, as JSON, each fit's metrics, the
sum of every model's probabilities and the absolute sum of every stored array. Run it in two
checkouts and compare the outputs::

    python scripts/fit_fingerprint.py > after.json        # in this checkout
    (cd OLD_CHECKOUT && python /path/to/scripts/fit_fingerprint.py OLD_CHECKOUT) > before.json

Args (optional): the checkout to import ``core`` from, then the phrase sources (default: corpus,
imagenet, corpus+imagenet).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core.classifiers import ClassifierConfig  # noqa: E402
from core.phrases.generator import GeneratorConfig  # noqa: E402
from core.pipeline import FitConfig, fit  # noqa: E402
from core.progress import silent  # noqa: E402
from core.workspace import open_workspace  # noqa: E402
from tests.conftest import write_subset  # noqa: E402


def main() -> None:
    sources = sys.argv[2:] or ["corpus", "imagenet", "corpus+imagenet"]
    out = {}
    with tempfile.TemporaryDirectory() as d:
        data = write_subset(Path(d) / "data")
        for src in sources:
            cfg = FitConfig(
                seed=0,
                n_folds=2,
                phrase_source=src,
                projections=src == "corpus",
                generator=GeneratorConfig(epochs=10),
                classifier=ClassifierConfig(max_epochs=60),
            )
            result = fit(data, Path(d) / f"ws-{src.replace('+', '_')}", cfg, progress=silent)
            ws = result if hasattr(result, "metrics") else open_workspace(result)  # fit returned a path before 0.1
            out[src] = {
                "metrics": ws.metrics,
                "pred_sum": {k: float(v.sum()) for k, v in ws.predictions.items()},
                "arrays": {k: float(np.abs(v).sum()) for k, v in ws.arrays.items()},
            }
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
