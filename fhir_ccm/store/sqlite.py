"""The embedded store: one SQLite file, WAL mode, one write transaction at a time.

Durability: ``synchronous=FULL`` makes SQLite sync the write-ahead log on every
commit, so an acknowledged write survives ``kill -9`` of the server and a power
loss alike. ``BEGIN IMMEDIATE`` takes the write lock before the first read of a
write, so a precondition checked inside ``atomic()`` still holds at commit,
whichever process or thread the other writers run in.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from fhir_ccm.errors import Busy, Conflict, Gone, TooCostly
from fhir_ccm.search.coverage import stored_codes
from fhir_ccm.search.parse import Include, SearchQuery
from fhir_ccm.search.rows import IndexRow
from fhir_ccm.search.sql import Fragment, SqlBuilder, param_is
from fhir_ccm.store import HistoryPage, HistoryQuery, NewVersion, SearchPage, StoredVersion
from fhir_ccm.store.snapshots import Key, SnapshotStore
from fhir_ccm.store.sqlite_index import create_index_tables, replace_rows

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
MMAP_BYTES = 1 << 30  # address space, not memory: pages are shared with the OS page cache
CACHE_KIB = 16 * 1024
# Pages the write-ahead log may hold before a commit copies them into the database (SQLite's default
# is 1,000). A checkpoint copies each page changed since the last one once, however many commits
# changed it, so a longer interval copies the pages every write touches (index interior pages, the
# leaves of common values, the tails of the tables) less often: a create of the 2.9 KB benchmark
# Patient costs 10-20 % less CPU with its commit. 4,000 frames stay within one segment of the log's
# index (4,096 frames), so finding a page in the log costs the same, and the log stays near 16 MB.
WAL_CHECKPOINT_PAGES = 4000
# Waits between attempts to take the write lock while another connection holds it: doubling from
# the first to the last, so a writer gets the lock within about a millisecond of its release.
WRITE_LOCK_WAITS_S = (0.0002, 0.001)
INITIALIZE_RETRY_S = 0.02
_VERSION_COLUMNS = "type, id, version, last_updated, deleted, json, method, seq"
# The current version of a resource: its row in ``resources`` (aliased r) points at its row in the
# history, which holds the JSON. The history row is found by its rowid; CROSS JOIN keeps SQLite
# reading ``resources`` first, where every condition of a read or a search applies.
_CURRENT_COLUMNS = "r.type, r.id, r.version, r.last_updated, r.deleted, v.json, r.method, r.seq"
_CURRENT_FROM = "resources r CROSS JOIN resource_versions v ON v.seq = r.seq"


def format_instant(moment: datetime) -> str:
    """A FHIR instant in UTC with millisecond precision; these sort as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _row_to_version(row: tuple) -> StoredVersion:
    return StoredVersion(
        resource_type=row[0],
        id=row[1],
        version=row[2],
        last_updated=row[3],
        deleted=bool(row[4]),
        json=row[5],
        method=row[6],
        seq=row[7],
    )


# SQLite's refusals of a statement too large to parse or plan, whatever the data.
_TOO_COMPLEX = re.compile(
    r"parser stack overflow|Expression tree is too large|too many SQL variables|too many terms|too many FROM clause"
    r"|at most \d+ tables in a join"
)


def _busy(error: sqlite3.OperationalError) -> bool:
    """SQLite refused for a lock another connection holds: SQLITE_BUSY and its extended codes (_RECOVERY...)."""
    return error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def initialize(path: str | Path) -> None:
    """Create the database file and its tables if they do not exist yet.

    The workers of one server start together and each initializes the file. On
    a new file, SQLite refuses a schema change without waiting while another
    connection is switching the file to WAL or creating the same tables, so a
    refusal is retried (every statement here is idempotent) until the busy
    timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            _initialize_once(path)
            return
        except sqlite3.OperationalError as error:
            if not _busy(error) or time.monotonic() >= deadline:
                raise
        time.sleep(INITIALIZE_RETRY_S)


def _initialize_once(path: str | Path) -> None:
    connection = _connect(path)
    try:
        db = sqlite_utils.Database(connection)
        connection.execute("PRAGMA journal_mode=WAL")
        if "resource_versions" not in db.table_names():
            with connection:
                connection.execute(
                    """CREATE TABLE IF NOT EXISTS resource_versions (
                        seq INTEGER PRIMARY KEY,
                        type TEXT NOT NULL,
                        id TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        last_updated TEXT NOT NULL,
                        deleted INTEGER NOT NULL,
                        method TEXT NOT NULL,
                        json TEXT,
                        UNIQUE (type, id, version)
                    )"""
                )
        db.table("resources").create(
            {
                "type": str,
                "id": str,
                "version": int,
                "last_updated": str,
                "deleted": int,
                "method": str,
                "seq": int,
            },
            pk=("type", "id"),
            not_null={"type", "id", "version", "last_updated", "deleted", "method", "seq"},
            foreign_keys=[("seq", "resource_versions", "seq")],
            if_not_exists=True,
        )
        with connection:
            connection.execute("CREATE INDEX IF NOT EXISTS resource_versions_type_seq ON resource_versions (type, seq)")
            connection.execute(
                "CREATE INDEX IF NOT EXISTS resource_versions_last_updated ON resource_versions (last_updated)"
            )
            connection.execute("CREATE INDEX IF NOT EXISTS resources_type_live ON resources (type, deleted)")
            create_index_tables(connection)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    finally:
        connection.close()


def _connect(path: str | Path) -> sqlite3.Connection:
    connection = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    # Reads of a large store go through a memory map instead of a read() call per page, and
    # each connection keeps more pages: index lookups at 100,000 resources stay as fast as at 10,000.
    connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    # Every transaction entry and every version write is a savepoint, whose journal of the pages it
    # changes would otherwise be a temporary file written page by page: in memory, a 1,000-entry
    # transaction writes its index rows in two thirds of the time.
    connection.execute("PRAGMA temp_store=MEMORY")
    connection.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    return connection


def _begin_immediate(connection: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting for another writer in short sleeps outside SQLite.

    SQLite's own busy handler sleeps inside the call, 1, 2, 5 ... up to 100 ms
    between attempts, and a gevent worker waiting there stops serving every
    other request it holds: with two workers writing, each spent much of its
    time blocked on the other's commits while the machine had CPU to spare.
    ``time.sleep`` is gevent's in a gevent worker, so the wait lets the worker's
    other requests run; elsewhere it blocks only the waiting thread. A lock still
    held after ``BUSY_TIMEOUT_MS`` answers 503 with ``Retry-After``.
    """
    connection.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        wait, longest = WRITE_LOCK_WAITS_S
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not _busy(error):
                    raise
                if time.monotonic() >= deadline:
                    raise Busy("The database is busy with other writes; try again") from error
            time.sleep(wait)
            wait = min(wait * 2, longest)
    finally:
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


class SQLiteStore:
    """The ``Store`` protocol on one SQLite file, safe across threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        initialize(self.path)
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._snapshots = SnapshotStore(self.path)

    # -- connections -------------------------------------------------------

    def _acquire(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _connect(self.path)

    def _release(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            self._idle.append(connection)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """The transaction's connection inside ``atomic()``, a pooled one outside."""
        current = getattr(self._local, "connection", None)
        if current is not None:
            yield current
            return
        connection = self._acquire()
        try:
            yield connection
        finally:
            self._release(connection)

    @contextmanager
    def atomic(self, nested_savepoints: bool = True) -> Iterator[None]:
        current = getattr(self._local, "connection", None)
        if current is not None:
            if not self._local.savepoints:
                try:
                    yield
                except BaseException:
                    self._local.doomed = True
                    raise
                return
            depth = self._local.depth = self._local.depth + 1
            name = f"nested_{depth}"
            current.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                current.execute(f"ROLLBACK TO {name}")
                current.execute(f"RELEASE {name}")
                raise
            else:
                current.execute(f"RELEASE {name}")
            finally:
                self._local.depth = depth - 1
            return
        connection = self._acquire()
        broken = False
        try:
            _begin_immediate(connection)
            self._local.connection, self._local.depth, self._local.now = connection, 0, None
            self._local.savepoints, self._local.doomed = nested_savepoints, False
            try:
                yield
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            if self._local.doomed:
                connection.execute("ROLLBACK")
                raise RuntimeError("A write inside the transaction failed; the whole transaction was undone")
            connection.execute("COMMIT")
        except sqlite3.Error:
            broken = True
            raise
        finally:
            self._local.connection = None
            if broken:
                connection.close()
            else:
                self._release(connection)

    def close(self) -> None:
        with self._lock:
            for connection in self._idle:
                connection.close()
            self._idle.clear()

    # -- reads -------------------------------------------------------------

    def now(self) -> str:
        """Inside ``atomic()`` the instant is taken once: every version a transaction writes shares it."""
        inside = getattr(self._local, "connection", None) is not None
        if inside and self._local.now is not None:
            return str(self._local.now)
        stamp = format_instant(datetime.now(UTC))
        with self._connection() as connection:
            (latest,) = connection.execute("SELECT max(last_updated) FROM resource_versions").fetchone()
        stamp = latest if latest is not None and latest > stamp else stamp
        if inside:
            self._local.now = stamp
        return stamp

    def read(self, resource_type: str, id: str) -> StoredVersion | None:
        with self._connection() as connection:
            row = connection.execute(
                f"SELECT {_CURRENT_COLUMNS} FROM {_CURRENT_FROM} WHERE r.type = ? AND r.id = ?", (resource_type, id)
            ).fetchone()
        return _row_to_version(row) if row else None

    def vread(self, resource_type: str, id: str, version: int) -> StoredVersion | None:
        with self._connection() as connection:
            row = connection.execute(
                f"SELECT {_VERSION_COLUMNS} FROM resource_versions WHERE type = ? AND id = ? AND version = ?",
                (resource_type, id, version),
            ).fetchone()
        return _row_to_version(row) if row else None

    def history(self, query: HistoryQuery) -> HistoryPage:
        conditions: list[str] = []
        params: list[object] = []
        if query.resource_type is not None:
            conditions.append("type = ?")
            params.append(query.resource_type)
        if query.id is not None:
            conditions.append("id = ?")
            params.append(query.id)
        if query.since is not None:
            conditions.append("last_updated >= ?")
            params.append(query.since)
        if query.at is not None:
            # current at some moment of [low, high]: written by high, not replaced before low
            conditions.append(
                "last_updated <= ? AND NOT EXISTS (SELECT 1 FROM resource_versions later"
                " WHERE later.type = resource_versions.type AND later.id = resource_versions.id"
                " AND later.version > resource_versions.version AND later.last_updated <= ?)"
            )
            params += [query.at[1], query.at[0]]
        where = " AND ".join(conditions) or "1"
        page_where, page_params = where, list[object](params)
        if query.before_seq is not None:
            page_where += " AND seq < ?"
            page_params.append(query.before_seq)
        with self._connection() as connection:
            rows = connection.execute(
                f"SELECT {_VERSION_COLUMNS} FROM resource_versions WHERE {page_where} ORDER BY seq DESC LIMIT ?",
                (*page_params, query.count + 1),
            ).fetchall()
            (total,) = connection.execute(f"SELECT count(*) FROM resource_versions WHERE {where}", params).fetchone()
        versions = tuple(_row_to_version(row) for row in rows[: query.count])
        return HistoryPage(versions=versions, total=total, has_more=len(rows) > query.count)

    def change_stamp(self, resource_types: Sequence[str]) -> tuple[int, ...]:
        # One max() per type is one step down the (type, seq) index; a count would read every version.
        newest = ", ".join("(SELECT max(seq) FROM resource_versions WHERE type = ?)" for _ in resource_types)
        with self._connection() as connection:
            row = connection.execute(f"SELECT {newest}", tuple(resource_types)).fetchone()
        return tuple(int(seq or 0) for seq in row)

    # -- search ----------------------------------------------------------------------------

    def search(self, query: SearchQuery, base_url: str = "", first_page_only: bool = False) -> SearchPage:
        try:
            return self._search(query, base_url, first_page_only)
        except sqlite3.OperationalError as error:
            if not _TOO_COMPLEX.search(str(error)):
                raise
            raise TooCostly(
                "This search is more complex than the database can run (chains or _has nested too deeply,"
                f" or too many values): {error}; use fewer levels or split it"
            ) from None

    def _search(self, query: SearchQuery, base_url: str, first_page_only: bool) -> SearchPage:
        """Every statement here is consistent on its own, so no read transaction is needed.

        A result of one page is found and fetched by a single statement. A longer one
        is read whole (keys only) by a second statement, and the first page is then
        taken from that same list, so the page and the snapshot always agree.
        """
        builder = SqlBuilder(base_url)
        with self._connection() as connection:
            if query.summary == "count":
                counted = builder.count(query)
                (total,) = connection.execute(counted.sql, counted.args).fetchone()
                return SearchPage((), (), int(total), None, 0)
            snapshot, offset = query.snapshot, query.offset
            if snapshot is not None:
                page = self._snapshots.page(snapshot, offset, query.count)
                if page is None:
                    raise Gone("This search result has expired; run the search again")
                keys, total = page
                found = self._current(connection, keys)
            else:
                matches = builder.matches(query)
                offset = 0
                with_resources = matches.sql.replace(
                    "SELECT r.type, r.id FROM resources r", f"SELECT {_CURRENT_COLUMNS} FROM {_CURRENT_FROM}", 1
                )
                first = connection.execute(with_resources + " LIMIT ?", [*matches.args, query.count + 1]).fetchall()
                found = [_row_to_version(row) for row in first[: query.count]]
                total = None if first_page_only else len(first)
                if len(first) > query.count and not first_page_only:
                    every = [(row[0], row[1]) for row in connection.execute(matches.sql, matches.args)]
                    snapshot = self._snapshots.save(every)
                    total = len(every)
                    found = self._current(connection, every[: query.count])
                keys = [(version.resource_type, version.id) for version in found]
            included = self._included(connection, query, keys, builder.local(""))
        return SearchPage(tuple(found), tuple(included), total, snapshot, offset)

    def _current(self, connection: sqlite3.Connection, keys: list[Key]) -> list[StoredVersion]:
        """The live current versions of ``keys``, in the order of ``keys``."""
        if not keys:
            return []
        by_key: dict[Key, StoredVersion] = {}
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            values = ", ".join("(?, ?)" for _ in chunk)
            rows = connection.execute(
                f"SELECT {_CURRENT_COLUMNS} FROM {_CURRENT_FROM} WHERE r.deleted = 0"
                f" AND (r.type, r.id) IN (SELECT column1, column2 FROM (VALUES {values}))",
                [part for key in chunk for part in key],
            ).fetchall()
            for row in rows:
                by_key[(row[0], row[1])] = _row_to_version(row)
        return [by_key[key] for key in keys if key in by_key]

    def _included(
        self, connection: sqlite3.Connection, query: SearchQuery, keys: list[Key], local: Fragment
    ) -> list[StoredVersion]:
        """What ``_include`` and ``_revinclude`` add to a page; ``:iterate`` follows up to five levels."""
        if not keys or not (query.includes or query.revincludes):
            return []
        seen: set[Key] = set(keys)
        added: list[Key] = []
        frontier = list(keys)
        for level in range(5):
            new: list[Key] = []
            for include in query.includes + query.revincludes:
                if level > 0 and not include.iterate:
                    continue
                sources = frontier if level > 0 or not include.iterate else list(seen)
                for key in self._follow(connection, include, sources, local):
                    if key not in seen:
                        seen.add(key)
                        new.append(key)
            added += new
            if not new or not any(i.iterate for i in query.includes + query.revincludes):
                break
            frontier = new
        return self._current(connection, added)

    def _follow(
        self, connection: sqlite3.Connection, include: Include, sources: list[Key], local: Fragment
    ) -> list[Key]:
        """The keys one include or revinclude adds for ``sources``; only references into this server count."""
        result: list[Key] = []
        for start in range(0, len(sources), 400):
            chunk = sources[start : start + 400]
            values = ", ".join("(?, ?)" for _ in chunk)
            flat = [part for key in chunk for part in key]
            if include.reverse:
                sql = Fragment(
                    "SELECT DISTINCT type, id FROM idx_reference WHERE"
                    f" (target_type, target_id) IN (SELECT column1, column2 FROM (VALUES {values})) AND {local.sql}",
                    [*flat, *local.args],
                )
                if include.source_type != "*":
                    sql.sql += " AND type = ?"
                    sql.args.append(include.source_type)
            else:
                sql = Fragment(
                    "SELECT DISTINCT target_type, target_id FROM idx_reference WHERE target_id IS NOT NULL"
                    f" AND (type, id) IN (SELECT column1, column2 FROM (VALUES {values})) AND {local.sql}",
                    [*flat, *local.args],
                )
                if include.source_type != "*":
                    sql.sql += " AND type = ?"
                    sql.args.append(include.source_type)
                if include.target_type is not None:
                    sql.sql += " AND target_type = ?"
                    sql.args.append(include.target_type)
            if include.code is not None:
                codes = stored_codes(include.code)
                sql.sql += f" AND {param_is('param', codes)}"
                sql.args += codes
            result += [(row[0], row[1]) for row in connection.execute(sql.sql, sql.args)]
        return result

    def replace_index(self, resource_type: str, id: str, rows: Sequence[IndexRow]) -> None:
        """Rewrite the index rows of one resource (the reindex command); call inside ``atomic()``."""
        with self._connection() as connection:
            replace_rows(connection, resource_type, id, rows)

    def find_ids(self, id: str, resource_types: Sequence[str]) -> list[str]:
        placeholders = ", ".join("?" for _ in resource_types)
        with self._connection() as connection:
            rows = connection.execute(
                f"SELECT type FROM resources WHERE id = ? AND deleted = 0 AND type IN ({placeholders})",
                (id, *resource_types),
            ).fetchall()
        return sorted(row[0] for row in rows)

    def count(self, resource_type: str | None = None) -> int:
        with self._connection() as connection:
            if resource_type is None:
                row = connection.execute("SELECT count(*) FROM resources WHERE deleted = 0").fetchone()
            else:
                row = connection.execute(
                    "SELECT count(*) FROM resources WHERE type = ? AND deleted = 0", (resource_type,)
                ).fetchone()
        return int(row[0])

    def iter_current(self, resource_type: str | None = None) -> Iterator[StoredVersion]:
        sql = f"SELECT {_CURRENT_COLUMNS} FROM {_CURRENT_FROM} WHERE r.deleted = 0"
        params: tuple = ()
        if resource_type is not None:
            sql += " AND r.type = ?"
            params = (resource_type,)
        with self._connection() as connection:
            rows = connection.execute(sql + " ORDER BY r.type, r.id", params).fetchall()
        for row in rows:
            yield _row_to_version(row)

    # -- writes ------------------------------------------------------------

    def write(self, version: NewVersion) -> StoredVersion:
        """Three statements that stand or fall together: inside ``atomic()`` the caller's transaction
        or savepoint holds them (an error undoes them with it), outside one a transaction of their own."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            with self.atomic():
                return self.write(version)
        deleted = int(version.json is None)
        # The history row holds the JSON; the current row the same columns but the JSON, and its seq.
        row = (
            version.resource_type,
            version.id,
            version.version,
            version.last_updated,
            deleted,
            version.method,
            version.json,
        )
        try:
            cursor = connection.execute(
                "INSERT INTO resource_versions (type, id, version, last_updated, deleted, method, json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        except sqlite3.IntegrityError:
            raise Conflict(
                f"Version {version.version} of {version.resource_type}/{version.id} was written concurrently"
            ) from None
        seq = cursor.lastrowid
        replace_rows(connection, version.resource_type, version.id, version.index, new=version.version == 1)
        connection.execute(
            "INSERT OR REPLACE INTO resources (type, id, version, last_updated, deleted, method, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*row[:6], seq),
        )
        return StoredVersion(
            resource_type=version.resource_type,
            id=version.id,
            version=version.version,
            last_updated=version.last_updated,
            deleted=bool(deleted),
            json=version.json,
            method=version.method,
            seq=seq or 0,
        )
