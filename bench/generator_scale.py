"""A phrase generator whose output space is past memory: the fit, save, load and search of a
generator with a large synthetic vocabulary, this checkout's code against an earlier commit's.

The paper searches more than 40M phrases. This benchmark fits :func:`fit_phrase_generator` on a
synthetic corpus with about ``--phrases`` distinct phrases, most on one to three images (so nearly
every phrase has its own prototype), and measures each step in fresh processes:

* **fit**: ``fit_phrase_generator``, then a search of ``--train-queries`` training rows (what the
  fit does for its training rows' phrases: the index is built by that first search), then
  ``PhraseGenerator.save``; time of each step and the process's peak resident memory
  (``VmHWM``; the training's own peak is the same in both).
* **load**: ``PhraseGenerator.load``, a first search, then ``--queries`` searches (batches of 256);
  times, peak memory, and the memory the load and searches added (allocated, and file-backed:
  memory maps the OS can drop).

Each runs once with this checkout's ``core`` ("new") and once with ``core`` of ``--old-ref``
("old": by default the commit this branch left main from, extracted with ``git archive``), on the
same files. The corpus: images are mixtures of two real images of the same label from the demo
workspace (their features projected on the top ``--dim`` principal directions, plus noise); each
carries its label, one of 50 sub-cluster phrases of its label, and 10 phrases drawn at random from
a pool of ``1.15 * --phrases``. Queries are real demo images (the same projection). Recall@3 of
each against exact search of the new fit's saved prototypes; the two fits' top-3 are compared too.

Writes ``bench/results/generator_scale.json`` (rows ``n_phrases``, ``code``, and the measures).

    python bench/generator_scale.py --phrases 1000000          # about 10 minutes on 2 shared cores
    python bench/generator_scale.py --phrases 1000000 5000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _rss() -> dict[str, float]:
    """This process's resident memory in GiB: allocated (anonymous) and file-backed (memory maps)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return {ln.split(":")[0]: int(ln.split()[1]) / 2**20 for ln in lines if ln.startswith(("RssAnon", "RssFile"))}


def _peak_gib() -> float:
    """This process's peak resident memory in GiB (``VmHWM``: reset by ``exec``, where ``ru_maxrss``
    starts from the parent's resident memory at ``fork``)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(ln.split()[1]) for ln in lines if ln.startswith("VmHWM")) / 2**20


def _config(seed: int):
    from core.config import GeneratorConfig

    # the default threshold (100k): both fits are "past memory"; few softmax classes, so the training's
    # own memory (class weights and their optimiser state) stays small beside the output space
    return GeneratorConfig(epochs=2, min_images_softmax=8, seed=seed)


def probe_fit(data: Path, out: Path, train_queries: int, seed: int) -> dict:
    """In a fresh process: fit, search training rows, save; report times and peak memory."""
    from core.phrases.generator import fit_phrase_generator

    x = np.load(data / "features.npy")
    lists = json.loads((data / "phrases.json").read_text())
    t = time.perf_counter()
    gen = fit_phrase_generator(x, lists, _config(seed))
    fit_s, t = time.perf_counter() - t, time.perf_counter()
    gen.search(gen.encode(x[:train_queries]), 10)  # builds the index, as the fit's first search does
    search_s, t = time.perf_counter() - t, time.perf_counter()
    gen.save(out)
    save_s = time.perf_counter() - t
    return {"vocabulary": len(gen.vocab), "index_rows": len(gen.output_ids), "fit_s": fit_s,
            "train_search_s": search_s, "save_s": save_s, "fit_peak_gib": _peak_gib(),
            "folder_gib": sum(f.stat().st_size for f in out.iterdir()) / 2**30}  # fmt: skip


def probe_load(folder: Path, queries_path: Path, ids_path: Path) -> dict:
    """In a fresh process: load a saved generator and search real queries; report times and memory."""
    from core.phrases.generator import PhraseGenerator

    before, t = _rss(), time.perf_counter()
    gen = PhraseGenerator.load(folder)
    load_s, t = time.perf_counter() - t, time.perf_counter()
    q = np.load(queries_path)
    emb = gen.encode(q)
    gen.search(emb[:1], 3)  # what the first image waits for
    first_s, t = time.perf_counter() - t, time.perf_counter()
    ids = np.concatenate([gen.search(emb[s : s + 256], 3)[1] for s in range(0, len(emb), 256)])
    ms = (time.perf_counter() - t) * 1000 / len(emb)
    phrases = [[gen.vocab.phrases[j] for j in row if j >= 0] for row in ids[:5]]  # what a page shows
    np.save(ids_path, ids)
    after = _rss()
    return {"load_s": load_s, "first_search_s": first_s, "ms_per_query": ms, "load_peak_gib": _peak_gib(),
            "load_anon_gib": after["RssAnon"] - before["RssAnon"], "load_file_gib": after["RssFile"] - before["RssFile"],
            "example": phrases[0]}  # fmt: skip


def corpus(n_phrases: int, dim: int, seed: int, folder: Path) -> np.ndarray:
    """Write ``features.npy`` and ``phrases.json`` (see the module docstring); return the queries."""
    from core.demo import demo_workspace
    from core.vectors import l2n

    ws = demo_workspace()
    real = l2n(np.asarray(ws.visual, dtype=np.float32))
    centred = real - real.mean(0)
    directions = np.linalg.svd(centred[:: max(1, len(centred) // 4000)], full_matrices=False)[2][:dim]
    proj = l2n(centred @ directions.T)
    labels = ws.items["labels"].map(lambda ls: ls[0] if ls else "(none)").to_numpy()
    names, label_of = np.unique(labels, return_inverse=True)
    by_label = [np.flatnonzero(label_of == k) for k in range(len(names))]
    rng = np.random.default_rng(seed)
    n_images, pool = max(1000, n_phrases // 5), round(1.15 * n_phrases)
    lab = rng.integers(0, len(names), n_images)
    a = np.array([rng.choice(by_label[k]) for k in lab])
    b = np.array([rng.choice(by_label[k]) for k in lab])
    w = rng.random((n_images, 1), dtype=np.float32)
    x = l2n(w * proj[a] + (1 - w) * proj[b] + rng.standard_normal((n_images, dim), dtype=np.float32) * 0.05)
    rare = rng.integers(0, pool, (n_images, 10))
    sub = rng.integers(0, 50, n_images)
    lists = [[str(names[k]), f"{names[k]} group {s}", *(f"phrase {j}" for j in r)] for k, s, r in zip(lab, sub, rare)]
    np.save(folder / "features.npy", x)
    (folder / "phrases.json").write_text(json.dumps(lists))
    return np.ascontiguousarray(proj[:1000])


def _run(code: Path, *args: str) -> dict:
    cmd = [sys.executable, __file__, "--code", str(code), *args]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _old_code(ref: str, dest: Path) -> Path:
    """``core`` of commit ``ref``, extracted into ``dest`` (what that commit's product ran)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "core"], check=True, capture_output=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "core.tar").write_bytes(archive)
    with tarfile.open(dest / "core.tar") as tar:
        tar.extractall(dest, filter="data")
    return dest


def exact_top3(folder: Path, queries: np.ndarray) -> np.ndarray:
    """Exact top-3 (vocabulary ids) of the queries over the saved generator's index rows."""
    import faiss

    from core.phrases.generator import PhraseGenerator

    gen = PhraseGenerator.load(folder)
    flat = faiss.IndexFlatIP(gen.prototypes.shape[1])
    ids = gen.output_ids
    for s in range(0, len(ids), 1_000_000):
        flat.add(np.ascontiguousarray(gen.prototypes[ids[s : s + 1_000_000]]))
    _, rows = flat.search(gen.encode(queries), 3)
    return ids[rows]


def recall_at_3(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 3 for a, b in zip(ids, truth, strict=True)]))


#: docs/results.md's table: (heading, row key, format)
COLUMNS = [
    ("phrases", "vocabulary", "{:,}"), ("code", "code", "{}"), ("fit s", "fit_s", "{:.1f}"),
    ("training-row search s", "train_search_s", "{:.1f}"), ("save s", "save_s", "{:.1f}"),
    ("fit peak GiB", "fit_peak_gib", "{:.2f}"), ("folder GiB", "folder_gib", "{:.3f}"), ("load s", "load_s", "{:.2f}"),
    ("first search s", "first_search_s", "{:.2f}"), ("load peak GiB", "load_peak_gib", "{:.2f}"),
    ("load: allocated GiB", "load_anon_gib", "{:.3f}"), ("load: mapped GiB", "load_file_gib", "{:.3f}"),
    ("ms / image", "ms_per_query", "{:.3f}"), ("recall@3", "recall_at_3", "{:.3f}"),
]  # fmt: skip


def markdown(rows: list[dict]) -> str:
    """The rows as docs/results.md's table."""
    align = "|" + "|".join("---" if key == "code" else "---:" for _, key, _ in COLUMNS) + "|"
    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " |", align]
    lines += ["| " + " | ".join(fmt.format(r[key]) for _, key, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phrases", type=int, nargs="+", default=[1_000_000], help="vocabulary sizes (about)")
    ap.add_argument("--dim", type=int, default=128, help="feature dimension of the synthetic images")
    ap.add_argument("--train-queries", type=int, default=20_000)
    ap.add_argument("--old-ref", default=None, help="the old code's commit (default: the merge base with main)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "generator_scale.json"))
    ap.add_argument("--markdown", action="store_true", help="print the recorded rows as a table and exit")
    ap.add_argument("--code", help=argparse.SUPPRESS)  # internal: the core a probe imports
    ap.add_argument("--probe-fit", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--probe-load", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.code:
        sys.path.insert(0, args.code)
        if args.probe_fit:
            data, out, n_queries, seed = args.probe_fit
            print(json.dumps(probe_fit(Path(data), Path(out), int(n_queries), int(seed))))
        else:
            print(json.dumps(probe_load(*map(Path, args.probe_load))))
        return
    if args.markdown:
        print(markdown(json.loads(Path(args.out).read_text())["rows"]))
        return
    sys.path.insert(0, str(ROOT))
    import faiss

    ref = args.old_ref or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], check=True,
                                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    path = Path(args.out)
    rows = [r for r in json.loads(path.read_text())["rows"] if r["n_phrases"] not in args.phrases] if path.is_file() else []
    scratch = ROOT / "bench" / "_scratch"  # ignored by git; GBs at 10M
    scratch.mkdir(exist_ok=True)
    for n in args.phrases:
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            tmp = Path(tmp)
            old = _old_code(ref, tmp / "old")
            load = os.getloadavg()[0]
            queries = corpus(n, args.dim, args.seed, tmp)
            np.save(tmp / "queries.npy", queries)
            found = {}
            for name, code in (("old", old), ("new", ROOT)):
                got = _run(code, "--probe-fit", str(tmp), str(tmp / name), str(args.train_queries), str(args.seed))
                got |= _run(code, "--probe-load", str(tmp / name), str(tmp / "queries.npy"), str(tmp / f"{name}.npy"))
                found[name] = got | {"n_phrases": n, "code": f"{name} ({ref[:8]})" if name == "old" else "new"}
                print(json.dumps(found[name]), flush=True)
            truth = exact_top3(tmp / "new", queries)
            same = float(np.mean(np.load(tmp / "old.npy") == np.load(tmp / "new.npy")))
            for name in found:
                found[name] |= {"recall_at_3": recall_at_3(np.load(tmp / f"{name}.npy"), truth), "same_top3_as_old": same,
                                "load_average_1m": [load, os.getloadavg()[0]]}  # fmt: skip
            rows += list(found.values())
        meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "faiss": faiss.__version__, "old_ref": ref}
        path.write_text(json.dumps(meta | {"rows": rows}, indent=1))  # after each size: survives an interruption
    print(markdown(rows))


if __name__ == "__main__":
    main()
