"""The label store: history, undo, bad input, concurrency and crash safety, on SQLite and PostgreSQL.

PostgreSQL runs when ``PIXCTX_TEST_POSTGRES_URL`` names a server (``.ci/run`` starts one with
``.ci/postgres.sh``); otherwise those cases are skipped with that message.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from core.labels.store import ConflictError, LabelStore, LabelStoreError
from tests.conftest import ROOT

PG_URL = os.environ.get("PIXCTX_TEST_POSTGRES_URL")
ITEMS = {f"img/{i:03d}.png": ["cat" if i % 2 else "dog"] for i in range(50)}
TAXONOMY = ["cat", "dog", "bird"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "labels.sqlite")
    if not PG_URL:
        pytest.skip("no PostgreSQL server: set PIXCTX_TEST_POSTGRES_URL (.ci/run starts one with .ci/postgres.sh)")
    return PG_URL


def open_store(url: str, namespace: str, **kw) -> LabelStore:
    return LabelStore(url, namespace=namespace, items=ITEMS, taxonomy=TAXONOMY, **kw)


@pytest.fixture
def ns() -> str:
    return f"test-{uuid.uuid4().hex}"  # a fresh namespace: PostgreSQL keeps tables between tests


def test_history_current_and_undo(db_url, ns):
    store = open_store(db_url, ns)
    a = store.set_labels("img/000.png", "cat", user="ann", strategy="disagree", note="looks like a cat")
    assert (a.old, a.new, a.user, a.strategy, a.note) == (["dog"], ["cat"], "ann", "disagree", "looks like a cat")
    b = store.set_labels("img/000.png", ["bird"], user="bob")
    assert b.old == ["cat"] and store.labels_of("img/000.png") == ["bird"]
    u = store.undo(b.id, user="ann")
    assert u.action == "undo" and u.undoes == b.id and store.labels_of("img/000.png") == ["cat"]
    store.mark_unsure("img/001.png", user="bob")
    assert store.current() == {"img/000.png": ["cat"], "img/001.png": ["cat"]}
    assert store.reviewed() == {"img/000.png": "undo", "img/001.png": "unsure"}
    hist = store.history("img/000.png")
    assert [h.id for h in hist] == sorted(h.id for h in hist) and [h.action for h in hist] == ["set", "set", "undo"]
    # a second connection (another process, another labeler) sees the same history
    again = open_store(db_url, ns)
    assert [h.to_dict() for h in again.history()] == [h.to_dict() for h in store.history()]
    # other namespaces (other datasets in a shared database) are invisible
    assert open_store(db_url, ns + "-other").history() == []


def test_bad_input_is_refused_and_writes_nothing(db_url, ns):
    store = open_store(db_url, ns)
    with pytest.raises(ValueError, match="unknown item"):
        store.set_labels("img/999.png", "cat", user="ann")
    with pytest.raises(ValueError, match="not in the taxonomy"):
        store.set_labels("img/000.png", "zebra", user="ann")
    with pytest.raises(ValueError, match="user name is required"):
        store.set_labels("img/000.png", "cat", user="  ")
    with pytest.raises(ValueError, match="no change"):
        store.undo(12345, user="ann")
    assert store.history() == []
    # a new label is fine when asked for explicitly, and joins the taxonomy for everyone
    store.set_labels("img/000.png", "zebra", user="ann", add_label=True)
    assert "zebra" in open_store(db_url, ns).taxonomy


def test_stale_write_is_a_conflict(db_url, ns):
    ann, bob = open_store(db_url, ns), open_store(db_url, ns)
    seen = ann.labels_of("img/002.png")
    bob.set_labels("img/002.png", "bird", user="bob", expected=seen)
    with pytest.raises(ConflictError, match="changed meanwhile"):
        ann.set_labels("img/002.png", "cat", user="ann", expected=seen)
    assert ann.labels_of("img/002.png") == ["bird"] and len(ann.history()) == 1


def _writer(url: str, ns: str, worker: int, n: int) -> None:
    store = open_store(url, ns)
    items = sorted(ITEMS)
    for k in range(n):
        item = items[(worker * 7 + k) % len(items)]  # workers overlap on the same items
        store.set_labels(item, TAXONOMY[(worker + k) % 3], user=f"worker{worker}", note=f"{worker}:{k}")


def test_eight_processes_writing_at_once_lose_nothing(db_url, ns):
    workers, per_worker = 8, 500
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_url, ns, w, per_worker)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    hist = open_store(db_url, ns).history()
    notes = [h.note for h in hist]
    assert len(hist) == workers * per_worker
    assert len(set(notes)) == len(notes) == len({f"{w}:{k}" for w in range(workers) for k in range(per_worker)})
    # consistent: each change's "before" is the previous change's "after", item by item
    last: dict[str, list[str]] = {}
    for h in hist:
        assert h.old == last.get(h.item, ITEMS[h.item]), h
        last[h.item] = h.new
    assert open_store(db_url, ns).current() == last


CRASH_WRITER = """
import sys
sys.path.insert(0, {root!r})
from tests.labels.test_store import open_store, ITEMS
store = open_store({url!r}, {ns!r})
items = sorted(ITEMS)
for k in range(100000):
    c = store.set_labels(items[k % len(items)], ["cat", "dog", "bird"][k % 3], user="crash", note=str(k))
    print(c.id, flush=True)  # acknowledged: the transaction committed
"""


def test_killed_writer_loses_no_acknowledged_write(db_url, ns):
    code = CRASH_WRITER.format(root=str(ROOT), url=db_url, ns=ns)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    acked = []
    assert proc.stdout is not None
    deadline = time.time() + 120
    while len(acked) < 200 and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)  # in the middle of its writes
    proc.wait()
    assert len(acked) >= 200, "the writer did not get going"
    if not str(db_url).startswith("postgresql"):
        with sqlite3.connect(db_url) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    hist = open_store(db_url, ns).history()
    ids = {h.id for h in hist}
    assert set(acked) <= ids  # every acknowledged write is there
    assert len(hist) in (len(acked), len(acked) + 1)  # at most the one in flight (committed, not yet printed)
    for h in hist:  # nothing half-written
        assert h.new and h.old and h.user == "crash" and json.dumps(h.new)


def test_locked_database_gives_a_clear_error_then_works(tmp_path, ns):
    path = tmp_path / "labels.sqlite"
    store = open_store(str(path), ns, timeout_s=0.3)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holding the lock
    try:
        with pytest.raises(LabelStoreError, match="locked"):
            store.set_labels("img/000.png", "cat", user="ann")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.set_labels("img/000.png", "cat", user="ann")
    assert len(store.history()) == 1


def test_read_only_database_gives_a_clear_error(tmp_path, ns):
    path = tmp_path / "labels.sqlite"
    open_store(str(path), ns).set_labels("img/000.png", "cat", user="ann")
    ro = open_store(f"sqlite:///file:{path}?mode=ro&uri=true", ns)
    assert ro.labels_of("img/000.png") == ["cat"]  # reading works
    with pytest.raises(LabelStoreError, match="read-only"):
        ro.set_labels("img/000.png", "dog", user="ann")
    assert open_store(str(path), ns).labels_of("img/000.png") == ["cat"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file_gives_a_clear_error(tmp_path, ns):
    path = tmp_path / "labels.sqlite"
    open_store(str(path), ns).set_labels("img/000.png", "cat", user="ann")
    for p in tmp_path.iterdir():
        p.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(LabelStoreError, match=r"read-only|cannot be opened"):
            open_store(str(path), ns).set_labels("img/000.png", "dog", user="ann")
    finally:
        tmp_path.chmod(0o755)


def test_missing_folder_is_a_clear_error(tmp_path, ns):
    with pytest.raises(LabelStoreError, match="does not exist"):
        open_store(str(tmp_path / "nope" / "labels.sqlite"), ns)


def test_unreachable_server_is_a_clear_error(ns):
    with pytest.raises(LabelStoreError, match="could not"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none", ns, timeout_s=1)


def test_password_is_not_shown(ns):
    with pytest.raises(LabelStoreError) as err:
        open_store("postgresql+psycopg://ann:s3cret@127.0.0.1:1/none", ns)
    assert "s3cret" not in str(err.value)
