"""``python -m core tags {fit,evaluate}``: tag-neighbourhood annotation from a shell."""

from __future__ import annotations

import argparse
import json


def _print(ev: dict) -> None:
    print(f"{'(m, M)':<10}{'model':<14}{'mAP_lab':>9}{'mAP_img':>9}{'P@3':>7}{'R@3':>7}")
    for setting, models in ev["settings"].items():
        for kind, met in models.items():
            print(
                f"{setting:<10}{kind:<14}{met['mAP'] * 100:>9.1f}{met['mAP_img'] * 100:>9.1f}"
                f"{met['precision_at_3'] * 100:>7.1f}{met['recall_at_3'] * 100:>7.1f}"
            )


def _summary(ev: dict) -> dict:
    return {
        k: {"mAP_lab": ev[k]["mAP"], "mAP_img": ev[k]["mAP_img"], "precision_at_3": ev[k]["precision_at_3"],
            "recall_at_3": ev[k]["recall_at_3"]}
        for k in ("visual_only", "ltn", "ltwin")
    }  # fmt: skip


def cmd_fit(args: argparse.Namespace) -> int:
    from core.jobs import optional_job, tags_plan
    from core.progress import TqdmProgress
    from core.tags.annotate import fit_tag_models
    from core.tags.models import TagModelConfig
    from core.workspace import open_workspace

    cfg = TagModelConfig(epochs=args.epochs, seed=args.seed, pool=args.pool)
    ws = open_workspace(args.workspace)
    with optional_job(args.workspace, tags_plan(), args.job, n_images=len(ws.items)) as prog:
        # a job reports every step under its plan's one group (as the demo fit does)
        report = (lambda s, d, n: prog(f"tag models ({s})", d, n)) if prog else TqdmProgress()
        ev = fit_tag_models(ws, metric=args.neighbours, config=cfg, progress=report)
    _print(ev)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.tags.annotate import open_tag_models
    from core.workspace import open_workspace

    ev = open_tag_models(open_workspace(args.workspace)).meta["evaluation"]
    if args.json:
        print(json.dumps({**_summary(ev), "settings": ev["settings"]}, indent=2))
    else:
        _print(ev)
    return 0


def add_tags_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``tags`` and its sub-commands on the main parser."""
    from core.jobs import add_job_option

    p = sub.add_parser("tags", help="tag-neighbourhood annotation (fit, evaluate)")
    tsub = p.add_subparsers(dest="tags_command", required=True)
    q = tsub.add_parser("fit", help="fit visual-only, LTN and LTwin for (m, M) = (3,6), (6,12), (12,24)")
    q.add_argument("--workspace", required=True)
    q.add_argument("--neighbours", default="embedding", choices=["embedding", "jaccard"], help="tag distance")
    q.add_argument("--pool", default="max", choices=["max", "lstm"], help="lstm: RTN and LTwin+RNN (ordered neighbours)")
    q.add_argument("--epochs", type=int, default=30)
    q.add_argument("--seed", type=int, default=0)
    add_job_option(q)
    q.set_defaults(func=cmd_fit)
    q = tsub.add_parser("evaluate", help="per-label and per-image mAP, P/R@3 on the test split (stored at fit time)")
    q.add_argument("--workspace", required=True)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_evaluate)
