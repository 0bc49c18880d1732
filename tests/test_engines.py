"""Batch prediction to parquet (local engine) and the Ray engine, which must give the local engine's numbers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.batch import collection_paths, predict_batch
from core.cli import main
from core.workspace import open_workspace
from tests.conftest import DEMO, quick_fit, write_subset

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed (optional extra [ray])")


def _read_shards(folder: Path) -> pd.DataFrame:
    shards = sorted(folder.glob("*.parquet"))
    assert shards
    return pd.concat([pd.read_parquet(f) for f in shards]).sort_values("position").reset_index(drop=True)


@pytest.fixture(scope="module")
def collection(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small dataset's images plus a file that is not an image, listed in a manifest without labels."""
    folder = tmp_path_factory.mktemp("collection")
    rows = pd.read_csv(small_dataset / "manifest.csv")[["image"]].iloc[::3]
    (folder / "images").symlink_to(small_dataset / "images")
    (folder / "broken.png").write_text("not an image")
    pd.concat([rows, pd.DataFrame({"image": ["broken.png"]})]).to_csv(folder / "manifest.csv", index=False)
    return folder


def test_predict_batch_local_matches_predict(fitted_workspace, collection, tmp_path, capsys):
    out = tmp_path / "preds"
    assert main(["predict-batch", "--workspace", str(fitted_workspace), str(collection), "--out", str(out)]) == 0
    table = _read_shards(out)
    paths = collection_paths(collection)
    assert list(table["image"]) == paths and len(paths) > 10
    assert table["error"].iloc[-1] and (table["error"].iloc[:-1] == "").all()
    assert pd.isna(table["multimodal_label"].iloc[-1]) and np.isnan(table["multimodal_prob"].iloc[-1])
    ws = open_workspace(fitted_workspace)
    for row, pred in zip(table.head(4).itertuples(), ws.predict(paths[:4])):
        assert row.multimodal_label == pred.multimodal[0][0] and row.baseline_label == pred.baseline[0][0]
        assert abs(row.multimodal_prob - pred.multimodal[0][1]) < 0.02  # predict decodes at a larger size
        assert row.phrases[0] == pred.phrases[0][0] or abs(row.phrase_scores[0] - pred.phrases[0][1]) < 0.02
    assert set(ws.labels) >= set(table["multimodal_label"].dropna())
    # a user's folder is never overwritten
    with pytest.raises(ValueError, match="not empty"):
        predict_batch(fitted_workspace, collection, out)


@needs_ray
@pytest.mark.slow
def test_ray_engine_gives_the_local_numbers(fitted_workspace, collection, tmp_path, small_dataset):
    import ray

    from core.backbones import create_backbone
    from core.engines import RayEngine, start_ray
    from core.features import embed_images

    start_ray(num_cpus=2)
    try:
        paths = collection_paths(collection)
        bb = create_backbone("efficientnet-lite0", device="cpu", runtime="auto")
        local, err_local, _ = embed_images(paths, bb)
        remote, err_ray, _ = embed_images(paths, bb, engine=RayEngine(device="cpu", workers=2, chunk_size=8))
        assert err_local == err_ray and list(err_ray) == [len(paths) - 1]
        assert np.allclose(local, remote, atol=1e-5)

        out_local, out_ray = tmp_path / "local", tmp_path / "ray"
        predict_batch(fitted_workspace, collection, out_local)
        n = predict_batch(fitted_workspace, collection, out_ray, engine="ray")
        a, b = _read_shards(out_local), _read_shards(out_ray)
        assert n == len(paths) - 1 and list(a["image"]) == list(b["image"])
        for m in ("baseline", "multimodal", "text_only", "zeroshot"):
            assert list(a[f"{m}_label"]) == list(b[f"{m}_label"])
            assert np.allclose(a[f"{m}_prob"], b[f"{m}_prob"], atol=1e-4, equal_nan=True)

        # a whole fit with image features on Ray (fresh feature cache) evaluates as the local fit
        data = write_subset(tmp_path / "data", per_label=8)
        ws_local = quick_fit(data, tmp_path / "ws-local", tmp_path / "cache-local")
        ws_ray = quick_fit(data, tmp_path / "ws-ray", tmp_path / "cache-ray", engine="ray")
        assert np.allclose(ws_local.visual, ws_ray.visual, atol=1e-5)
        for model, metrics in ws_local.metrics.items():
            for key, value in metrics.items():
                assert abs(ws_ray.metrics[model][key] - value) <= 0.01, (model, key)
        assert json.loads((ws_ray.path / "manifest.json").read_text())["config"]["engine"] == "ray"
    finally:
        ray.shutdown()


def test_ray_engine_without_ray_is_a_clear_error(fitted_workspace, collection, tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    args = ["predict-batch", "--workspace", str(fitted_workspace), str(collection), "--out", str(tmp_path / "p")]
    code = main([*args, "--engine", "ray"])
    assert code == 2 and "pixctx[ray]" in capsys.readouterr().err


def test_collection_paths_reads_manifests_and_image_folders(tmp_path):
    assert collection_paths(DEMO)[0] == str(DEMO / pd.read_csv(DEMO / "manifest.csv")["image"][0])
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for name in ("b.webp", "sub/a.webp"):
        (tmp_path / "imgs" / name).write_bytes(next(DEMO.glob("images/*.webp")).read_bytes())
    assert collection_paths(tmp_path / "imgs") == [str(tmp_path / "imgs" / "b.webp"), str(tmp_path / "imgs" / "sub" / "a.webp")]
    with pytest.raises(FileNotFoundError):
        collection_paths(tmp_path / "missing")


class _Cluster:
    """What `plan_actors` reads of a Ray cluster: its resources and its nodes."""

    def __init__(self, gpus: int, nodes: int, cpus_per_node: float) -> None:
        self.gpus, self.n, self.cpus = gpus, nodes, cpus_per_node

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": self.n * self.cpus, **({"GPU": float(self.gpus)} if self.gpus else {})}

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": {"CPU": self.cpus}} for _ in range(self.n)]


def test_actor_plan_uses_one_gpu_per_actor_where_the_cluster_has_gpus(monkeypatch):
    import core.engines as engines

    monkeypatch.setattr(engines, "import_ray", lambda: _Cluster(gpus=8, nodes=2, cpus_per_node=32))
    plan = engines.plan_actors(None, "auto")
    assert (plan.workers, plan.device, plan.num_gpus) == (8, "cuda", 1.0)
    cpu = engines.plan_actors(None, "cpu")  # a GPU cluster told to use its CPUs: one actor per node, cores shared
    assert (cpu.workers, cpu.device, cpu.num_gpus) == (2, "cpu", 0.0) and cpu.num_cpus == 32 - engines.DECODE_CPUS
    monkeypatch.setattr(engines, "import_ray", lambda: _Cluster(gpus=0, nodes=1, cpus_per_node=16))
    two = engines.plan_actors(2, "auto")
    assert (two.workers, two.device, two.threads) == (2, "cpu", 8) and two.num_cpus == (16 - engines.DECODE_CPUS) / 2
    with pytest.raises(RuntimeError, match="no GPU"):
        engines.plan_actors(None, "cuda")
