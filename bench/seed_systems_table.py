"""Markdown tables of ``bench/results/seed_systems_*.json`` (as in ``docs/results.md``).

python bench/seed_systems_table.py emoji demo
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {
    "random": "random",
    "visual_baseline": "raw backbone features (, V)",
    "semantic_v": "learned, images only (V, V)",
    "semantic_vt_query_v": "learned jointly, query by image (V+T, V)",
    "semantic_vt_query_vt": "learned jointly, query by image + text (V+T, V+T)",
}


def retrieval(names: list[str]) -> str:
    out = [
        "| dataset (test queries) | method | NDCG AUC, tf-idf text side | PCC AUC | NDCG AUC, MiniLM text side | PCC AUC |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in names:
        run = json.loads((RESULTS / f"seed_systems_{name}.json").read_text())["runs"][0]["retrieval"]
        for key, label in METHODS.items():
            t, m = run["tfidf"][key], run["minilm"][key]
            out.append(
                f"| {name} ({run['tfidf']['n_queries']}) | {label} | {t['ndcg_auc']:.1f} | {t['pcc_auc']:.1f} "
                f"| {m['ndcg_auc']:.1f} | {m['pcc_auc']:.1f} |"
            )
    return "\n".join(out)


def tags(names: list[str]) -> str:
    out = [
        "| dataset | neighbours by | (m, M) | model | mAP_lab | mAP_img | P@3 | R@3 |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for name in names:
        run = json.loads((RESULTS / f"seed_systems_{name}.json").read_text())["runs"][0]["tags"]
        for metric, settings in run.items():
            for setting, models in settings.items():
                for kind, v in models.items():
                    if kind == "visual_only" and setting != "3,6":
                        continue  # the same model at every (m, M)
                    out.append(
                        f"| {name} | {metric} | ({setting}) | {kind} | {v['mAP'] * 100:.1f} | {v['mAP_img'] * 100:.1f} "
                        f"| {v['precision_at_3'] * 100:.1f} | {v['recall_at_3'] * 100:.1f} |"
                    )
    return "\n".join(out)


if __name__ == "__main__":
    names = sys.argv[1:] or ["emoji", "demo"]
    print(retrieval(names))
    print()
    print(tags(names))
