"""Backbone throughput per runtime and engine, on the same images in one run, with the top-1 each leaves.

Rows (``bench/results/throughput.json``): ``{runtime, precision, engine, workers, device, batch, stage,
images_per_s, top1_delta, cos_min}``.

- ``stage=backbone``: preprocessed images in memory through the forward pass only; torch eager,
  ONNX Runtime and OpenVINO (fp32), and an int8 model (ONNX Runtime static quantisation, QDQ,
  per-channel, calibrated on 64 training images) in both runtimes.
- ``stage=files``: image files -> features (read, decode, preprocess, forward), the local engine
  (decoding threads) with torch and the fastest runtime, and the Ray engine (local Ray) with 1 and 2
  backbone actors. Ray's rate is its steady state, from its first chunk back to the last (actor
  start-up, reported as ``startup_s``, is excluded); ``wall_images_per_s`` includes it.

``top1_delta`` (points): test top-1 of the product's visual-only classifier, trained once on torch
features of the training split (its first ``--train`` images), when the test features come from
this runtime, minus with torch's.
``cos_min``: the lowest per-image cosine between the runtime's features and torch's.

    python bench/throughput.py                                    # 256 images of the demo's test split
    python bench/throughput.py --data /path/to/tuxpaint --n 88     # a shared set's test split
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.backbones import Backbone, create_backbone  # noqa: E402
from core.classifiers import Classifier, ClassifierConfig  # noqa: E402
from core.data.manifest import load_dataset  # noqa: E402
from core.features import FeatureCache, cache_key, decode_for_backbone, default_cache_dir, embed_images  # noqa: E402
from core.phrases.generator import l2n  # noqa: E402
from core.runtimes import available_runtimes, export_onnx, make_runner  # noqa: E402
from core.training import label_targets  # noqa: E402


def forward_rate(bb: Backbone, x: np.ndarray, batch: int, repeats: int) -> tuple[float, np.ndarray]:
    """Best images/s over ``repeats`` passes (after one warm-up batch), and the features."""
    bb.embed_batch(x[:batch])
    best = 0.0
    feats = np.zeros((0,))
    for _ in range(repeats):
        t = time.perf_counter()
        feats = np.concatenate([bb.embed_batch(x[s : s + batch]) for s in range(0, len(x), batch)])
        best = max(best, len(x) / (time.perf_counter() - t))
    return best, feats


def int8_model(bb: Backbone, calibration: np.ndarray, folder: Path) -> Path:
    """ONNX Runtime static int8 quantisation (QDQ, per-channel, reduced range for AVX2 without VNNI)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"images": calibration[s : s + 8]} for s in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.batches, None)

    fp32 = export_onnx(bb.export_module(), bb.name, bb.info.image_size, default_cache_dir())
    pre, out = folder / "pre.onnx", folder / "int8.onnx"
    quant_pre_process(str(fp32), str(pre))
    quantize_static(
        str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    return out


def ray_rate(paths: list[str], bb: Backbone, runtime: str, workers: int, batch: int) -> tuple[float, float, float, np.ndarray]:
    """(steady images/s, wall images/s, start-up s, features) of the Ray engine on ``paths`` (no cache)."""
    from core.engines import RayEngine

    engine = RayEngine(workers=workers, runtime=runtime, device="cpu", batch_size=batch, chunk_size=batch)
    t0 = time.perf_counter()
    first_t, first_n, n = None, 0, 0
    feats = np.zeros((len(paths), bb.dim), dtype=np.float32)
    for ok, chunk, errors in engine.chunks(paths, bb):
        feats[ok] = chunk
        n += len(ok) + len(errors)
        if first_t is None:
            first_t, first_n = time.perf_counter(), n
    end = time.perf_counter()
    steady = (n - first_n) / (end - first_t) if first_t is not None and end > first_t else 0.0
    return steady, n / (end - t0), (first_t or end) - t0, feats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "assets" / "demo"), help="dataset with a train/test split")
    ap.add_argument("--n", type=int, default=256, help="test images timed (and scored)")
    ap.add_argument("--train", type=int, default=1024, help="training images of the reference classifier")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.json"))
    args = ap.parse_args()

    ds = load_dataset(args.data)
    items = ds.items
    test = items[items["split"] == "test"].head(args.n)
    train = items[items["split"] != "test"].head(args.train)
    torch_bb = create_backbone("efficientnet-lite0", device="cpu", runtime="torch")
    print(f"{len(test)} test images of {args.data}; load average {os.getloadavg()}", flush=True)

    # the reference classifier: trained once on torch features of the training split (cached)
    cache = FeatureCache(default_cache_dir(), cache_key(torch_bb, None))
    train_feats, _, _ = embed_images(list(train["path"]), torch_bb, cache=cache)
    names = sorted({lab for labs in train["labels"] for lab in labs})
    y_train = label_targets(list(train["labels"]), names, False)
    y_test = label_targets(list(test["labels"]), names, False)
    clf = Classifier(len(names), False, ClassifierConfig(seed=0)).fit(l2n(train_feats), y_train)

    def top1(feats: np.ndarray) -> float:
        known = y_test >= 0
        return float((clf.predict_proba(l2n(feats))[known].argmax(1) == y_test[known]).mean() * 100)

    x = np.stack([decode_for_backbone(p, torch_bb.info)[0] for p in test["path"]])
    rows: list[dict] = []

    def save() -> None:  # after every row: an interrupted run keeps what it measured
        fp32 = [r for r in rows if r["stage"] == "backbone" and r["precision"] == "fp32"]
        best = max(fp32, key=lambda r: r["images_per_s"])
        meta = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (the 2-core CPU dev machine, shared)",
            "data": str(args.data),
            "n_images": len(x),
            "load_average": os.getloadavg(),
            "best_runtime": best["runtime"],
            "best_over_torch": round(best["images_per_s"] / rows[0]["images_per_s"], 2),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({**meta, "rows": rows}, indent=2))

    def add(runtime: str, precision: str, engine: str, workers: int, stage: str, rate: float, feats, **extra) -> None:
        row = {
            "runtime": runtime, "precision": precision, "engine": engine, "workers": workers, "device": "cpu",
            "batch": args.batch, "stage": stage, "images_per_s": round(rate, 2),
            "top1_delta": None if feats is None else round(top1(feats) - ref_top1, 2),
            "cos_min": None if feats is None else round(float(cosine(feats, ref).min()), 6), **extra,
        }  # fmt: skip
        rows.append(row)
        save()
        print(
            f"{stage:9} {engine:6} w={workers} {runtime:12} {precision:5} {rate:8.1f} img/s  "
            f"top1 delta {row['top1_delta']}  cos_min {row['cos_min']}",
            flush=True,
        )

    def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    rate, ref = forward_rate(torch_bb, x, args.batch, args.repeats)
    ref_top1 = top1(ref)
    add("torch", "fp32", "local", 1, "backbone", rate, ref, top1=round(ref_top1, 2))
    runtimes = [r for r in ("onnxruntime", "openvino") if r in available_runtimes()]
    for name in runtimes:
        bb = create_backbone("efficientnet-lite0", device="cpu", runtime=name)
        rate, feats = forward_rate(bb, x, args.batch, args.repeats)
        add(name, "fp32", "local", 1, "backbone", rate, feats)
    if not args.no_int8 and "onnxruntime" in runtimes:
        calib = np.stack([decode_for_backbone(p, torch_bb.info)[0] for p in train["path"].head(64)])
        with tempfile.TemporaryDirectory() as tmp:
            path = int8_model(torch_bb, calib, Path(tmp))
            for name in runtimes:
                bb = create_backbone("efficientnet-lite0", device="cpu", runtime="torch")
                bb._runner, bb.runtime = make_runner(name, path), name
                rate, feats = forward_rate(bb, x, args.batch, args.repeats)
                add(name, "int8", "local", 1, "backbone", rate, feats)
    fp32 = [r for r in rows if r["stage"] == "backbone" and r["precision"] == "fp32"]
    best = max(fp32, key=lambda r: r["images_per_s"])["runtime"]

    # files -> features: local engine, then Ray with 1 and 2 backbone actors
    paths = list(test["path"])
    for name in dict.fromkeys(("torch", best)):
        bb = create_backbone("efficientnet-lite0", device="cpu", runtime=name)
        t = time.perf_counter()
        feats, _, _ = embed_images(paths, bb, batch_size=args.batch, workers=2)
        add(name, "fp32", "local", 1, "files", len(paths) / (time.perf_counter() - t), feats)
    if not args.no_ray:
        from core.engines import start_ray

        start_ray(num_cpus=os.cpu_count())
        bb = create_backbone("efficientnet-lite0", device="cpu", runtime=best)
        for workers in (1, 2):
            steady, wall, startup, feats = ray_rate(paths, bb, best, workers, args.batch)
            extra = {"wall_images_per_s": round(wall, 2), "startup_s": round(startup, 1)}
            add(best, "fp32", "ray", workers, "files", steady, feats, **extra)

    ratio = max(r["images_per_s"] for r in fp32) / rows[0]["images_per_s"]
    print(f"best CPU runtime ({best}) / torch eager, same run: {ratio:.2f}x; load average {os.getloadavg()}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
