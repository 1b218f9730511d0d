"""The engine's one door to the drug table (``drugs``): products as the rules need them.

Everything the rules ask about drugs goes through here, in the engine's terms:
ingredient ids (RxCUIs) and exact strengths in ``mg`` (or ``mg/ml``), so the
rules never handle the table's own types.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from fhir_ccm.coordination import drugs

RXNORM = drugs.RXNORM_SYSTEM
RXNORM_SYSTEMS = frozenset({RXNORM, RXNORM + "/", "urn:oid:2.16.840.1.113883.6.88"})

# RxNorm strength units the dose arithmetic understands, as (engine unit, factor).
STRENGTH_UNITS: dict[str, tuple[str, Fraction]] = {
    "MG": ("mg", Fraction(1)),
    "MCG": ("mg", Fraction(1, 1000)),
    "UG": ("mg", Fraction(1, 1000)),
    "GM": ("mg", Fraction(1000)),
    "G": ("mg", Fraction(1000)),
    "MG/ML": ("mg/ml", Fraction(1)),
    "MCG/ML": ("mg/ml", Fraction(1, 1000)),
}


@dataclass(frozen=True)
class ProductFacts:
    """A product as the rules compare it: brand and generic of one clinical drug give equal facts."""

    name: str
    ingredients: tuple[str, ...]  # RxCUIs, sorted
    ingredient_names: tuple[str, ...]  # aligned with ingredients
    strengths: tuple[tuple[str, Fraction, str], ...]  # (RxCUI, value, unit), sorted
    route: str
    form: tuple[str, ...]  # quantity, release, dose form: read together, "24 HR Extended Release Oral Tablet"


def is_rxnorm(coding: dict[str, Any]) -> bool:
    return str(coding.get("system") or "").strip() in RXNORM_SYSTEMS and bool(coding.get("code"))


def identify(codings: list[dict[str, Any]], text: str | None) -> ProductFacts | None:
    product = drugs.identify(codings, text)
    if product is None:
        return None
    strengths = []
    for strength in product.ingredients:
        unit, factor = STRENGTH_UNITS.get(strength.unit.upper(), (strength.unit.lower(), Fraction(1)))
        strengths.append((strength.ingredient_rxcui, Fraction(strength.value) * factor, unit))
    ingredients = tuple(sorted(product.ingredient_rxcuis))
    names = tuple(ingredient_name(rxcui) for rxcui in ingredients)
    form = tuple(part for part in (product.quantity, product.release, product.dose_form) if part)
    return ProductFacts(product.name, ingredients, names, tuple(sorted(strengths)), product.route, form)


def ingredient_name(rxcui: str) -> str:
    ingredient = drugs.ingredient_by_rxcui(rxcui)
    return ingredient.name if ingredient else f"RxNorm {rxcui}"


def route_name(concept: dict[str, Any]) -> str | None:
    """The canonical route of a Dosage.route: a known code or display first, else its text."""
    written = []
    for coding in concept.get("coding") or []:
        for value in (coding.get("code"), coding.get("display")) if isinstance(coding, dict) else ():
            if isinstance(value, str) and value.strip():
                route = drugs.normalize_route(value)
                if route != " ".join(value.lower().split()):
                    return route
                written.append(value)
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        written.insert(0, text)
    return drugs.normalize_route(written[0]) if written else None


def routes_equivalent(first: str, second: str) -> bool:
    return drugs.routes_equivalent(first, second)


def same_class(first: str, second: str) -> str | None:
    """The name of the therapeutic class (ATC 4th level) two ingredients share, or None."""
    a, b = drugs.ingredient_by_rxcui(first), drugs.ingredient_by_rxcui(second)
    if a is None or b is None or a.rxcui == b.rxcui or not drugs.same_class(a, b):
        return None
    return a.class_name or a.atc_class


def listed_pair(first: str, second: str) -> str | None:
    """Why two ingredients should not be combined, when the table lists them, else None."""
    a, b = drugs.ingredient_by_rxcui(first), drugs.ingredient_by_rxcui(second)
    if a is None or b is None:
        return None
    return drugs.listed_pair_reason(a, b)
