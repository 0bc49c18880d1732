"""What every format reader returns and every writer shares."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ForeignRows:
    """Manifest-like rows read from another format, for :func:`core.data.load_dataset` to validate.

    Attributes:
        root: folder the ``image`` values are relative to.
        rows: dicts with ``image`` and ``label`` (or ``labels``, a list), optional ``text``,
            ``tags``, ``split`` and metadata.
        file_label: the file named in skipped-row reports.
        row_offset: number of the first row in those reports.
    """

    root: Path
    rows: list[dict[str, object]]
    file_label: str
    row_offset: int = 1


def row_labels(row: dict) -> list[str]:
    """A manifest row's labels (``label`` or ``;``-joined ``labels``)."""
    value = row.get("labels", row.get("label", ""))
    return [v for v in str(value).split(";") if v]


def place_image(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest``: a folder format's images live inside it (the loader refuses
    symbolic links that leave a dataset's folder)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)


def flat_name(image: str) -> str:
    """A file name unique per image path (``a/b.png`` -> ``a__b.png``)."""
    return image.replace("\\", "/").strip("/").replace("/", "__")


def relative_to_json(value: str, folder: Path, *subdirs: str) -> tuple[Path, str]:
    """``(root, image)`` for a path found in a JSON file: relative to its folder, or to one of
    ``subdirs`` under it when the image is there (COCO and FiftyOne keep images in ``data/``)."""
    for sub in subdirs:
        if (folder / sub / value).is_file():
            return folder / sub, value
    return folder, value


def write_folder(rows: list[dict], out: Path, *, root: Path, multilabel: bool) -> None:
    """A class-per-folder tree ``out/LABEL/file`` with a same-name ``.txt`` for the text (what the
    manifest loader reads as an image folder; splits are drawn again on reading)."""
    if multilabel:
        raise ValueError("a class-per-folder tree holds one label per image; export a multi-label dataset as coco or fiftyone")
    for r in rows:
        label = str(r.get("label") or "")
        if not label:
            continue  # an image folder has no place for an unlabelled image
        dest = out / label / flat_name(str(r["image"]))
        place_image(root / str(r["image"]), dest)
        if r.get("text"):
            dest.with_suffix(".txt").write_text(str(r["text"]), encoding="utf-8")
