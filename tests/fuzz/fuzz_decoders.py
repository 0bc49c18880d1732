"""Coverage-guided fuzzing (atheris) of the decoders a user's files go through.

Each input is used three ways: as an image file's bytes (:func:`core.data.load_image`), and as a
CSV and a JSONL manifest (:func:`core.data.load_dataset`). The only acceptable outcomes are a
result, :class:`~core.data.ImageError` or a :class:`ValueError` naming the manifest; anything else
is a crash that atheris reports with the input that caused it.

Run it (``-max_total_time`` in seconds; a corpus folder is optional)::

    python tests/fuzz/fuzz_decoders.py -max_total_time=60 [CORPUS_DIR]

``tests/fuzz/test_fuzz.py`` runs it for 20 s in the test suite.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

import atheris
import numpy  # noqa: F401 - imported before instrumenting: only Pillow and core.data get coverage hooks
import pandas  # noqa: F401

with atheris.instrument_imports(include=["PIL", "core.data"]):
    from PIL import Image

    from core.data import ImageError, load_dataset, load_image

_ROOT = Path(tempfile.mkdtemp(prefix="pixctx-fuzz-"))
(_ROOT / "images").mkdir()
_buf = io.BytesIO()
Image.new("RGB", (4, 4), (9, 9, 9)).save(_buf, "PNG")
(_ROOT / "images" / "a.png").write_bytes(_buf.getvalue())


def test_one_input(data: bytes) -> None:
    """One fuzz case: the bytes as an image, a CSV manifest and a JSONL manifest."""
    with contextlib.suppress(ImageError):
        load_image(data, max_side=64)
    for name in ("manifest.csv", "manifest.jsonl"):
        path = _ROOT / name
        path.write_bytes(data)
        try:
            load_dataset(path)
        except ValueError as exc:
            if not str(exc).startswith(name):
                raise AssertionError(f"error does not name the file: {exc}") from exc
        path.unlink()


def main(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
