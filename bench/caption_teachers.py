"""How good the caption labels are, per teacher: what the caption classifier sees, measured alone.

For each dataset, label fraction and seed (the label draw of ``bench/label_scarcity.py``), the
product's :func:`core.captions.caption_labels` is run four ways -- captions only, + the row's own
visual features, + the label names read as captions, + both (the default) -- and each teacher's
accuracy on the unlabelled training rows with a caption is reported (all of them, and those whose
caption label was kept), with the share kept. Only logistic regressions are fitted (seconds per
run); the visual features and caption embeddings come from a fitted workspace per dataset
(``--scratch``, fitted there when missing, caption labels off).

    python bench/caption_teachers.py ../shared/datasets/tuxpaint assets/demo --fractions 0.05 0.1 0.2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.label_scarcity import ci95, dataset_name, overridden, workspace_for  # noqa: E402
from core.captions import CaptionLabelConfig, caption_labels, caption_texts, label_name_rows  # noqa: E402
from core.config import FitConfig  # noqa: E402
from core.features import default_cache_dir  # noqa: E402
from core.progress import silent  # noqa: E402
from core.text import TextEncoder, caption_embeddings, embed_texts  # noqa: E402
from core.training import has_target, label_targets, scarce_labels  # noqa: E402

TEACHERS = {
    "captions": {"visual": False, "label_names": False},
    "captions+visual": {"visual": True, "label_names": False},
    "captions+names": {"visual": False, "label_names": True},
    "captions+visual+names": {"visual": True, "label_names": True},
}


def teacher_inputs(ws, encoder: TextEncoder) -> tuple[list[str], np.ndarray, tuple[list[str], np.ndarray]]:
    """A fitted workspace's caption texts, their caption embeddings and the label names' rows
    (the teacher's inputs besides the visual features)."""
    texts = caption_texts(list(ws.items["text"]), [list(g) for g in ws.items["tags"]])
    emb = caption_embeddings(texts, encoder, default_cache_dir())
    names = label_name_rows(ws.labels, lambda t: embed_texts(t, encoder, default_cache_dir(), silent))
    return texts, emb, names


def write_json(path: str | Path, payload: dict) -> None:
    """Write a result file (its folder made) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {out}")


def teacher_run(ws, texts, emb, names, frac: float, seed: int, teachers: list[str], overrides: list[str]) -> dict:
    """Each teacher's caption-label accuracy on the unlabelled training rows with a caption
    (``overrides``: :class:`CaptionLabelConfig` fields set for every teacher, e.g. ``c=10``)."""
    labels = [list(v) for v in ws.items["labels"]]
    y = label_targets(labels, ws.labels, ws.multilabel)
    train = (ws.items["split"].to_numpy() != "test") & has_target(y, ws.multilabel)
    labelled = scarce_labels(labels, train, frac, seed) & train
    todo = train & ~labelled & np.array([bool(t) for t in texts])
    out = {}
    for name in teachers:
        cfg = overridden(CaptionLabelConfig(**TEACHERS[name]), overrides)
        caps = caption_labels(texts, emb, y, labelled, train, ws.multilabel, cfg, seed, visual=ws.visual, label_names=names)
        if ws.multilabel:
            right = ((caps.predicted >= 0.5) == (y > 0)).all(1)
        else:
            right = caps.predicted.argmax(1) == y
        kept = caps.caption & todo
        out[name] = {
            "accuracy_unlabelled": float(right[todo].mean()),
            "accuracy_kept": float(right[kept].mean()) if kept.any() else None,
            "coverage": float(kept.sum() / todo.sum()),
            "features": caps.features,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--scratch", default=str(ROOT / "bench" / "_scratch"), help="fitted workspaces (as label_scarcity.py)")
    ap.add_argument("--fit-seed", type=int, default=0, help="the fitted workspace used (features do not depend on it)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "caption_teachers.json"))
    ap.add_argument("--teachers", nargs="+", choices=list(TEACHERS), default=list(TEACHERS))
    ap.add_argument("--caption-set", nargs="*", default=[], help="CaptionLabelConfig overrides for every teacher, e.g. c=10")
    args = ap.parse_args()
    encoder = TextEncoder(FitConfig().text_model)
    runs = []
    for data in map(Path, args.datasets):
        ws = workspace_for(data, args.fit_seed, Path(args.scratch))
        texts, emb, names = teacher_inputs(ws, encoder)
        for frac in args.fractions:
            for seed in args.seeds:
                run = teacher_run(ws, texts, emb, names, frac, seed, args.teachers, args.caption_set)
                runs.append({"dataset": dataset_name(data), "fraction": frac, "seed": seed, **run})
                print(json.dumps(runs[-1]), flush=True)
    summary = []
    heads = " ".join(f"{t:>24}" for t in args.teachers)
    print(f"{'dataset':<10} {'frac':>5} {heads}   (accuracy on all unlabelled, 95% CI)")
    for name in dict.fromkeys(r["dataset"] for r in runs):
        for frac in args.fractions:
            sel = [r for r in runs if r["dataset"] == name and r["fraction"] == frac]
            row = {"dataset": name, "fraction": frac, "n_seeds": len(sel)}
            for t in args.teachers:
                row[t] = ci95([r[t]["accuracy_unlabelled"] for r in sel])
                row[f"{t} kept"] = float(np.mean([r[t]["accuracy_kept"] or 0 for r in sel]))
                row[f"{t} coverage"] = float(np.mean([r[t]["coverage"] for r in sel]))
            summary.append(row)
            print(f"{name:<10} {frac:>5.2f} " + " ".join(f"{row[t][0]:>16.3f} ±{row[t][1]:.3f}" for t in args.teachers))
    write_json(args.out, {"caption_overrides": args.caption_set, "runs": runs, "summary": summary})


if __name__ == "__main__":
    main()
