"""Goal targets as comparable values: one measure, one canonical unit, an interval.

HbA1c (LOINC 4548-4, 17856-6, 59261-8) is one measure compared in whole
mmol/mol (IFCC = 10.929 x (NGSP % - 2.15), so 7.0 % is 53 mmol/mol); systolic
(8480-6) and diastolic (8462-4) blood pressure are compared in whole mm[Hg],
and the panel 85354-9 stands for both ("130/80" as a string, or a ratio of
systolic to diastolic; a panel measure that also carries a component's code
and a quantity is that component). Any
other measure is its coding, compared in its own unit (or one convertible by
the UCUM table in ``quantities``) without rounding.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from fhir_ccm.coordination.quantities import CONCENTRATIONS, format_number, round_to, to_fraction, unit_of

LOINC = "http://loinc.org"


@dataclass(frozen=True)
class Measure:
    key: str
    name: str
    unit: str
    places: int | None  # reporting precision in decimals; None compares exactly


HBA1C = Measure("hba1c", "HbA1c", "mmol/mol", 0)
SYSTOLIC = Measure("bp-systolic", "systolic blood pressure", "mm[Hg]", 0)
DIASTOLIC = Measure("bp-diastolic", "diastolic blood pressure", "mm[Hg]", 0)

MEASURES: dict[str, Measure] = {
    "4548-4": HBA1C,
    "17856-6": HBA1C,
    "59261-8": HBA1C,
    "8480-6": SYSTOLIC,
    "8462-4": DIASTOLIC,
}
PANELS: dict[str, tuple[Measure, Measure]] = {"85354-9": (SYSTOLIC, DIASTOLIC)}


def _hba1c(value: Fraction, unit: str) -> Fraction | None:
    if unit == "%":
        return Fraction(10929, 1000) * (value - Fraction(215, 100))
    return value if unit == "mmol/mol" else None


def _pressure(value: Fraction, unit: str) -> Fraction | None:
    base, factor = CONCENTRATIONS.get(unit, ("", Fraction(0)))
    return value * factor if base == "mm[Hg]" else None


CONVERTERS: dict[str, Callable[[Fraction, str], Fraction | None]] = {
    HBA1C.key: _hba1c,
    SYSTOLIC.key: _pressure,
    DIASTOLIC.key: _pressure,
}


@dataclass(frozen=True)
class Bound:
    value: Fraction
    inclusive: bool


@dataclass(frozen=True)
class Target:
    """An interval in ``unit`` (either bound may be open-ended), or a ``nominal`` value."""

    unit: str
    low: Bound | None = None
    high: Bound | None = None
    nominal: str | None = None

    def overlaps(self, other: Target) -> bool:
        """Whether some value meets both targets; targets that cannot be compared might."""
        if self.nominal is not None and other.nominal is not None:
            return self.nominal == other.nominal
        if self.nominal is not None or other.nominal is not None or self.unit != other.unit:
            return True
        low = _tighter(self.low, other.low, higher=True)
        high = _tighter(self.high, other.high, higher=False)
        if low is None or high is None:
            return True
        return low.value < high.value or (low.value == high.value and low.inclusive and high.inclusive)

    def disjoint(self, other: Target) -> bool:
        return not self.overlaps(other)

    def intersect(self, other: Target) -> Target:
        if self.nominal is not None or other.nominal is not None or self.unit != other.unit:
            return self
        return Target(
            self.unit, _tighter(self.low, other.low, higher=True), _tighter(self.high, other.high, higher=False)
        )

    def describe(self) -> str:
        if self.nominal is not None:
            return self.nominal
        unit = f" {self.unit}" if self.unit not in ("", "1") else ""
        low, high = self.low, self.high
        if low and high and low == high:
            return f"{format_number(low.value)}{unit}"
        if low and high:
            return f"{format_number(low.value)}-{format_number(high.value)}{unit}"
        if high:
            return f"{'<=' if high.inclusive else '<'} {format_number(high.value)}{unit}"
        if low:
            return f"{'>=' if low.inclusive else '>'} {format_number(low.value)}{unit}"
        return "any value"


def _tighter(a: Bound | None, b: Bound | None, higher: bool) -> Bound | None:
    if a is None or b is None:
        return a or b
    if a.value != b.value:
        return (max if higher else min)((a, b), key=lambda bound: bound.value)
    return Bound(a.value, a.inclusive and b.inclusive)


@dataclass(frozen=True)
class MeasuredTarget:
    measure: Measure
    target: Target
    written: str  # the target as the source wrote it


def measured_targets(target: dict[str, Any]) -> list[MeasuredTarget]:
    """The comparable targets in one Goal.target (two for a blood-pressure panel), or none."""
    measure = target.get("measure")
    codings = [c for c in (measure or {}).get("coding") or [] if isinstance(c, dict)]
    for coding in codings:
        if coding.get("system") == LOINC and coding.get("code") in PANELS:
            panel = _panel(PANELS[coding["code"]], target)
            if panel:
                return panel
    for coding in codings:
        if coding.get("system") == LOINC and coding.get("code") in MEASURES:
            found = _single(MEASURES[coding["code"]], target)
            return [found] if found else []
    coded = next((c for c in codings if isinstance(c.get("system"), str) and isinstance(c.get("code"), str)), None)
    if coded is None:
        return []
    name = coded.get("display") or (measure or {}).get("text") or coded["code"]
    found = _single(Measure(f"{coded['system']}|{coded['code']}", str(name), "", None), target)
    return [found] if found else []


_COMPARATORS = {"<": ("high", False), "<=": ("high", True), ">": ("low", False), ">=": ("low", True)}
_PANEL_TEXT = re.compile(r"^\s*(<=|>=|<|>)?\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*(mm\[Hg\]|mmHg)?\s*$", re.I)


def _single(measure: Measure, target: dict[str, Any]) -> MeasuredTarget | None:
    if isinstance(target.get("detailQuantity"), dict):
        quantity = target["detailQuantity"]
        converted = _convert(measure, to_fraction(quantity.get("value")), quantity)
        if converted is None:
            return None
        unit = _canonical_unit(measure, quantity)
        side = _COMPARATORS.get(str(quantity.get("comparator")))
        bound = Bound(converted, side[1] if side else True)
        low = bound if side is None or side[0] == "low" else None
        high = bound if side is None or side[0] == "high" else None
        written = f"{quantity.get('comparator', '')} {_plain(quantity)}".strip()
        return MeasuredTarget(measure, Target(unit, low, high), written)
    if isinstance(target.get("detailRange"), dict):
        return _range(measure, target["detailRange"])
    if "detailInteger" in target and measure.places is None:
        value = Fraction(int(target["detailInteger"]))
        return MeasuredTarget(measure, Target("1", Bound(value, True), Bound(value, True)), str(value))
    nominal = _nominal(target)
    return MeasuredTarget(measure, Target("", nominal=nominal), nominal) if nominal else None


def _range(measure: Measure, detail: dict[str, Any]) -> MeasuredTarget | None:
    bounds: dict[str, Bound] = {}
    units = set()
    for side in ("low", "high"):
        quantity = detail.get(side)
        if isinstance(quantity, dict):
            converted = _convert(measure, to_fraction(quantity.get("value")), quantity)
            if converted is None:
                return None
            bounds[side] = Bound(converted, True)
            units.add(_canonical_unit(measure, quantity))
    if not bounds or len(units) != 1:
        return None
    written = "-".join(_plain(detail[side]) for side in ("low", "high") if isinstance(detail.get(side), dict))
    return MeasuredTarget(measure, Target(units.pop(), bounds.get("low"), bounds.get("high")), written)


def _panel(measures: tuple[Measure, Measure], target: dict[str, Any]) -> list[MeasuredTarget]:
    values: list[tuple[str | None, dict[str, Any]]] = []
    if isinstance(target.get("detailString"), str):
        match = _PANEL_TEXT.match(target["detailString"])
        if not match:
            return []
        comparator, unit = match.group(1), match.group(4) or "mm[Hg]"
        values = [(comparator, {"value": match.group(n), "code": unit}) for n in (2, 3)]
    elif isinstance(target.get("detailRatio"), dict):
        ratio = target["detailRatio"]
        parts = [ratio.get("numerator"), ratio.get("denominator")]
        if not all(isinstance(p, dict) for p in parts):
            return []
        values = [(p.get("comparator"), p) for p in parts if isinstance(p, dict)]
    found = []
    for measure, (comparator, quantity) in zip(measures, values, strict=False):
        single = _single(
            measure, {"detailQuantity": {**quantity, **({"comparator": comparator} if comparator else {})}}
        )
        if single is None:
            return []
        found.append(single)
    return found


def _convert(measure: Measure, value: Fraction | None, quantity: dict[str, Any]) -> Fraction | None:
    if value is None:
        return None
    unit = unit_of(quantity) or ""
    converter = CONVERTERS.get(measure.key)
    if converter is None:
        dimension = CONCENTRATIONS.get(unit)
        converted: Fraction | None = value * dimension[1] if dimension else value
    else:
        converted = converter(value, unit)
    if converted is None:
        return None
    return round_to(converted, measure.places) if measure.places is not None else converted


def _canonical_unit(measure: Measure, quantity: dict[str, Any]) -> str:
    if measure.unit:
        return measure.unit
    unit = unit_of(quantity) or ""
    return CONCENTRATIONS[unit][0] if unit in CONCENTRATIONS else unit


def _plain(quantity: dict[str, Any]) -> str:
    value = to_fraction(quantity.get("value"))
    shown = str(quantity.get("value")) if value is not None else "?"
    unit = quantity.get("unit") or quantity.get("code") or ""
    return f"{shown} {unit}".strip()


def _nominal(target: dict[str, Any]) -> str | None:
    if isinstance(target.get("detailString"), str) and target["detailString"].strip():
        return " ".join(target["detailString"].lower().split())
    if isinstance(target.get("detailBoolean"), bool):
        return str(target["detailBoolean"]).lower()
    concept = target.get("detailCodeableConcept")
    if isinstance(concept, dict):
        codes = sorted(f"{c.get('system')}|{c.get('code')}" for c in concept.get("coding") or [] if c.get("code"))
        return ", ".join(codes) or (str(concept["text"]).lower() if concept.get("text") else None)
    return None
