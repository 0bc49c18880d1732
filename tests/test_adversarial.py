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
from tests.conftest import ROOT
from ui.safe_text import md, plotly_text

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


def test_annotate_undo_shows_the_refusal_and_keeps_the_newer_change(ws_copy, monkeypatch):
    from core.labels.session import open_label_store
    from core.workspace import open_workspace

    at = _annotate(ws_copy, monkeypatch)
    at.selectbox(key="ann_strategy").set_value("margin").run()
    at.text_input(key="ann_user").set_value("alice").run()
    at.button(key="ann_accept").click().run()
    store = open_label_store(open_workspace(ws_copy))
    (mine,) = store.history()
    other = next(lab for lab in store.taxonomy if lab not in mine.new)
    store.set_labels(mine.item, [other], user="bob", expected=mine.new)  # bob, in another tab, after alice
    at.button(key="ann_undo").click().run()
    assert not at.exception
    assert any("cannot undo change" in w.value and "changed meanwhile" in w.value for w in at.warning)
    assert store.labels_of(mine.item) == [other] and len(store.history()) == 2


def test_annotate_press_on_an_image_reviewed_meanwhile_saves_nothing(ws_copy, monkeypatch):
    """Found by the load test: the press reran the page, whose queue head had moved to an image unseen."""
    from core.labels.session import open_label_store
    from core.workspace import open_workspace

    at = _annotate(ws_copy, monkeypatch)
    at.selectbox(key="ann_strategy").set_value("margin").run()
    at.text_input(key="ann_user").set_value("alice").run()
    store = open_label_store(open_workspace(ws_copy))
    shown = next(md_item for md_item in (c.value for c in at.caption) if md_item.startswith("images"))
    item = shown.replace("\\", "")
    store.set_labels(item, store.labels_of(item), user="bob")  # bob reviews alice's image first
    at.button(key="ann_accept").click().run()
    assert any("reviewed meanwhile" in w.value for w in at.warning)
    assert [h.user for h in store.history()] == ["bob"]


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
    at.switch_page("views/annotate.py").run()
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
ATTACKS = [
    "![x](http://attacker/track.png)",
    "[click me](https://evil.example/login)",
    "<img src=x>",
    "www.evil.example",
    "../../etc/passwd",
]


def _rendered(at: AppTest) -> list[str]:
    """The HTML a CommonMark renderer (with autolinks) makes of every markdown string on the page."""
    mdit = MarkdownIt("commonmark")
    sources = [e.value for kind in ("markdown", "caption", "warning", "error", "info", "success") for e in getattr(at, kind)]
    sources += [b.label for b in at.button] + [b.help or "" for b in at.button]
    return [mdit.render(s) for s in sources]


def _chart_strings(at: AppTest) -> list[str]:
    """Every string in the page's Plotly figures (labels, hovers, legend names, ticks)."""
    import json

    def strings(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            node = list(node.values())
        return [s for child in node for s in strings(child)] if isinstance(node, list) else []

    return [s for chart in at.get("plotly_chart") for s in strings(json.loads(chart.proto.spec))]


def _assert_inert(at: AppTest) -> None:
    for html in _rendered(at):
        assert "<img" not in html and "<a " not in html, html
    for text in _chart_strings(at):  # Plotly renders <a href> (and <b>, <br>) in chart text: user text escaped
        assert "<a " not in text and "<img" not in text, text


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
        at.run()
        at.query_params["item"] = attack  # the shared link opens Explore with it
        at.switch_page("views/explore.py").run()
        assert not at.exception
        warning = next(w.value for w in at.warning if "No image" in w.value)
        html = MarkdownIt("commonmark").render(warning)
        assert "<img" not in html and "<a " not in html, html
        _assert_inert(at)


def test_plotly_text_escapes_markup_reversibly():
    import html

    for attack in [*ATTACKS, '<a href="https://evil.example">x</a>', "<b>bold</b><br>&amp; a < b"]:
        text = plotly_text(attack)
        assert "<" not in text and ">" not in text and html.unescape(text) == attack  # shown as typed


LABEL = '![f](http://attacker/label.png) <a href="https://evil.example/l">x</a>'  # markdown and Plotly's HTML


def test_labels_and_captions_with_markdown_are_inert(small_dataset, cache_dir, tmp_path, monkeypatch):
    """Labels, captions and item names carrying markdown or HTML, on Explore's detail, Annotate, Home
    and Compare (their text and their charts)."""
    import csv

    from tests.conftest import quick_fit

    data = tmp_path / "data"
    shutil.copytree(small_dataset, data)
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, r in enumerate(rows):
        if r["label"] == "food/fruit":
            r["label"] = LABEL
        r["text"] = f"[click me](https://evil.example/{i}) {r['text']}"
    with (data / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ws = quick_fit(data, tmp_path / "ws", cache_dir)
    row = next(i for i, labs in enumerate(ws.items["labels"]) if labs == [LABEL])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["workspace_path"] = str(ws.path)
    at.run()
    at.query_params["item"] = str(ws.items.at[row, "item"])
    at.switch_page("views/explore.py").run()
    assert not at.exception
    assert any(md(LABEL) in m.value for m in at.markdown)  # shown, as text
    assert plotly_text(LABEL) in _chart_strings(at)  # the probability bars name it, escaped
    _assert_inert(at)
    at.switch_page("views/annotate.py").run()
    assert not at.exception
    _assert_inert(at)
    at.switch_page("views/home.py").run()
    _assert_inert(at)
    at.switch_page("views/compare.py").run()
    assert not at.exception and plotly_text(LABEL) in _chart_strings(at)
    _assert_inert(at)


# --- 8: malformed manifests are skipped row by row and reported by name -------------------------
def _png(path: Path, size: tuple[int, int] = (8, 8), colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def data(tmp_path) -> Path:
    for name in ("a", "b", "c", "d"):
        _png(tmp_path / "images" / f"{name}.png")
    return tmp_path


def _issues(ds) -> list[str]:
    return [str(i) for i in ds.issues]


def test_csv_row_with_more_fields_than_the_header_is_skipped(data):
    from core.data import load_dataset

    (data / "manifest.csv").write_text("image,label\nimages/a.png,cat\nimages/b.png,dog,extra\nimages/c.png,dog\n")
    ds = load_dataset(data)
    assert list(ds.items["item"]) == ["images/a.png", "images/c.png"]
    assert any("manifest.csv, row 3" in i and "3 fields but the header has 2" in i for i in _issues(ds))


def test_jsonl_lines_that_are_not_objects_are_skipped(data):
    from core.data import load_dataset

    first, last = '{"image": "images/a.png", "label": "cat"}', '{"image": "images/b.png", "label": "dog"}'
    lines = [first, "[1,2,3]", "42", "null", '"x"', last]
    (data / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    ds = load_dataset(data)
    assert list(ds.items["item"]) == ["images/a.png", "images/b.png"]
    issues = _issues(ds)
    for line, kind in ((2, "list"), (3, "int"), (4, "NoneType"), (5, "str")):
        assert any(f"row {line}" in i and f"not an object ({kind})" in i for i in issues), issues


def test_duplicate_column_names_are_refused_by_name(data):
    from core.data import load_dataset

    (data / "manifest.csv").write_text("image,label,text,label\nimages/a.png,cat,x,dog\n")
    with pytest.raises(ValueError, match=r"manifest.csv: duplicate column names \('label' in columns 2, 4\)"):
        load_dataset(data)


def test_utf16_and_latin1_manifests_are_read_with_a_note(data):
    from core.data import load_dataset

    text = "image,label,text\nimages/a.png,cat,café crème\nimages/b.png,dog,naïve\n"
    (data / "manifest.csv").write_bytes(text.encode("utf-16"))  # with a byte-order mark
    ds = load_dataset(data)
    assert list(ds.items["text"]) == ["café crème", "naïve"] and any("UTF-16" in i for i in _issues(ds))
    (data / "manifest.csv").write_bytes(text.encode("latin-1"))
    ds = load_dataset(data)
    assert list(ds.items["text"]) == ["café crème", "naïve"]
    assert any(i.startswith("manifest.csv: not UTF-8") and "Latin-1" in i for i in _issues(ds))
    (data / "manifest.csv").write_bytes(text.encode("utf-16-le"))  # no byte-order mark: refused by name
    with pytest.raises(ValueError, match=r"manifest\.csv: holds NUL characters.*UTF-8"):
        load_dataset(data)


# --- 9: bounded decoding ------------------------------------------------------------------------
def test_huge_image_is_refused_from_its_header(tmp_path):
    import resource

    from PIL import Image

    from core.data import ImageError, load_image

    path = tmp_path / "bomb.png"
    Image.new("L", (9000, 9000), 0).save(path, optimize=True)  # 81 M pixels in a few hundred KB
    assert path.stat().st_size < 2_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError, match="image too large"):
        load_image(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: nothing was decoded


def test_large_image_is_reduced_early(tmp_path):
    from PIL import Image

    from core.data import load_image

    for fmt in ("png", "jpg"):
        path = tmp_path / f"big.{fmt}"
        Image.new("RGB", (6000, 3000), (10, 120, 200)).save(path)
        out = load_image(path, max_side=512)
        assert out.size == (512, 256) and out.getpixel((10, 10))[2] > 180


# --- 10: smaller ones ---------------------------------------------------------------------------
def test_a_folder_given_as_an_image_says_so(tmp_path, fitted_workspace):
    from core.data import ImageError, load_image
    from core.workspace import open_workspace

    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
    (result,) = open_workspace(fitted_workspace).predict([tmp_path])
    assert not result.ok and "is a folder" in result.error


def test_labels_only_in_test_are_reported(data):
    from core.data import load_dataset

    rows = ["image,label,split", "images/a.png,cat,train", "images/b.png,dog,train", "images/c.png,cat,test"]
    (data / "manifest.csv").write_text("\n".join([*rows, "images/d.png,zebra,test"]) + "\n")
    ds = load_dataset(data)
    assert [str(i) for i in ds.issues] == [
        "manifest.csv, row 5 [images/d.png]: label 'zebra' appears only in the test split: no model can learn it, "
        "so the test metrics leave it out"
    ]


def test_unsupported_formats_in_an_image_folder_are_reported(tmp_path):
    from PIL import Image

    from core.data import load_dataset, load_image

    _png(tmp_path / "cats" / "a.png")
    (tmp_path / "dogs").mkdir()
    Image.new("RGB", (16, 16), (0, 200, 0)).save(tmp_path / "dogs" / "b.avif")
    (tmp_path / "dogs" / "c.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    ds = load_dataset(tmp_path)
    assert sorted(ds.items["item"]) == ["cats/a.png", "dogs/b.avif"]  # AVIF decodes (Pillow >= 11.3)
    assert load_image(tmp_path / "dogs" / "b.avif").size == (16, 16)
    assert [str(i) for i in ds.issues] == [
        f"{tmp_path.name} [dogs/c.heic]: unsupported image format (.heic); convert it to JPEG, PNG, WebP or AVIF"
    ]


def test_symlinks_pointing_outside_the_dataset_are_refused(tmp_path):
    from core.data import load_dataset

    outside = tmp_path / "outside"
    _png(outside / "secret.png")
    data = tmp_path / "data"
    _png(data / "images" / "a.png")
    (data / "images" / "inside.png").symlink_to(data / "images" / "a.png")  # inside: the user's choice, fine
    (data / "images" / "leak.png").symlink_to(outside / "secret.png")
    (data / "linked").symlink_to(outside, target_is_directory=True)
    rows = ["image,label", "images/a.png,cat", "images/inside.png,cat", "images/leak.png,dog", "linked/secret.png,dog"]
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(data)
    assert list(ds.items["item"]) == ["images/a.png", "images/inside.png"]
    refused = [i for i in ds.issues if "symbolic link pointing outside" in i.reason]
    assert [(i.row, i.image) for i in refused] == [(4, "images/leak.png"), (5, "linked/secret.png")]

    # The one exception: the `<stem>_images` link that `labels export` writes beside its marker.
    (data / "export_images").symlink_to(outside, target_is_directory=True)
    (data / "export.csv").write_text("image,label\nexport_images/secret.png,dog\n")
    with pytest.raises(ValueError, match="no usable rows"):
        load_dataset(data / "export.csv")  # no marker: refused like any link
    (data / "export.csv.pixctx-export.json").write_text('{"pixctx_export": "export.csv"}')
    assert list(load_dataset(data / "export.csv").items["item"]) == ["export_images/secret.png"]


def test_no_pickle_loading_anywhere():
    """Workspaces and user data are read as JSON, safetensors, parquet or faiss: never unpickled nor evaluated."""
    import re

    bad = re.compile(r"import pickle|pickle\.loads?\(|joblib\.load|allow_pickle=True|read_pickle|(?<![\w.])(eval|exec)\(")
    offenders = []
    for path in [*ROOT.glob("core/**/*.py"), *ROOT.glob("views/**/*.py"), ROOT / "app.py"]:
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in bad.finditer(text)]
        if "torch.load(" in text and "weights_only=True" not in text:
            offenders.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
    assert offenders == []
