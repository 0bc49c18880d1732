"""The memory-mapped safetensors reader: same arrays as safetensors' own loader, read-only views,
clear errors on damaged files, and old maps that survive an atomic replace."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from core.safetensors_mmap import SafetensorsError, Streamed, load_mmap, save_streamed


@pytest.fixture()
def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "f32": rng.standard_normal((7, 5)).astype(np.float32),
        "f16": rng.standard_normal((3, 4)).astype(np.float16),
        "f64": rng.standard_normal(6),
        "i64": rng.integers(-5, 5, (4, 3)),
        "i32": rng.integers(0, 9, 5).astype(np.int32),
        "u8": rng.integers(0, 255, (2, 2, 2)).astype(np.uint8),
        "flag": rng.random(9) > 0.5,
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def test_same_arrays_as_safetensors_own_loader(tmp_path: Path, tensors):
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path), metadata={"about": "test"})
    ref, mapped = load_file(str(path)), load_mmap(path)
    assert mapped.keys() == ref.keys()
    for k, v in ref.items():
        assert mapped[k].dtype == v.dtype and mapped[k].shape == v.shape, k
        np.testing.assert_array_equal(mapped[k], v)


def test_a_fitted_workspace_file_reads_the_same(fitted_workspace: Path):
    for name in ("arrays.safetensors", "predictions.safetensors"):
        ref, mapped = load_file(str(fitted_workspace / name)), load_mmap(fitted_workspace / name)
        assert mapped.keys() == ref.keys()
        for k, v in ref.items():
            np.testing.assert_array_equal(mapped[k], v)
            assert not mapped[k].flags.owndata  # a view into the map, not a copy


def test_views_are_read_only(tmp_path: Path, tensors):
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path))
    a = load_mmap(path)["f32"]
    assert not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a[0, 0] = 1.0
    b = a.copy()  # a copy is an ordinary array
    b[0, 0] = 1.0
    assert load_mmap(path)["f32"][0, 0] == tensors["f32"][0, 0]


@pytest.mark.parametrize("cut", [1, 100, 400])
def test_a_truncated_file_is_refused(tmp_path: Path, tensors, cut: int):
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - cut])
    with pytest.raises(SafetensorsError, match="truncated"):
        load_mmap(path)


def _write(path: Path, header: dict, data: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "not what F32"),
        ({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "numpy cannot map"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "bad shape"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, "spans bytes"),
        ({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, "lacks"),
        ([1, 2], b"", "not a JSON object"),
    ],
)
def test_a_malformed_header_is_refused(tmp_path: Path, header, data: bytes, message: str):
    path = tmp_path / "bad.safetensors"
    _write(path, header, data)
    with pytest.raises(SafetensorsError, match=message):
        load_mmap(path)


def test_garbage_and_tiny_files_are_refused(tmp_path: Path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(SafetensorsError, match="too short"):
        load_mmap(path)
    path.write_bytes(struct.pack("<Q", 5) + b"{nope")
    with pytest.raises(SafetensorsError, match="not JSON"):
        load_mmap(path)
    with pytest.raises(FileNotFoundError):
        load_mmap(tmp_path / "missing.safetensors")


def test_an_open_map_keeps_the_old_file_across_an_atomic_replace(tmp_path: Path):
    """What a retrain does to a workspace an app session holds open: the session keeps reading the
    old arrays, a new open reads the new ones."""
    path = tmp_path / "t.safetensors"
    save_file({"x": np.arange(1000, dtype=np.float32)}, str(path))
    old = load_mmap(path)["x"]
    staged = tmp_path / "t.safetensors.new"
    save_file({"x": -np.arange(1000, dtype=np.float32), "y": np.ones(3, np.float32)}, str(staged))
    os.replace(staged, path)
    np.testing.assert_array_equal(old, np.arange(1000, dtype=np.float32))
    new = load_mmap(path)
    assert set(new) == {"x", "y"} and new["x"][5] == -5


def test_a_file_written_block_by_block_reads_back_with_the_reference_reader(tmp_path, tensors):
    save_file(tensors, str(tmp_path / "source.safetensors"))
    mapped = load_mmap(tmp_path / "source.safetensors")  # a mapped source is copied a few rows at a time
    rows = np.arange(40, dtype=np.float32).reshape(10, 4)
    streamed = {**mapped, "blocks": Streamed(np.dtype(np.float32), (10, 4), (rows[s : s + 3] for s in range(0, 10, 3)))}
    save_streamed(tmp_path / "out.safetensors", streamed, rows=2)
    for got in (load_file(str(tmp_path / "out.safetensors")), load_mmap(tmp_path / "out.safetensors")):
        assert set(got) == {*tensors, "blocks"} and np.array_equal(got["blocks"], rows)
        for name, value in tensors.items():
            assert got[name].dtype == value.dtype and np.array_equal(got[name], value), name
    short = Streamed(np.dtype(np.float32), (10, 4), [rows[:9]])
    with pytest.raises(ValueError, match="blocks"):
        save_streamed(tmp_path / "short.safetensors", {"short": short})
