"""A parsed search as SQLite SQL, values always as bound parameters.

Every criterion becomes ``(r.type, r.id) IN (SELECT ... FROM <index table> ...)``
so SQLite can drive the query from the index rather than scan resources.
Comparisons for each kind and prefix live in tables below, not in branches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_ccm.errors import Invalid
from fhir_ccm.search.coverage import stored_codes, stored_codes_of
from fhir_ccm.search.parse import (
    CodeSetValue,
    Compartment,
    CompositeValue,
    Criterion,
    MissingValue,
    OfTypeValue,
    PrefixedValue,
    ReferenceValue,
    SearchQuery,
    SortKey,
    StringValue,
    TextValue,
    TokenValue,
    UriValue,
)

TABLES = {
    "token": "idx_token",
    "string": "idx_string",
    "date": "idx_date",
    "reference": "idx_reference",
    "quantity": "idx_quantity",
    "number": "idx_number",
    "uri": "idx_uri",
    "composite": "idx_composite",
}
MAX_COMPONENTS = 3

# Range comparisons by prefix: stored range [low, high], searched range [:sl, :sh], exact value :v.
DATE_PREFIXES = {
    "eq": "({c}low >= ? AND {c}high <= ?)",
    "ne": "NOT ({c}low >= ? AND {c}high <= ?)",
    "gt": "{c}high > ?",
    "lt": "{c}low < ?",
    "ge": "({c}high > ? OR ({c}low >= ? AND {c}high <= ?))",
    "le": "({c}low < ? OR ({c}low >= ? AND {c}high <= ?))",
    "sa": "{c}low > ?",
    "eb": "{c}high < ?",
    "ap": "({c}low <= ? AND {c}high >= ?)",
}
# Which search bounds each date template takes, in order.
DATE_ARGUMENTS = {
    "eq": ("sl", "sh"),
    "ne": ("sl", "sh"),
    "gt": ("sh",),
    "lt": ("sl",),
    "ge": ("sh", "sl", "sh"),
    "le": ("sl", "sl", "sh"),
    "sa": ("sh",),
    "eb": ("sl",),
    "ap": ("ah", "al"),
}
# A number's implied range is half-open: ``100`` is [99.5, 100.5) (search.html#number), so eq
# takes ``high < sh``; the other prefixes compare with exactly the value given.
NUMBER_PREFIXES = {
    "eq": ("({c}low >= ? AND {c}high < ?)", ("sl", "sh")),
    "ne": ("NOT ({c}low >= ? AND {c}high < ?)", ("sl", "sh")),
    "gt": ("{c}high > ?", ("v",)),
    "lt": ("{c}low < ?", ("v",)),
    "ge": ("{c}high >= ?", ("v",)),
    "le": ("{c}low <= ?", ("v",)),
    "sa": ("{c}low > ?", ("v",)),
    "eb": ("{c}high < ?", ("v",)),
    "ap": ("({c}low <= ? AND {c}high >= ?)", ("ah", "al")),
}
SORT_COLUMNS = {
    "token": ("code", "code"),
    "string": ("normalized", "normalized"),
    "date": ("low", "high"),
    "reference": ("target_type || '/' || target_id", "target_type || '/' || target_id"),
    "quantity": ("low", "high"),
    "number": ("low", "high"),
    "uri": ("uri", "uri"),
}
DAY_MS = 86_400_000


@dataclass
class Fragment:
    """SQL text and its bound values, built up together."""

    sql: str = ""
    args: list[Any] = field(default_factory=list)


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def param_is(column: str, codes: Sequence[str]) -> str:
    """``column`` matches one of ``codes``: ``= ?`` for one, so the plan of the usual case stays the same."""
    return f"{column} = ?" if len(codes) == 1 else f"{column} IN ({_placeholders(codes)})"


class SqlBuilder:
    """Builds the SQL for one search; ``base_url`` recognizes absolute references to this server."""

    def __init__(self, base_url: str = "", now_ms: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.now_ms = now_ms if now_ms is not None else int(time.time() * 1000)

    # -- the whole query ------------------------------------------------------------------

    def matches(self, query: SearchQuery, extra: Sequence[Fragment] = ()) -> Fragment:
        """``SELECT r.type, r.id FROM resources r WHERE ...`` in result order."""
        where = Fragment(
            f"r.type IN ({_placeholders(query.resource_types)}) AND r.deleted = 0", list(query.resource_types)
        )
        driver = None if query.compartment is not None else _driver(query.criteria)
        conditions = [
            self.criterion(c, "r", drive=index == driver, types=query.resource_types)
            for index, c in enumerate(query.criteria)
        ]
        if query.compartment is not None:
            conditions.insert(0, self.compartment(query.compartment))
        for condition in [*conditions, *extra]:
            where.sql += f" AND {condition.sql}"
            where.args += condition.args
        order = self.order_by(query.sort)
        return Fragment(
            f"SELECT r.type, r.id FROM resources r WHERE {where.sql} ORDER BY {order.sql}",
            where.args + order.args,
        )

    def count(self, query: SearchQuery, extra: Sequence[Fragment] = ()) -> Fragment:
        matches = self.matches(query, extra)
        sql = matches.sql.split(" ORDER BY ")[0].replace("SELECT r.type, r.id", "SELECT count(*)", 1)
        order_args = len(self.order_by(query.sort).args)
        return Fragment(sql, matches.args[: len(matches.args) - order_args] if order_args else matches.args)

    def order_by(self, keys: Sequence[SortKey]) -> Fragment:
        fragment = Fragment()
        parts = []
        for key in keys:
            ascending_column, descending_column = SORT_COLUMNS[key.kind]
            column, aggregate = (descending_column, "max") if key.descending else (ascending_column, "min")
            codes = stored_codes(key.code)
            parts.append(
                f"(SELECT {aggregate}({column}) FROM {TABLES[key.kind]} s"
                f" WHERE s.type = r.type AND s.id = r.id AND {param_is('s.param', codes)})"
                f" {'DESC' if key.descending else 'ASC'} NULLS LAST"
            )
            fragment.args += codes
        parts += ["r.type", "r.id"]
        fragment.sql = ", ".join(parts)
        return fragment

    def compartment(self, compartment: Compartment) -> Fragment:
        params = stored_codes_of(compartment.params)
        local = self.local("i.")
        return Fragment(
            f"(r.type, r.id) IN (SELECT i.type, i.id FROM idx_reference i WHERE i.target_id = ?"
            f" AND i.target_type = ? AND i.param IN ({_placeholders(params)}) AND {local.sql})",
            [compartment.id, compartment.resource_type, *params, *local.args],
        )

    # -- criteria ----------------------------------------------------------------------

    def criterion(self, criterion: Criterion, alias: str, drive: bool = True, types: Sequence[str] = ()) -> Fragment:
        """A condition on the resource aliased ``alias``.

        The criterion that ``drive``s the query is an ``IN`` over its index
        table, so SQLite starts from the few matching index rows; every other
        one is an ``EXISTS`` probing the index rows of each candidate through
        the per-resource index. Left to itself, SQLite picks one ``IN`` list to
        drive and may pick the least selective (``status=active`` across every
        type) while a patient's handful of rows sat in another.
        """
        if criterion.has is not None:
            return self._has(criterion, alias)
        if criterion.chain is not None:
            return self._chain(criterion, alias)
        table = TABLES[criterion.kind]
        codes = stored_codes(criterion.code)
        code_condition = param_is("i.param", codes)
        if criterion.modifier == "missing":
            missing = criterion.values[0]
            assert isinstance(missing, MissingValue)
            return Fragment(
                f"{'NOT ' if missing.missing else ''}EXISTS (SELECT 1 FROM {table} i INDEXED BY {table}_resource"
                f" WHERE i.type = {alias}.type AND i.id = {alias}.id AND {code_condition})",
                list(codes),
            )
        alternatives = [self.value_condition(criterion, value, "i.") for value in criterion.values]
        condition = Fragment(
            " OR ".join(f"({part.sql})" for part in alternatives), [a for part in alternatives for a in part.args]
        )
        negated = criterion.modifier in ("not", "not-in")
        if drive and not negated:
            type_filter = f" AND i.type IN ({_placeholders(types)})" if types else ""
            return Fragment(
                f"({alias}.type, {alias}.id) IN (SELECT i.type, i.id FROM {table} i"
                f" WHERE {code_condition}{type_filter} AND ({condition.sql}))",
                [*codes, *types, *condition.args],
            )
        return Fragment(
            f"{'NOT ' if negated else ''}EXISTS (SELECT 1 FROM {table} i INDEXED BY {table}_resource"
            f" WHERE i.type = {alias}.type AND i.id = {alias}.id AND {code_condition} AND ({condition.sql}))",
            [*codes, *condition.args],
        )

    def _chain(self, criterion: Criterion, alias: str) -> Fragment:
        assert criterion.chain is not None
        inner_alias = alias + "c"
        inner = self.criterion(criterion.chain, inner_alias)
        types = criterion.target_types
        local = self.local("i.")
        codes = stored_codes(criterion.code)
        return Fragment(
            f"({alias}.type, {alias}.id) IN (SELECT i.type, i.id FROM idx_reference i"
            f" WHERE {param_is('i.param', codes)} AND {local.sql}"
            f" AND (i.target_type, i.target_id) IN (SELECT {inner_alias}.type, {inner_alias}.id"
            f" FROM resources {inner_alias} WHERE +{inner_alias}.type IN ({_placeholders(types)})"
            f" AND +{inner_alias}.deleted = 0 AND {inner.sql}))",
            [*codes, *local.args, *types, *inner.args],
        )

    def _has(self, criterion: Criterion, alias: str) -> Fragment:
        has = criterion.has
        assert has is not None
        inner_alias = alias + "h"
        inner = self.criterion(has.criterion, inner_alias)
        local = self.local("i.")
        codes = stored_codes(has.reference_code)
        return Fragment(
            f"({alias}.type, {alias}.id) IN (SELECT i.target_type, i.target_id FROM idx_reference i"
            f" WHERE i.type = ? AND {param_is('i.param', codes)} AND {local.sql}"
            f" AND (i.type, i.id) IN (SELECT {inner_alias}.type, {inner_alias}.id"
            f" FROM resources {inner_alias} WHERE +{inner_alias}.type = ? AND +{inner_alias}.deleted = 0"
            f" AND {inner.sql}))",
            [has.source_type, *codes, *local.args, has.source_type, *inner.args],
        )

    # -- values ---------------------------------------------------------------------------

    def value_condition(self, criterion: Criterion, value: Any, column: str) -> Fragment:
        kind = criterion.kind
        if kind == "composite":
            assert isinstance(value, CompositeValue)
            return self._composite(value, column)
        if kind == "reference":
            return self._reference(criterion, value, column)
        if kind == "string":
            return _string(value, column, criterion.modifier)
        if kind == "uri":
            return _uri(value, column, criterion.modifier)
        return self._simple(kind, value, column)

    def _simple(self, kind: str, value: Any, c: str) -> Fragment:
        if isinstance(value, TokenValue):
            return _token(value, c)
        if isinstance(value, TextValue):
            return Fragment(
                f"({c}text >= ? AND {c}text < ?) OR {c}text LIKE ? ESCAPE '\\'",
                [value.text, value.text + "\U0010ffff", "% " + _like(value.text) + "%"],
            )
        if isinstance(value, OfTypeValue):
            return Fragment(
                f"{c}type_system = ? AND {c}type_code = ? AND {c}code = ?",
                [value.type_system, value.type_code, value.value],
            )
        if isinstance(value, CodeSetValue):
            return _code_set(value, c)
        if isinstance(value, StringValue):
            return _string(value, c, None)
        if isinstance(value, PrefixedValue):
            return self._prefixed(kind, value, c)
        if isinstance(value, UriValue):
            return Fragment(f"{c}uri = ?", [value.uri])
        raise Invalid(f"Cannot search {kind} with {value!r}")

    def _prefixed(self, kind: str, value: PrefixedValue, c: str) -> Fragment:
        low, high = value.range.low, value.range.high
        if kind == "date":
            margin = max(DAY_MS, abs(self.now_ms - low) // 10)
            bounds = {"sl": low, "sh": high, "al": low - margin, "ah": high + margin}
            return Fragment(DATE_PREFIXES[value.prefix].format(c=c), [bounds[b] for b in DATE_ARGUMENTS[value.prefix]])
        exact = float(value.value) if value.value is not None else low
        margin = abs(exact) * 0.1
        bounds = {"sl": low, "sh": high, "v": exact, "al": exact - margin, "ah": exact + margin}
        template, arguments = NUMBER_PREFIXES[value.prefix]
        fragment = Fragment(template.format(c=c), [bounds[b] for b in arguments])
        if kind == "quantity" and value.code is not None:
            if value.system is not None:
                fragment.sql += f" AND {c}system = ? AND {c}code = ?"
                fragment.args += [value.system, value.code]
            else:
                fragment.sql += f" AND ({c}code = ? OR {c}unit = ?)"
                fragment.args += [value.code, value.code]
        return fragment

    def _reference(self, criterion: Criterion, value: Any, c: str) -> Fragment:
        if criterion.modifier == "identifier":
            assert isinstance(value, TokenValue)
            return _token(value, c, code_column="identifier_value", system_column="identifier_system")
        assert isinstance(value, ReferenceValue)
        local = value.url is None or (self.base_url and value.url.startswith(self.base_url + "/"))
        if value.id is not None and local:
            if value.resource_type is not None:
                fragment = Fragment(f"{c}target_id = ? AND {c}target_type = ?", [value.id, value.resource_type])
            else:
                types = criterion.target_types
                fragment = Fragment(
                    f"{c}target_id = ? AND {c}target_type IN ({_placeholders(types)})", [value.id, *types]
                )
            local_only = self.local(c)
            return Fragment(f"{fragment.sql} AND {local_only.sql}", fragment.args + local_only.args)
        return Fragment(f"{c}url = ?", [value.url])

    def local(self, c: str) -> Fragment:
        """The reference points into this server: relative, or absolute under the base URL.

        ``http://elsewhere/fhir/Patient/1`` also yields target Patient/1 in the
        index; it must never match, chain to or include the local Patient/1.
        """
        if not self.base_url:
            return Fragment(f"{c}url IS NULL", [])
        prefix = self.base_url + "/"
        return Fragment(f"({c}url IS NULL OR ({c}url >= ? AND {c}url < ?))", [prefix, prefix + "\U0010ffff"])

    def _composite(self, value: CompositeValue, c: str) -> Fragment:
        parts = Fragment()
        conditions = []
        for number, (part, kind) in enumerate(zip(value.parts, value.kinds, strict=True), 1):
            prefix = f"{c}c{number}_"
            if isinstance(part, StringValue):
                fragment = Fragment(
                    f"{prefix}text >= ? AND {prefix}text < ?", [part.normalized, part.normalized + "\U0010ffff"]
                )
            else:
                fragment = self._simple(kind, part, prefix)
            conditions.append(f"({fragment.sql})")
            parts.args += fragment.args
        parts.sql = " AND ".join(conditions)
        return parts


def _string(value: StringValue, c: str, modifier: str | None) -> Fragment:
    """Starts-with ignoring case and accents by default; ``:exact``; ``:contains``."""
    if modifier == "exact":
        return Fragment(f"{c}exact = ?", [value.exact])
    if modifier == "contains":
        return Fragment(f"{c}normalized LIKE ? ESCAPE '\\'", ["%" + _like(value.normalized) + "%"])
    return Fragment(f"{c}normalized >= ? AND {c}normalized < ?", [value.normalized, value.normalized + "\U0010ffff"])


def _uri(value: UriValue, c: str, modifier: str | None) -> Fragment:
    """Exact by default; ``:below`` the value or a path under it, ``:above`` the value or a parent path.

    Paths are compared by segment (search.html#uri): ``http://x.org/a`` is above
    ``http://x.org/a/b`` but not above ``http://x.org/ab``.
    """
    if modifier == "below":
        base = value.uri.rstrip("/")
        return Fragment(f"({c}uri = ? OR ({c}uri >= ? AND {c}uri < ?))", [base, base + "/", base + "/\U0010ffff"])
    if modifier == "above":
        parents = uri_parents(value.uri)
        return Fragment(f"{c}uri IN ({_placeholders(parents)})", parents)
    return Fragment(f"{c}uri = ?", [value.uri])


def uri_parents(uri: str) -> list[str]:
    """``uri`` and every parent path down to its authority, each with and without a trailing slash."""
    scheme = uri.find("://")
    root = uri.find("/", scheme + 3) if scheme >= 0 else -1
    if root < 0 and scheme < 0:
        return [uri]  # a URN has no path
    trimmed = uri.rstrip("/")
    found = [uri, trimmed, trimmed + "/"]
    end = len(trimmed)
    while root >= 0:
        end = trimmed.rfind("/", 0, end)
        if end < root:
            break
        found += [trimmed[:end], trimmed[:end] + "/"]
    return list(dict.fromkeys(found))


# Criteria that usually pin a handful of index rows, in order of preference to drive a query.
DRIVING_CODES = ("_id", "identifier", "patient", "subject")


def _driver(criteria: Sequence[Criterion]) -> int | None:
    """Which criterion drives the query: a reference or identifier one when there is one, else the first."""
    candidates = [
        index
        for index, c in enumerate(criteria)
        if c.chain is None and c.has is None and c.modifier not in ("not", "not-in", "missing")
    ]
    if not candidates:
        return 0 if criteria else None

    def rank(index: int) -> tuple[int, int]:
        c = criteria[index]
        if c.code in DRIVING_CODES:
            return (DRIVING_CODES.index(c.code), index)
        return (len(DRIVING_CODES) + (0 if c.kind == "reference" else 1), index)

    return min(candidates, key=rank)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _token(value: TokenValue, c: str, code_column: str = "code", system_column: str = "system") -> Fragment:
    """``code``, ``system|code``, ``|code`` (no system) and ``system|`` (any code of it).

    Also Reference.identifier for ``:identifier``, in its own columns.
    """
    fragment = Fragment()
    conditions = []
    if value.code is not None:
        conditions.append(f"{c}{code_column} = ?")
        fragment.args.append(value.code)
    if not value.any_system:
        if value.system is None:
            conditions.append(f"{c}{system_column} IS NULL")
        else:
            conditions.append(f"{c}{system_column} = ?")
            fragment.args.append(value.system)
    fragment.sql = " AND ".join(conditions)
    return fragment


def _code_set(value: CodeSetValue, c: str) -> Fragment:
    by_system: dict[str, list[str]] = {}
    for system, code in sorted(value.codes):
        by_system.setdefault(system, []).append(code)
    if not by_system:
        return Fragment("0", [])
    parts, args = [], []
    for system, codes in by_system.items():
        parts.append(f"({c}system = ? AND {c}code IN ({_placeholders(codes)}))")
        args += [system, *codes]
    return Fragment(" OR ".join(parts), args)
