"""End-to-end inference speed of the pipeline on new images, stage by stage, against a naive pipeline.

Stages of the default pipeline (what ``Workspace.predict`` runs): decode (file -> RGB, resize,
normalise), backbone (visual features), phrase search (generator encoder + faiss top-k),
text vector (stored phrase embeddings averaged), classifiers (baseline, multimodal, text-only)
and zero-shot. The naive pipeline is identical except that it re-embeds each image's top-3
phrases with the sentence-transformers model instead of looking the embeddings up; both run in
the same process on the same images, and the report gives their ratio.

Writes ``bench/results/inference[_<device>].json``.

    python bench/inference.py                  # 512 demo images, CPU
    python bench/inference.py --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data.images import load_image  # noqa: E402
from core.demo import demo_workspace  # noqa: E402
from core.vectors import l2n  # noqa: E402
from core.workspace import open_workspace  # noqa: E402
from core.zeroshot import scores_to_proba  # noqa: E402


def run(ws, paths: list[str], batch: int, naive: bool) -> dict[str, float]:
    """Seconds per stage over all ``paths``."""
    import torch

    t = dict.fromkeys(("decode", "backbone", "phrase_search", "text_vector", "classifiers", "zeroshot"), 0.0)
    labels = [(n, []) for n in ws.labels]
    top_k = ws.config.top_k
    for s in range(0, len(paths), batch):
        chunk = paths[s : s + batch]
        t0 = time.perf_counter()
        x = np.stack([ws.backbone.preprocess(load_image(p, max_side=1024)) for p in chunk])
        t1 = time.perf_counter()
        feats = ws.backbone.embed_batch(x)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        emb, ids, scores = ws.phrase_outputs(feats, feats)
        t3 = time.perf_counter()
        if naive:  # embed the phrase strings again, image by image
            vecs = [ws.text_encoder.encode([ws.phrases[j] for j in row[:top_k] if j >= 0]).mean(0) for row in ids]
            text_vec = l2n(np.stack(vecs))
        else:
            text_vec = ws.text_vectors_of(ids, scores)
        t4 = time.perf_counter()
        visual = l2n(feats)
        for name, inp in (("baseline", visual), ("multimodal", np.concatenate([visual, text_vec], 1)), ("text_only", text_vec)):
            ws.classifiers[name].predict_proba(inp)
        t5 = time.perf_counter()
        scores_to_proba(ws.zeroshot_scores(labels, embeddings=emb, text_vectors=text_vec))
        t6 = time.perf_counter()
        for key, a, b in (
            ("decode", t0, t1),
            ("backbone", t1, t2),
            ("phrase_search", t2, t3),
            ("text_vector", t3, t4),
            ("classifiers", t4, t5),
            ("zeroshot", t5, t6),
        ):
            t[key] += b - a
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default=None, help="fitted workspace (default: the demo, fitted if needed)")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    path = Path(args.workspace) if args.workspace else demo_workspace().path
    ws = open_workspace(path, device=args.device)
    if ws.config.generator_backbone:
        raise SystemExit("this bench times single-backbone workspaces")
    paths = list(ws.items["path"])[: args.images]
    run(ws, paths[: args.batch], args.batch, naive=False)  # warm-up: models loaded, caches filled
    run(ws, paths[: args.batch], args.batch, naive=True)
    results = {}
    for name, naive in (("default", False), ("naive", True)):
        stages = run(ws, paths, args.batch, naive)
        total = sum(stages.values())
        results[name] = {
            "images_per_s": len(paths) / total,
            "total_s": total,
            "stages_s": stages,
            "share": {k: v / total for k, v in stages.items()},
        }
    ratio = results["naive"]["total_s"] / results["default"]["total_s"]
    text_ratio = results["naive"]["stages_s"]["text_vector"] / max(results["default"]["stages_s"]["text_vector"], 1e-9)
    print(f"{len(paths)} images of {path.name}, batch {args.batch}, device {args.device}")
    print(f"{'stage':<16}{'default s':>11}{'share':>8}{'naive s':>11}{'share':>8}")
    for k in results["default"]["stages_s"]:
        d, n = results["default"], results["naive"]
        print(f"{k:<16}{d['stages_s'][k]:>11.3f}{d['share'][k]:>8.1%}{n['stages_s'][k]:>11.3f}{n['share'][k]:>8.1%}")
    print(
        f"images/s: default {results['default']['images_per_s']:.1f}, naive {results['naive']['images_per_s']:.1f} "
        f"(naive takes {ratio:.2f}x as long; its text step {text_ratio:.0f}x)"
    )
    out = Path(args.out or ROOT / "bench" / "results" / f"inference{'' if args.device == 'cpu' else '_' + args.device}.json")
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "device": args.device, "batch": args.batch}
    if args.device == "cuda":
        import torch

        meta["gpu"] = torch.cuda.get_device_name(0)
    out.write_text(
        json.dumps({**meta, "images": len(paths), "workspace": path.name, **results, "naive_over_default": ratio}, indent=1)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
