"""Reproductions of the adversarial findings of issue #14 (items 4, 6-10), each now refused or reported.

The workspace-safety items (1, 2, 5 and tampered workspaces) are in ``tests/test_workspace_safety.py``,
export safety (item 3) in ``tests/labels/test_export_safety.py``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from core.labels.store import ConflictError, LabelStore, redact_url
from pages.safe_text import md
from tests.conftest import ROOT

PG_URL = os.environ.get("PIXCTX_TEST_POSTGRES_URL")


# --- 6: undo never overwrites a newer change ------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> LabelStore:
    if request.param == "sqlite":
        url: str | Path = tmp_path / "labels.sqlite"
    elif PG_URL:
        url = PG_URL
    else:
        pytest.skip("no PostgreSQL server: set PIXCTX_TEST_POSTGRES_URL (.ci/run starts one with .ci/postgres.sh)")
    items = {"x.png": ["cat"], "y.png": ["dog"]}
    return LabelStore(url, namespace=f"adv-{uuid.uuid4().hex}", items=items, taxonomy=["cat", "dog", "bird"])


def test_undo_refuses_to_overwrite_a_newer_change_by_someone_else(store):
    a = store.set_labels("x.png", "dog", user="alice")
    store.set_labels("x.png", "bird", user="bob")
    with pytest.raises(ConflictError, match=f"cannot undo change #{a.id}.*changed meanwhile"):
        store.undo(a.id, user="alice")
    assert store.labels_of("x.png") == ["bird"]  # bob's label stays
    assert [h.action for h in store.history("x.png")] == ["set", "set"]  # nothing written


def test_undo_of_the_latest_change_works_once(store):
    a = store.set_labels("y.png", "bird", user="alice")
    store.undo(a.id, user="alice")
    assert store.labels_of("y.png") == ["dog"]
    with pytest.raises(ConflictError):  # already undone: a second undo would be a blind write
        store.undo(a.id, user="alice")
    b = store.set_labels("y.png", "cat", user="bob")
    assert store.undo(b.id, user="bob").new == ["dog"]


# --- 4: a database password is never shown ---------------------------------------------------
@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql+psycopg://alice:p@ss@w0rd@db.example:5432/labels", "ss@w0rd"),
        ("postgresql+psycopg://alice:hunter2@db.example/labels", "hunter2"),
        ("postgresql://alice:a:b/c?d@db.example/labels", "a:b/c?d"),
        ("postgresql://db.example/labels?user=alice&password=hunter2", "hunter2"),
    ],
)
def test_redacted_url_leaks_no_part_of_the_password(url, secret):
    shown = redact_url(url)
    assert secret not in shown and "ss@" not in shown and "alice" in shown and "***" in shown


def _all_text(at: AppTest) -> str:
    """Every field of every element the page sent (sidebar included)."""
    return "\n".join(str(node.proto) for node in at._tree if getattr(node, "proto", None) is not None)


def _annotate(ws_path: Path, monkeypatch, db: str | None = None) -> AppTest:
    if db:
        monkeypatch.setenv("PIXCTX_LABELS_DB", db)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["workspace_path"] = str(ws_path)
    at.run()
    at.switch_page("pages/annotate.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.fixture
def ws_copy(fitted_workspace, tmp_path) -> Path:
    shutil.copytree(fitted_workspace, tmp_path / "ws")
    return tmp_path / "ws"


def test_annotate_page_never_shows_the_database_password(ws_copy, monkeypatch):
    # an unreachable server: the page shows an error naming the database, without its password
    at = _annotate(ws_copy, monkeypatch, "postgresql+psycopg://alice:s3cr@t!x@127.0.0.1:9/labels")
    assert at.error and "alice" in _all_text(at)
    assert "s3cr" not in _all_text(at) and "t!x" not in _all_text(at)
    if PG_URL:  # a reachable server (trust auth ignores the password): the caption names it, redacted
        user, host = PG_URL.split("://", 1)[1].split("@", 1)
        at = _annotate(ws_copy, monkeypatch, f"postgresql+psycopg://{user}:Zq7%40hunterXY@{host}")
        assert not at.error and any("stored in" in c.value for c in at.caption)
        assert "Zq7" not in _all_text(at) and "hunterXY" not in _all_text(at)


# --- 7: no markdown injection -----------------------------------------------------------------
ATTACKS = ["![x](http://attacker/track.png)", "[click me](https://evil.example/login)", "<img src=x>", "www.evil.example"]


def _rendered(at: AppTest) -> list[str]:
    """The HTML a CommonMark renderer (with autolinks) makes of every markdown string on the page."""
    mdit = MarkdownIt("commonmark")
    sources = [e.value for kind in ("markdown", "caption", "warning", "error", "info", "success") for e in getattr(at, kind)]
    sources += [b.label for b in at.button] + [b.help or "" for b in at.button]
    return [mdit.render(s) for s in sources]


def _assert_inert(at: AppTest) -> None:
    for html in _rendered(at):
        assert "<img" not in html and "<a " not in html, html


def test_markdown_escape_renders_literally():
    mdit = MarkdownIt("commonmark")
    for attack in [*ATTACKS, ":red[x]", "$x^2$", "*bold* `code` # h", "a\n\n# heading\n- list"]:
        html = mdit.render(md(attack))
        assert "<img" not in html and "<a " not in html and "<h1" not in html and "<em" not in html and "<code" not in html
        assert html.count("<p>") == 1


def test_shared_link_with_markdown_renders_no_image_or_link(fitted_workspace):
    for attack in ATTACKS:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["workspace_path"] = str(fitted_workspace)
        at.query_params["item"] = attack
        at.run()
        at.switch_page("pages/explore.py").run()
        assert not at.exception
        warning = next(w.value for w in at.warning if "No image" in w.value)
        html = MarkdownIt("commonmark").render(warning)
        assert "<img" not in html and "<a " not in html, html
        _assert_inert(at)


def test_labels_and_captions_with_markdown_are_inert(small_dataset, cache_dir, tmp_path, monkeypatch):
    """Labels, captions and item names carrying markdown, on Explore's detail and Annotate."""
    import csv

    from tests.conftest import quick_fit

    data = tmp_path / "data"
    shutil.copytree(small_dataset, data)
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, r in enumerate(rows):
        if r["label"] == "food/fruit":
            r["label"] = "![f](http://attacker/label.png)"
        r["text"] = f"[click me](https://evil.example/{i}) {r['text']}"
    with (data / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ws = quick_fit(data, tmp_path / "ws", cache_dir)
    row = next(i for i, labs in enumerate(ws.items["labels"]) if labs == ["![f](http://attacker/label.png)"])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["workspace_path"] = str(ws.path)
    at.query_params["item"] = str(ws.items.at[row, "item"])
    at.run()
    at.switch_page("pages/explore.py").run()
    assert not at.exception
    assert any(md("![f](http://attacker/label.png)") in m.value for m in at.markdown)  # shown, as text
    _assert_inert(at)
    at.switch_page("pages/annotate.py").run()
    assert not at.exception
    _assert_inert(at)
    at.switch_page("pages/home.py").run()
    _assert_inert(at)
