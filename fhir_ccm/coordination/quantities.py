"""Numbers and UCUM units, exactly: JSON decimals become ``Fraction`` so no rounding creeps in.

Sources may hold decimals as ``Decimal`` (the server parses JSON that way, so
``2.50`` keeps its precision), ``int``, ``float`` or strings; all compare alike.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

# Mass units (UCUM codes and the usual unit texts) in milligrams.
MASS_IN_MG: dict[str, Fraction] = {
    "kg": Fraction(1_000_000),
    "g": Fraction(1000),
    "mg": Fraction(1),
    "ug": Fraction(1, 1000),
    "mcg": Fraction(1, 1000),
    "µg": Fraction(1, 1000),
    "ng": Fraction(1, 1_000_000),
}

# Volume units in millilitres.
VOLUME_IN_ML: dict[str, Fraction] = {"l": Fraction(1000), "dl": Fraction(100), "ml": Fraction(1)}

# Units a lab target may be written in, to the base unit of their dimension (which names the dimension).
CONCENTRATIONS: dict[str, tuple[str, Fraction]] = {
    "g/l": ("mg/L", Fraction(1000)),
    "g/dl": ("mg/L", Fraction(10000)),
    "mg/dl": ("mg/L", Fraction(10)),
    "mg/l": ("mg/L", Fraction(1)),
    "ug/ml": ("mg/L", Fraction(1)),
    "mol/l": ("mmol/L", Fraction(1000)),
    "mmol/l": ("mmol/L", Fraction(1)),
    "umol/l": ("mmol/L", Fraction(1, 1000)),
    "mm[hg]": ("mm[Hg]", Fraction(1)),
    "mmhg": ("mm[Hg]", Fraction(1)),
    "kpa": ("mm[Hg]", Fraction(750062, 100000)),
}

# Days in each UCUM time unit of Timing.repeat.periodUnit.
DAYS_PER_UNIT: dict[str, Fraction] = {
    "s": Fraction(1, 86400),
    "min": Fraction(1, 1440),
    "h": Fraction(1, 24),
    "d": Fraction(1),
    "wk": Fraction(7),
    "mo": Fraction(487, 16),  # UCUM mean Julian month, 30.4375 days
    "a": Fraction(1461, 4),  # UCUM mean Julian year, 365.25 days
}


def to_fraction(value: Any) -> Fraction | None:
    """An exact number from a JSON number in any of its Python forms, or None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, float):
            return Fraction(Decimal(repr(value)))
        if isinstance(value, int | Decimal):
            return Fraction(value)
        if isinstance(value, str):
            return Fraction(Decimal(value.strip()))
    except (InvalidOperation, ValueError, ArithmeticError):
        return None
    return None


def unit_of(quantity: dict[str, Any]) -> str | None:
    """The UCUM code of a Quantity, else its unit text, lower-cased for lookups."""
    for field in ("code", "unit"):
        value = quantity.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return None


def round_to(value: Fraction, places: int) -> Fraction:
    """Half-up rounding at reporting precision (``places`` decimals)."""
    step = Decimal(1).scaleb(-places)
    decimal = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(step, rounding=ROUND_HALF_UP)
    return Fraction(decimal)


def format_number(value: Fraction) -> str:
    """A number for people: whole numbers bare, others with at most three decimals."""
    if value.denominator == 1:
        return str(value.numerator)
    decimal = Decimal(value.numerator) / Decimal(value.denominator)
    text = format(decimal.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP), "f")
    return text.rstrip("0").rstrip(".")
