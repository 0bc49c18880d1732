"""Batched visual embeddings with an on-disk cache keyed by image content + backbone.

The cache is a folder of append-only safetensors shards (``hashes``: SHA-1 digests of the
image files, ``features``: their vectors). A shard is written after every chunk of images
and renamed into place atomically, so an interrupted run only recomputes what is missing.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import re
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from safetensors.numpy import load_file, save_file

from core.backbones import Backbone, BackboneInfo, normalise_pixels
from core.config import default_cache_dir  # noqa: F401  (defined with the other defaults; imported from here too)
from core.data.images import decode_pixels
from core.progress import ProgressFn, silent


def file_digest(path: str | Path) -> bytes:
    """SHA-1 of a file's bytes (the cache key; 20 bytes)."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def cache_key(backbone: Backbone, weights: str | None = None) -> str:
    """Feature-cache key of a backbone configuration (name, input size, and which local weights)."""
    key = f"{backbone.name}-{backbone.info.image_size}"
    if weights:
        key += "-" + hashlib.sha1(str(Path(weights).resolve()).encode()).hexdigest()[:8]
    return key


class FeatureCache:
    """Features of one backbone configuration, keyed by image content hash."""

    def __init__(self, root: str | Path, key: str) -> None:
        self.dir = Path(root) / "features" / re.sub(r"[^A-Za-z0-9_.-]+", "_", key)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._store: dict[bytes, np.ndarray] = {}
        for shard in sorted(self.dir.glob("*.safetensors")):
            try:
                data = load_file(str(shard))
            except Exception:  # a shard from a killed writer is never renamed in; be lenient anyway
                continue
            for h, f in zip(data["hashes"], data["features"]):
                self._store[h.tobytes()] = f

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._store

    def get(self, digest: bytes) -> np.ndarray:
        return self._store[digest]

    def add(self, digests: list[bytes], features: np.ndarray) -> None:
        """Persist a chunk atomically, then keep it in memory."""
        if not digests:
            return
        hashes = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), -1)
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
        save_file({"hashes": hashes, "features": np.ascontiguousarray(features, dtype=np.float32)}, str(tmp))
        os.replace(tmp, self.dir / f"shard-{uuid.uuid4().hex}.safetensors")
        for d, f in zip(digests, features):
            self._store[d] = f


def decode_for_backbone(path: str, info: BackboneInfo) -> tuple[np.ndarray | None, str | None]:
    """Decode and preprocess one image file: ``(array, None)``, or ``(None, reason)`` when it cannot be used."""
    ok, pixels, errors = decode_pixels([path], info.image_size)
    return (normalise_pixels(pixels, info)[0], None) if ok else (None, errors[0])


#: What an engine yields per chunk: positions (into the paths it was given) of the images embedded,
#: their features, and ``{position: reason}`` for images that could not be decoded.
Chunk = tuple[list[int], np.ndarray, dict[int, str]]


class FeatureEngine(Protocol):
    """Computes features of image files chunk by chunk (the local loop, or :class:`core.engines.RayEngine`)."""

    def chunks(self, paths: list[str], backbone: Backbone) -> Iterator[Chunk]: ...


@dataclass
class LocalEngine:
    """This process: images decoded by a pool of threads (or processes), batches through the backbone.

    Decoding runs ``prefetch`` chunks ahead of the forward pass, so the backbone never waits on a
    chunk's decoding while the pool has work to do, and the pool hands back square uint8 pixels
    (normalised by the backbone, on the GPU there).

    Attributes:
        batch_size: images per forward pass (raise it on a GPU).
        chunk_size: images decoded and persisted together.
        workers: decoding threads (or processes).
        processes: decode in worker processes instead of threads, so a fast accelerator never waits
            on the interpreter lock (:func:`local_engine` does so on CUDA).
        prefetch: chunks decoded ahead of the one the backbone is on.
    """

    batch_size: int = 32
    chunk_size: int = 256
    workers: int = 4
    processes: bool = False
    prefetch: int = 2

    def chunks(self, paths: list[str], backbone: Backbone) -> Iterator[Chunk]:
        # spawned (not forked) processes: the parent may hold runtime threads or a CUDA context
        pool_cm = (
            ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))
            if self.processes
            else ThreadPoolExecutor(max_workers=self.workers)
        )
        size, task = backbone.info.image_size, DECODE_TASK
        with pool_cm as pool:

            def submit(start: int) -> tuple[int, list[Future]]:
                stop = min(start + self.chunk_size, len(paths))
                return start, [pool.submit(decode_pixels, paths[b : min(b + task, stop)], size) for b in range(start, stop, task)]

            todo = iter(range(0, len(paths), self.chunk_size))
            pending = deque(submit(s) for s in itertools.islice(todo, self.prefetch + 1))
            while pending:
                start, futures = pending.popleft()
                pending.extend(submit(s) for s in itertools.islice(todo, 1))
                ok: list[int] = []
                pixels: list[np.ndarray] = []
                errors: dict[int, str] = {}
                for k, future in enumerate(futures):
                    base = start + k * task
                    done, px, errs = future.result()
                    ok += [base + i for i in done]
                    pixels.append(px)
                    errors.update({base + i: reason for i, reason in errs.items()})
                px = np.concatenate(pixels)
                step = self.batch_size
                out = [backbone.embed_batch(px[b : b + step]) for b in range(0, len(px), step)]
                yield ok, np.concatenate(out) if out else np.zeros((0, backbone.dim), np.float32), errors


#: images per decoding task (a task's pixels come back as one array)
DECODE_TASK = 16


def local_engine(backbone: Backbone, batch_size: int = 32) -> LocalEngine:
    """This process's engine for ``backbone``: on CUDA, batches of at least 256 images and decoding
    in worker processes on every core but one (the GPU outruns a few decoding threads many times)."""
    if backbone.device == "cpu" or backbone.runtime != "torch":
        return LocalEngine(batch_size=batch_size)
    workers = max(1, (os.cpu_count() or 2) - 1)
    return LocalEngine(batch_size=max(batch_size, 256), chunk_size=2048, workers=workers, processes=True)


def embed_images(
    paths: list[str],
    backbone: Backbone,
    *,
    cache: FeatureCache | None = None,
    batch_size: int = 32,
    engine: FeatureEngine | None = None,
    progress: ProgressFn = silent,
) -> tuple[np.ndarray, dict[int, str], list[bytes | None]]:
    """Embed images, reusing cached features.

    Args:
        paths: image files.
        backbone: the feature extractor.
        cache: where features are looked up and stored; ``None`` disables caching.
        batch_size: images per forward pass of the default engine.
        engine: what computes the missing features (default: :func:`local_engine`).
        progress: ``progress("embed images", done, total)``.

    Returns:
        ``(features, errors, digests)``: an ``(N, dim)`` float32 array (rows of failed images are
        zero), ``{index: reason}`` for images that could not be decoded, and each file's SHA-1
        (``None`` where it could not be read).
    """
    engine = engine or local_engine(backbone, batch_size)
    n = len(paths)
    feats = np.zeros((n, backbone.dim), dtype=np.float32)
    errors: dict[int, str] = {}
    digests: list[bytes | None] = []
    todo: list[int] = []
    for i, p in enumerate(paths):
        try:
            d = file_digest(p)
        except OSError as exc:
            errors[i] = f"cannot read file ({exc.strerror or exc})"
            digests.append(None)
            continue
        digests.append(d)
        if cache is not None and d in cache:
            feats[i] = cache.get(d)
        else:
            todo.append(i)
    done = n - len(todo)
    progress("embed images", done, n)
    for ok, chunk_feats, chunk_errors in engine.chunks([paths[i] for i in todo], backbone):
        rows = [todo[j] for j in ok]
        errors.update({todo[j]: reason for j, reason in chunk_errors.items()})
        if rows:
            feats[rows] = chunk_feats
            if cache is not None:
                cache.add([digests[i] for i in rows], chunk_feats)  # type: ignore[misc]
        done += len(ok) + len(chunk_errors)
        progress("embed images", done, n)
    progress("embed images", n, n)
    return feats, errors, digests
