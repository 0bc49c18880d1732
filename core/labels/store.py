"""The label store: every correction is a row; current labels are derived from that history.

SQLite in the workspace by default (``labels.sqlite``, WAL mode, full fsync), or any database
SQLAlchemy reaches through a URL (``postgresql+psycopg://user@host/db`` for teams). One table
of changes, append-only: a change records the item, the labels before and after, who, when,
the review-queue strategy and a note. Undo appends a change that restores the labels an
earlier change replaced, so the audit trail stays complete.

Concurrency: a write reads the item's current labels and appends its change in one
transaction that holds a write lock (SQLite ``BEGIN IMMEDIATE``; a per-item advisory lock on
PostgreSQL), so two labelers never record a stale "before" and no acknowledged write is lost.
A write is acknowledged (the call returns) only after its transaction committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

#: actions of a change row
SET, UNSURE, UNDO = "set", "unsure", "undo"
DEFAULT_DB_NAME = "labels.sqlite"
_SCHEMA_LOCK = 7_340_111  # advisory lock id guarding table creation on PostgreSQL
BUSY_TIMEOUT_S = 30.0


class LabelStoreError(RuntimeError):
    """The database cannot be used (locked, read-only, unreachable), with what to do about it."""


class ConflictError(LabelStoreError):
    """The item's labels changed since the caller read them (another labeler was faster)."""


@dataclass(frozen=True)
class Change:
    """One row of the history."""

    id: int
    item: str
    old: list[str]
    new: list[str]
    user: str
    at: str
    action: str
    strategy: str
    note: str
    undoes: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _sqlalchemy():
    try:
        import sqlalchemy
    except ImportError as exc:  # pragma: no cover - it is in requirements.txt
        raise ImportError("the label store needs SQLAlchemy: pip install sqlalchemy") from exc
    return sqlalchemy


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _labels_json(labels: Iterable[str]) -> str:
    return json.dumps(sorted(dict.fromkeys(labels)))


class LabelStore:
    """Append-only label history for one dataset (``namespace``), in SQLite or PostgreSQL.

    Args:
        url: a SQLAlchemy database URL, or a path to a SQLite file.
        namespace: which dataset the rows belong to (a database may serve several workspaces).
        items: the known items and their labels in the dataset, ``{item: [labels]}``.
        taxonomy: the known labels; others need ``add_label=True``.
        timeout_s: how long a write waits for another writer's lock before giving up.
    """

    def __init__(
        self,
        url: str | Path,
        *,
        namespace: str,
        items: dict[str, list[str]],
        taxonomy: Iterable[str],
        timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        sa = _sqlalchemy()
        self.url = _as_url(url)
        self.namespace = namespace
        self.original = {k: sorted(v) for k, v in items.items()}
        self._taxonomy = set(taxonomy)
        self._sqlite = self.url.startswith("sqlite")
        if self._sqlite:
            db_path = Path(self.url.split("///", 1)[1].removeprefix("file:").split("?")[0])
            if not db_path.parent.is_dir():
                raise LabelStoreError(f"folder of the label database does not exist: {db_path.parent}")
            self.engine = sa.create_engine(self.url, connect_args={"timeout": timeout_s, "isolation_level": None})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas(timeout_s))
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        else:
            ms = int(timeout_s * 1000)
            self.engine = sa.create_engine(self.url, pool_pre_ping=True, connect_args=_pg_args(self.url, ms))
        self._create()
        self._taxonomy |= set(self._added_labels())

    # --- schema -------------------------------------------------------------------------
    def _create(self) -> None:
        sa = _sqlalchemy()
        meta = sa.MetaData()
        self.changes = sa.Table(
            "label_changes",
            meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("namespace", sa.String(200), nullable=False, index=True),
            sa.Column("item", sa.Text, nullable=False),
            sa.Column("old_labels", sa.Text, nullable=False),
            sa.Column("new_labels", sa.Text, nullable=False),
            sa.Column("user_name", sa.String(200), nullable=False),
            sa.Column("at", sa.String(40), nullable=False),
            sa.Column("action", sa.String(20), nullable=False),
            sa.Column("strategy", sa.String(50), nullable=False, default=""),
            sa.Column("note", sa.Text, nullable=False, default=""),
            sa.Column("undoes", sa.Integer, nullable=True),
            sa.Index("ix_label_changes_ns_item", "namespace", "item"),
        )
        self.added = sa.Table(
            "label_taxonomy_additions",
            meta,
            sa.Column("namespace", sa.String(200), primary_key=True),
            sa.Column("label", sa.String(500), primary_key=True),
            sa.Column("user_name", sa.String(200), nullable=False),
            sa.Column("at", sa.String(40), nullable=False),
        )
        with self._errors("open the label database"), self.engine.connect() as conn:
            inspector = sa.inspect(conn)
            if all(inspector.has_table(t.name) for t in meta.sorted_tables):
                return  # nothing to create: a read-only database opens too
        with self._write("create the label tables") as conn:
            if not self._sqlite:  # several processes opening a fresh database at once
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
            meta.create_all(conn)

    def _errors(self, doing: str) -> contextlib.AbstractContextManager[None]:
        return _translate_errors(doing, self.url)

    @contextlib.contextmanager
    def _write(self, doing: str) -> Iterator:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``), committed when the block ends."""
        with self._errors(doing), self.engine.connect() as conn, conn.execution_options(write=True).begin():
            yield conn

    # --- reads --------------------------------------------------------------------------
    @property
    def taxonomy(self) -> list[str]:
        return sorted(self._taxonomy)

    def _added_labels(self) -> list[str]:
        sa = _sqlalchemy()
        with self._errors("read the label taxonomy"), self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.added.c.label).where(self.added.c.namespace == self.namespace))
            return [r[0] for r in rows]

    def history(self, item: str | None = None) -> list[Change]:
        """Every change (of one item, or of all), oldest first."""
        sa = _sqlalchemy()
        c = self.changes.c
        q = sa.select(self.changes).where(c.namespace == self.namespace)
        if item is not None:
            q = q.where(c.item == item)
        with self._errors("read the label history"), self.engine.connect() as conn:
            rows = conn.execute(q.order_by(c.id)).mappings().all()
        return [_change(r) for r in rows]

    def current(self) -> dict[str, list[str]]:
        """Items whose labels differ from the dataset's, or were reviewed: ``{item: labels}``
        (the latest change of each item wins)."""
        sa = _sqlalchemy()
        c = self.changes.c
        latest = sa.select(sa.func.max(c.id)).where(c.namespace == self.namespace).group_by(c.item).scalar_subquery()
        with self._errors("read the current labels"), self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.item, c.new_labels).where(c.id.in_(latest)))
            return {item: json.loads(labels) for item, labels in rows}

    def labels_of(self, item: str) -> list[str]:
        """An item's current labels."""
        self._check_item(item)
        hist = self.history(item)
        return hist[-1].new if hist else list(self.original[item])

    def reviewed(self) -> dict[str, str]:
        """The latest action of every reviewed item (``set``, ``unsure`` or ``undo``)."""
        return {ch.item: ch.action for ch in self.history()}

    # --- writes -------------------------------------------------------------------------
    def set_labels(
        self,
        item: str,
        labels: list[str] | str,
        *,
        user: str,
        strategy: str = "",
        note: str = "",
        add_label: bool = False,
        expected: list[str] | None = None,
        action: str = SET,
    ) -> Change:
        """Record new labels for ``item`` and return the committed change.

        Args:
            labels: the new label set (a string for one label).
            user: who; must not be empty.
            strategy: the review queue the change came from.
            note: free text.
            add_label: allow labels outside the taxonomy (they are added to it).
            expected: the labels the caller saw; if the item's current labels differ (someone
                else changed them meanwhile) nothing is written and :class:`ConflictError` is raised.
            action: ``set`` or ``unsure`` ("not sure": the labels stay, the item is flagged).

        Raises:
            ValueError: unknown item, empty user, or a label outside the taxonomy.
            ConflictError: ``expected`` is stale.
            LabelStoreError: the database is locked, read-only or unreachable.
        """
        labels = [labels] if isinstance(labels, str) else list(labels)
        labels = [lab.strip() for lab in labels]
        self._check_item(item)
        user = _check_user(user)
        if any(not lab for lab in labels):
            raise ValueError("empty label")
        if action not in (SET, UNSURE):
            raise ValueError(f"unknown action {action!r}")
        new = [lab for lab in labels if lab not in self._taxonomy]
        if new and not add_label:
            raise ValueError(
                f"label(s) not in the taxonomy: {', '.join(new)}; add them explicitly (add_label=True, CLI --add-label)"
            )
        return self._append(item, labels, user, strategy, note, expected, action, None, new)

    def mark_unsure(self, item: str, *, user: str, strategy: str = "", note: str = "") -> Change:
        """Flag ``item`` as "not sure" (its labels stay as they are)."""
        return self.set_labels(item, self.labels_of(item), user=user, strategy=strategy, note=note, action=UNSURE)

    def undo(self, change_id: int, *, user: str, note: str = "") -> Change:
        """Restore the labels change ``change_id`` replaced, as a new change (the history keeps both).

        Undo is an edit like any other: it is refused when the item's labels are no longer the
        ones that change set (someone changed them since, or the change was already undone), so
        an undo never overwrites a newer change.

        Raises:
            ValueError: no such change in this namespace, or an empty user.
            ConflictError: the item changed after ``change_id``; nothing is written.
            LabelStoreError: the database is locked, read-only or unreachable.
        """
        user = _check_user(user)
        sa = _sqlalchemy()
        c = self.changes.c
        with self._errors("read the label history"), self.engine.connect() as conn:
            row = conn.execute(sa.select(self.changes).where(c.namespace == self.namespace, c.id == change_id)).mappings().first()
        target = _change(row) if row is not None else None
        if target is None:
            raise ValueError(f"no change {change_id} in this workspace's history")
        try:
            return self._append(target.item, target.old, user, target.strategy, note, target.new, UNDO, change_id, [])
        except ConflictError as exc:
            raise ConflictError(f"cannot undo change #{change_id}: {exc}") from None

    def _append(
        self,
        item: str,
        labels: list[str],
        user: str,
        strategy: str,
        note: str,
        expected: list[str] | None,
        action: str,
        undoes: int | None,
        added: list[str],
    ) -> Change:
        sa = _sqlalchemy()
        c = self.changes.c
        at = _now()
        with self._write("write the label change") as conn:
            if not self._sqlite:  # serialise writers of one item; SQLite's BEGIN IMMEDIATE locks the database
                key = zlib.crc32(f"{self.namespace}\0{item}".encode()) - 2**31
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            last = conn.execute(
                sa.select(c.new_labels).where(c.namespace == self.namespace, c.item == item).order_by(c.id.desc()).limit(1)
            ).scalar()
            old = json.loads(last) if last is not None else list(self.original[item])
            if expected is not None and sorted(expected) != sorted(old):
                raise ConflictError(f"{item}: labels changed meanwhile (now {old}, you saw {sorted(expected)}); reload")
            for lab in added:
                exists = conn.execute(
                    sa.select(self.added.c.label).where(self.added.c.namespace == self.namespace, self.added.c.label == lab)
                ).first()
                if exists is None:
                    conn.execute(self.added.insert().values(namespace=self.namespace, label=lab, user_name=user, at=at))
            row = {
                "namespace": self.namespace,
                "item": item,
                "old_labels": _labels_json(old),
                "new_labels": _labels_json(labels),
                "user_name": user,
                "at": at,
                "action": action,
                "strategy": strategy,
                "note": note,
                "undoes": undoes,
            }
            new_id = conn.execute(self.changes.insert().values(**row)).inserted_primary_key[0]
        self._taxonomy |= set(added)
        return _change({**row, "id": new_id})

    def _check_item(self, item: str) -> None:
        if item not in self.original:
            raise ValueError(f"unknown item {item!r}: use the image path exactly as written in the dataset's manifest")

    def close(self) -> None:
        self.engine.dispose()


def _check_user(user: str) -> str:
    user = (user or "").strip()
    if not user:
        raise ValueError("a user name is required for every change")
    return user


def _change(r) -> Change:
    return Change(
        id=int(r["id"]),
        item=r["item"],
        old=json.loads(r["old_labels"]),
        new=json.loads(r["new_labels"]),
        user=r["user_name"],
        at=r["at"],
        action=r["action"],
        strategy=r["strategy"] or "",
        note=r["note"] or "",
        undoes=r["undoes"],
    )


def _as_url(url: str | Path) -> str:
    s = str(url)
    if "://" in s:
        return s
    return f"sqlite:///{Path(s).expanduser().resolve()}"


def _sqlite_pragmas(timeout_s: float):
    def on_connect(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        _wal(cur, timeout_s)  # readers never block the writer, nor the writer them
        cur.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives a power cut too
        cur.close()

    return on_connect


def _wal(cur, timeout_s: float) -> None:
    """Put the database in WAL mode (it stays so, in the file). Switching needs an exclusive lock
    and SQLite answers "database is locked" at once, without its busy handler, when processes open
    a fresh database together: retry until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_begin(conn) -> None:
    # writers take the write lock up front, so the read of the current labels and the append
    # happen under one lock; readers begin deferred and never wait for a writer (WAL)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


def _pg_args(url: str, timeout_ms: int) -> dict:
    if url.startswith("postgresql"):
        return {"options": f"-c lock_timeout={timeout_ms}", "connect_timeout": 10}
    return {}


@contextlib.contextmanager
def _translate_errors(doing: str, url: str) -> Iterator[None]:
    """Turn driver errors into :class:`LabelStoreError` with a reason a person can act on."""
    sa = _sqlalchemy()
    try:
        yield
    except sa.exc.DBAPIError as exc:
        msg = str(exc.orig).lower()
        if "readonly" in msg or "read-only" in msg or "read only" in msg:
            reason = "the database is read-only (check the file's and its folder's permissions)"
        elif "locked" in msg or "lock timeout" in msg:
            reason = "the database is locked by another writer for too long; try again"
        elif "unable to open" in msg:
            reason = "the database file cannot be opened (missing folder or no permission)"
        else:
            reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        tail = " Nothing was written." if doing.startswith("write") else ""
        raise LabelStoreError(f"could not {doing} ({redact_url(url)}): {reason}.{tail}") from exc


def redact_url(url: str | Path) -> str:
    """A database URL (or path) that is safe to show: any password becomes ``***``.

    The user part ends at the *last* ``@`` of the address, so a password holding an unencoded
    ``@`` (``postgresql://u:p@ss@host/db``) leaks nothing; ``password=`` query parameters are
    hidden too. When in doubt this hides more, never less.
    """
    s = str(url)
    scheme, sep, rest = s.partition("://")
    if not sep:
        return s  # a file path holds no secret
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, _password = userinfo.partition(":")
        rest = f"{user}{':***' if colon else ''}@{rest}"
    rest = re.sub(r"(?i)((?:password|passwd|pwd)=)[^&]*", r"\1***", rest)
    return f"{scheme}://{rest}"
