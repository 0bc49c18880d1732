"""Tables and plots of ``bench/results/findings_*.json`` -> ``docs/findings.md`` and ``docs/img/*.png``.

python bench/findings_report.py
"""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
IMG = ROOT / "docs" / "img"
ORDER = ["demo", "tuxpaint", "ifct-food", "emoji"]


def ms(values: list[float], scale: float = 100.0) -> str:
    a = np.asarray(values, dtype=float) * scale
    return f"{a.mean():.1f} ± {a.std(ddof=1) if len(a) > 1 else 0:.1f}"


def load() -> dict[str, dict]:
    data = {}
    for path in sorted(RESULTS.glob("findings_*.json")):
        d = json.loads(path.read_text())
        if d.get("runs"):
            data[d["dataset"]] = d
    return dict(sorted(data.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else 99))


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def a1(data) -> str:
    rows = []
    for name, d in data.items():
        for m in ("baseline", "multimodal", "text_only", "zeroshot"):
            rows.append([name, m] + [ms([r["A1"][m][k] for r in d["runs"]]) for k in ("top1", "top5", "macro_f1")])
    return table(["dataset", "model", "top-1", "top-5", "macro-F1"], rows)


def a2(data, plt) -> str:
    rows = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, d in data.items():
        dims = [e["dim"] for e in d["runs"][0]["A2"]]
        xs, ys = [], []
        for i, dim in enumerate(dims):
            base = [r["A2"][i]["baseline"]["top1"] for r in d["runs"]]
            multi = [r["A2"][i]["multimodal"]["top1"] for r in d["runs"]]
            gain = [m - b for m, b in zip(multi, base, strict=True)]
            rows.append([name, str(dim), ms(base), ms(multi), ms(gain)])
            xs.append(np.mean(base) * 100)
            ys.append(np.mean(gain) * 100)
        ax.plot(xs, ys, marker="o", label=name)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("visual-only top-1 (%) — weaker to the left")
    ax.set_ylabel("multimodal − baseline top-1 (points)")
    ax.set_title("Gain against visual strength (phrase generator fixed)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(IMG / "visual_strength.png", dpi=120)
    return table(["dataset", "visual dims (PCA)", "baseline top-1", "multimodal top-1", "gain"], rows)


def a3(data) -> str:
    rows = []
    for name, d in data.items():
        for m in ("multimodal", "text_only"):
            large = [r["A3"]["large"][m]["top1"] for r in d["runs"]]
            small = [r["A3"]["small"][m]["top1"] for r in d["runs"]]
            rows.append([name, m, ms(small), ms(large), ms([a - b for a, b in zip(large, small, strict=True)])])
    return table(["dataset", "model", "small output space", "large output space", "large − small"], rows)


def a4(data) -> str:
    rows = []
    for name, d in data.items():
        rows.append(
            [
                name,
                ms([r["A1"]["baseline"]["top1"] for r in d["runs"]]),
                ms([r["A1"]["multimodal"]["top1"] for r in d["runs"]]),
                ms([r["A4"]["visual+bottleneck"]["top1"] for r in d["runs"]]),
                ms([r["A4"]["visual+bottleneck+text"]["top1"] for r in d["runs"]]),
            ]
        )
    return table(["dataset", "visual", "visual + text (default)", "visual + bottleneck", "visual + bottleneck + text"], rows)


def a5(data, plt) -> str:
    rows = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, d in data.items():
        n, delta = [], []
        for r in d["runs"]:
            pl = r["A5"]
            for c, b, m in zip(pl["n_train"], pl["baseline"], pl["multimodal"], strict=True):
                if b is not None and m is not None:
                    n.append(c)
                    delta.append(m - b)
        n, delta = np.asarray(n), np.asarray(delta)
        ax.scatter(n, delta * 100, s=8, alpha=0.4, label=name)
        q = np.quantile(n, [0, 1 / 3, 2 / 3, 1])
        for lo, hi in pairwise(q):
            sel = (n >= lo) & (n <= hi)
            rows.append([name, f"{int(lo)}–{int(hi)}", str(int(sel.sum())), f"{delta[sel].mean() * 100:+.1f}"])
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training images of the label")
    ax.set_ylabel("per-label F1 gain (points)")
    ax.set_title("Few-shot view: gain per label (all seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(IMG / "fewshot.png", dpi=120)
    return table(["dataset", "training images per label (tercile)", "label × seed points", "mean F1 gain"], rows)


def a6(data) -> str:
    rows = []
    for name, d in data.items():
        combos = [(e["k"], e["weighting"]) for e in d["runs"][0]["A6"]]
        for i, (k, w) in enumerate(combos):
            rows.append([name, str(k), w, ms([r["A6"][i]["multimodal"]["top1"] for r in d["runs"]])])
    return table(["dataset", "k phrases", "averaging", "multimodal top-1"], rows)


def a7(data, plt) -> str:
    rows = []
    fig, axes = plt.subplots(1, len(data), figsize=(4 * len(data), 3.6), sharey=True, squeeze=False)
    for ax, (name, d) in zip(axes[0], data.items(), strict=True):
        fracs = [e["fraction"] for e in d["runs"][0]["A7"]]
        g_phr, g_pse, e_phr, e_pse = [], [], [], []
        for i, f in enumerate(fracs):
            base = np.array([r["A7"][i]["baseline"]["top1"] for r in d["runs"]])
            multi = np.array([r["A7"][i]["multimodal"]["top1"] for r in d["runs"]])
            pseudo = np.array([r["A7"][i]["pseudo_label_baseline"]["top1"] for r in d["runs"]])
            n_lab = np.mean([r["A7"][i]["n_labelled"] for r in d["runs"]])
            rows.append([name, f"{f:.0%}", f"{n_lab:.0f}", ms(base), ms(multi), ms(pseudo), ms(multi - base), ms(pseudo - base)])
            g_phr.append((multi - base).mean() * 100)
            g_pse.append((pseudo - base).mean() * 100)
            e_phr.append((multi - base).std(ddof=1) * 100 if len(base) > 1 else 0)
            e_pse.append((pseudo - base).std(ddof=1) * 100 if len(base) > 1 else 0)
        x = np.array(fracs) * 100
        ax.errorbar(x, g_phr, yerr=e_phr, marker="o", capsize=3, label="phrases (multimodal)")
        ax.errorbar(x, g_pse, yerr=e_pse, marker="s", capsize=3, label="pseudo-labels from captions")
        ax.axhline(0, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.set_title(name)
        ax.set_xlabel("% of training images labelled")
    axes[0][0].set_ylabel("top-1 gain over visual-only (points)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(IMG / "label_scarcity.png", dpi=120)
    return table(
        ["dataset", "labels", "labelled", "visual-only", "multimodal", "pseudo-label visual", "phrase gain", "pseudo-label gain"],
        rows,
    )


def timings(data) -> str:
    rows = []
    for name, d in data.items():
        t = defaultdict(list)
        for r in d["runs"]:
            for k, v in r["timings_s"].items():
                t[k].append(v)
        rows.append([name, str(d["runs"][0]["n_train"] + d["runs"][0]["n_test"])] + [f"{np.mean(t[k]):.1f}" for k in STAGES])
    return table(["dataset", "images (train+test)", *STAGES], rows)


STAGES = ["features", "phrase_generator", "text_embeddings", "classifiers", "zeroshot", "total"]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    data = load()
    seeds = {name: [r["seed"] for r in d["runs"]] for name, d in data.items()}
    parts = [
        "# The paper's findings on our data (generated)",
        "",
        "Generated by `python bench/findings_report.py` from `bench/results/findings_*.json` "
        "(`python bench/findings.py DATASETS --seeds 0 1 2 3 4`). Every cell: mean ± standard deviation over seeds, "
        "in points (top-1 × 100). Each dataset uses its own split column. Seeds: "
        + ", ".join(f"{k} {v}" for k, v in seeds.items())
        + ". Interpretation: `docs/results.md`.",
        "",
        "## A1. Baseline, multimodal, text-only, zero-shot (all training labels)",
        a1(data),
        "",
        "## A2. Visual strength (only the classifiers' visual vector is weakened: PCA to d dimensions)",
        "![gain against visual strength](img/visual_strength.png)",
        "",
        a2(data, plt),
        "",
        "## A3. Output space: small (softmax classes) vs large (all prototypes)",
        a3(data),
        "",
        "## A4. Bottleneck vs phrase text",
        a4(data),
        "",
        "## A5. Few-shot: per-label F1 gain against the label's training count",
        "![few-shot](img/fewshot.png)",
        "",
        a5(data, plt),
        "",
        "## A6. Number of phrases and their averaging",
        a6(data),
        "",
        "## A7-A8. Label scarcity, and the pseudo-label control",
        "![label scarcity](img/label_scarcity.png)",
        "",
        a7(data, plt),
        "",
        "## Fit stage times (seconds, mean over seeds; maps off; this machine, 2 cores, busy with other runs)",
        timings(data),
        "",
    ]
    (ROOT / "docs" / "findings.md").write_text("\n".join(parts))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
