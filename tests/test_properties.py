"""Property-based tests: any byte string as a manifest or an image gives a result or a clean, named error.

"Clean" means :class:`ValueError` (manifests) or :class:`ImageError` (images) with a message, never
another exception type and never a traceback from deep inside a parser. Example counts are bounded
so the module runs in well under 30 s.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.data import ImageError, load_dataset, load_image

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 5), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


PNG = _valid_png()
CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
# manifests that look like manifests (header + rows with quotes, commas, odd encodings) and raw bytes
CSV_TEXT = st.lists(st.lists(CELL, min_size=0, max_size=6), min_size=0, max_size=6).map(
    lambda rows: "image,label,text\n" + "\n".join(",".join(r) for r in rows)
)
ENCODED = st.tuples(CSV_TEXT, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1"])).map(
    lambda t: t[0].encode(t[1], errors="replace")
)


def _load(name: str, data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        (root / "images" / "a.png").write_bytes(PNG)
        (root / name).write_bytes(data)
        try:
            ds = load_dataset(root / name)
        except ValueError as exc:
            assert str(exc).startswith(name), exc  # the error names the file
            return None
        assert all(str(i) for i in ds.issues)
        assert set(ds.items["split"]) <= {"train", "val", "test"}
        return ds


@FAST
@given(st.one_of(st.binary(max_size=300), ENCODED))
def test_any_bytes_as_a_csv_manifest(data):
    _load("manifest.csv", data)


@FAST
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.recursive(st.none() | st.booleans() | st.integers() | CELL, lambda c: st.lists(c) | st.dictionaries(CELL, c)),
            max_size=5,
        ).map(lambda vs: "\n".join(json.dumps(v) for v in vs).encode()),
    )
)
def test_any_bytes_as_a_jsonl_manifest(data):
    _load("manifest.jsonl", data)


@FAST
@given(st.binary(max_size=300))
def test_any_bytes_as_a_json_manifest(data):
    _load("manifest.json", b"[" + data)


@FAST
@given(st.binary(max_size=2000))
def test_any_bytes_as_an_image(data):
    try:
        im = load_image(data, max_side=64)
    except ImageError as exc:
        assert str(exc)
        return
    assert im.mode == "RGB" and max(im.size) <= 64


@FAST
@given(st.integers(0, len(PNG) - 1), st.integers(0, 255), st.integers(1, len(PNG)))
def test_mutated_and_truncated_images(pos, byte, cut):
    data = bytearray(PNG)
    data[pos] = byte
    for blob in (bytes(data), PNG[:cut]):
        try:
            assert load_image(blob).mode == "RGB"
        except ImageError as exc:
            assert str(exc)
