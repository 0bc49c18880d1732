"""``python -m core predictions {attach,list}``: bring your own model's predictions to a workspace."""

from __future__ import annotations

import argparse


def cmd_attach(args: argparse.Namespace) -> int:
    from core.predictions import attach
    from core.workspace import open_workspace

    ws = open_workspace(args.workspace)
    att = attach(ws, args.file, args.name)
    print(f"attached {att.name!r}: {att.proba.shape[0]} items x {att.proba.shape[1]} labels -> {ws.path / 'predictions'}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from core.predictions import attached_names
    from core.workspace import open_workspace

    for name in attached_names(open_workspace(args.workspace)):
        print(name)
    return 0


def add_predictions_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``predictions attach|list`` on the main parser."""
    p = sub.add_parser("predictions", help="attach your own model's predictions to a workspace")
    psub = p.add_subparsers(dest="predictions_command", required=True)
    q = psub.add_parser(
        "attach",
        help="validate and attach a predictions file (.parquet or .csv)",
        description="Columns: item, then one probability column per label; or item, label, score.",
    )
    q.add_argument("--workspace", required=True)
    q.add_argument("file")
    q.add_argument("--name", required=True, help="model name shown in the app (letters, digits, - and _)")
    q.set_defaults(func=cmd_attach)
    q = psub.add_parser("list", help="names of the attached predictions")
    q.add_argument("--workspace", required=True)
    q.set_defaults(func=cmd_list)
