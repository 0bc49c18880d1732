"""``python -m core retrieval {fit,search,evaluate}``: semantic image search from a shell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _print_evaluation(ev: dict) -> None:
    from core.retrieval.semantic import METHODS

    print(f"{ev['n_queries']} test queries, R = 1..{ev['r_max']}")
    print(f"{'method':<24}{'NDCG AUC':>10}{'PCC AUC':>10}")
    for m in METHODS:
        print(f"{m:<24}{ev[m]['ndcg_auc']:>10.1f}{ev[m]['pcc_auc']:>10.1f}")


def _summary(ev: dict) -> dict:
    from core.retrieval.semantic import METHODS

    return {m: {"ndcg_auc": ev[m]["ndcg_auc"], "pcc_auc": ev[m]["pcc_auc"]} for m in METHODS}


def cmd_fit(args: argparse.Namespace) -> int:
    from core.jobs import optional_job, search_plan
    from core.progress import TqdmProgress
    from core.retrieval.model import RetrievalConfig
    from core.retrieval.semantic import fit_retrieval
    from core.workspace import open_workspace

    cfg = RetrievalConfig(epochs=args.epochs, dim=args.dim, seed=args.seed)
    ws = open_workspace(args.workspace)
    with optional_job(args.workspace, search_plan(), args.job, n_images=len(ws.items)) as prog:
        ev = fit_retrieval(ws, cfg, text_encoder=args.text_encoder, progress=prog or TqdmProgress())
    _print_evaluation(ev)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from core.retrieval.semantic import open_retrieval
    from core.workspace import open_workspace

    ws = open_workspace(args.workspace)
    search = open_retrieval(ws)
    features, exclude = None, None
    if args.image:
        rows = ws.items.index[ws.items["item"].astype(str) == args.image]
        if len(rows):  # an image of the workspace: its stored features, itself left out
            exclude = int(rows[0])
            features = ws.visual[exclude]
        else:
            feats, _, errors = ws.embed([Path(args.image)])
            if errors:
                raise ValueError(f"{args.image}: {errors[0]}")
            features = feats[0]
    hits = search.search(features=features, text=args.text, text_weight=args.text_weight, k=args.k, exclude=exclude)
    results = [{"image": str(ws.items.at[r, "item"]), "score": round(s, 6)} for r, s in hits]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for res in results:
            print(f"{res['score']:.3f}\t{res['image']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.retrieval.semantic import evaluate_retrieval, open_retrieval
    from core.workspace import open_workspace

    ev = evaluate_retrieval(open_retrieval(open_workspace(args.workspace)))
    if args.json:
        print(json.dumps(_summary(ev), indent=2))
    else:
        _print_evaluation(ev)
    return 0


def add_retrieval_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``retrieval`` and its sub-commands on the main parser."""
    from core.jobs import add_job_option

    p = sub.add_parser("retrieval", help="semantic image search (fit, search, evaluate)")
    rsub = p.add_subparsers(dest="retrieval_command", required=True)

    q = rsub.add_parser("fit", help="train the semantic embeddings on the workspace's training split")
    q.add_argument("--workspace", required=True)
    q.add_argument("--text-encoder", default="tfidf", choices=["tfidf", "minilm"])
    q.add_argument("--epochs", type=int, default=40)
    q.add_argument("--dim", type=int, default=256)
    q.add_argument("--seed", type=int, default=0)
    add_job_option(q)
    q.set_defaults(func=cmd_fit)

    q = rsub.add_parser("search", help="images nearest an image, a text, or both")
    q.add_argument("--workspace", required=True)
    q.add_argument("--image", default=None, help="an image file, or an image path as written in the dataset's manifest")
    q.add_argument("--text", default=None, help="text query, or the modifier added to --image")
    q.add_argument("--text-weight", type=float, default=1.0, help="how far the text moves an image query")
    q.add_argument("--k", type=int, default=10)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_search)

    q = rsub.add_parser("evaluate", help="NDCG and PCC AUCs on the test split")
    q.add_argument("--workspace", required=True)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_evaluate)
