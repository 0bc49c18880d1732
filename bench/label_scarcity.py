"""Label scarcity: the paper's models and the caption-supervised ones when few images keep labels.

For each dataset and seed the pipeline is fitted once (all text, maps off; visual features and
text embeddings come from the shared cache). The phrase generator learns from the text of every
training image and uses no label, so that one fit serves every label fraction: for each
fraction the classifiers are retrained on the stored arrays with labels for that share of each
label's training images (drawn with the seed), through the product's own code
(:func:`core.forward.model_inputs`, :func:`core.captions.caption_labels`,
:func:`core.training.train_classifiers`):

* ``baseline`` / ``multimodal`` / ``text_only``: the paper's models, on the human labels;
* ``baseline_captions`` / ``multimodal_captions``: the same architectures on human + caption
  labels (the unlabelled training images labelled from their own captions).

It also reports the caption classifier's own accuracy on the unlabelled training rows (all of
them, and those whose caption label was kept) and the share of the labelling gap closed,
``(multimodal_captions at f - baseline at f) / (baseline at 100% - baseline at f)``.

Results are written after every (dataset, seed, fraction) to ``--out`` (default
``bench/results/label_scarcity.json``); a re-run skips what is already there, so a partial
run still reports. ``--summary`` prints the tables (mean and 95% t-interval over seeds) only.

    python bench/label_scarcity.py ../shared/datasets/tuxpaint assets/demo --fractions 0.05 0.1 0.2 1.0 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.captions import CaptionLabelConfig, caption_labels, caption_targets, caption_texts, label_name_rows  # noqa: E402
from core.config import CAPTION_MODELS, CAPTION_TWINS, FitConfig  # noqa: E402
from core.features import default_cache_dir  # noqa: E402
from core.forward import ImageArrays, input_blocks, model_inputs  # noqa: E402
from core.metrics import evaluate  # noqa: E402
from core.pipeline import fit  # noqa: E402
from core.progress import silent  # noqa: E402
from core.text import TextEncoder, embed_texts  # noqa: E402
from core.training import label_targets, scarce_labels, train_classifiers  # noqa: E402
from core.vectors import l2n  # noqa: E402
from core.workspace import Workspace, is_workspace, open_workspace  # noqa: E402

MODELS = ("baseline", "multimodal", "text_only", "baseline_captions", "multimodal_captions")


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()), float("nan")
    return float(a.mean()), float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))


def dataset_name(data: Path) -> str:
    return "demo" if data.resolve() == (ROOT / "assets" / "demo").resolve() else data.resolve().name


def overridden(cfg, overrides: list[str]):
    """``cfg`` with ``a.b=value`` overrides (e.g. ``classifier.fusion=concat``)."""
    for kv in overrides:
        key, val = kv.split("=", 1)
        *path, last = key.split(".")
        target = cfg
        for p in path:
            target = getattr(target, p)
        old = getattr(target, last)
        if isinstance(old, bool):
            val = val.lower() in ("1", "true", "yes", "on")
        elif isinstance(old, (tuple, list)):  # e.g. visual_shares=0.5,0.7,0.9,1.0
            val = tuple(type(old[0])(v) if old else float(v) for v in val.split(","))
        elif old is not None:
            val = type(old)(val)
        setattr(target, last, val)
    return cfg


def _targets(ws: Workspace) -> tuple[list[list[str]], np.ndarray, np.ndarray, np.ndarray]:
    """Every row's labels, their targets, the labelled training rows and the test rows."""
    labels = [list(v) for v in ws.items["labels"]]
    y_all = label_targets(labels, ws.labels, ws.multilabel)
    has = (y_all.sum(1) > 0) if ws.multilabel else (y_all >= 0)
    train = (ws.items["split"].to_numpy() != "test") & has
    return labels, y_all, train, ws.items["is_test"].to_numpy()


def run_fraction(
    ws: Workspace, cap_emb: np.ndarray, texts: list[str], names: tuple[list[str], np.ndarray], frac: float, seed: int, args
) -> dict:
    """Train every model with labels for ``frac`` of the training images; test metrics and caption stats
    (``names``: the label names as captions, :func:`core.captions.label_name_rows`)."""
    labels, y_all, train, test = _targets(ws)
    labelled = scarce_labels(labels, train, frac, seed) & train
    fit_idx = np.flatnonzero(labelled)
    t = time.perf_counter()
    ccfg = overridden(CaptionLabelConfig(), args.caption_set)
    caps = caption_labels(texts, cap_emb, y_all, labelled, train, ws.multilabel, ccfg, seed, visual=ws.visual, label_names=names)
    t_caps = time.perf_counter() - t
    clf_cfg = overridden(replace(ws.config.classifier, seed=seed), args.set)
    arrays = ImageArrays(ws.visual, ws.text_vectors)
    t = time.perf_counter()
    trained = train_classifiers(
        model_inputs(arrays, args.models),
        y_all,
        fit_idx,
        len(ws.labels),
        ws.multilabel,
        clf_cfg,
        None,
        silent,
        targets=caption_targets(caps, fit_idx, CAPTION_MODELS),
        blocks={m: input_blocks(m, arrays) for m in args.models},
        twins=CAPTION_TWINS,
    )
    t_clf = time.perf_counter() - t
    metrics = {m: evaluate(y_all[test], p[test], multilabel=ws.multilabel) for m, p in trained.probs.items()}
    unl = np.flatnonzero(train & ~labelled & np.array([bool(x) for x in texts]))
    kept = np.flatnonzero(caps.caption)
    if ws.multilabel:
        right = ((caps.predicted >= 0.5) == (y_all > 0)).all(1)
    else:
        right = caps.predicted.argmax(1) == y_all
    return {
        "fraction": frac,
        "seed": seed,
        "n_labelled": len(fit_idx),
        "n_unlabelled_with_text": len(unl),
        "n_test": int(test.sum()),
        "metrics": metrics,
        "validation": trained.validation_summary(),
        "captions": {
            **caps.summary(),
            "accuracy_unlabelled": float(right[unl].mean()) if len(unl) else None,
            "accuracy_kept": float(right[kept].mean()) if len(kept) else None,
            "coverage": len(kept) / len(unl) if len(unl) else None,
        },
        "seconds": {"caption_labels": round(t_caps, 2), "classifiers": round(t_clf, 2)},
    }


def run_weak_visual(ws: Workspace, dim: int, seed: int, args) -> dict:
    """A2: baseline and multimodal with all labels when the visual vector is PCA-weakened to ``dim``."""
    from bench.findings import weak_visual

    _, y_all, train, test = _targets(ws)
    weak = weak_visual(l2n(ws.visual), train, dim)
    arrays = ImageArrays(weak, ws.text_vectors)
    models = ("baseline", "multimodal")
    clf_cfg = overridden(replace(ws.config.classifier, seed=seed), args.set)
    blocks = {m: input_blocks(m, arrays) for m in models}
    fit_idx = np.flatnonzero(train)
    trained = train_classifiers(
        model_inputs(arrays, models), y_all, fit_idx, len(ws.labels), ws.multilabel, clf_cfg, None, silent, blocks=blocks
    )
    return {
        "dim": dim,
        "seed": seed,
        "metrics": {m: evaluate(y_all[test], p[test], multilabel=ws.multilabel) for m, p in trained.probs.items()},
    }


def workspace_for(data: Path, seed: int, scratch: Path) -> Workspace:
    """The fitted workspace of ``data`` at ``seed`` (fitted once, kept in ``scratch``)."""
    path = scratch / f"ws-{dataset_name(data)}-s{seed}"
    if not is_workspace(path):
        fit(data, path, FitConfig(seed=seed, projections=False, caption_labels="off"), progress=silent)
    return open_workspace(path)


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and 95% CI over seeds per (dataset, fraction), gains and the labelling gap closed."""
    out = []
    for name in sorted({r["dataset"] for r in runs}):
        full = [r for r in runs if r["dataset"] == name and r["fraction"] >= 1.0]
        base_full = float(np.mean([r["metrics"]["baseline"]["top1"] for r in full])) if full else None
        for frac in sorted({r["fraction"] for r in runs if r["dataset"] == name}):
            sel = [r for r in runs if r["dataset"] == name and r["fraction"] == frac]
            s: dict = {
                "dataset": name,
                "fraction": frac,
                "n_seeds": len(sel),
                "n_labelled": float(np.mean([r["n_labelled"] for r in sel])),
            }
            for m in MODELS:
                vals = [r["metrics"][m]["top1"] for r in sel if m in r["metrics"]]
                if vals:
                    s[m] = ci95(vals)
            for a, b in (
                ("multimodal", "baseline"),
                ("multimodal_captions", "baseline_captions"),
                ("multimodal_captions", "baseline"),
            ):
                diffs = [
                    r["metrics"][a]["top1"] - r["metrics"][b]["top1"] for r in sel if a in r["metrics"] and b in r["metrics"]
                ]
                if diffs:
                    s[f"{a}-{b}"] = ci95(diffs)
            acc = [r["captions"]["accuracy_unlabelled"] for r in sel if r["captions"]["accuracy_unlabelled"] is not None]
            kept = [r["captions"]["accuracy_kept"] for r in sel if r["captions"]["accuracy_kept"] is not None]
            cov = [r["captions"]["coverage"] for r in sel if r["captions"]["coverage"] is not None]
            s["caption_accuracy_unlabelled"] = float(np.mean(acc)) if acc else None
            s["caption_accuracy_kept"] = float(np.mean(kept)) if kept else None
            s["caption_coverage"] = float(np.mean(cov)) if cov else None
            if base_full is not None and frac < 1.0 and "multimodal_captions" in s:
                gap = base_full - s["baseline"][0]
                s["gap_closed"] = (s["multimodal_captions"][0] - s["baseline"][0]) / gap if gap > 1e-9 else None
            out.append(s)
    return out


def print_table(summary: list[dict]) -> None:
    cols = [m for m in MODELS if any(m in s for s in summary)]
    print(
        f"{'dataset':<10} {'frac':>5} {'n':>2} "
        + " ".join(f"{c:>20}" for c in cols)
        + f" {'mm-base':>14} {'mmc-bc':>14} {'gap':>6} {'cap acc':>7}"
    )
    for s in summary:
        cells = " ".join(f"{s[c][0]:>12.3f} ±{s[c][1]:.3f}" if c in s else f"{'':>20}" for c in cols)
        d1 = s.get("multimodal-baseline", (np.nan, np.nan))
        d2 = s.get("multimodal_captions-baseline_captions", (np.nan, np.nan))
        gap = s.get("gap_closed")
        acc = s.get("caption_accuracy_unlabelled")
        print(
            f"{s['dataset']:<10} {s['fraction']:>5.2f} {s['n_seeds']:>2} {cells}"
            f" {d1[0]:>+7.3f}±{d1[1]:.3f} {d2[0]:>+7.3f}±{d2[1]:.3f}"
            f" {'' if gap is None else f'{gap:.2f}':>6} {'' if acc is None else f'{acc:.3f}':>7}"
        )


def markdown(summary: list[dict], weak: list[dict]) -> str:
    """The docs tables: top-1 per model (mean ± 95% CI half-width, in points), gains, gap closed, caption quality."""

    def pts(v: tuple[float, float] | None, sign: bool = False) -> str:
        if v is None:
            return ""
        half = "" if np.isnan(v[1]) else f" ± {100 * v[1]:.1f}"
        return f"{100 * v[0]:+.1f}{half}" if sign else f"{100 * v[0]:.1f}{half}"

    lines = [
        "| set | labels | seeds | baseline | multimodal | text only | baseline + captions | multimodal + captions "
        "| mm+c − base | mm+c − base+c | mm − base | gap closed | caption acc. (kept share) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        acc, cov, gap = s.get("caption_accuracy_unlabelled"), s.get("caption_coverage"), s.get("gap_closed")
        lines.append(
            f"| {s['dataset']} | {100 * s['fraction']:.0f}% | {s['n_seeds']} | "
            + " | ".join(pts(s.get(m)) for m in MODELS)
            + f" | {pts(s.get('multimodal_captions-baseline'), True)}"
            + f" | {pts(s.get('multimodal_captions-baseline_captions'), True)}"
            + f" | {pts(s.get('multimodal-baseline'), True)} | {'' if gap is None else f'{100 * gap:.0f}%'}"
            + f" | {'' if acc is None else f'{100 * acc:.1f}'}{'' if cov is None else f' ({100 * cov:.0f}%)'} |"
        )
    if weak:
        lines += [
            "",
            "| set | visual dims | seeds | baseline | multimodal | multimodal − baseline |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in sorted({w["dataset"] for w in weak}):
            for dim in sorted({w["dim"] for w in weak if w["dataset"] == name}):
                sel = [w for w in weak if w["dataset"] == name and w["dim"] == dim]
                b = ci95([w["metrics"]["baseline"]["top1"] for w in sel])
                m = ci95([w["metrics"]["multimodal"]["top1"] for w in sel])
                d = ci95([w["metrics"]["multimodal"]["top1"] - w["metrics"]["baseline"]["top1"] for w in sel])
                lines.append(f"| {name} | {dim} | {len(sel)} | {pts(b)} | {pts(m)} | {pts(d, True)} |")
    return "\n".join(lines)


def before_after(before: list[dict], after: list[dict]) -> str:
    """Markdown: per set and label fraction below 100%, the caption models, the baseline, the gap
    closed and the caption labels' accuracy of two result files' summaries (e.g. two commits)."""

    def pts(v: tuple[float, float] | None) -> str:
        return "" if v is None else f"{100 * v[0]:.1f}" + ("" if np.isnan(v[1]) else f" ± {100 * v[1]:.1f}")

    def pct(v: float | None) -> str:
        return "" if v is None else f"{100 * v:.0f}%"

    old = {(s["dataset"], s["fraction"]): s for s in before}
    lines = [
        "| set | labels | seeds (before / after) | baseline | baseline + captions: before → after "
        "| multimodal + captions: before → after | mm+c − base+c: before → after | gap closed: before → after "
        "| caption acc.: before → after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in after:
        b = old.get((s["dataset"], s["fraction"]))
        if b is None or s["fraction"] >= 1.0:
            continue
        acc = (b.get("caption_accuracy_unlabelled"), s.get("caption_accuracy_unlabelled"))
        lines.append(
            f"| {s['dataset']} | {100 * s['fraction']:.0f}% | {b['n_seeds']} / {s['n_seeds']} | {pts(s.get('baseline'))} "
            f"| {pts(b.get('baseline_captions'))} → {pts(s.get('baseline_captions'))} "
            f"| {pts(b.get('multimodal_captions'))} → {pts(s.get('multimodal_captions'))} "
            f"| {pts(b.get('multimodal_captions-baseline_captions'))} → {pts(s.get('multimodal_captions-baseline_captions'))} "
            f"| {pct(b.get('gap_closed'))} → {pct(s.get('gap_closed'))} "
            f"| {'' if acc[0] is None else f'{100 * acc[0]:.1f}'} → {'' if acc[1] is None else f'{100 * acc[1]:.1f}'} |"
        )
    return "\n".join(lines)


def paired(before: list[dict], after: list[dict], full: list[dict]) -> str:
    """Markdown: per set and label fraction below 100%, the paired differences (after − before, same
    seeds: same label draws, generator fits and classifier seeds) of the two caption models, and the
    share of the labelling gap closed before → after (``baseline`` at 100% from the runs of ``full``)."""
    old = {(r["dataset"], r["fraction"], r["seed"]): r for r in before}
    lines = [
        "| set | labels | seeds | baseline + captions: after − before | multimodal + captions: after − before "
        "| multimodal + captions: before → after | gap closed: before → after |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in sorted({r["dataset"] for r in after}):
        top = [r["metrics"]["baseline"]["top1"] for r in full if r["dataset"] == name and r["fraction"] >= 1.0]
        for frac in sorted({r["fraction"] for r in after if r["dataset"] == name and r["fraction"] < 1.0}):
            sel = [r for r in after if r["dataset"] == name and r["fraction"] == frac]
            pairs = [(old[k], r) for r in sel if (k := (name, frac, r["seed"])) in old]
            if not pairs:
                continue
            top1 = {m: [[p[i]["metrics"][m]["top1"] for p in pairs] for i in (0, 1)] for m in (*CAPTION_MODELS, "baseline")}
            diff = {m: ci95(list(np.subtract(top1[m][1], top1[m][0]))) for m in CAPTION_MODELS}
            mmc = [np.mean(v) for v in top1["multimodal_captions"]]
            base = float(np.mean(top1["baseline"][1]))
            gap = " → ".join(f"{100 * (v - base) / (np.mean(top) - base):.0f}%" for v in mmc) if top else ""
            cells = " | ".join(f"{100 * d[0]:+.1f} ± {100 * d[1]:.1f}" for d in diff.values())
            lines.append(
                f"| {name} | {100 * frac:.0f}% | {len(pairs)} | {cells} | {100 * mmc[0]:.1f} → {100 * mmc[1]:.1f} | {gap} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="*")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2, 1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "label_scarcity.json"))
    ap.add_argument("--scratch", default=str(ROOT / "bench" / "_scratch"), help="fitted workspaces, kept for re-runs")
    ap.add_argument("--set", nargs="*", default=[], help="ClassifierConfig overrides, e.g. fusion=concat")
    ap.add_argument("--caption-set", nargs="*", default=[], help="CaptionLabelConfig overrides, e.g. features=minilm")
    ap.add_argument(
        "--fit-seed",
        type=int,
        default=None,
        help="fit the phrase generator once with this seed and vary only the label draw and the classifiers' seed "
        "(default: one fit per seed)",
    )
    ap.add_argument(
        "--weak-visual",
        type=int,
        nargs="*",
        default=[],
        help="A2: also run all labels with the visual vector PCA'd to these dims",
    )
    ap.add_argument("--summary", action="store_true", help="print the tables of --out and exit")
    ap.add_argument("--merge", nargs="*", default=[], help="add the runs of these result files (parallel runs) to --out")
    ap.add_argument("--markdown", action="store_true", help="also print the tables as markdown (docs/results.md)")
    ap.add_argument("--before", default=None, help="with --markdown: also a before/after table against this result file")
    ap.add_argument(
        "--paired",
        default=None,
        help="with --summary: also the paired differences of the caption models against this result file (same seeds)",
    )
    ap.add_argument("--full", nargs="*", default=[], help="with --paired: result files with the 100%% runs (gap closed)")
    args = ap.parse_args()
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"split": "each dataset's own split column", "runs": []}
    for other in map(Path, args.merge):
        extra = json.loads(other.read_text())
        have = {(r["dataset"], r["fraction"], r["seed"]) for r in result["runs"]}
        result["runs"] += [r for r in extra["runs"] if (r["dataset"], r["fraction"], r["seed"]) not in have]
        have_a2 = {(r["dataset"], r["dim"], r["seed"]) for r in result.get("weak_visual", [])}
        weak = [r for r in extra.get("weak_visual", []) if (r["dataset"], r["dim"], r["seed"]) not in have_a2]
        result["weak_visual"] = result.get("weak_visual", []) + weak
    if not args.summary:
        done = {(r["dataset"], r["fraction"], r["seed"]) for r in result["runs"]}
        encoder = TextEncoder(FitConfig().text_model)
        for data in map(Path, args.datasets):
            name = dataset_name(data)
            for seed in args.seeds:
                todo = [f for f in args.fractions if (name, f, seed) not in done]
                a2 = {(r["dataset"], r["dim"], r["seed"]) for r in result.get("weak_visual", [])}
                if not todo and all((name, d, seed) in a2 for d in args.weak_visual):
                    continue
                t = time.perf_counter()
                ws = workspace_for(data, seed if args.fit_seed is None else args.fit_seed, Path(args.scratch))
                t_fit = time.perf_counter() - t
                texts = caption_texts(list(ws.items["text"]), [list(g) for g in ws.items["tags"]])
                cap_emb = embed_texts(texts, encoder, default_cache_dir(), silent)
                names = label_name_rows(ws.labels, lambda t: embed_texts(t, encoder, default_cache_dir(), silent))
                done_a2 = {(r["dataset"], r["dim"], r["seed"]) for r in result.get("weak_visual", [])}
                for dim in args.weak_visual:
                    if (name, dim, seed) not in done_a2:
                        result.setdefault("weak_visual", []).append({"dataset": name, **run_weak_visual(ws, dim, seed, args)})
                        out.write_text(json.dumps(result, indent=1))
                        print(f"{name} A2 d={dim} seed={seed}: {result['weak_visual'][-1]['metrics']}", flush=True)
                for frac in todo:
                    row = {"dataset": name, **run_fraction(ws, cap_emb, texts, names, frac, seed, args)}
                    row["fit_seconds"] = round(t_fit, 1)
                    result["runs"].append(row)
                    result.update(overrides=args.set, caption_overrides=args.caption_set, fit_seed=args.fit_seed)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(result, indent=1))
                    print(
                        f"{name} f={frac} seed={seed}: "
                        + " ".join(f"{m}={v['top1']:.3f}" for m, v in row["metrics"].items())
                        + f" caption acc={row['captions']['accuracy_unlabelled']} kept={row['captions']['n_caption_labels']}"
                        + f" ({row['seconds']['classifiers']:.0f} s)",
                        flush=True,
                    )
    result["summary"] = summarise(result["runs"])
    out.write_text(json.dumps(result, indent=1))
    print_table(result["summary"])
    if args.markdown:
        print(markdown(result["summary"], result.get("weak_visual", [])))
        if args.before:
            print()
            print(before_after(summarise(json.loads(Path(args.before).read_text())["runs"]), result["summary"]))
    if args.paired:
        before = json.loads(Path(args.paired).read_text())["runs"]
        full = [r for f in args.full for r in json.loads(Path(f).read_text())["runs"]] + before + result["runs"]
        print()
        print(paired(before, result["runs"], full))


if __name__ == "__main__":
    main()
