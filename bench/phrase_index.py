"""Phrase index at scale: exact vs IVF with fp16 residuals vs IVF-PQ (fast-scan) with re-ranking vs HNSW, 100k to 10M prototypes.

The paper's phrase space has tens of millions of phrases. Prototypes here are synthesised from
real ones so that their geometry (64-d, L2-normalised, clustered) is that of a fitted
generator: each synthetic prototype is ``l2n(a * p_i + (1 - a) * p_j + s * e)`` for two real
prototypes ``p_i, p_j`` of the demo workspace's generator drawn at random, ``a ~ U(0, 1)`` and
Gaussian noise ``e`` with ``s = --noise`` (0.1 by default: the synthetic points then sit as far
from their nearest neighbour as real prototypes do; the script prints both). Queries are the
real images' co-embeddings (the workspace's ``bottleneck``). Recall@3 is measured against
exact search of the same queries; memory is the serialised index size; latency is the
per-image time of a batched search (``--batch`` queries at a time) on all cores. Approximate
indexes are built by the product's own :meth:`PhraseIndex.build` (same training sample).

Writes ``bench/results/phrase_index.json``: a list of rows with ``n``, ``index`` (faiss factory
string), ``params`` (search-time settings), ``build_s``, ``memory_gib``, ``ms_per_query``,
``recall_at_3``.

    python bench/phrase_index.py                      # 100k, 1M and 10M (about 45 min on 2 cores)
    python bench/phrase_index.py --sizes 100000 1000000
    python bench/phrase_index.py --markdown           # the recorded rows as docs/results.md's table
    python bench/phrase_index.py --precision          # why fp16 re-ranking stops short at 10M (a few minutes)
    python bench/phrase_index.py --on-disk --sizes 1000000     # lists in memory vs on disk (faiss alone)
    python bench/phrase_index.py --generator --sizes 1000000   # the same through PhraseGenerator.save / load
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.demo import demo_workspace  # noqa: E402
from core.phrases.index import NPROBE, PhraseIndex, ivf_nlist, ivf_train_size  # noqa: E402
from core.vectors import l2n  # noqa: E402
from core.workspace import open_workspace  # noqa: E402


def synthesize(real: np.ndarray, n: int, noise: float, seed: int, chunk: int = 1_000_000) -> np.ndarray:
    """``n`` prototypes mixed from pairs of ``real`` ones plus noise (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        i, j = rng.integers(0, len(real), m), rng.integers(0, len(real), m)
        a = rng.random((m, 1), dtype=np.float32)
        e = rng.standard_normal((m, real.shape[1]), dtype=np.float32) * (noise / np.sqrt(real.shape[1]))
        out[s : s + m] = l2n(a * real[i] + (1 - a) * real[j] + e)
    return out


def nn_cosine(x: np.ndarray, sample: int = 2000, seed: int = 0) -> float:
    """Median cosine of a point to its nearest other point (geometry check)."""
    import faiss

    rng = np.random.default_rng(seed)
    q = x[rng.choice(len(x), min(sample, len(x)), replace=False)]
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    d, _ = index.search(q, 2)
    return float(np.median(d[:, 1]))


def timed_search(index, q: np.ndarray, k: int, batch: int) -> tuple[np.ndarray, float]:
    ids = np.empty((len(q), k), dtype=np.int64)
    t = time.perf_counter()
    for s in range(0, len(q), batch):
        _, ids[s : s + batch] = index.search(q[s : s + batch], k)
    return ids, (time.perf_counter() - t) * 1000 / len(q)


def recall_at(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(ids, truth, strict=True)]))


def candidates(n: int) -> list[tuple[str, list[dict]]]:
    """Approximate index factories and the search settings tried at size ``n`` (exact search is always measured)."""
    nlist = ivf_nlist(n)
    residual = (f"IVF{nlist},SQfp16", [{"nprobe": p} for p in (16, 32, 64, 128)])  # the automatic choice above 100k
    if n <= 100_000:
        ivf = [{"nprobe": p, "k_factor": kf} for p in (16, 32, 64) for kf in (16, 32)]
        return [residual, (f"IVF{nlist},PQ32x4fs,RFlat", ivf), (f"IVF{nlist},PQ32x4fs,Refine(SQfp16)", ivf), ("HNSW32", HNSW)]
    # denser spaces: 16-byte codes rank the true neighbours too low (recall@3 0.6 at 1M), so 32-byte
    # codes re-ranked deeper; fp16 re-ranking keeps 10M under 2 GiB but its rounding of whole vectors
    # cannot order neighbours that close (see the report)
    if n <= 1_000_000:
        pq = [{"nprobe": p, "k_factor": kf} for p in (16, 32) for kf in (64, 128, 256)]
        return [residual, (f"IVF{nlist},PQ64x4fs,Refine(SQfp16)", pq), ("HNSW32", HNSW)]
    # 10M: HNSW would need ~5 GiB and hours of build on 2 cores (see the report)
    pq = [{"nprobe": p, "k_factor": kf} for p in (32, 64) for kf in (512, 1024)]
    return [residual, (f"IVF{nlist},PQ64x4fs,Refine(SQfp16)", pq)]


HNSW = [{"efSearch": e} for e in (32, 64, 128, 256)]


def configure(index, factory: str, params: dict) -> None:
    import faiss

    if "nprobe" in params:
        faiss.extract_index_ivf(index).nprobe = params["nprobe"]
    if "k_factor" in params:
        faiss.downcast_index(index).k_factor = params["k_factor"]
    if "efSearch" in params:
        faiss.downcast_index(index).hnsw.efSearch = params["efSearch"]


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (``docs/results.md``, B1)."""
    lines = ["| n | index | search settings | build s | memory GiB | ms / image | recall@3 |"]
    lines.append("|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        params = ", ".join(f"{k} {v}" for k, v in r["params"].items()) or "—"
        lines.append(
            f"| {r['n']:,} | `{r['index']}` | {params} | {r['build_s']:.1f} | {r['memory_gib']:.3f} | "
            f"{r['ms_per_query']:.3f} | {r['recall_at_3']:.3f} |"
        )
    return "\n".join(lines)


def precision(x: np.ndarray, queries: np.ndarray, depth: int = 100) -> dict:
    """How close the 3rd and 4th true neighbours are, and the recall@3 any index that re-ranks with
    fp16-rounded vectors can reach: the exact top-``depth`` re-scored with ``x`` rounded to fp16."""
    import faiss

    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    scores, ids = exact.search(queries, depth)
    gap = scores[:, 2] - scores[:, 3]
    rounded = np.einsum("qkd,qd->qk", x[ids].astype(np.float16).astype(np.float32), queries)
    top = np.take_along_axis(ids, np.argsort(-rounded, axis=1)[:, :3], axis=1)
    return {
        "gap_3_4_median": float(np.median(gap)),
        "gap_3_4_below_1e-4": float(np.mean(gap < 1e-4)),
        "fp16_rerank_recall_at_3_ceiling": recall_at(top, ids[:, :3]),
    }


def _rss() -> dict[str, float]:
    """This process's resident memory in GiB: allocated (anonymous) and file-backed (memory maps)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return {ln.split(":")[0]: int(ln.split()[1]) / 2**20 for ln in lines if ln.startswith(("RssAnon", "RssFile"))}


def probe(index_path: str, queries_path: str, ids_path: str, nprobe: int, batch: int) -> None:
    """In a fresh process: load an index, search the queries, print its memory and speed as JSON
    (what a process serving phrase search holds)."""
    import faiss

    before = _rss()
    index = faiss.read_index(index_path)
    faiss.extract_index_ivf(index).nprobe = nprobe
    loaded = _rss()
    ids, ms = timed_search(index, np.load(queries_path), 3, batch)
    np.save(ids_path, ids)
    after = _rss()
    print(json.dumps({
        "anon_gib": after["RssAnon"] - before["RssAnon"], "file_gib": after["RssFile"] - before["RssFile"],
        "load_anon_gib": loaded["RssAnon"] - before["RssAnon"], "ms_per_query": ms,
    }))  # fmt: skip


def on_disk(x: np.ndarray, queries: np.ndarray, truth: np.ndarray, folder: Path, args) -> list[dict]:
    """The automatic IVF index over ``x`` in memory and with its inverted lists on disk (faiss
    ``OnDiskInvertedLists``, built shard by shard as a collection past memory would be: each shard
    added to a copy of the trained empty index, written, then merged into one ``.ivfdata`` file).
    Each is loaded and searched in a fresh process, which reports its resident memory."""
    import subprocess

    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    t = time.perf_counter()
    sample = x[: ivf_train_size(len(x), ivf_nlist(len(x)))]  # synthetic rows are random: the first ones are a sample
    trained = PhraseIndex.build(sample, trained_factory(len(x)), seed=args.seed).index
    trained.reset()
    in_memory = faiss.clone_index(trained)  # the same trained quantiser, for the lists in memory
    train_s, t = time.perf_counter() - t, time.perf_counter()
    shards = []
    for s in range(0, len(x), args.shard):
        part = faiss.clone_index(trained)
        part.add_with_ids(x[s : s + args.shard], np.arange(s, min(s + args.shard, len(x)), dtype=np.int64))
        shards.append(str(folder / f"shard{s // args.shard}.index"))
        faiss.write_index(part, shards[-1])
        del part
    merge_ondisk(trained, shards, str(folder / "lists.ivfdata"))
    faiss.write_index(trained, str(folder / "disk.index"))
    disk_s, t = time.perf_counter() - t, time.perf_counter()
    in_memory.add(x)
    faiss.write_index(in_memory, str(folder / "memory.index"))
    del in_memory
    memory_s = time.perf_counter() - t
    np.save(folder / "queries.npy", queries)
    rows = []
    for kind in ("memory", "disk"):
        cmd = [sys.executable, __file__, "--probe", str(folder / f"{kind}.index"), str(folder / "queries.npy"),
               str(folder / "ids.npy"), str(NPROBE), str(args.batch)]  # fmt: skip
        got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        files = sum(f.stat().st_size for f in folder.glob(f"{kind}.index")) + (
            (folder / "lists.ivfdata").stat().st_size if kind == "disk" else 0
        )
        rows.append({
            "n": len(x), "index": trained_factory(len(x)), "lists": kind, "nprobe": NPROBE, "train_s": round(train_s, 1),
            "add_s": round(disk_s if kind == "disk" else memory_s, 1),
            "files_gib": round(files / 2**30, 4), "process_anon_gib": round(got["anon_gib"], 4),
            "process_file_gib": round(got["file_gib"], 4), "ms_per_query": round(got["ms_per_query"], 4),
            "recall_at_3": round(recall_at(np.load(folder / "ids.npy"), truth), 4),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def probe_generator(folder: str, queries_path: str, ids_path: str, batch: int) -> None:
    """In a fresh process: load a saved generator and search the queries with its index (built in
    memory at the first search, or mapped from disk), print its memory and times as JSON."""
    from core.phrases.generator import PhraseGenerator

    before, t = _rss(), time.perf_counter()
    gen = PhraseGenerator.load(folder)
    load_s, t = time.perf_counter() - t, time.perf_counter()
    queries = np.load(queries_path)
    gen.search(queries[:1], 3)  # what the first image waits for: the index (and the distinct prototypes)
    first_s = time.perf_counter() - t
    ids, ms = timed_search(gen, queries, 3, batch)
    np.save(ids_path, ids)
    after = _rss()
    print(json.dumps({
        "load_s": load_s, "first_search_s": first_s, "ms_per_query": ms,
        "anon_gib": after["RssAnon"] - before["RssAnon"], "file_gib": after["RssFile"] - before["RssFile"],
    }))  # fmt: skip


def through_generator(gen, x: np.ndarray, queries: np.ndarray, truth: np.ndarray, folder: Path, args) -> list[dict]:
    """The product's path: a generator whose output space is ``x`` (one phrase per prototype; the
    demo's encoder and softmax classes), saved by :meth:`PhraseGenerator.save` with the index left
    to be built in memory at load (``on_disk_above=None``) and with its lists on disk (threshold
    below ``len(x)``), each loaded and searched in a fresh process."""
    import subprocess
    from dataclasses import replace

    from core.phrases.generator import PhraseGenerator
    from core.phrases.vocab import PhraseVocabulary

    n = len(x)
    vocab = PhraseVocabulary([f"phrase {i}" for i in range(n)], np.ones(n, dtype=np.int64), np.zeros(n, dtype=bool))
    np.save(folder / "queries.npy", queries)
    rows = []
    for kind, above in (("memory", None), ("disk", n - 1)):
        cfg = replace(gen.config, output_space="large", index_factory=None, on_disk_above=above, seed=args.seed)
        synthetic = PhraseGenerator(cfg, vocab, gen.encoder, gen.feature_mean, gen.class_ids, gen.class_weights, x)
        t = time.perf_counter()
        synthetic.save(folder / kind)
        save_s = time.perf_counter() - t
        del synthetic
        cmd = [sys.executable, __file__, "--probe-generator", str(folder / kind), str(folder / "queries.npy"),
               str(folder / "ids.npy"), str(args.batch)]  # fmt: skip
        got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        files = sum(f.stat().st_size for f in (folder / kind).iterdir())
        rows.append({
            "n": n, "index": trained_factory(n), "lists": kind, "nprobe": NPROBE, "save_s": round(save_s, 1),
            "files_gib": round(files / 2**30, 4), "load_s": round(got["load_s"], 2),
            "first_search_s": round(got["first_search_s"], 2), "process_anon_gib": round(got["anon_gib"], 4),
            "process_file_gib": round(got["file_gib"], 4), "ms_per_query": round(got["ms_per_query"], 4),
            "recall_at_3": round(recall_at(np.load(folder / "ids.npy"), truth), 4),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def trained_factory(n: int) -> str:
    return f"IVF{ivf_nlist(n)},SQfp16"


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    ap.add_argument("--workspace", default=None, help="workspace whose prototypes and images seed the data (default: demo)")
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "phrase_index.json"))
    ap.add_argument("--markdown", action="store_true", help="print the rows recorded in --out as a table and exit")
    ap.add_argument("--precision", action="store_true", help="measure neighbour gaps and the fp16 re-ranking ceiling only")
    ap.add_argument("--on-disk", action="store_true", help="the automatic IVF index with its lists in memory vs on disk")
    ap.add_argument("--shard", type=int, default=1_000_000, help="--on-disk: prototypes added per shard")
    ap.add_argument("--generator", action="store_true", help="--on-disk's comparison through PhraseGenerator.save / load")
    ap.add_argument("--probe", nargs=5, help=argparse.SUPPRESS)  # internal: one index loaded in a fresh process
    ap.add_argument("--probe-generator", nargs=4, help=argparse.SUPPRESS)  # internal: one generator loaded
    args = ap.parse_args()
    if args.probe_generator:
        folder, queries_path, ids_path, batch = args.probe_generator
        probe_generator(folder, queries_path, ids_path, int(batch))
        return
    if args.probe:
        index_path, queries_path, ids_path, nprobe, batch = args.probe
        probe(index_path, queries_path, ids_path, int(nprobe), int(batch))
        return
    if args.markdown:
        print(markdown(json.loads(Path(args.out).read_text())))
        return

    ws = open_workspace(args.workspace) if args.workspace else demo_workspace()
    gen = ws.generator
    real = l2n(gen.prototypes[gen.output_ids])
    queries = np.ascontiguousarray(ws.coembedding[: args.queries], dtype=np.float32)
    print(f"{len(real):,} real prototypes (median nearest-neighbour cosine {nn_cosine(real):.3f}); {len(queries)} real queries")
    if args.precision:
        found = {n: precision(synthesize(real, n, args.noise, args.seed), queries) for n in args.sizes}
        for n, p in found.items():
            print(f"n = {n:>10,}: " + "  ".join(f"{k} {v:.3g}" for k, v in p.items()))
        Path(args.out).with_name("phrase_index_precision.json").write_text(json.dumps(found, indent=1))
        return
    if args.on_disk or args.generator:
        import tempfile

        name = "phrase_index_generator.json" if args.generator else "phrase_index_ondisk.json"
        path = Path(args.out).with_name(name)
        rows = [r for r in json.loads(path.read_text())["rows"] if r["n"] not in args.sizes] if path.is_file() else []
        for n in args.sizes:
            load = os.getloadavg()[0]
            x = synthesize(real, n, args.noise, args.seed)
            exact = faiss.IndexFlatIP(x.shape[1])
            exact.add(x)
            truth, _ = timed_search(exact, queries, 3, args.batch)
            del exact
            scratch = ROOT / "bench" / "_scratch"  # ignored by git; GBs at 10M
            scratch.mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory(dir=scratch) as tmp:
                if args.generator:
                    found = through_generator(gen, x, queries, truth, Path(tmp), args)
                else:
                    found = on_disk(x, queries, truth, Path(tmp), args)
                rows += [r | {"load_average_1m": [load, os.getloadavg()[0]]} for r in found]
            del x
            out = {"machine": platform.platform(), "cpus": os.cpu_count(), "faiss": faiss.__version__, "rows": rows}
            path.write_text(json.dumps(out, indent=1))  # after each size: survives an interruption
        return
    out_path = Path(args.out)
    kept = [r for r in json.loads(out_path.read_text()) if r["n"] not in args.sizes] if out_path.is_file() else []
    rows: list[dict] = []
    for n in args.sizes:
        x = synthesize(real, n, args.noise, args.seed)
        print(f"\nn = {n:,}: synthetic median nearest-neighbour cosine {nn_cosine(x):.3f}", flush=True)
        t = time.perf_counter()
        exact = faiss.IndexFlatIP(x.shape[1])
        exact.add(x)
        build = time.perf_counter() - t
        truth, ms = timed_search(exact, queries, 3, args.batch)
        memory = faiss.serialize_index(exact).nbytes / 2**30
        rows.append({"n": n, "index": "Flat", "params": {}, "build_s": round(build, 2), "memory_gib": round(memory, 4),
                     "ms_per_query": round(ms, 4), "recall_at_3": 1.0})  # fmt: skip
        print(f"{'Flat':<32} {'{}':<32} build {build:7.1f} s  {memory:6.3f} GiB  {ms:7.3f} ms/query  recall@3 1.000", flush=True)
        del exact
        for factory, settings in candidates(n):
            t = time.perf_counter()
            index = PhraseIndex.build(x, factory, seed=args.seed).index
            build = time.perf_counter() - t
            memory = faiss.serialize_index(index).nbytes / 2**30
            for params in settings:
                configure(index, factory, params)
                ids, ms = timed_search(index, queries, 3, args.batch)
                row = {
                    "n": n,
                    "index": factory,
                    "params": params,
                    "build_s": round(build, 2),
                    "memory_gib": round(memory, 4),
                    "ms_per_query": round(ms, 4),
                    "recall_at_3": round(recall_at(ids, truth), 4),
                }
                rows.append(row)
                print(
                    f"{factory:<32} {json.dumps(params):<32} build {build:7.1f} s  {memory:6.3f} GiB  "
                    f"{ms:7.3f} ms/query  recall@3 {row['recall_at_3']:.3f}",
                    flush=True,
                )
            del index
        del x
        out_path.write_text(json.dumps(sorted(kept + rows, key=lambda r: r["n"]), indent=1))  # survives an interruption
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "faiss": faiss.__version__, "noise": args.noise}
    Path(args.out).with_suffix(".meta.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
