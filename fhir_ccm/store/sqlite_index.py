"""The search index tables of the SQLite store, one per parameter kind.

Rows are written in the same transaction as the version they come from and
replaced by every new version (a deletion removes them), so the index always
describes exactly the current, live resources.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from fhir_ccm.search.rows import (
    CompositeRow,
    DateRow,
    IndexRow,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    StringRow,
    TokenRow,
    UriRow,
)
from fhir_ccm.search.sql import MAX_COMPONENTS, TABLES

_COMPONENT_COLUMNS = ("system", "code", "low", "high", "text", "unit")

# table -> (value columns, the indexes searches use; partial ones skip rows without the value)
SCHEMA: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "idx_token": (
        ("system", "code", "text", "type_system", "type_code"),
        ("(param, code, system, type)",),
    ),
    "idx_string": (("normalized", "exact"), ("(param, normalized, type)",)),
    "idx_date": (("low", "high"), ("(param, low, high, type)", "(param, high)")),
    "idx_reference": (
        ("target_type", "target_id", "version", "url", "identifier_system", "identifier_value"),
        (
            "(target_id, target_type, param, type)",
            "(param, url) WHERE url IS NOT NULL",
            "(param, identifier_value) WHERE identifier_value IS NOT NULL",
        ),
    ),
    "idx_quantity": (("low", "high", "system", "code", "unit"), ("(param, low, high)",)),
    "idx_number": (("low", "high"), ("(param, low, high)",)),
    "idx_uri": (("uri",), ("(param, uri, type)",)),
    "idx_composite": (
        tuple(f"c{n}_{column}" for n in range(1, MAX_COMPONENTS + 1) for column in _COMPONENT_COLUMNS),
        ("(param, c1_code, c2_code)",),
    ),
}


def create_index_tables(connection: sqlite3.Connection) -> None:
    for table, (columns, indexes) in SCHEMA.items():
        column_sql = ", ".join(columns)
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table}"
            f" (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, {column_sql})"
        )
        connection.execute(f"CREATE INDEX IF NOT EXISTS {table}_resource ON {table} (type, id)")
        for number, index in enumerate(indexes):
            connection.execute(f"CREATE INDEX IF NOT EXISTS {table}_{number} ON {table} {index}")


def _component_values(row: object) -> tuple[Any, ...]:
    """(system, code, low, high, text, unit) for one component of a composite."""
    if isinstance(row, TokenRow):
        return (row.system, row.code, None, None, row.text, None)
    if isinstance(row, QuantityRow):
        return (row.system, row.code, row.low, row.high, None, row.unit)
    if isinstance(row, (DateRow, NumberRow)):
        return (None, None, row.low, row.high, None, None)
    if isinstance(row, StringRow):
        return (None, None, None, None, row.normalized, None)
    if isinstance(row, UriRow):
        return (None, row.uri, None, None, None, None)
    if isinstance(row, ReferenceRow):
        return (row.target_type, row.target_id, None, None, row.url, None)
    return (None,) * len(_COMPONENT_COLUMNS)


def _values(row: IndexRow) -> tuple[str, tuple[Any, ...]]:
    if isinstance(row, TokenRow):
        return "idx_token", (row.system, row.code, row.text, row.type_system, row.type_code)
    if isinstance(row, StringRow):
        return "idx_string", (row.normalized, row.exact)
    if isinstance(row, DateRow):
        return "idx_date", (row.low, row.high)
    if isinstance(row, ReferenceRow):
        return "idx_reference", (
            row.target_type,
            row.target_id,
            row.version,
            row.url,
            row.identifier_system,
            row.identifier_value,
        )
    if isinstance(row, QuantityRow):
        return "idx_quantity", (row.low, row.high, row.system, row.code, row.unit)
    if isinstance(row, NumberRow):
        return "idx_number", (row.low, row.high)
    if isinstance(row, UriRow):
        return "idx_uri", (row.uri,)
    if isinstance(row, CompositeRow):
        flat: list[Any] = []
        for component in row.components[:MAX_COMPONENTS]:
            flat += _component_values(component)
        flat += [None] * (len(SCHEMA["idx_composite"][0]) - len(flat))
        return "idx_composite", tuple(flat)
    raise TypeError(f"not an index row: {row!r}")


def replace_rows(
    connection: sqlite3.Connection, resource_type: str, id: str, rows: Iterable[IndexRow], new: bool = False
) -> None:
    """Replace every index row of one resource (no rows: a deletion); ``new`` skips the delete."""
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        table, values = _values(row)
        by_table.setdefault(table, []).append((resource_type, id, row.param, *values))
    if not new:
        for table in TABLES.values():
            connection.execute(f"DELETE FROM {table} WHERE type = ? AND id = ?", (resource_type, id))
    for table, table_rows in by_table.items():
        placeholders = ", ".join("?" for _ in table_rows[0])
        connection.executemany(f"INSERT INTO {table} VALUES ({placeholders})", table_rows)
