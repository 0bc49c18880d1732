"""Read a ``.safetensors`` file as read-only, memory-mapped numpy arrays; write one block by block.

``safetensors.numpy.load_file`` copies every tensor into memory: for a workspace of 1M images the
visual features alone are 5 GB. :func:`load_mmap` instead parses the file's JSON header and returns
one read-only view per tensor into a single memory map of the file, so opening costs the header
and pages are read from disk (and kept in the OS page cache) only where an array is touched.

The format (https://github.com/huggingface/safetensors): 8 bytes little-endian header length ``H``,
``H`` bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the data; offsets are relative to the first data byte. Every entry is checked against the file
size before it is mapped (a truncated or damaged file raises :class:`SafetensorsError`, never a
view that reads past the file). Nothing is executed or unpickled.

Writers replace workspace files atomically (``os.replace``): a map held by an open app session
keeps the old file's inode alive and unchanged on Linux and macOS, and the next open reads the new
file. (Windows refuses to replace a mapped file; this product's writers run on POSIX systems.)

:func:`save_streamed` writes the same format without holding a file's bytes in memory
(``safetensors.numpy.save_file`` serialises every tensor into one buffer first): the header, then
each tensor copied in blocks of rows from an array (which may be a memory map) or taken from an
iterable of blocks (:class:`Streamed`, for tensors computed shard by shard).
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["SafetensorsError", "Streamed", "load_mmap", "save_streamed"]

#: safetensors dtype names -> numpy (little-endian); BF16 and FP8 have no numpy dtype.
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code).newbyteorder("<")
    for name, code in {
        "F64": "f8", "F32": "f4", "F16": "f2",
        "I64": "i8", "I32": "i4", "I16": "i2", "I8": "i1",
        "U64": "u8", "U32": "u4", "U16": "u2", "U8": "u1",
        "BOOL": "?",
    }.items()
}  # fmt: skip
#: Larger headers are refused (the reference implementation's limit).
MAX_HEADER = 100_000_000


class SafetensorsError(ValueError):
    """A file that is not a well-formed safetensors file (the message says what is wrong)."""


def _header(path: Path, fh: BinaryIO, size: int) -> tuple[int, dict]:
    """``(first data byte, header dict)`` read from the open file ``fh`` of ``size`` bytes."""
    if size < 8:
        raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors header")
    (length,) = struct.unpack("<Q", fh.read(8))
    if length > MAX_HEADER or 8 + length > size:
        raise SafetensorsError(f"{path}: header length {length} does not fit the file's {size} bytes (truncated?)")
    try:
        header = json.loads(fh.read(length))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"{path}: the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header is not a JSON object")
    header.pop("__metadata__", None)
    return 8 + length, header


def _spec(path: Path, name: str, entry: object, data_bytes: int) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, offset in the data)`` of one header entry, checked against the data's size."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise SafetensorsError(f"{path}: tensor {name!r} lacks dtype, shape or data_offsets")
    dtype = DTYPES.get(entry["dtype"])
    if dtype is None:
        raise SafetensorsError(f"{path}: tensor {name!r} has dtype {entry['dtype']!r}, which numpy cannot map")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise SafetensorsError(f"{path}: tensor {name!r} has a bad shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise SafetensorsError(f"{path}: tensor {name!r} has bad data_offsets {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_bytes:
        raise SafetensorsError(f"{path}: tensor {name!r} spans bytes {begin}-{end} of {data_bytes} (truncated?)")
    if end - begin != math.prod(shape) * dtype.itemsize:
        raise SafetensorsError(f"{path}: tensor {name!r} has {end - begin} bytes, not what {entry['dtype']}{shape} needs")
    return dtype, tuple(shape), begin


def load_mmap(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only numpy view into one memory map.

    The views share the map, which stays open while any view (or an array sliced from one) is
    alive. Writing to a view raises ``ValueError`` (read-only).

    Raises:
        FileNotFoundError: no such file.
        SafetensorsError: a truncated or malformed file, or a dtype numpy lacks (BF16).
    """
    path = Path(path)
    with path.open("rb") as fh:
        size = path.stat().st_size
        start, header = _header(path, fh, size)
        specs = {name: _spec(path, name, entry, size - start) for name, entry in header.items()}
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size > start else b""
    out = {}
    for name, (dtype, shape, begin) in specs.items():
        count = math.prod(shape)
        view = np.frombuffer(buf, dtype=dtype, count=count, offset=start + begin) if count else np.empty(0, dtype)
        view = view.reshape(shape)
        view.flags.writeable = False
        out[name] = view
    return out


@dataclass
class Streamed:
    """A tensor written from blocks along its first axis, in order (their rows must add up to ``shape[0]``)."""

    dtype: np.dtype
    shape: tuple[int, ...]
    blocks: Iterable[np.ndarray]


def _blocks(value: np.ndarray | Streamed, rows: int) -> Iterable[np.ndarray]:
    if isinstance(value, Streamed):
        return value.blocks
    if value.ndim == 0:
        return [value.reshape(1)]
    return (value[s : s + rows] for s in range(0, len(value), rows))


def save_streamed(path: str | Path, tensors: Mapping[str, np.ndarray | Streamed], rows: int = 65_536) -> None:
    """Write ``tensors`` as a safetensors file, block by block (see the module docstring).

    Raises:
        ValueError: a dtype safetensors lacks, or a :class:`Streamed` whose blocks do not fill its shape.
    """
    names = {dtype: name for name, dtype in DTYPES.items()}
    header, offset, specs = {}, 0, {}
    for name, value in tensors.items():
        dtype = np.dtype(value.dtype).newbyteorder("<")
        shape = tuple(int(d) for d in value.shape)
        if dtype not in names:
            raise ValueError(f"tensor {name!r}: dtype {value.dtype} has no safetensors name")
        size = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": names[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        specs[name], offset = (dtype, size), offset + size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # the data starts 8-byte aligned, as the reference writer pads it
    with Path(path).open("wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text)
        for name, value in tensors.items():
            dtype, size = specs[name]
            written = 0
            for block in _blocks(value, rows):
                data = np.ascontiguousarray(block, dtype=dtype)
                fh.write(memoryview(data).cast("B"))
                written += data.nbytes
            if written != size:
                raise ValueError(f"tensor {name!r}: its blocks hold {written} bytes, its shape {size}")
