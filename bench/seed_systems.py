"""Semantic retrieval (seed 001) and tag-neighbourhood annotation (seed 002), evaluated as their papers do.

For each dataset: fit a workspace (the dataset's split, seed 0), then

* semantic retrieval with the tf-idf text side (the paper) and the MiniLM text side: NDCG and PCC
  AUCs (R = 1..100) on the test split for random, raw features, (V,V), (V+T,V), (V+T,V+T);
* tag neighbourhoods by embedded tags and by Jaccard: per-label and per-image mAP, P/R@3 for
  visual-only, LTN and LTwin at (m, M) = (3,6), (6,12), (12,24).

Writes ``bench/results/seed_systems_<dataset>.json``.

    python bench/seed_systems.py ../shared/datasets/emoji assets/demo --seeds 0
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.pipeline import FitConfig, fit  # noqa: E402
from core.progress import silent  # noqa: E402
from core.retrieval.model import RetrievalConfig  # noqa: E402
from core.retrieval.semantic import METHODS, fit_retrieval  # noqa: E402
from core.tags.annotate import fit_tag_models  # noqa: E402
from core.tags.models import TagModelConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out-dir", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    for data in map(Path, args.datasets):
        name = "demo" if data.resolve() == (ROOT / "assets" / "demo").resolve() else data.resolve().name
        runs = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                ws = fit(data, Path(tmp) / "ws", FitConfig(seed=seed, projections=False), progress=silent)
                run: dict = {"seed": seed, "retrieval": {}, "tags": {}}
                for encoder in ("tfidf", "minilm"):
                    ev = fit_retrieval(ws, RetrievalConfig(seed=seed), text_encoder=encoder)
                    run["retrieval"][encoder] = {m: {"ndcg_auc": ev[m]["ndcg_auc"], "pcc_auc": ev[m]["pcc_auc"]} for m in METHODS}
                    run["retrieval"][encoder]["n_queries"] = ev["n_queries"]
                    print(name, seed, encoder, {m: round(ev[m]["ndcg_auc"], 1) for m in METHODS}, flush=True)
                for metric in ("embedding", "jaccard"):
                    ev = fit_tag_models(ws, metric=metric, config=TagModelConfig(seed=seed))
                    run["tags"][metric] = ev["settings"]
                    print(
                        name, seed, metric, {k: round(v["mAP"] * 100, 1) for k, v in ev["settings"]["12,24"].items()}, flush=True
                    )
                run["seconds"] = time.perf_counter() - t0
                runs.append(run)
        out = Path(args.out_dir) / f"seed_systems_{name}.json"
        out.write_text(json.dumps({"dataset": name, "split": "the dataset's split column", "runs": runs}, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
