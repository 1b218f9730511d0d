"""The storage protocol every store implements (SQLite now, PostgreSQL next).

Nothing above this layer sees SQL. A write goes through ``atomic()``: inside it
reads see the transaction's own writes, and the interaction checks its
preconditions (If-Match, an unchanged update, ...) and writes in the same
transaction, so concurrent clients cannot interleave between check and write.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from fhir_ccm.search.parse import SearchQuery
from fhir_ccm.search.rows import IndexRow


@dataclass(frozen=True)
class StoredVersion:
    """One version of one resource as stored; ``json`` is None for a deletion."""

    resource_type: str
    id: str
    version: int
    last_updated: str  # FHIR instant, UTC, millisecond precision
    deleted: bool
    json: str | None
    method: str = "PUT"  # the HTTP method that wrote it: POST, PUT, PATCH or DELETE
    seq: int = 0  # position in the server-wide history, increasing


@dataclass(frozen=True)
class NewVersion:
    """A version the store is asked to write."""

    resource_type: str
    id: str
    version: int
    last_updated: str
    json: str | None  # None writes a deletion
    method: str
    index: tuple[IndexRow, ...] = ()  # search index rows of this version (none for a deletion)


@dataclass(frozen=True)
class HistoryQuery:
    """Which versions a history interaction wants, newest first."""

    resource_type: str | None = None
    id: str | None = None
    since: str | None = None  # versions written at or after this instant
    at: tuple[str, str] | None = None  # versions current at some moment of this [low, high] instant range
    before_seq: int | None = None  # paging cursor: versions older than this
    count: int = 20


@dataclass(frozen=True)
class HistoryPage:
    versions: tuple[StoredVersion, ...]
    total: int
    has_more: bool


@dataclass(frozen=True)
class SearchPage:
    """One page of search results: the matches in order, what _include/_revinclude added."""

    matches: tuple[StoredVersion, ...]
    included: tuple[StoredVersion, ...]
    total: int | None
    snapshot: str | None  # names the stored result list when there are more pages
    offset: int


class Store(Protocol):
    def atomic(self, nested_savepoints: bool = True) -> AbstractContextManager[None]:
        """A write transaction, taken for writing up front; nested calls use savepoints.

        ``nested_savepoints=False`` is for a transaction that any error ends as a
        whole, as a FHIR transaction Bundle: nested calls then share it without
        savepoints of their own (each costs a statement journal of every page it
        changes), and one that fails dooms it: it is undone at the end even if
        the error was caught. Only the outermost call's choice counts.
        """

    def now(self) -> str:
        """The instant to stamp a write with: never earlier than any stored version.

        Inside ``atomic()`` every call answers the same instant, so the versions one
        transaction writes share their ``lastUpdated``.
        """

    def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The current version (possibly a deletion), or None if never stored."""

    def vread(self, resource_type: str, id: str, version: int) -> StoredVersion | None: ...

    def write(self, version: NewVersion) -> StoredVersion: ...

    def history(self, query: HistoryQuery) -> HistoryPage: ...

    def change_stamp(self, resource_types: Sequence[str]) -> tuple[int, ...]:
        """Per type of ``resource_types``: the newest history position (0 when none).

        Any write of a resource of those types changes it, since history only grows and each
        version takes a position after every earlier one; cheap enough to ask on every request,
        however many versions those types have.
        """

    def search(self, query: SearchQuery, base_url: str = "", first_page_only: bool = False) -> SearchPage:
        """Run a parsed search; raises Gone when a paging snapshot has expired.

        ``first_page_only``: just the first ``count`` matches, no total, no snapshot
        (what a conditional interaction needs to tell none, one and several apart).
        """

    def replace_index(self, resource_type: str, id: str, rows: Sequence[IndexRow]) -> None:
        """Rewrite the search index rows of one resource; call inside ``atomic()``."""

    def find_ids(self, id: str, resource_types: Sequence[str]) -> list[str]:
        """The types among ``resource_types`` under which a live resource ``id`` exists."""

    def count(self, resource_type: str | None = None) -> int:
        """How many live (not deleted) resources are stored."""

    def iter_current(self, resource_type: str | None = None) -> Iterator[StoredVersion]: ...

    def close(self) -> None: ...
