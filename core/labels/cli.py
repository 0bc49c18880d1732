"""``python -m core labels {set,undo,history,queue,export,retrain}``: the labeling loop from a shell."""

from __future__ import annotations

import argparse
import getpass
import json
import os

from core.cli_common import positive_int
from core.jsonio import strict_json

#: the strategies of :data:`core.labels.queue.STRATEGIES` (kept literal: ``--help`` imports no model code)
QUEUE_STRATEGIES = ["disagree", "margin", "label_errors", "near_duplicates", "outliers", "unlabeled", "random"]


def _store(args: argparse.Namespace):
    from core.labels.session import open_label_store
    from core.workspace import open_workspace

    ws = open_workspace(args.workspace)
    return ws, open_label_store(ws, args.db)


def _default_user() -> str:
    try:
        return os.environ.get("PIXCTX_USER") or getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers): the user must say who they are
        return ""


def cmd_set(args: argparse.Namespace) -> int:
    ws, store = _store(args)
    if args.unsure:
        change = store.mark_unsure(args.item, user=args.user, note=args.note)
    else:
        if not args.labels:
            raise ValueError("give the new label(s), or --unsure")
        if len(set(args.labels)) > 1 and not ws.multilabel:  # the models would read only one of them
            raise ValueError(f"this dataset has one label per image: give one label, not {', '.join(args.labels)}")
        change = store.set_labels(args.item, args.labels, user=args.user, note=args.note, add_label=args.add_label)
    print(f"#{change.id} {change.item}: {';'.join(change.old) or '-'} -> {';'.join(change.new) or '-'} ({change.user})")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    _, store = _store(args)
    change = store.undo(args.change, user=args.user, note=args.note)
    print(f"#{change.id} undoes #{args.change}: {change.item} -> {';'.join(change.new) or '-'}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    _, store = _store(args)
    changes = store.history(args.item)
    if args.json:
        print(json.dumps([c.to_dict() for c in changes], indent=2))
        return 0
    for c in changes:
        extra = " ".join(x for x in (f"[{c.strategy}]" if c.strategy else "", f"undoes #{c.undoes}" if c.undoes else "", c.note))
        change = f"{';'.join(c.old) or '-'} -> {';'.join(c.new) or '-'}"
        print(f"#{c.id}\t{c.at}\t{c.user}\t{c.action}\t{c.item}\t{change}\t{extra}".rstrip())
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    from core.labels.queue import review_queue
    from core.labels.session import current_labels

    ws, store = _store(args)
    exclude = set() if args.include_reviewed else set(store.reviewed())
    queue = review_queue(
        ws, args.strategy, current=current_labels(ws, store), exclude=exclude, limit=args.limit, source=args.source
    )
    for q in queue:
        print(f"{q.item}\tsuggest {';'.join(q.suggestion)}\t{q.reason}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.labels.export import export_dataset, export_log

    ws, store = _store(args)
    out = export_dataset(ws, store, args.out, args.format, overwrite=args.overwrite)
    print(f"corrected dataset ({args.format}): {out} ({len(ws.items)} rows, {len(store.current())} reviewed)")
    if args.log:
        print(f"correction log: {export_log(store, args.log, ws=ws, overwrite=args.overwrite)}")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from core.labels.retrain import retrain
    from core.progress import TqdmProgress

    ws, store = _store(args)
    report = retrain(ws, store, progress=TqdmProgress())
    if args.json:
        print(strict_json(report.to_dict()))
        return 0
    print(f"retrained on {report.n_labelled} labelled images ({report.n_corrected} corrected)")
    keys = list(next(iter(report.after.values())))
    print(f"{'model':<12}" + "".join(f"{k + ' before':>17}{k + ' after':>16}" for k in keys))
    for m, after in report.after.items():
        before = report.before[m]
        print(f"{m:<12}" + "".join(f"{before[k]:>17.3f}{after[k]:>16.3f}" for k in keys))
    return 0


def add_labels_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``labels`` and its sub-commands on the main parser."""
    p = sub.add_parser("labels", help="label corrections: set, undo, history, queue, export, retrain")
    lsub = p.add_subparsers(dest="labels_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--workspace", required=True)
        q.add_argument("--db", default=None, help="database URL (default: $PIXCTX_LABELS_DB or WORKSPACE/labels.sqlite)")

    def who(q: argparse.ArgumentParser) -> None:
        q.add_argument("--user", default=_default_user(), help="who makes the change (default: $PIXCTX_USER or login name)")
        q.add_argument("--note", default="")

    q = lsub.add_parser("set", help="set an image's label(s)", description="Record new labels for one image.")
    common(q)
    q.add_argument("item", help="the image path exactly as written in the dataset's manifest")
    q.add_argument("labels", nargs="*", help="new label (several for multi-label datasets)")
    who(q)
    q.add_argument("--add-label", action="store_true", help="allow labels that are not in the taxonomy yet")
    q.add_argument("--unsure", action="store_true", help="flag the image as 'not sure' instead")
    q.set_defaults(func=cmd_set)

    q = lsub.add_parser("undo", help="undo a change (recorded as a new change)")
    common(q)
    q.add_argument("change", type=int, help="change id (see `labels history`)")
    who(q)
    q.set_defaults(func=cmd_undo)

    q = lsub.add_parser("history", help="every change, oldest first")
    common(q)
    q.add_argument("item", nargs="?", default=None)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_history)

    q = lsub.add_parser("queue", help="images to review under a strategy")
    common(q)
    q.add_argument("--strategy", default="label_errors", choices=QUEUE_STRATEGIES)
    q.add_argument(
        "--source",
        default="linear",
        help="out-of-fold probabilities of label_errors: linear (logistic regression, fast), best (the workspace's "
        "best model cross-validated, its caption teacher refitted per fold, minutes once), product (the multimodal "
        "classifier cross-validated) or predictions:NAME (attached with `predictions attach`)",
    )
    q.add_argument("--limit", type=positive_int, default=20)
    q.add_argument("--include-reviewed", action="store_true")
    q.set_defaults(func=cmd_queue)

    q = lsub.add_parser("export", help="write the corrected manifest (and the correction log)")
    common(q)
    q.add_argument("--out", required=True, help="file or folder to write (manifest: .csv or .jsonl)")
    q.add_argument(
        "--format",
        default="manifest",
        choices=["manifest", "folder", "fiftyone", "imagefolder", "parquet", "coco", "labelstudio"],
        help="output format (default: %(default)s; see core.formats.FORMATS)",
    )
    q.add_argument("--log", default=None, help="also write the correction log (.csv or .jsonl)")
    q.add_argument("--overwrite", action="store_true", help="replace a previous export (never any other file)")
    q.set_defaults(func=cmd_export)

    q = lsub.add_parser("retrain", help="refit the classifiers on the corrected labels (embeddings reused)")
    common(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_retrain)
