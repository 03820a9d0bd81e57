"""sqlite_sync: offline-first sync for the standard library's sqlite3 module.

    import sqlite3, sqlite_sync
    conn = sqlite3.connect("todo.db", isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS todos(id TEXT PRIMARY KEY, title TEXT)")
    sync = sqlite_sync.load(conn)          # loads the sqlite-sync extension
    sync.init("http://127.0.0.1:8080")     # once per database file
    sync.track("todos")
    with sync:                             # the background worker runs inside
        conn.execute("INSERT OR REPLACE INTO todos(id, title) VALUES ('a', 'milk')")
    print(sync.pending(), "change(s) queued")  # 1 when no server answered

A thin layer over the extension's SQL functions (README, "API"): every
method runs one SELECT on the connection it was given, whatever its
row_factory. Errors raised by the extension come out as SyncError (a
subclass of sqlite3.OperationalError that keeps sqlite_errorcode and
sqlite_errorname) or one of its subclasses: NotInitializedError,
AuthError, OfflineError, ServerError.

Waiting and background work never use the app's connection: on_change(),
token_provider(), and the asyncio face (sync.aio(): await push(), pull(),
wait_first_sync(); async for tables in changes()) each open a connection of
their own on their own thread, so check_same_thread is never tripped.

The extension file: $SQLITE_SYNC_EXTENSION (a path, with or without .so);
else sync.so next to this package, or the one `make install` recorded
(_installed.py); else this checkout's ext/sync.so when the package runs
from the source tree (PYTHONPATH=bindings/python, or `pip install -e
bindings/python`); else PREFIX/lib/sqlite-sync/sync.so for the prefixes
sys.prefix, /usr/local and /usr (where `make install` puts it). load(conn,
path) takes a path too.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import sqlite3
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import (Any, AsyncIterator, Callable, Dict, List, Mapping, Optional, Sequence,
                    Union)

__version__ = "0.1.0"

__all__ = [
    "load", "find_extension", "Sync", "AsyncSync", "SyncError", "NotInitializedError",
    "AuthError", "OfflineError", "ServerError", "ExtensionLoadingUnavailable", "Status",
    "Pending", "Rejected", "Orphan", "ChangeListener", "TokenRefresher", "ENV_VAR", "__version__",
]

#: Environment variable naming the extension file; it wins over the search.
ENV_VAR = "SQLITE_SYNC_EXTENSION"

_HERE = os.path.dirname(os.path.abspath(__file__))
_SUFFIXES = (".dylib",) if sys.platform == "darwin" else (".so",)
_UNSET = object()


class SyncError(sqlite3.OperationalError):
    """An error reported by the extension ("function: cause").

    sqlite_errorcode and sqlite_errorname are those of the sqlite3 error it
    replaces (None when there was none)."""

    sqlite_errorcode: Optional[int] = None
    sqlite_errorname: Optional[str] = None


class NotInitializedError(SyncError):
    """sync_init() has not been called on this database."""


class AuthError(SyncError):
    """The server refused the token (HTTP 401 or 403): set a new one."""


class OfflineError(SyncError):
    """The server could not be reached, or sync_online(0) is in effect."""


class ServerError(SyncError):
    """The server answered with another HTTP error."""


class ExtensionLoadingUnavailable(RuntimeError):
    """This Python's sqlite3 module cannot load extensions."""


_KINDS = (
    (re.compile(r"sync_init\(\) has not been called|^no such table: sync_"), NotInitializedError),
    (re.compile(r"^sync_\w+: HTTP 40[13]\b"), AuthError),
    (re.compile(r"^sync_\w+: (offline\b|cannot reach )"), OfflineError),
    (re.compile(r"^sync_\w+: HTTP \d+"), ServerError),
)


def _sync_error(e: sqlite3.Error, fn: Optional[str] = None) -> Optional[SyncError]:
    """The SyncError (subclass) for e, or None when e is not the extension's.
    fn names the function for a table of the extension missing before
    sync_init ("no such table: sync_rejected")."""
    if isinstance(e, SyncError):
        return e
    msg = str(e)
    if not msg.startswith(("sync_", "sync:", "no such table: sync_")):
        return None
    cls = SyncError
    for pattern, kind in _KINDS:
        if pattern.search(msg):
            cls = kind
            break
    if msg.startswith("no such table: sync_"):
        msg = f"{fn or 'sqlite_sync'}: sync_init() has not been called on this database"
    err = cls(msg)
    err.sqlite_errorcode = getattr(e, "sqlite_errorcode", None)
    err.sqlite_errorname = getattr(e, "sqlite_errorname", None)
    return err


def find_extension() -> str:
    """Path of the extension file to load.

    In order: $SQLITE_SYNC_EXTENSION; a sync.so next to this package (or
    the path `make install` recorded in _installed.py); the repository's
    ext/sync.so when the package runs from a checkout; PREFIX/lib/
    sqlite-sync/sync.so for PREFIX sys.prefix, /usr/local and /usr. Raises
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
    for prefix in dict.fromkeys((sys.prefix, "/usr/local", "/usr")):
        candidates += [os.path.join(prefix, "lib", "sqlite-sync", "sync" + s) for s in _SUFFIXES]
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
    path = path or find_extension()
    _enable(conn, True)
    try:
        conn.load_extension(path)
    finally:
        conn.enable_load_extension(False)
    return Sync(conn, extension=path)


@contextlib.contextmanager
def _translated(fn: Optional[str] = None):
    """Raises the extension's errors of the block as SyncError (see
    _sync_error); any other error as it is."""
    try:
        yield
    except sqlite3.Error as e:
        err = _sync_error(e, fn)
        if err is None:
            raise
        raise err from None


def _open(path: str, extension: Optional[str]) -> sqlite3.Connection:
    """A connection of this thread to path, in autocommit mode, extension loaded."""
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        load(db, extension)
    except BaseException:
        db.close()
        raise
    return db


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
    first_sync_done: int = 0
    needs_token: int = 0
    last_verified_at: Optional[str] = None
    diverged_total: int = 0
    last_verify: Optional[str] = None
    #: 'worker' (this process syncs the file), 'standby' (another does) or None
    role: Optional[str] = None
    schema_change: Optional[str] = None
    schema_changed_at: Optional[str] = None
    #: what the last resync after the server went back in time did, and when
    server_reset: Optional[str] = None
    server_reset_at: Optional[str] = None


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


@dataclass
class Orphan:
    """A row the server has not confirmed and that is not sent (a row of
    sync_orphans): state 'kept', 'replace' or 'removed'."""
    table_name: str
    pk: Dict[str, Any]
    row: Optional[Dict[str, Any]]
    state: str
    noted_at: Optional[str]


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
        for k in ("pk", "data", "row"):
            if k in d:
                d[k] = _decode_row(d[k])
        out.append(cls(**d))
    return out


def _json_text(v: Union[str, bytes, Mapping, Sequence]) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return v if isinstance(v, str) else json.dumps(v)


def _jwt_exp(token: str) -> Optional[float]:
    """The exp claim (unix seconds) of a JWT, read without verifying it;
    None for a token that is not a JWT or has no numeric exp."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        exp = json.loads(raw).get("exp")
    except (ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class Sync:
    """The sync API of one connection (get it from load()).

    As a context manager it starts the background worker on entry and stops
    it on exit: `with sqlite_sync.load(conn) as sync: ...`.
    """

    def __init__(self, conn: sqlite3.Connection, extension: Optional[str] = None):
        self.conn = conn
        self._extension = extension

    def _run(self, sql: str, args: Sequence[Any] = (), fn: Optional[str] = None) -> sqlite3.Cursor:
        """Runs sql on a cursor of plain tuples (whatever conn.row_factory
        is); extension errors come out as SyncError."""
        cur = self.conn.cursor()
        cur.row_factory = None
        with _translated(fn):
            return cur.execute(sql, tuple(args))

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        cur = self._run(sql, args)
        with _translated():
            row = cur.fetchone()
        return row[0] if row else None

    def _records(self, cls, sql: str, fn: str) -> list:
        cur = self._run(sql, (), fn)
        with _translated(fn):
            return _records(cls, cur)

    def _path(self, fn: str) -> str:
        for _, name, file in self._run("PRAGMA database_list").fetchall():
            if name == "main":
                if not file:
                    raise SyncError(f"{fn}: needs a database file (this one is in memory or temporary)")
                return file
        raise SyncError(f"{fn}: no main database")

    # --- setup ---
    def init(self, url: Optional[str] = None, **options: Any) -> str:
        """sync_init: creates the tables once, returns the client id.
        url None = bring your own transport (push_batch/ack/apply)."""
        if options:
            return self._one("SELECT sync_init(?, ?)", (url, json.dumps(options)))
        return self._one("SELECT sync_init(?)", (url,))

    def track(self, table: str, existing: Optional[str] = None) -> None:
        """sync_track: queue every write to table (again after ALTER TABLE).
        existing: what happens to the rows already there when the table is
        first tracked: "push" (the default: queued as inserts), "keep"
        (local-only, listed by orphans()) or "server" (replaced by the
        server's rows at the next sync)."""
        if existing is None:
            self._one("SELECT sync_track(?)", (table,))
        else:
            self._one("SELECT sync_track(?, ?)", (table, json.dumps({"existing": existing})))

    def orphans(self) -> List[Orphan]:
        """The sync_orphans table: rows the server has not confirmed that are
        not sent (kept, waiting for the server's rows, or removed)."""
        return self._records(Orphan, "SELECT * FROM sync_orphans", "sync_orphans")

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
        return self._records(Pending, "SELECT * FROM sync_pending", "sync_pending")

    def rejected(self) -> List[Rejected]:
        """The sync_rejected table: mutations the server refused."""
        return self._records(Rejected, "SELECT * FROM sync_rejected ORDER BY id", "sync_rejected")

    def clear_rejected(self, ids: Optional[Sequence[int]] = None) -> None:
        """Acknowledges rejections (all of them, or those ids)."""
        if ids is None:
            self._run("DELETE FROM sync_rejected", (), "sync_rejected")
        else:
            for i in ids:
                self._run("DELETE FROM sync_rejected WHERE id = ?", (i,), "sync_rejected")

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
        """sync_start: start the background worker (idempotent). It stops
        when this connection closes."""
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

    def wait(self, timeout: float, scope: str = "server") -> Optional[List[str]]:
        """sync_wait: tables changed since the previous call (of that scope)
        on this connection, or None after timeout seconds. Blocks. scope
        "server": the server's changes only; "all": local writes too (any
        connection or process)."""
        r = self._one("SELECT sync_wait(?, ?)", (max(0, int(timeout * 1000)), scope))
        return None if r is None else json.loads(r)

    def status(self) -> Status:
        """The sync_status row."""
        return self._records(Status, "SELECT * FROM sync_status", "sync_status")[0]

    def wait_first_sync(self, timeout: Optional[float] = None, poll: float = 0.05) -> bool:
        """Blocks until this client's first full sync has completed
        (sync_status.first_sync_done; the worker or pull() does it). Returns
        True then, False after timeout seconds (None: no limit)."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self.status().first_sync_done:
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(poll if end is None else max(0.0, min(poll, end - time.monotonic())))
        return True

    def on_change(self, callback: Callable[[List[str]], Any], poll: float = 0.25,
                  scope: str = "server") -> "ChangeListener":
        """Calls callback(tables) on a thread each time tracked tables of
        this database change: by the server (scope "server"), or by the
        server and local writes (scope "all"), as sync_wait reports them.
        Returns a ChangeListener; call its stop() (or use it with `with`).
        The callback runs on that thread: to use this connection from it,
        open the connection with check_same_thread=False."""
        return ChangeListener(self.conn, callback, poll, scope, self._extension)

    def token_provider(self, provider: Callable[[], Optional[str]],
                       refresh_before: float = 60.0, poll: float = 0.25) -> "TokenRefresher":
        """Keeps the worker supplied with tokens: provider() (called on a
        thread of its own) returns a token, or None to leave things as they
        are. It is called at once when no token is set, whenever the worker
        meets 401/403 (sync_status.needs_token), and, for a JWT, refresh_before
        seconds before its exp claim (read without verifying the token);
        a token that is not a JWT is renewed on 401/403 only. The worker
        resumes as soon as a new token is set. Returns a TokenRefresher;
        call its stop() (or use it with `with`)."""
        return TokenRefresher(self._path("token_provider"), provider, refresh_before, poll,
                              self._extension)

    def aio(self) -> "AsyncSync":
        """The asyncio face of this connection's database file (AsyncSync)."""
        return AsyncSync(self._path("aio"), self._extension)

    def __enter__(self) -> "Sync":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _main_file(conn: sqlite3.Connection, fn: str = "on_change") -> str:
    return Sync(conn)._path(fn)


class _Background:
    """A thread of the binding's, on its own connection to the file:
    _setup(sync) runs first (its error is raised by the constructor), then
    _loop(sync, state) until stop() or the end of a with block."""

    def _launch(self, name: str, path: str, extension: Optional[str]) -> None:
        self._stopping = threading.Event()
        ready = threading.Event()
        error: List[BaseException] = []

        def main() -> None:
            try:
                db = _open(path, extension)
            except BaseException as e:
                error.append(e)
                ready.set()
                return
            sync = Sync(db)
            try:
                try:
                    state = self._setup(sync)
                except BaseException as e:
                    error.append(e)
                    return
                finally:
                    ready.set()
                self._loop(sync, state)
            finally:
                db.close()

        self._thread = threading.Thread(target=main, name=name, daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            self._thread.join()
            raise error[0]

    def stop(self) -> None:
        """Stops the thread and waits for it (at most one poll period)."""
        self._stopping.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> "_Background":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ChangeListener(_Background):
    """A thread that loops on sync_wait on its own connection."""

    def __init__(self, conn: sqlite3.Connection, callback: Callable[[List[str]], Any],
                 poll: float = 0.25, scope: str = "server", extension: Optional[str] = None):
        if scope not in ("server", "all"):
            raise ValueError("on_change: scope must be 'server' or 'all'")
        self._callback = callback
        self._poll = poll
        self._scope = scope
        self._launch("sqlite_sync.on_change", _main_file(conn), extension)

    def _setup(self, sync: Sync) -> None:
        if self._scope == "all":
            sync.wait(0, "all")  # starts the watch: from now on

    def _loop(self, sync: Sync, _state: None) -> None:
        while not self._stopping.is_set():
            tables = sync.wait(self._poll, self._scope)
            if tables is not None and not self._stopping.is_set():
                try:
                    self._callback(tables)
                except Exception:
                    traceback.print_exc()


class TokenRefresher(_Background):
    """A thread that watches sync_status.needs_token and the current JWT's
    exp on its own connection, and sets provider()'s tokens (see
    Sync.token_provider)."""

    #: after a token the server refused too, the next call waits this long,
    #: doubling up to RETRY_MAX seconds
    RETRY_MIN, RETRY_MAX = 1.0, 60.0

    def __init__(self, path: str, provider: Callable[[], Optional[str]],
                 refresh_before: float = 60.0, poll: float = 0.25,
                 extension: Optional[str] = None):
        self._provider = provider
        self._before = refresh_before
        self._poll = poll
        #: how many times provider() was called (for tests and diagnostics)
        self.calls = 0
        self._launch("sqlite_sync.token_provider", path, extension)

    def _renew(self, sync: Sync) -> Optional[float]:
        """Calls the provider and sets its token; returns when to renew it
        next (time.time() seconds) for a JWT, else None."""
        self.calls += 1
        try:
            token = self._provider()
        except Exception:
            traceback.print_exc()
            return None
        if not token:
            return None
        sync.config("token", token)
        exp = _jwt_exp(token)
        if exp is None:
            return None
        now = time.time()
        if exp <= now:
            return None  # already expired: the server will say so (401)
        # a lifetime shorter than refresh_before: renew half-way
        return max(exp - self._before, now + (exp - now) / 2)

    def _setup(self, sync: Sync) -> Optional[float]:
        return self._renew(sync) if sync.config("token") is None else None

    def _loop(self, sync: Sync, renew_at: Optional[float]) -> None:
        gap, not_before, said = self.RETRY_MIN, 0.0, False
        while not self._stopping.wait(self._poll):
            try:
                needs = sync.status().needs_token
            except SyncError:  # before sync_init: said once, tried again
                if not said:
                    traceback.print_exc()
                    said = True
                continue
            now = time.monotonic()
            if needs and now >= not_before:
                renew_at = self._renew(sync)
                not_before = now + gap
                gap = min(gap * 2, self.RETRY_MAX)
            elif not needs:
                if now >= not_before:
                    gap = self.RETRY_MIN
                if renew_at is not None and time.time() >= renew_at:
                    renew_at = self._renew(sync)


class AsyncSync:
    """The asyncio face of one database file (Sync.aio(), or AsyncSync(path)).

        async with sync.aio() as a:          # starts the worker; stops it on exit
            await a.wait_first_sync(10)
            await a.push()
            async for tables in a.changes():  # the server's changes and local writes
                print("changed", tables)

    Calls run on one thread of this object with a connection of its own
    (never the app's, so check_same_thread holds); changes() runs on a
    thread and connection per iteration. The event loop is never blocked.
    close() (or leaving `async with`) closes them, which also stops a
    worker this object started.
    """

    def __init__(self, path: str, extension: Optional[str] = None):
        self.path = path
        self._extension = extension
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite_sync.aio")
        self._db: Optional[sqlite3.Connection] = None

    def _sync(self) -> Sync:  # on the pool's thread only
        if self._db is None:
            self._db = _open(self.path, self._extension)
        return Sync(self._db, self._extension)

    async def _call(self, fn: Callable[[Sync], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._sync()))

    async def push(self) -> int:
        """sync_push, without blocking the event loop."""
        return await self._call(lambda s: s.push())

    async def pull(self) -> int:
        """sync_pull, without blocking the event loop."""
        return await self._call(lambda s: s.pull())

    async def pending(self) -> int:
        return await self._call(lambda s: s.pending())

    async def status(self) -> Status:
        return await self._call(lambda s: s.status())

    async def config(self, key: str, value: Any = _UNSET) -> Any:
        return await self._call(lambda s: s.config(key, value))

    async def start(self) -> None:
        """sync_start on this object's connection: the worker runs until
        stop() or close()."""
        await self._call(lambda s: s.start())

    async def stop(self) -> None:
        await self._call(lambda s: s.stop())

    async def wait_first_sync(self, timeout: Optional[float] = None,
                              poll: float = 0.05) -> bool:
        """True once sync_status.first_sync_done is 1, False after timeout
        seconds (None: no limit)."""
        end = None if timeout is None else time.monotonic() + timeout
        while not (await self.status()).first_sync_done:
            if end is not None and time.monotonic() >= end:
                return False
            await asyncio.sleep(poll)
        return True

    async def changes(self, poll: float = 0.25) -> AsyncIterator[List[str]]:
        """Yields the tracked tables changed, by the server or by local
        writes of any connection or process (sync_wait(.., 'all')), from the
        first iteration on. Breaking out of the loop stops its thread."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stopping = threading.Event()
        ready = loop.create_future()

        def post(item: Any) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
                return True
            except RuntimeError:  # the loop is closed
                return False

        def settle(err: Optional[BaseException]) -> None:
            if not ready.done():
                if err is None:
                    ready.set_result(None)
                else:
                    ready.set_exception(err)

        def run() -> None:
            try:
                db = _open(self.path, self._extension)
                sync = Sync(db)
                sync.wait(0, "all")  # from now on
            except BaseException as e:
                loop.call_soon_threadsafe(settle, e)
                return
            loop.call_soon_threadsafe(settle, None)
            try:
                while not stopping.is_set():
                    tables = sync.wait(poll, "all")
                    if tables is not None and not stopping.is_set() and not post(tables):
                        break
            except BaseException as e:
                post(e)
            finally:
                db.close()

        thread = threading.Thread(target=run, name="sqlite_sync.changes", daemon=True)
        thread.start()
        try:
            await ready
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stopping.set()
            try:
                await loop.run_in_executor(None, thread.join)
            except RuntimeError:  # the loop is shutting down: it ends by itself
                pass

    def token_provider(self, provider: Callable[[], Optional[str]],
                       refresh_before: float = 60.0, poll: float = 0.25) -> TokenRefresher:
        """Sync.token_provider for this database file."""
        return TokenRefresher(self.path, provider, refresh_before, poll, self._extension)

    async def close(self) -> None:
        """Closes this object's connection (stopping a worker it started)."""
        def close_db() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, close_db)
        self._pool.shutdown(wait=True)

    async def __aenter__(self) -> "AsyncSync":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self.stop()
        finally:
            await self.close()
