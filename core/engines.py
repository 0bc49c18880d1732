"""Ray Data as the engine beyond one process (``pip install pixctx[ray]``).

>>> fit("data/", "ws/", FitConfig(engine="ray"))                      # a local Ray on this machine
>>> fit("data/", "ws/", FitConfig(engine="ray", ray_address="ray://head:10001"))

Image features, the dominant stage of a fit, are computed by a Ray Data pipeline: image files are
read and decoded by parallel tasks, and the backbone runs in a pool of actors (one model per actor;
one GPU per actor where the cluster has GPUs, else the CPU runtime ``auto`` picks, with the node's
cores shared among its actors). Everything else in the fit is the same code as the local engine,
so the numbers are the same. Worker processes import this package through Ray's ``py_modules``,
so a cluster needs only the requirements installed, not this checkout; image paths must be
readable from every node (a shared file system).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.backbones import Backbone, BackboneInfo
from core.data.images import decode_pixels
from core.features import Chunk

ENGINES = ("local", "ray")
#: CPUs of a node left to the decoding tasks (the actors share the rest).
DECODE_CPUS = 0.5


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("the Ray engine needs Ray: `pip install pixctx[ray]` (or `pip install 'ray[data]'`)") from exc
    return ray


def start_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local one (``num_cpus``: its size; default all
    cores). Does nothing when Ray is already initialised in this process."""
    ray = import_ray()
    if not ray.is_initialized():
        import core

        ray.init(
            address=address,
            num_cpus=num_cpus if address is None else None,
            runtime_env={"py_modules": [str(Path(core.__file__).parent)]},
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    ray.data.DataContext.get_current().enable_progress_bars = False


@dataclass(frozen=True)
class ActorPlan:
    """How the backbone actors use the cluster."""

    workers: int
    device: str
    num_gpus: float
    num_cpus: float
    threads: int


def plan_actors(workers: int | None, device: str) -> ActorPlan:
    """Actors for the cluster Ray is connected to: one per GPU where there are GPUs (unless
    ``device="cpu"``), else ``workers`` (default one per node) sharing each node's cores."""
    ray = import_ray()
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and device != "cpu":
        return ActorPlan(workers or gpus, "cuda", 1.0, 1.0, 1)
    if device.startswith("cuda"):
        raise RuntimeError("device 'cuda' requested but the Ray cluster has no GPU")
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    node_cpus = min(n["Resources"].get("CPU", 1.0) for n in nodes) if nodes else float(resources.get("CPU", 1.0))
    workers = workers or len(nodes) or 1
    per_node = max(1, -(-workers // max(1, len(nodes))))
    num_cpus = max(0.25, (node_cpus - DECODE_CPUS) / per_node)
    return ActorPlan(workers, "cpu", 0.0, num_cpus, max(1, round(node_cpus / per_node)))


def _decode_batch(batch: dict[str, np.ndarray], info: BackboneInfo) -> dict[str, np.ndarray]:
    """Ray task: decode a batch of image files to square uint8 pixels (failed ones: zeros and a reason)."""
    size = info.image_size
    images = np.zeros((len(batch["path"]), size, size, 3), dtype=np.uint8)
    ok, pixels, errors = decode_pixels([str(p) for p in batch["path"]], size)
    images[ok] = pixels
    reasons = np.array([errors.get(i, "") for i in range(len(images))], dtype=object)
    return {"pos": batch["pos"], "path": batch["path"], "image": images, "error": reasons}


class _Embedder:
    """Ray actor: one model per backbone, created once per actor."""

    def __init__(self, specs: list[tuple[str, str | None]], runtime: str, device: str, threads: int, cache_dir: str | None):
        from core.backbones import create_backbone

        self.backbones = [
            create_backbone(name, weights=w, device=device, runtime=runtime, cache_dir=cache_dir, threads=threads)
            for name, w in specs
        ]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = batch["error"] == ""
        out = {k: v for k, v in batch.items() if k != "image"}
        for k, bb in enumerate(self.backbones):
            feats = np.zeros((len(ok), bb.dim), dtype=np.float32)
            if ok.any():
                feats[ok] = bb.embed_batch(np.ascontiguousarray(batch["image"][ok]))
            out[f"features{k}"] = feats
        return out


@dataclass
class RayEngine:
    """Image features on a Ray cluster (a :class:`core.features.FeatureEngine`).

    Attributes:
        address: the cluster (``None``: start a local Ray on this machine).
        workers: backbone actors (default: one per GPU, else one per node).
        runtime: the backbone runtime in CPU actors (``auto``: the fastest installed there).
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: images per forward pass (GPU actors use at least 128).
        chunk_size: images handed back to the driver (and persisted in the cache) together.
        cache_dir: where actors find or write the exported model.
    """

    address: str | None = None
    workers: int | None = None
    runtime: str = "auto"
    device: str = "auto"
    batch_size: int = 32
    chunk_size: int = 256
    cache_dir: str | None = None

    def dataset(self, paths: list[str], specs: list[tuple[str, str | None]], info: BackboneInfo):
        """The Ray Dataset of ``{pos, error, features0, features1, ...}`` rows for ``paths``."""
        start_ray(self.address)
        ray = import_ray()
        plan = plan_actors(self.workers, self.device)
        batch = self.batch_size if plan.device == "cpu" else max(self.batch_size, 128)
        n_blocks = max(1, min(len(paths) // 16, 4 * plan.workers * 8))
        ds = ray.data.from_items([{"pos": i, "path": p} for i, p in enumerate(paths)], override_num_blocks=n_blocks)
        ds = ds.map_batches(_decode_batch, fn_kwargs={"info": info}, batch_size=16, num_cpus=DECODE_CPUS)
        return ds.map_batches(
            _Embedder,
            fn_constructor_kwargs={
                "specs": specs,
                "runtime": self.runtime if plan.device == "cpu" else "torch",
                "device": plan.device,
                "threads": plan.threads,
                "cache_dir": self.cache_dir,
            },
            compute=ray.data.ActorPoolStrategy(size=plan.workers),
            batch_size=batch,
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
        )

    def chunks(self, paths: list[str], backbone: Backbone) -> Iterator[Chunk]:
        if not paths:
            return
        ds = self.dataset(paths, [(backbone.name, backbone.weights)], backbone.info)
        for batch in ds.iter_batches(batch_size=self.chunk_size, batch_format="numpy", prefetch_batches=2):
            ok = batch["error"] == ""
            pos = batch["pos"].astype(np.int64)
            errors = {int(p): str(e) for p, e in zip(pos[~ok], batch["error"][~ok])}
            yield [int(p) for p in pos[ok]], batch["features0"][ok], errors


def feature_engine(cfg, cache_root: Path) -> RayEngine | None:
    """The engine a fit's config asks for (a :class:`core.config.FitConfig`): ``None`` for this
    process, or a :class:`RayEngine`."""
    if cfg.engine == "local":
        return None
    if cfg.engine != "ray":
        raise ValueError(f"unknown engine {cfg.engine!r}; choose one of {', '.join(ENGINES)}")
    return RayEngine(
        cfg.ray_address, runtime=cfg.runtime, device=cfg.device, batch_size=cfg.batch_size, cache_dir=str(cache_root)
    )
