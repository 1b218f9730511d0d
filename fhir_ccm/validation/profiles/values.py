"""FHIRPath values: typed items, equality, ordering and date/time precision.

An *item* is ``(value, type, node)``: the JSON value (dict, str, bool, int,
Decimal), its type name (a FHIR type such as ``"Reference"`` or ``"code"``, a
``"System.*"`` type for literals and computed values, ``None`` when unknown)
and the node where its children are described (``definitions.elements``
``properties(node)``; ``None`` for primitives and untyped values).

Dates and times compare by FHIRPath's precision rule: ``@2025-01 < @2025-01-15``
is neither true nor false but empty (``None`` here).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

Item = tuple[Any, str | None, str | None]

TRUE: Item = (True, "System.Boolean", None)
FALSE: Item = (False, "System.Boolean", None)
UCUM = "http://unitsofmeasure.org"

STRING_TYPES = frozenset(
    {"string", "code", "id", "uri", "url", "canonical", "markdown", "oid", "uuid", "base64Binary", "xhtml"}
    | {"System.String"}
)
INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "System.Integer"})
DECIMAL_TYPES = frozenset({"decimal", "System.Decimal"})
BOOLEAN_TYPES = frozenset({"boolean", "System.Boolean"})
DATE_TYPES = frozenset({"date", "System.Date"})
DATETIME_TYPES = frozenset({"dateTime", "instant", "System.DateTime"})
TIME_TYPES = frozenset({"time", "System.Time"})
TEMPORAL_TYPES = DATE_TYPES | DATETIME_TYPES | TIME_TYPES
QUANTITY_TYPES = frozenset({"Quantity", "Age", "Count", "Distance", "Duration", "Money", "System.Quantity"})
PRIMITIVE_TYPES = (
    STRING_TYPES | INTEGER_TYPES | DECIMAL_TYPES | BOOLEAN_TYPES | TEMPORAL_TYPES | frozenset({"date", "time"})
)

# The System type each FHIR primitive is seen as (FHIRPath §"Models").
SYSTEM_TYPE_OF = {
    **{name: "System.String" for name in STRING_TYPES},
    **{name: "System.Integer" for name in INTEGER_TYPES},
    **{name: "System.Decimal" for name in DECIMAL_TYPES},
    **{name: "System.Boolean" for name in BOOLEAN_TYPES},
    **{name: "System.Date" for name in DATE_TYPES},
    **{name: "System.DateTime" for name in DATETIME_TYPES},
    **{name: "System.Time" for name in TIME_TYPES},
    "System.Quantity": "System.Quantity",
}


class EvaluationError(Exception):
    """The expression cannot be evaluated on this input (e.g. a collection where one value is needed)."""


def a(noun: str) -> str:
    """``a Patient``, ``an Organization``: for messages."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def boolean(value: bool) -> Item:
    return TRUE if value else FALSE


def literal(value: Any) -> Item:
    """An item for a computed Python value."""
    if isinstance(value, bool):
        return boolean(value)
    if isinstance(value, int):
        return (value, "System.Integer", None)
    if isinstance(value, Decimal):
        return (value, "System.Decimal", None)
    return (value, "System.String", None)


def to_boolean(collection: list[Item]) -> bool | None:
    """FHIRPath singleton evaluation of a collection as a Boolean (``None`` for empty)."""
    if not collection:
        return None
    if len(collection) > 1:
        raise EvaluationError("a single Boolean was expected, found a collection")
    value = collection[0][0]
    if value is True or value is False:
        return value
    return True


def singleton(collection: list[Item]) -> Item | None:
    if not collection:
        return None
    if len(collection) > 1:
        raise EvaluationError("a single value was expected, found a collection")
    return collection[0]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, Decimal, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- dates and times

_DATE_TIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?T?"
)
_TIME = re.compile(r"T?(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?")


@lru_cache(maxsize=4096)
def temporal(value: str, type_name: str | None) -> tuple[Any, ...] | None:
    """The components of a date, dateTime or time, normalised to UTC; None if unparsable.

    The tuple has as many components as the value has precision (year ... second,
    with the seconds as a Decimal including any fraction); a time starts with a
    marker so that it never compares with a date.
    """
    if type_name in TIME_TYPES:
        match = _TIME.fullmatch(value)
        if not match:
            return None
        hour, minute, second, fraction = match.groups()
        parts: list[Any] = ["T", int(hour)]
        if minute is not None:
            parts.append(int(minute))
        if second is not None:
            parts.append(Decimal(second + "." + (fraction or "0")))
        return tuple(parts)
    match = _DATE_TIME.fullmatch(value.lstrip("@"))
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    numbers = [int(part) for part in (year, month, day, hour, minute) if part is not None]
    if zone and hour is not None and minute is not None:
        try:
            moment = datetime(*numbers[:5])  # type: ignore[arg-type]
        except ValueError:
            return None
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        numbers = [moment.year, moment.month, moment.day, moment.hour, moment.minute]
    parts = list(numbers)
    if second is not None:
        parts.append(Decimal(second + "." + (fraction or "0")))
    return tuple(parts)


def compare_temporal(left: tuple[Any, ...], right: tuple[Any, ...]) -> int | None:
    """-1, 0 or 1; None when the values have different precision and agree as far as both go."""
    for a, b in zip(left, right, strict=False):
        if type(a) is not type(b) and not (is_number(a) and is_number(b)):
            return None
        if a != b:
            return -1 if a < b else 1
    return 0 if len(left) == len(right) else None


# --------------------------------------------------------------------------- equality and order


def _is_temporal(item: Item) -> bool:
    return item[1] in TEMPORAL_TYPES and isinstance(item[0], str)


def _is_quantity(item: Item) -> bool:
    return item[1] in QUANTITY_TYPES and isinstance(item[0], dict)


def _quantity_unit(value: dict[str, Any]) -> tuple[Any, Any]:
    return (value.get("system"), value.get("code") or value.get("unit"))


def _quantity_values(left: Item, right: Item) -> tuple[Any, Any] | None:
    """The two numbers of comparable quantities (same unit), else None."""
    a, b = left[0], right[0]
    if _quantity_unit(a)[1] != _quantity_unit(b)[1] or a.get("value") is None or b.get("value") is None:
        return None
    return a["value"], b["value"]


def deep_equal(left: Any, right: Any) -> bool:
    """JSON equality where numbers compare by value (``2.50`` equals ``2.5``)."""
    if isinstance(left, dict):
        return (
            isinstance(right, dict)
            and left.keys() == right.keys()
            and all(deep_equal(value, right[key]) for key, value in left.items())
        )
    if isinstance(left, list):
        return (
            isinstance(right, list)
            and len(left) == len(right)
            and all(deep_equal(a, b) for a, b in zip(left, right, strict=True))
        )
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if is_number(left) and is_number(right):
        return Decimal(str(left)) == Decimal(str(right))
    return bool(left == right)


def equal(left: Item, right: Item) -> bool | None:
    """FHIRPath ``=`` on two items; None when it cannot be decided (precision)."""
    if _is_temporal(left) and _is_temporal(right):
        a, b = temporal(left[0], left[1]), temporal(right[0], right[1])
        if a is None or b is None:
            return left[0] == right[0]
        result = compare_temporal(a, b)
        return None if result is None else result == 0
    if _is_quantity(left) and _is_quantity(right):
        values = _quantity_values(left, right)
        return None if values is None else deep_equal(values[0], values[1])
    return deep_equal(left[0], right[0])


def equivalent(left: Item, right: Item) -> bool:
    """FHIRPath ``~``: case- and whitespace-insensitive strings, precision-tolerant dates."""
    a, b = left[0], right[0]
    if isinstance(a, str) and isinstance(b, str):
        if _is_temporal(left) and _is_temporal(right):
            return equal(left, right) is True
        return " ".join(a.lower().split()) == " ".join(b.lower().split())
    return equal(left, right) is True


def compare(left: Item, right: Item) -> int | None:
    """-1, 0 or 1 for FHIRPath ordering; None when undecidable; raises when not comparable."""
    a, b = left[0], right[0]
    if _is_temporal(left) or _is_temporal(right):
        ta = temporal(a, left[1] if left[1] in TEMPORAL_TYPES else right[1]) if isinstance(a, str) else None
        tb = temporal(b, right[1] if right[1] in TEMPORAL_TYPES else left[1]) if isinstance(b, str) else None
        if ta is None or tb is None:
            raise EvaluationError(f"cannot compare {a!r} with {b!r}")
        return compare_temporal(ta, tb)
    if _is_quantity(left) and _is_quantity(right):
        values = _quantity_values(left, right)
        if values is None:
            return None
        a, b = values
    if is_number(a) and is_number(b):
        da, db = Decimal(str(a)), Decimal(str(b))
        return (da > db) - (da < db)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    raise EvaluationError(f"cannot compare {a!r} with {b!r}")


def to_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return Decimal(1 if value else 0)
    if is_number(value):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def to_string(item: Item) -> str | None:
    value = item[0]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, Decimal)):
        return str(value)
    if _is_quantity(item):
        unit = value.get("code") or value.get("unit") or ""
        return f"{value.get('value')} '{unit}'"
    return None


def pattern_matches(actual: Any, pattern: Any) -> bool:
    """ElementDefinition.pattern[x]: every property of the pattern is in the value with the same content.

    Arrays match when each pattern entry matches some entry of the value.
    """
    if isinstance(pattern, dict):
        if not isinstance(actual, dict):
            return False
        return all(key in actual and pattern_matches(actual[key], value) for key, value in pattern.items())
    if isinstance(pattern, list):
        values = actual if isinstance(actual, list) else [actual]
        return all(any(pattern_matches(value, entry) for value in values) for entry in pattern)
    return deep_equal(actual, pattern)
