r"""Primitive datatypes: JSON representation, lexical regex and value ranges.

The regex of each type is the ``http://hl7.org/fhir/StructureDefinition/regex``
extension on its ``value`` element in the R4 definition (``datatypes.html``),
compiled once with ASCII classes: ``\s`` is space, tab, CR, LF, FF and VT, as in
Java's regexes (HAPI's), not Python's Unicode whitespace, so a string holding a
no-break space is valid. JSON carries ``boolean`` as true/false, the integer
types and ``decimal`` as numbers, everything else as strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from fhir_ccm.definitions import structure_definition

REGEX_EXTENSION = "http://hl7.org/fhir/StructureDefinition/regex"
INT32 = (-(2**31), 2**31 - 1)
RANGES = {"integer": INT32, "positiveInt": (1, INT32[1]), "unsignedInt": (0, INT32[1])}
JSON_KIND = {"boolean": "boolean", "integer": "integer", "positiveInt": "integer", "unsignedInt": "integer"}
JSON_KIND["decimal"] = "decimal"
# The id of a resource is an ``id``, though R4 types Resource.id as System.String.
ID_PATTERN = re.compile(r"[A-Za-z0-9\-\.]{1,64}")
# Control characters other than tab, CR and LF; and half of a UTF-16 pair on its own, which
# JSON's \ud800 escapes can carry but no UTF-8 text can. One scan finds either.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
# The regex of string and markdown refuses only what ``problem`` refuses before any regex: the
# empty string, and the form feed and vertical tab among the control characters. It is not kept.
_ANY_TEXT = r"[ \r\n\t\S]+"


@dataclass(frozen=True)
class PrimitiveSpec:
    code: str
    json_kind: str  # boolean | integer | decimal | string
    regex: re.Pattern[str] | None
    max_length: int | None
    value_range: tuple[int, int] | None


@cache
def primitive_spec(code: str) -> PrimitiveSpec | None:
    """The spec of primitive type ``code``, or None when ``code`` is not a primitive type."""
    sd = structure_definition(code)
    if sd is None or sd.get("kind") != "primitive-type":
        return None
    regex = None
    max_length = None
    for element in sd["snapshot"]["element"]:
        if element["path"] == f"{code}.value":
            max_length = element.get("maxLength")
            for type_entry in element.get("type", []):
                for extension in type_entry.get("extension", []):
                    if extension.get("url") == REGEX_EXTENSION and extension["valueString"] != _ANY_TEXT:
                        regex = re.compile(extension["valueString"], re.ASCII)
    return PrimitiveSpec(code, JSON_KIND.get(code, "string"), regex, max_length, RANGES.get(code))


def problem(spec: PrimitiveSpec, value: Any) -> str | None:
    """Why ``value`` is not a valid ``spec`` value in FHIR JSON, or None."""
    kind = spec.json_kind
    if kind == "string" and type(value) is str:
        return _text_problem(spec, value)
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{_a(spec.code)} must be a JSON true or false"
    if isinstance(value, bool) or (kind != "string" and not isinstance(value, (int, Decimal, float))):
        return f"{_a(spec.code)} must be a JSON {'number' if kind != 'string' else 'string'}"
    if kind == "integer":
        if not isinstance(value, int):
            return f"{_a(spec.code)} must be a whole number, written without a decimal point"
        low, high = spec.value_range or INT32
        if not low <= int(value) <= high:
            return f"The {spec.code} {value} is out of range ({low} to {high})"
        return None
    if kind == "decimal":
        if isinstance(value, Decimal) and not value.is_finite():
            return "A decimal must be a finite number"
        return None
    return f"{_a(spec.code)} must be a JSON string"


def _text_problem(spec: PrimitiveSpec, value: str) -> str | None:
    if value == "":
        return "A primitive value must not be an empty string"
    # Printable ASCII, as most values are, holds no control character and no surrogate: no scan needed.
    if not (value.isascii() and value.isprintable()):
        forbidden = _FORBIDDEN.search(value)
        if forbidden is not None:
            if forbidden.group() < "\ud800":
                return f"The {spec.code} contains control characters"
            return f"The {spec.code} contains an unpaired surrogate, which is not a Unicode character"
    if spec.max_length is not None and len(value) > spec.max_length:
        return f"The {spec.code} is longer than {spec.max_length} characters"
    if spec.regex is not None and not spec.regex.fullmatch(value):
        return f"'{_shorten(value)}' is not a valid {spec.code}"
    if spec.code in ("date", "dateTime", "instant"):
        return _calendar_problem(value, spec.code)
    return None


def _a(code: str) -> str:
    """``A code``, ``An instant``."""
    return f"{'An' if code[0] in 'aeiou' else 'A'} {code}"


def _calendar_problem(value: str, code: str) -> str | None:
    """The regex allows day 31 of every month; a value it accepted starts ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``."""
    if len(value) >= 10:
        try:
            date.fromisoformat(value[:10])
        except ValueError:
            return f"'{value}' is not a valid {code}: there is no such day"
    return None


def _shorten(value: str) -> str:
    return value if len(value) <= 60 else value[:57] + "..."
