"""Bring your own predictions: a file of per-image probabilities from any model, attached to a
workspace, shows up as another model (Compare, Explore) and can drive the label-error queue.

Accepted files (``.parquet`` or ``.csv``), one row per image:

* ``item`` (the image path exactly as in the dataset's manifest), then one probability
  column per label (every label of the workspace, any order; extra labels are refused);
* or ``item``, ``label`` (top label) and ``score`` (its probability): the rest of the
  probability mass is spread evenly over the other labels.

The file is validated (unknown or missing items, duplicated items, unknown labels, values
outside [0, 1], rows not summing to 1 for single-label workspaces) and stored, in the
workspace's label order, under ``WORKSPACE/predictions/NAME.parquet`` (a folder the product
creates and owns; the user's file is only read).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.workspace import Workspace
from core.workspace_files import write_files

FOLDER = "predictions"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
RESERVED = {"baseline", "multimodal", "text_only", "zeroshot", "product", "linear"}
SUM_TOLERANCE = 1e-3


class PredictionsError(ValueError):
    """A predictions file that does not fit the workspace; the message says what to fix."""


@dataclass
class Attached:
    """Predictions attached to a workspace: (N, L) probabilities in the workspace's row and label order."""

    name: str
    proba: np.ndarray
    meta: dict


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, dtype={"item": str, "label": str}, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise PredictionsError(f"{path.name}: cannot be read ({exc})") from exc
    raise PredictionsError(f"{path.name}: use a .parquet or .csv file")


def _first(values: list[str], n: int = 3) -> str:
    return ", ".join(repr(v) for v in values[:n]) + (f" and {len(values) - n} more" if len(values) > n else "")


def validate(ws: Workspace, table: pd.DataFrame, file: str = "predictions") -> np.ndarray:
    """(N, L) probabilities of ``table`` in the workspace's row and label order.

    Raises:
        PredictionsError: with a message naming the file, the rows or labels at fault.
    """
    if "item" not in table.columns:
        raise PredictionsError(f"{file}: no 'item' column (columns: {list(table.columns)[:8]})")
    items = table["item"].astype(str).str.strip()
    dup = items[items.duplicated()].tolist()
    if dup:
        raise PredictionsError(f"{file}: {len(dup)} items appear twice ({_first(dup)})")
    row_of = {it: i for i, it in enumerate(ws.items["item"].astype(str))}
    unknown = [it for it in items if it not in row_of]
    if unknown:
        raise PredictionsError(
            f"{file}: {len(unknown)} items are not in the workspace ({_first(unknown)}); use the manifest's image paths"
        )
    missing = sorted(set(row_of) - set(items))
    if missing:
        raise PredictionsError(f"{file}: {len(missing)} workspace items have no prediction ({_first(missing)})")
    labels = ws.labels
    if {"label", "score"} <= set(table.columns) and not set(labels) & set(table.columns):
        values = _top_label(table, labels, file)
    else:
        extra = [c for c in table.columns if c != "item" and c not in labels]
        absent = [lab for lab in labels if lab not in table.columns]
        if extra or absent:
            raise PredictionsError(
                f"{file}: label columns do not match the workspace's {len(labels)} labels"
                + (f"; unknown: {_first(extra)}" if extra else "")
                + (f"; missing: {_first(absent)}" if absent else "")
            )
        values = table[labels].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    _check_values(values, items.tolist(), file, ws.multilabel)
    out = np.zeros((len(row_of), len(labels)), dtype=np.float32)
    out[[row_of[it] for it in items]] = values
    return out


def _top_label(table: pd.DataFrame, labels: list[str], file: str) -> np.ndarray:
    top = table["label"].astype(str).str.strip()
    unknown = sorted(set(top) - set(labels))
    if unknown:
        raise PredictionsError(f"{file}: labels not in the workspace: {_first(unknown)}")
    score = pd.to_numeric(table["score"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(score).any() or (score < 0).any() or (score > 1).any():
        raise PredictionsError(f"{file}: 'score' must be a probability in [0, 1] on every row")
    rest = (1 - score) / max(len(labels) - 1, 1)
    values = np.repeat(rest[:, None], len(labels), axis=1)
    values[np.arange(len(top)), [labels.index(t) for t in top]] = score
    return values


def _check_values(values: np.ndarray, items: list[str], file: str, multilabel: bool) -> None:
    bad = np.isnan(values).any(1) | (values < 0).any(1) | (values > 1).any(1)
    if bad.any():
        rows = [items[i] for i in np.flatnonzero(bad)]
        raise PredictionsError(f"{file}: {len(rows)} rows have values that are not probabilities in [0, 1] ({_first(rows)})")
    if not multilabel:
        off = np.abs(values.sum(1) - 1) > SUM_TOLERANCE
        if off.any():
            rows = [items[i] for i in np.flatnonzero(off)]
            raise PredictionsError(
                f"{file}: {len(rows)} rows do not sum to 1 (±{SUM_TOLERANCE}) ({_first(rows)}); give softmax probabilities"
            )


def attach(ws: Workspace, file: str | Path, name: str) -> Attached:
    """Validate ``file`` and store it in the workspace as the model ``name``.

    Raises:
        PredictionsError: a bad name or file.
        WorkspaceBusyError: another process is writing the workspace.
    """
    if not NAME_RE.match(name) or name in RESERVED:
        raise PredictionsError(f"name {name!r}: use letters, digits, '-' or '_' (not one of {sorted(RESERVED)})")
    path = Path(file).expanduser().resolve()
    proba = validate(ws, _read_table(path), path.name)
    meta = {
        "name": name,
        "source": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "attached": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "labels": ws.labels,
        "items_fingerprint": ws.manifest["dataset"]["fingerprint"],
    }
    table = pd.DataFrame(proba, columns=ws.labels).assign(item=ws.items["item"].astype(str).to_numpy())
    write_files(  # the table first: a name is attached once its JSON exists (attached_names)
        ws.path,
        FOLDER,
        {
            f"{name}.parquet": lambda p: table.to_parquet(p, index=False),
            f"{name}.json": lambda p: p.write_text(json.dumps(meta, indent=1)),
        },
    )
    return Attached(name, proba, meta)


def attached_names(ws: Workspace) -> list[str]:
    """Names of the predictions attached to ``ws`` that still fit its rows and labels."""
    folder = ws.path / FOLDER
    if not folder.is_dir():
        return []
    names = []
    for meta_path in sorted(folder.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        if meta.get("labels") == ws.labels and (folder / f"{meta_path.stem}.parquet").is_file():
            names.append(meta_path.stem)
    return names


def load_attached(ws: Workspace, name: str) -> Attached:
    """Attached predictions ``name``, re-checked against the workspace's current rows and labels.

    Raises:
        PredictionsError: unknown name, or the workspace changed since (refit, retrain with
            a new label set): attach the file again.
    """
    folder = ws.path / FOLDER
    meta_path = folder / f"{name}.json"
    if not NAME_RE.match(name) or not meta_path.is_file():
        raise PredictionsError(f"no predictions named {name!r} attached; attached: {attached_names(ws) or 'none'}")
    meta = json.loads(meta_path.read_text())
    table = pd.read_parquet(folder / f"{name}.parquet")
    try:
        proba = validate(ws, table, f"predictions {name!r}")
    except PredictionsError as exc:
        raise PredictionsError(f"{exc}. The workspace changed since it was attached: attach the file again") from exc
    return Attached(name, proba, meta)


def attached_predictions(ws: Workspace) -> dict[str, np.ndarray]:
    """Every attached model's (N, L) probabilities, keyed ``NAME``."""
    return {n: load_attached(ws, n).proba for n in attached_names(ws)}


def attached_metrics(ws: Workspace) -> dict[str, dict[str, float]]:
    """Test-split metrics of every attached model, as :attr:`Workspace.metrics` holds the product's."""
    from core.metrics import evaluate
    from core.training import label_targets

    attached = attached_predictions(ws)
    if not attached:
        return {}
    test = ws.items["is_test"].to_numpy()
    y = label_targets([list(v) for v in ws.items["labels"][test]], ws.labels, ws.multilabel)
    return {n: evaluate(y, p[test], multilabel=ws.multilabel) for n, p in attached.items()}
