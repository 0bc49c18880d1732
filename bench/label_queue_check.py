"""The #17 check on a real workspace: after label changes and a retrain, does the label-error queue
hold items whose given label is both models' top prediction?

The models' predictions on their training rows are cross-fitted (``Workspace.crossfit_models``)
and the queue leaves out the rows whose label both pick (``confirmed_by_both_models``); the
script also counts the wrong labels that rule hides (its cost) and the rows it held back.

On a copy of the workspace (the original is never written): a labeler changes ``--changes``
training labels (seed 0: half set to another label, half confirmed as they are), the classifiers
are retrained on the store's labels, then the label-error queue is built (``--source``, first
``--limit`` items) and every item is checked against the retrained baseline and multimodal
models. Prints a table and writes ``bench/results/label_queue_check.json``.

    python bench/label_queue_check.py --workspace WS [--changes 40] [--limit 100] [--source linear]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.labels.queue import confirmed_by_both_models, review_queue  # noqa: E402
from core.labels.retrain import retrain  # noqa: E402
from core.labels.session import current_labels, open_label_store  # noqa: E402
from core.training import label_targets  # noqa: E402
from core.workspace import open_workspace  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--changes", type=int, default=40)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--source", default="linear")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "label_queue_check.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "ws"
        shutil.copytree(args.workspace, dest, ignore=shutil.ignore_patterns("oof", "labels.sqlite*", "*.lock"))
        ws = open_workspace(dest)
        store = open_label_store(ws)
        rng = np.random.default_rng(args.seed)
        rows = rng.choice(np.flatnonzero(ws.items["labelled"].to_numpy()), args.changes, replace=False)
        for i, r in enumerate(rows):
            given = ws.items.at[r, "labels"][0]
            other = (ws.labels.index(given) + 1 + rng.integers(len(ws.labels) - 1)) % len(ws.labels)
            label = given if i % 2 else ws.labels[other]
            store.set_labels(str(ws.items.at[r, "item"]), label, user="bench")
        t = time.perf_counter()
        retrain(ws, store)
        retrain_s = time.perf_counter() - t
        ws = open_workspace(dest)
        current = current_labels(ws, store)
        t = time.perf_counter()
        queue = review_queue(ws, "label_errors", current=current, source=args.source, limit=args.limit)
        queue_s = time.perf_counter() - t
        base, multi = ws.predictions["baseline"].argmax(1), ws.predictions["multimodal"].argmax(1)
        both = [q for q in queue if ws.labels[base[q.row]] in current[q.row] and ws.labels[multi[q.row]] in current[q.row]]
        changed = {int(r) for r in rows}
        wrong = {int(r) for i, r in enumerate(rows) if not i % 2}  # the half set to another label
        y = label_targets(current, ws.labels, ws.multilabel)
        confirmed = set(np.flatnonzero(confirmed_by_both_models(ws, y)).tolist())
        crossfit = ws.crossfit_models
    result = {
        "workspace": args.workspace,
        "source": args.source,
        "changes": args.changes,
        "queue_items": len(queue),
        "given_label_is_both_models_top": len(both),
        "examples": [q.item for q in both[:10]],
        "changed_rows_in_queue": len({q.row for q in queue} & changed),
        "wrongly_changed_rows_in_queue": len({q.row for q in queue} & wrong),
        "wrongly_changed_rows_both_models_agree_with": len({q.row for q in both} & wrong),
        "crossfit_models": crossfit,
        "rows_confirmed_by_both_models": len(confirmed),
        "wrongly_changed_rows_confirmed_by_both_models": len(confirmed & wrong),
        "retrain_s": round(retrain_s, 1),
        "queue_s": round(queue_s, 1),
    }
    for k, v in result.items():
        print(f"{k:<32} {v}")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if not both else 1


if __name__ == "__main__":
    sys.exit(main())
