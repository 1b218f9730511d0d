"""What each medication source says, and how sources group into list entries and positions.

A source is a MedicationStatement or MedicationRequest. It is *active* when a
statement is active or intended, or a request active or on-hold; *inactive*
when stopped, completed or not-taken; anything else (on-hold statement,
unknown, draft, cancelled) takes part in no rule.

- An *entry* is one distinct medication of the reconciled List: verified
  sources with the same ingredient(s) and an equivalent route; every source
  without an RxNorm coding is an entry of its own (M7, flagged unverified).
- A *position* is what agreeing sources of one entry say: active sources with
  the same form, strength, total daily dose and interval (M1, merged
  silently); all inactive sources of the entry together (they agree it was
  stopped); any other source alone. Rules compare positions, never sources,
  so sources that agree are implicated together.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from fhir_ccm.coordination import knowledge
from fhir_ccm.coordination.dosage import UNIT, Amount, Regimen, regimen_of
from fhir_ccm.coordination.quantities import format_number
from fhir_ccm.coordination.references import SourceRef, source_ref
from fhir_ccm.coordination.sources import Sources
from fhir_ccm.coordination.unions import Unions

ACTIVITY: dict[tuple[str, str], str] = {
    ("MedicationStatement", "active"): "active",
    ("MedicationStatement", "intended"): "active",
    ("MedicationStatement", "stopped"): "inactive",
    ("MedicationStatement", "completed"): "inactive",
    ("MedicationStatement", "not-taken"): "inactive",
    ("MedicationRequest", "active"): "active",
    ("MedicationRequest", "on-hold"): "active",
    ("MedicationRequest", "stopped"): "inactive",
    ("MedicationRequest", "completed"): "inactive",
}

# A daily dose: per ingredient (or "*" for the whole product), low and high amounts and a unit.
DailyDose = tuple[tuple[str, Fraction, Fraction, str], ...]


@dataclass(frozen=True)
class MedicationUse:
    source: SourceRef
    status: str
    activity: str
    name: str
    verified: bool
    ingredients: tuple[str, ...]  # sorted ingredient ids (RxNorm IN, or rxnorm:<code> when unknown)
    ingredient_names: tuple[str, ...]
    strengths: tuple[tuple[str, Fraction, str], ...]
    route: str | None
    form: tuple[str, ...]
    regimen: Regimen
    daily: DailyDose | None

    @property
    def active(self) -> bool:
        return self.activity == "active"

    def says(self) -> str:
        """What this source says, for a detail text: product, route, status, dose."""
        route = f" ({self.route})" if self.route and self.route.casefold() not in self.name.casefold() else ""
        return f"{self.name}{route}, {self.status}, {describe_dose(self)}"


@dataclass(frozen=True)
class Position:
    entry: str  # the entry key
    uses: tuple[MedicationUse, ...]

    @property
    def first(self) -> MedicationUse:
        return self.uses[0]

    @property
    def active(self) -> bool:
        return self.first.active


@dataclass(frozen=True)
class Entry:
    key: str
    uses: tuple[MedicationUse, ...]

    @property
    def lead(self) -> MedicationUse:
        """The source the List cites: the most recent, an active one among equals, then by key."""
        by_key = sorted(self.uses, key=lambda use: use.source)
        by_activity = sorted(by_key, key=lambda use: not use.active)
        return sorted(by_activity, key=lambda use: use.source.date or "", reverse=True)[0]

    @property
    def verified(self) -> bool:
        return self.uses[0].verified

    @property
    def title(self) -> str:
        first = self.uses[0]
        if not first.verified:
            return first.name
        names = " / ".join(first.ingredient_names)
        return f"{names} ({first.route})" if first.route else names


def view_medication(resource: dict[str, Any], sources: Sources) -> MedicationUse:
    codings, text = _medication_code(resource, sources)
    dosages = resource.get("dosage") if resource["resourceType"] == "MedicationStatement" else None
    if resource["resourceType"] == "MedicationRequest":
        dosages = resource.get("dosageInstruction")
    regimen = regimen_of(dosages)
    status = str(resource.get("status"))
    activity = ACTIVITY.get((resource["resourceType"], status), "other")
    source = source_ref(resource)
    rxnorm = sorted(str(c["code"]) for c in codings if knowledge.is_rxnorm(c))
    display = text or next((str(c["display"]) for c in codings if c.get("display")), None) or source.key
    route = _dosage_route(dosages)
    if not rxnorm:
        identity = (f"unverified:{source.key}",)
        daily = _daily(regimen, (), ())
        return MedicationUse(
            source, status, activity, display, False, identity, (display,), (), route, (), regimen, daily
        )
    product = knowledge.identify(codings, text)
    if product is None:
        identity = (f"rxnorm:{rxnorm[0]}",)
        daily = _daily(regimen, identity, ())
        return MedicationUse(
            source, status, activity, display, True, identity, (display,), (), route, (), regimen, daily
        )
    return MedicationUse(
        source,
        status,
        activity,
        product.name,
        True,
        product.ingredients,
        product.ingredient_names,
        product.strengths,
        route or product.route,
        product.form,
        regimen,
        _daily(regimen, product.ingredients, product.strengths),
    )


def _medication_code(resource: dict[str, Any], sources: Sources) -> tuple[list[dict[str, Any]], str | None]:
    concept = resource.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        reference = resource.get("medicationReference") or {}
        target = reference.get("reference") if isinstance(reference, dict) else None
        medication = None
        if isinstance(target, str) and target.startswith("#"):
            medication = next((c for c in resource.get("contained") or [] if c.get("id") == target[1:]), None)
        elif target:
            medication = sources.resolve(reference)
        concept = (medication or {}).get("code") or {}
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    text = concept.get("text") if isinstance(concept.get("text"), str) else None
    return codings, text


def _dosage_route(dosages: Any) -> str | None:
    for dosage in dosages or []:
        route = dosage.get("route") if isinstance(dosage, dict) else None
        if isinstance(route, dict):
            found = knowledge.route_name(route)
            if found:
                return found
    return None


def _daily(
    regimen: Regimen, ingredients: tuple[str, ...], strengths: tuple[tuple[str, Fraction, str], ...]
) -> DailyDose | None:
    daily = regimen.daily
    if daily is None:
        return None
    if daily.unit in (UNIT, "ml"):
        wanted = "mg" if daily.unit == UNIT else "mg/ml"
        per_unit = [(ingredient, value) for ingredient, value, unit in strengths if unit == wanted]
        if per_unit and len(per_unit) == len(strengths):
            return tuple(sorted((ing, daily.low * value, daily.high * value, "mg") for ing, value in per_unit))
    if daily.unit == "mg" and len(ingredients) == 1:
        return ((ingredients[0], daily.low, daily.high, "mg"),)
    return (("*", daily.low, daily.high, daily.unit),)


# How a count of dose units reads, by the word in the product's dose form.
COUNT_WORDS = (("Tablet", "tablet(s)"), ("Capsule", "capsule(s)"))


def describe_amount(low: Fraction, high: Fraction, unit: str, form: tuple[str, ...] = ()) -> str:
    if unit == UNIT:
        unit = next((word for key, word in COUNT_WORDS if key in " ".join(form)), "unit(s)")
    amount = format_number(low) if low == high else f"{format_number(low)}-{format_number(high)}"
    return f"{amount} {unit}"


def how_often(per_day: Fraction) -> str:
    if per_day == 1:
        return "once a day"
    if per_day == 2:
        return "twice a day"
    if per_day < 1:
        return f"every {format_number(1 / per_day)} days"
    return f"{format_number(per_day)} times a day"


def describe_dose(use: MedicationUse) -> str:
    regimen = use.regimen
    parts = []
    if use.daily:
        names = dict(zip(use.ingredients, use.ingredient_names, strict=False))
        each = [
            (f"{names[ing]} " if len(use.daily) > 1 and ing in names else "")
            + describe_amount(low, high, unit, use.form)
            for ing, low, high, unit in use.daily
        ]
        parts.append(" + ".join(each) + " per day")
    if regimen.per_day:
        dose = f"{_amount(regimen.dose, use.form)} " if regimen.dose else ""
        parts.append(dose + how_often(regimen.per_day))
    if regimen.as_needed:
        parts.append("as needed")
    return ", ".join(parts) if parts else "dose not stated"


def _amount(amount: Amount, form: tuple[str, ...]) -> str:
    return describe_amount(amount.low, amount.high, amount.unit, form)


def entries_and_positions(uses: list[MedicationUse]) -> tuple[list[Entry], list[Position]]:
    """Entries sorted by title, and every position of every entry."""
    routes = _route_classes(uses)
    grouped: dict[str, list[MedicationUse]] = {}
    for use in sorted(uses, key=lambda u: u.source):
        key = "|".join(use.ingredients) + "@" + routes[use.source.key] if use.verified else use.ingredients[0]
        grouped.setdefault(key, []).append(use)
    entries = sorted((Entry(k, tuple(v)) for k, v in grouped.items()), key=lambda e: (e.title.casefold(), e.key))
    positions: list[Position] = []
    for entry in entries:
        agreeing: dict[Any, list[MedicationUse]] = {}
        for use in entry.uses:
            agreeing.setdefault(_position_key(use), []).append(use)
        positions.extend(Position(entry.key, tuple(members)) for members in agreeing.values())
    return entries, positions


def _position_key(use: MedicationUse) -> Any:
    if use.activity == "active" and use.verified:
        return ("active", use.form, use.strengths, use.daily, use.regimen.per_day)
    if use.activity == "inactive" and use.verified:
        return ("inactive",)
    return ("alone", use.source.key)


def _route_classes(uses: list[MedicationUse]) -> dict[str, str]:
    """Each source's route class: routes the drug table calls equivalent are one class.

    Equivalence is closed transitively, so an unspecified "parenteral" source joins subcutaneous and
    intravenous sources of the same ingredients into one entry.
    """
    routes = sorted({use.route or "" for use in uses})
    unions = Unions(routes)
    for index, first in enumerate(routes):
        for second in routes[index + 1 :]:
            if first and second and knowledge.routes_equivalent(first, second):
                unions.join(first, second)
    return {use.source.key: unions.find(use.route or "") for use in uses}
