"""sqlite_sync: offline-first sync for the standard library's sqlite3 module.

    import sqlite3, sqlite_sync
    conn = sqlite3.connect("todo.db", isolation_level=None)
    sync = sqlite_sync.load(conn)          # loads the sqlite-sync extension
    sync.init("http://127.0.0.1:8080")     # once per database file
    sync.track("todos")
    with sync:                             # the background worker runs inside
        conn.execute("INSERT INTO todos(id, title) VALUES ('a', 'milk')")

A thin layer over the extension's SQL functions (README, "API"): every
method runs one SELECT on the connection it was given. Errors raised by the
extension come out as SyncError, a subclass of sqlite3.OperationalError,
with the extension's message ("sync_track: table "x" has no PRIMARY KEY").
"""
from __future__ import annotations

import base64
import json
import os
import sqlite3
import sys
import threading
import traceback
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

__all__ = [
    "load", "find_extension", "Sync", "SyncError", "ExtensionLoadingUnavailable",
    "Status", "Pending", "Rejected", "ChangeListener", "ENV_VAR",
]

#: Environment variable naming the extension file; it wins over the search.
ENV_VAR = "SQLITE_SYNC_EXTENSION"

_HERE = os.path.dirname(os.path.abspath(__file__))
_SUFFIXES = (".dylib",) if sys.platform == "darwin" else (".so",)
_UNSET = object()


class SyncError(sqlite3.OperationalError):
    """An error reported by the extension ("function: cause")."""


class ExtensionLoadingUnavailable(RuntimeError):
    """This Python's sqlite3 module cannot load extensions."""


def find_extension() -> str:
    """Path of the extension file to load.

    In order: $SQLITE_SYNC_EXTENSION; a sync.so next to this package (or
    the path `make install` recorded in _installed.py); the repository's
    ext/sync.so when the package runs from a checkout. Raises
    FileNotFoundError naming the places it looked.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        if os.path.isfile(env):
            return os.path.abspath(env)
        for s in _SUFFIXES:
            if os.path.isfile(env + s):
                return os.path.abspath(env + s)
        raise FileNotFoundError(f"{ENV_VAR}={env} does not name an existing file")
    candidates = [os.path.join(_HERE, "sync" + s) for s in _SUFFIXES]
    try:
        from . import _installed  # written by `make install`
        candidates.append(_installed.EXTENSION)
    except ImportError:
        pass
    repo = os.path.dirname(os.path.dirname(os.path.dirname(_HERE)))
    candidates += [os.path.join(repo, "ext", "sync" + s) for s in _SUFFIXES]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(
        "sqlite-sync extension not found (run `make` in the repository, or set "
        f"{ENV_VAR}); looked at: " + ", ".join(candidates))


def _enable(conn: Any, on: bool) -> None:
    if not hasattr(conn, "enable_load_extension"):
        raise ExtensionLoadingUnavailable(
            f"This Python ({sys.executable}) has a sqlite3 module built without "
            "extension loading (no enable_load_extension), so sqlite_sync cannot "
            "load; use a Python built with --enable-loadable-sqlite-extensions, "
            "such as Debian's /usr/bin/python3.")
    conn.enable_load_extension(on)


def load(conn: sqlite3.Connection, path: Optional[str] = None) -> "Sync":
    """Loads the extension into conn and returns a Sync bound to it.

    Extension loading is switched on only for the load and off again.
    Raises ExtensionLoadingUnavailable when this Python cannot load
    extensions, FileNotFoundError when the extension is not found.
    """
    _enable(conn, True)
    try:
        conn.load_extension(path or find_extension())
    finally:
        conn.enable_load_extension(False)
    return Sync(conn)


@dataclass
class Status:
    """One row of the sync_status virtual table."""
    state: str
    online: int
    pending: int
    rejected: int
    cursor: Optional[str]
    sse_connected: int
    last_push_at: Optional[str]
    last_pull_at: Optional[str]
    last_error: Optional[str]
    next_retry_at: Optional[str]
    pushed_total: int
    pulled_total: int
    client_id: Optional[str]
    url: Optional[str]
    skipped_changes: int = 0


@dataclass
class Pending:
    """One queued mutation (a row of sync_pending); pk and data decoded."""
    id: int
    table_name: str
    op: str
    pk: Dict[str, Any]
    data: Optional[Dict[str, Any]]
    created_at: Optional[str]
    attempts: int
    last_error: Optional[str]


@dataclass
class Rejected:
    """One mutation the server refused (a row of sync_rejected)."""
    id: int
    table_name: str
    op: str
    pk: Dict[str, Any]
    data: Optional[Dict[str, Any]]
    reason: Optional[str]
    rejected_at: Optional[str]


def _row_value(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(v)).decode("ascii")}
    return v


def _decode_value(v: Any) -> Any:
    if isinstance(v, dict) and len(v) == 1 and "$base64" in v:
        return base64.b64decode(v["$base64"])
    return v


def _decode_row(text: Optional[str]) -> Optional[Dict[str, Any]]:
    if text is None:
        return None
    return {k: _decode_value(v) for k, v in json.loads(text).items()}


def _records(cls, cur) -> list:
    names = [d[0] for d in cur.description]
    known = {f.name for f in fields(cls)}
    out = []
    for row in cur.fetchall():
        d = {n: v for n, v in zip(names, row) if n in known}
        for k in ("pk", "data"):
            if k in d:
                d[k] = _decode_row(d[k])
        out.append(cls(**d))
    return out


def _json_text(v: Union[str, bytes, Mapping, Sequence]) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return v if isinstance(v, str) else json.dumps(v)


class Sync:
    """The sync API of one connection (get it from load()).

    As a context manager it starts the background worker on entry and stops
    it on exit: `with sqlite_sync.load(conn) as sync: ...`.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        try:
            row = self.conn.execute(sql, tuple(args)).fetchone()
        except sqlite3.OperationalError as e:
            if type(e) is sqlite3.OperationalError and str(e).startswith("sync_"):
                raise SyncError(str(e)) from None
            raise
        return row[0] if row else None

    # --- setup ---
    def init(self, url: Optional[str] = None, **options: Any) -> str:
        """sync_init: creates the tables once, returns the client id.
        url None = bring your own transport (push_batch/ack/apply)."""
        if options:
            return self._one("SELECT sync_init(?, ?)", (url, json.dumps(options)))
        return self._one("SELECT sync_init(?)", (url,))

    def track(self, table: str) -> None:
        """sync_track: queue every write to table (again after ALTER TABLE)."""
        self._one("SELECT sync_track(?)", (table,))

    def untrack(self, table: str) -> None:
        """sync_untrack: stop, and drop the table's pending mutations."""
        self._one("SELECT sync_untrack(?)", (table,))

    def mutate(self, table: str, op: str, row: Mapping[str, Any]) -> Optional[int]:
        """sync_mutate: write a row given as a dict (bytes values allowed);
        op is insert, update, upsert or delete. Returns the mutation id,
        None when nothing changed."""
        data = json.dumps({k: _row_value(v) for k, v in row.items()})
        return self._one("SELECT sync_mutate(?, ?, ?)", (table, op, data))

    # --- the outbox ---
    def pending(self) -> int:
        """sync_pending(): how many mutations wait to be sent."""
        return self._one("SELECT sync_pending()")

    def pending_rows(self) -> List[Pending]:
        """The sync_pending table, in send order."""
        return _records(Pending, self.conn.execute("SELECT * FROM sync_pending"))

    def rejected(self) -> List[Rejected]:
        """The sync_rejected table: mutations the server refused."""
        return _records(Rejected, self.conn.execute("SELECT * FROM sync_rejected ORDER BY id"))

    def clear_rejected(self, ids: Optional[Sequence[int]] = None) -> None:
        """Acknowledges rejections (all of them, or those ids)."""
        if ids is None:
            self.conn.execute("DELETE FROM sync_rejected")
        else:
            self.conn.executemany("DELETE FROM sync_rejected WHERE id = ?", [(i,) for i in ids])

    def cursor(self) -> Optional[str]:
        """sync_cursor(): the last server cursor applied."""
        return self._one("SELECT sync_cursor()")

    # --- bring your own transport ---
    def push_batch(self, limit: Optional[int] = None) -> Optional[str]:
        """sync_push_batch: the next POST /push body as JSON text, or None."""
        if limit is None:
            return self._one("SELECT sync_push_batch()")
        return self._one("SELECT sync_push_batch(?)", (limit,))

    def ack(self, response: Union[str, bytes, Mapping]) -> int:
        """sync_ack: resolve pushed mutations from a /push answer."""
        return self._one("SELECT sync_ack(?)", (_json_text(response),))

    def apply(self, changes: Union[str, bytes, Mapping]) -> int:
        """sync_apply: apply a pull page or an event, cursor included."""
        return self._one("SELECT sync_apply(?)", (_json_text(changes),))

    # --- the worker ---
    def start(self) -> None:
        """sync_start: start the background worker (idempotent)."""
        self._one("SELECT sync_start()")

    def stop(self) -> None:
        """sync_stop: stop the worker and wait for it."""
        self._one("SELECT sync_stop()")

    def push(self) -> int:
        """sync_push: drain the outbox now; mutations confirmed."""
        return self._one("SELECT sync_push()")

    def pull(self) -> int:
        """sync_pull: pull every page now; changes applied."""
        return self._one("SELECT sync_pull()")

    def online(self, value: Optional[bool] = None) -> bool:
        """sync_online: the connectivity; online(False) forces offline,
        online(True) returns to normal and drains at once."""
        if value is None:
            return bool(self._one("SELECT sync_online()"))
        return bool(self._one("SELECT sync_online(?)", (1 if value else 0,)))

    def config(self, key: str, value: Any = _UNSET) -> Any:
        """sync_config: read a key, or set it (None = back to the default)."""
        if value is _UNSET:
            return self._one("SELECT sync_config(?)", (key,))
        return self._one("SELECT sync_config(?, ?)", (key, value))

    def wait(self, timeout: float) -> Optional[List[str]]:
        """sync_wait: tables the server changed since the previous call on
        this connection, or None after timeout seconds. Blocks."""
        r = self._one("SELECT sync_wait(?)", (max(0, int(timeout * 1000)),))
        return None if r is None else json.loads(r)

    def status(self) -> Status:
        """The sync_status row."""
        return _records(Status, self.conn.execute("SELECT * FROM sync_status"))[0]

    def on_change(self, callback: Callable[[List[str]], Any],
                  poll: float = 0.25) -> "ChangeListener":
        """Calls callback(tables) on a thread each time the server changes
        tracked tables of this database (what sync_wait reports). Returns
        a ChangeListener; call its stop() (or use it with `with`). The
        callback runs on that thread: to use this connection from it, open
        the connection with check_same_thread=False."""
        return ChangeListener(self.conn, callback, poll)

    def __enter__(self) -> "Sync":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _main_file(conn: sqlite3.Connection) -> str:
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            if not file:
                raise SyncError("on_change: needs a database file (this one is in memory or temporary)")
            return file
    raise SyncError("on_change: no main database")


class ChangeListener:
    """A thread that loops on sync_wait on its own connection."""

    def __init__(self, conn: sqlite3.Connection, callback: Callable[[List[str]], Any],
                 poll: float = 0.25):
        self._path = _main_file(conn)
        self._callback = callback
        self._poll_ms = max(1, int(poll * 1000))
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="sqlite_sync.on_change",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, timeout=10)
            load(db)
        except BaseException as e:  # reported by the constructor
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stopping.is_set():
                r = db.execute("SELECT sync_wait(?)", (self._poll_ms,)).fetchone()[0]
                if r is not None and not self._stopping.is_set():
                    try:
                        self._callback(json.loads(r))
                    except Exception:
                        traceback.print_exc()
        finally:
            db.close()

    def stop(self) -> None:
        """Stops the thread and waits for it (at most one poll period)."""
        self._stopping.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> "ChangeListener":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
