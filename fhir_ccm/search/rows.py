"""The index values a resource yields for its search parameters, one dataclass per kind.

Extraction (``extract.py``) turns a resource into these rows at write time; the
store writes them into one table per kind and replaces them on every new
version. Dates are ranges in epoch milliseconds (UTC): ``2026`` covers the
whole year, a Period its start to its end, an open end ``DATE_MAX``.
"""

from __future__ import annotations

from dataclasses import dataclass

DATE_MIN = -62_135_596_800_000  # 0001-01-01T00:00:00Z
DATE_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@dataclass(frozen=True)
class TokenRow:
    """Coding, CodeableConcept, Identifier, ContactPoint, code, boolean, id, string used as token."""

    param: str
    system: str | None
    code: str | None
    text: str | None = None  # normalized display / CodeableConcept.text / Identifier.type.text, for :text
    type_system: str | None = None  # Identifier.type coding, for :of-type
    type_code: str | None = None


# The parts of a HumanName or an Address that yield string rows, and whether each repeats.
STRING_PARTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "HumanName": (("family", False), ("given", True), ("prefix", True), ("suffix", True), ("text", False)),
    "Address": (
        ("line", True),
        ("city", False),
        ("district", False),
        ("state", False),
        ("postalCode", False),
        ("country", False),
        ("text", False),
    ),
}


@dataclass(frozen=True)
class StringRow:
    param: str
    normalized: str  # lower case, accents removed, whitespace collapsed: for the default and :contains
    exact: str  # as written: for :exact


@dataclass(frozen=True)
class DateRow:
    param: str
    low: int  # epoch ms, inclusive
    high: int  # epoch ms, inclusive


@dataclass(frozen=True)
class ReferenceRow:
    param: str
    target_type: str | None  # "Patient" for "Patient/123" or an absolute URL on this server
    target_id: str | None
    version: str | None = None  # from ".../_history/2"
    url: str | None = None  # absolute or canonical references to elsewhere, as written (no version)
    identifier_system: str | None = None  # Reference.identifier, for :identifier
    identifier_value: str | None = None


@dataclass(frozen=True)
class QuantityRow:
    """Quantity, Age, Duration, Money...; a Range gives low..high."""

    param: str
    low: float
    high: float
    system: str | None
    code: str | None
    unit: str | None


@dataclass(frozen=True)
class NumberRow:
    param: str
    low: float
    high: float


@dataclass(frozen=True)
class UriRow:
    param: str
    uri: str


@dataclass(frozen=True)
class CompositeRow:
    """One combination of component values taken from the same element.

    ``components`` holds, per component in order, the row its value yields
    (a TokenRow, QuantityRow, DateRow, StringRow...), so a composite search can
    match each component with the rules of its own kind.
    """

    param: str
    components: tuple[object, ...]


IndexRow = TokenRow | StringRow | DateRow | ReferenceRow | QuantityRow | NumberRow | UriRow | CompositeRow
