"""Total daily dose from a Dosage (http://hl7.org/fhir/R4/dosage.html).

Dose per administration comes from ``doseAndRate`` (``doseQuantity`` or
``doseRange``); administrations per day from ``timing.repeat`` (frequency per
period and periodUnit, else one per ``when``/``timeOfDay`` event) or, failing
that, from the common ``timing.code`` abbreviations. Dosages sharing the lowest
``sequence`` run together and add up; later sequences are later phases and are
not part of today's dose. As-needed dosing has no fixed daily dose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from fhir_ccm.coordination.quantities import DAYS_PER_UNIT, MASS_IN_MG, VOLUME_IN_ML, to_fraction, unit_of
from fhir_ccm.coordination.references import as_object

GTS_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"

# Administrations per day of the v3-GTSAbbreviation timing codes.
TIMING_CODES: dict[str, Fraction] = {
    "QD": Fraction(1),
    "QOD": Fraction(1, 2),
    "BID": Fraction(2),
    "TID": Fraction(3),
    "QID": Fraction(4),
    "Q4H": Fraction(6),
    "Q6H": Fraction(4),
    "Q8H": Fraction(3),
    "Q12H": Fraction(2),
    "AM": Fraction(1),
    "PM": Fraction(1),
    "HS": Fraction(1),
}

UNIT = "{unit}"  # one tablet, capsule... of the product: converted with the product's strength
SNOMED = "http://snomed.info/sct"
# Unit texts, UCUM annotations and SNOMED unit-of-presentation codes meaning one dose unit.
COUNT_UNITS = frozenset(
    {
        "{tbl}",
        "{tablet}",
        "{tablets}",
        "{tab}",
        "tab",
        "tablet",
        "tablets",
        "{capsule}",
        "{cap}",
        "cap",
        "capsule",
        "capsules",
        "{softgel}",
        "softgel",
        "428673006",
        "732936001",
        "732937005",
        "385055001",
        "385049006",
    }
)


@dataclass(frozen=True)
class Amount:
    """A dose, or a range of doses, in one unit (``mg``, ``ml``, ``{unit}`` or any other)."""

    low: Fraction
    high: Fraction
    unit: str

    def times(self, factor: Fraction) -> Amount:
        return Amount(self.low * factor, self.high * factor, self.unit)


@dataclass(frozen=True)
class Regimen:
    """What one source says is taken: per administration, per day, how often."""

    dose: Amount | None
    daily: Amount | None
    per_day: Fraction | None
    as_needed: bool = False


NO_REGIMEN = Regimen(None, None, None)


def regimen_of(dosages: Sequence[dict[str, Any]] | None) -> Regimen:
    current = _current_phase([d for d in dosages or () if isinstance(d, dict)])
    if not current:
        return NO_REGIMEN
    as_needed = any(d.get("asNeededBoolean") is True or "asNeededCodeableConcept" in d for d in current)
    parts = [(_dose(d), _per_day(d.get("timing"))) for d in current]
    if len(parts) == 1:
        dose, per_day = parts[0]
    else:
        dose, per_day = None, _sum([p for _, p in parts])
    if as_needed:
        return Regimen(dose, None, per_day, as_needed=True)
    daily = _sum_amounts([d.times(p) for d, p in parts if d and p]) if all(d and p for d, p in parts) else None
    return Regimen(dose, daily, per_day)


def _current_phase(dosages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not dosages:
        return []
    sequences = [sequence if isinstance(sequence := d.get("sequence"), int) else 0 for d in dosages]
    first = min(sequences)
    return [d for d, s in zip(dosages, sequences, strict=True) if s == first]


def _dose(dosage: dict[str, Any]) -> Amount | None:
    for rate in dosage.get("doseAndRate") or []:
        if not isinstance(rate, dict):
            continue
        if isinstance(rate.get("doseQuantity"), dict):
            return _amount(rate["doseQuantity"], rate["doseQuantity"])
        if isinstance(rate.get("doseRange"), dict):
            low, high = rate["doseRange"].get("low"), rate["doseRange"].get("high")
            if isinstance(low, dict) and isinstance(high, dict):
                return _amount(low, high)
    return None


def _amount(low: dict[str, Any], high: dict[str, Any]) -> Amount | None:
    low_value, high_value = to_fraction(low.get("value")), to_fraction(high.get("value"))
    low_unit, high_unit = normalized_unit(low), normalized_unit(high)
    if low_value is None or high_value is None or low_unit is None or high_unit is None:
        return None
    if low_unit[0] != high_unit[0]:
        return None
    return Amount(low_value * low_unit[1], high_value * high_unit[1], low_unit[0])


def normalized_unit(quantity: dict[str, Any]) -> tuple[str, Fraction] | None:
    """(unit, factor): mass to ``mg``, volume to ``ml``, tablets and capsules to ``{unit}``."""
    unit = unit_of(quantity)
    if unit is None:
        return None
    written = str(quantity.get("code") or quantity.get("unit")).strip()
    if unit in MASS_IN_MG:
        return "mg", MASS_IN_MG[unit]
    if unit in VOLUME_IN_ML:
        return "ml", VOLUME_IN_ML[unit]
    if unit in COUNT_UNITS or unit.rstrip("s") in COUNT_UNITS:
        return UNIT, Fraction(1)
    return written, Fraction(1)


def _per_day(timing: Any) -> Fraction | None:
    if not isinstance(timing, dict):
        return None
    repeat = as_object(timing.get("repeat"))
    frequency = to_fraction(repeat.get("frequency", 1))
    period = to_fraction(repeat.get("period"))
    days = DAYS_PER_UNIT.get(str(repeat.get("periodUnit")))
    if frequency and period and days:
        return frequency / (period * days)
    events = len(repeat.get("when") or []) + len(repeat.get("timeOfDay") or [])
    if events:
        return Fraction(events)
    code = as_object(timing.get("code"))
    for coding in code.get("coding") or []:
        if isinstance(coding, dict) and coding.get("system", GTS_SYSTEM) == GTS_SYSTEM:
            per_day = TIMING_CODES.get(str(coding.get("code")).upper())
            if per_day is not None:
                return per_day
    return None


def _sum(values: list[Fraction | None]) -> Fraction | None:
    known = [value for value in values if value is not None]
    return sum(known, Fraction(0)) if len(known) == len(values) else None


def _sum_amounts(amounts: list[Amount]) -> Amount | None:
    if not amounts or len({a.unit for a in amounts}) != 1:
        return None
    return Amount(
        sum((a.low for a in amounts), Fraction(0)), sum((a.high for a in amounts), Fraction(0)), amounts[0].unit
    )
