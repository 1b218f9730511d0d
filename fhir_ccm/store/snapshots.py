"""Search result snapshots, so paging stays exact while other clients write.

The first page of a search that has more than one page stores the ordered
keys of every match; next links name the snapshot and an offset, so following
them returns each match exactly once however the data changes meanwhile.
Snapshots live in a file beside the database with ``synchronous=OFF``: losing
them in a crash only ends open paging sessions, never data.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence

TIME_TO_LIVE_S = 3600
Key = tuple[str, str]


class SnapshotStore:
    def __init__(self, database: str) -> None:
        self.path = database + ".searches" if database != ":memory:" else ":memory:"
        self._local = threading.local()
        with self._connection() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS snapshots"
                " (id TEXT PRIMARY KEY, created REAL NOT NULL, total INTEGER NOT NULL)"
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS snapshot_keys (snapshot TEXT NOT NULL, position INTEGER NOT NULL,"
                " type TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (snapshot, position)) WITHOUT ROWID"
            )

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute("PRAGMA busy_timeout=30000")
            self._local.connection = connection
        return connection

    def save(self, keys: Sequence[Key]) -> str:
        snapshot = uuid.uuid4().hex
        connection = self._connection()
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            expired = time.time() - TIME_TO_LIVE_S
            stale = [row[0] for row in connection.execute("SELECT id FROM snapshots WHERE created < ?", (expired,))]
            for old in stale:
                connection.execute("DELETE FROM snapshot_keys WHERE snapshot = ?", (old,))
                connection.execute("DELETE FROM snapshots WHERE id = ?", (old,))
            connection.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (snapshot, time.time(), len(keys)))
            connection.executemany(
                "INSERT INTO snapshot_keys VALUES (?, ?, ?, ?)",
                ((snapshot, position, type_, id_) for position, (type_, id_) in enumerate(keys)),
            )
        return snapshot

    def page(self, snapshot: str, offset: int, count: int) -> tuple[list[Key], int] | None:
        """The keys at ``offset``..``offset+count`` and the total, or None if the snapshot is unknown or expired."""
        connection = self._connection()
        row = connection.execute("SELECT total, created FROM snapshots WHERE id = ?", (snapshot,)).fetchone()
        if row is None or row[1] < time.time() - TIME_TO_LIVE_S:
            return None
        keys = connection.execute(
            "SELECT type, id FROM snapshot_keys WHERE snapshot = ? AND position >= ? ORDER BY position LIMIT ?",
            (snapshot, offset, count),
        ).fetchall()
        return [(k[0], k[1]) for k in keys], int(row[0])
