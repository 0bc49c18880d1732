"""Load test of the served app: concurrent real sessions over HTTP + WebSocket on loopback.

Starts ``streamlit run app.py`` on 127.0.0.1 (a free port) on a *copy* of a fitted workspace (the
demo by default), then runs N sessions at once, each its own WebSocket speaking Streamlit's
protocol like a browser tab: browse Explore (and fetch the gallery's images over HTTP), open an
image's detail through the shared-link URL (``?item=``), and save a label on Annotate (type a
name, press "Accept"). It stops by itself after ``--seconds``, then checks:

* no session saw an error (an exception or error alert, a dropped connection, a run over 180 s);
* the server's memory stayed bounded (peak RSS, and its growth over the second half of the run);
* every label a session saw acknowledged is in the label store, with that session's user.

Usage (writes ``bench/results/load_test.json``; exit status 1 if a check fails)::

    python bench/load_test.py [--workspace WS] [--sessions 20] [--seconds 300]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUN_TIMEOUT_S = 180.0
QUEUE = "margin"  # a queue holding every image
UNESCAPE = re.compile(r"\\(.)")


class Render:
    """What one script run sent: the elements (type, proto) in order, and the errors among them."""

    def __init__(self) -> None:
        self.elements: list[tuple[str, object]] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def add(self, kind: str, el) -> None:
        self.elements.append((kind, el))
        if kind == "exception":
            self.errors.append(f"exception: {el.exception.type}: {el.exception.message[:300]}")
        elif kind == "alert" and el.alert.format == 1:  # ERROR
            self.errors.append(f"error alert: {el.alert.body[:300]}")
        elif kind == "alert" and el.alert.format == 2:  # WARNING
            self.warnings.append(el.alert.body)

    def widget_id(self, key: str) -> str | None:
        for kind, el in self.elements:
            wid = getattr(getattr(el, kind), "id", "")
            if isinstance(wid, str) and wid.endswith(f"-{key}"):
                return wid
        return None

    def texts(self, kind: str) -> list[str]:
        if kind == "button":
            return [el.button.label for k, el in self.elements if k == "button"]
        wanted = 2 if kind == "caption" else 1  # Markdown.Type: NATIVE 1, CAPTION 2
        return [el.markdown.body for k, el in self.elements if k == "markdown" and el.markdown.element_type == wanted]

    def image_urls(self) -> list[str]:
        return [im.url for k, el in self.elements if k == "imgs" for im in el.imgs.imgs]


class Session:
    """One browser tab: a WebSocket to the app, its widget values kept across reruns."""

    def __init__(self, port: int) -> None:
        from websockets.sync.client import connect

        self.port = port
        url = f"ws://127.0.0.1:{port}/_stcore/stream"
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=60))
        self.values: dict[str, object] = {}  # widget id -> WidgetState
        self.cache: dict[str, object] = {}  # message hash -> ForwardMsg (Streamlit's reference messages)

    def run(self, page: str, query: dict[str, str] | None = None, trigger: str | None = None) -> Render:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = urlencode(query or {})
        state.page_name = page
        for ws in self.values.values():
            state.widget_states.widgets.append(ws)
        if trigger:
            state.widget_states.widgets.append(WidgetState(id=trigger, trigger_value=True))
        self.ws.send(msg.SerializeToString())
        render, deadline = Render(), time.monotonic() + RUN_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                render.errors.append(f"run of {page} took over {RUN_TIMEOUT_S:.0f} s")
                return render
            fwd = ForwardMsg()
            fwd.ParseFromString(self.ws.recv(timeout=left))
            if fwd.ref_hash:
                fwd = self.cache[fwd.ref_hash]
            elif fwd.hash:
                self.cache[fwd.hash] = fwd
            kind = fwd.WhichOneof("type")
            if kind == "script_finished":
                if fwd.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    render.errors.append("script compile error")
                if fwd.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:  # st.rerun(): a second run follows
                    return render
                render = Render()
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                el = fwd.delta.new_element
                render.add(el.WhichOneof("type"), el)

    def fetch(self, url: str) -> int:
        full = url if url.startswith("http") else f"http://127.0.0.1:{self.port}/{url.lstrip('/')}"
        with urllib.request.urlopen(full, timeout=60) as resp:
            return len(resp.read())

    def close(self) -> None:
        self._stack.close()


def _unescape(text: str) -> str:
    return UNESCAPE.sub(r"\1", text)


class Load:
    """Shared results of the sessions."""

    def __init__(self, items: list[str]) -> None:
        self.items = items
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.acked: list[tuple[str, str, list[str]]] = []  # (user, item, labels) the page confirmed
        self.conflicts = 0
        self.bytes_fetched = 0

    def timed(self, session: Session, action: str, *args, **kwargs) -> Render:
        t = time.perf_counter()
        render = session.run(*args, **kwargs)
        with self.lock:
            self.latency[action].append(time.perf_counter() - t)
            self.errors += [f"{action}: {e}" for e in render.errors]
        return render


def session_loop(load: Load, port: int, user: str, until: float, seed: int) -> None:
    """Browse, open details and label until ``until``; every problem lands in ``load.errors``."""
    rng = random.Random(seed)
    try:
        s = Session(port)
        while time.monotonic() < until:
            page = load.timed(s, "annotate", "annotate", {"labeler": user, "queue": QUEUE})
            for _ in range(rng.randint(0, 3)):  # spread the sessions over the queue, as labelers do
                skip = page.widget_id("ann_skip")
                if skip:
                    page = load.timed(s, "skip", "annotate", {"labeler": user, "queue": QUEUE}, trigger=skip)
            accept, shown = page.widget_id("ann_accept"), [_unescape(c) for c in page.texts("caption")]
            head = next((c for c in shown if c in set(load.items)), None)
            if accept is not None and head is not None:  # else the queue is empty
                label = next(b for b in page.texts("button") if b.startswith("Accept: "))
                labels = [_unescape(x) for x in label.removeprefix("Accept: ").split(", ")]
                after = load.timed(s, "save label", "annotate", {"labeler": user, "queue": QUEUE}, trigger=accept)
                with load.lock:
                    if any("meanwhile" in w for w in after.warnings):
                        load.conflicts += 1  # another session saved this item first: a refusal, not a loss
                    elif not after.errors:
                        load.acked.append((user, head, labels))
            gallery = load.timed(s, "explore", "explore")
            for url in rng.sample(gallery.image_urls(), k=min(4, len(gallery.image_urls()))):
                n = s.fetch(url)
                with load.lock:
                    load.bytes_fetched += n
            item = rng.choice(load.items)
            detail = load.timed(s, "detail", "explore", {"item": item})
            if not any(m.startswith("**Generated phrases**") for m in detail.texts("markdown")):
                with load.lock:
                    load.errors.append(f"detail of {item!r} not shown")
        s.close()
    except Exception as exc:  # a dropped connection or protocol error is a finding
        with load.lock:
            load.errors.append(f"{user}: {exc.__class__.__name__}: {exc}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_server(demo_base: Path, port: int, log: Path) -> subprocess.Popen:
    """``streamlit run app.py`` on loopback, its demo workspaces under ``demo_base``."""
    env = {**os.environ, "PIXCTX_DEMO_WORKSPACE": str(demo_base)}
    env.pop("PIXCTX_LABELS_DB", None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the app did not start; see {log}")


def verify(workspace: Path, acked: list[tuple[str, str, list[str]]]) -> list[str]:
    """Acknowledged labels missing from the store (empty when every one is there)."""
    from core.labels.session import open_label_store
    from core.workspace import open_workspace

    history = open_label_store(open_workspace(workspace)).history()
    stored = {(h.user, h.item, tuple(sorted(h.new))) for h in history}
    return [f"{u} {i} {labs}" for u, i, labs in acked if (u, i, tuple(sorted(labs))) not in stored]


def serve_copy(workspace: Path, log_dir: Path) -> tuple[Path, Path]:
    """Copy ``workspace`` (without its labels) to where the app looks for its default demo workspace,
    fitting its search and tag models if it has none (few epochs), so no session starts a demo fit.

    Returns:
        ``(demo base for $PIXCTX_DEMO_WORKSPACE, the copy)``.
    """
    from core.demo import is_demo_ready
    from core.workspace import open_workspace
    from ui.frame import DEMO_CHOICES

    base = log_dir / "demo"
    fraction = next(iter(DEMO_CHOICES.values()))  # the demo the sidebar opens on
    copy = base if fraction >= 1.0 else base.with_name(f"{base.name}-labels{round(100 * fraction)}")
    shutil.copytree(workspace, copy, ignore=shutil.ignore_patterns("labels.sqlite*"))
    if not is_demo_ready(copy):
        from core.retrieval.model import RetrievalConfig
        from core.retrieval.semantic import fit_retrieval
        from core.tags.annotate import fit_tag_models
        from core.tags.models import TagModelConfig

        ws = open_workspace(copy)
        fit_retrieval(ws, RetrievalConfig(epochs=15), r_max=20)
        fit_tag_models(ws, settings=((3, 6), (6, 12)), config=TagModelConfig(epochs=15))
    return base, copy


def run_load(workspace: Path, sessions: int, seconds: float, *, log_dir: Path) -> dict:
    """Serve a copy of ``workspace``, run the sessions, and return the report."""
    from core.workspace import open_workspace

    base, copy = serve_copy(workspace, log_dir)
    items = [str(i) for i in open_workspace(copy).items["item"]]
    port = _free_port()
    server = start_server(base, port, log_dir / "server.log")
    rss: list[tuple[float, float]] = []
    load = Load(items)
    try:
        t0 = time.monotonic()
        warm = Session(port)  # the first run opens the workspace once for all sessions
        warm.run("explore")
        warm.close()
        until = time.monotonic() + seconds
        threads = [
            threading.Thread(target=session_loop, args=(load, port, f"load-{n:02d}", until, n), daemon=True)
            for n in range(sessions)
        ]
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads):
            rss.append((time.monotonic() - t0, _rss_mb(server.pid)))
            time.sleep(2.0)
        for th in threads:
            th.join()
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
    missing = verify(copy, load.acked)
    half = [m for t, m in rss if t >= rss[-1][0] / 2] if rss else [0.0]
    report = {
        "workspace": str(workspace),
        "items": len(items),
        "sessions": sessions,
        "seconds": seconds,
        "server_alive_at_end": alive,
        "runs": {a: len(v) for a, v in load.latency.items()},
        "latency_s": {
            a: {"median": round(statistics.median(v), 3), "p95": round(sorted(v)[math.ceil(0.95 * len(v)) - 1], 3)}
            for a, v in load.latency.items()
        },
        "image_bytes_fetched": load.bytes_fetched,
        "errors": load.errors[:50],
        "n_errors": len(load.errors),
        "labels_acknowledged": len(load.acked),
        "labels_refused_as_conflicts": load.conflicts,
        "labels_missing_from_store": missing,
        "server_rss_mb": {
            "peak": round(max(m for _, m in rss), 1) if rss else None,
            "second_half_min": round(min(half), 1),
            "second_half_max": round(max(half), 1),
            "end": round(rss[-1][1], 1) if rss else None,
        },
        "ok": alive and not load.errors and not missing and len(load.acked) > 0,
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", help="a fitted workspace (default: the demo workspace)")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load_test.json"))
    args = parser.parse_args(argv)
    from core.demo import demo_workspace_path
    from core.workspace import is_workspace

    ws = Path(args.workspace) if args.workspace else demo_workspace_path()
    if not is_workspace(ws):
        print(f"not a fitted workspace: {ws} (fit the demo first: python -m core demo)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pixctx-load-") as tmp:
        report = run_load(ws, args.sessions, args.seconds, log_dir=Path(tmp))
    report["machine"] = f"{os.cpu_count()}-core CPU dev machine"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'action':<12} {'runs':>6} {'median s':>9} {'p95 s':>7}")
    for action, lat in report["latency_s"].items():
        print(f"{action:<12} {report['runs'][action]:>6} {lat['median']:>9} {lat['p95']:>7}")
    rss = report["server_rss_mb"]
    print(
        f"errors {report['n_errors']} · labels acknowledged {report['labels_acknowledged']} "
        f"(conflicts refused {report['labels_refused_as_conflicts']}, missing {len(report['labels_missing_from_store'])}) · "
        f"server RSS peak {rss['peak']} MB, second half {rss['second_half_min']}-{rss['second_half_max']} MB"
    )
    for err in report["errors"][:10]:
        print("  ", err)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
