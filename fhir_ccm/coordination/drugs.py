"""Drug knowledge for the coordination engine: ingredients, products, classes and listed pairs.

The engine reconciles medication lists from several providers, so it has to know
when two codings name the same medication, the same therapeutic class, or a
combination that duplicates a mechanism. This module answers those questions
from its own table, ``data/drugs.json`` (standard library only, no network):

- **Ingredients** are RxNorm ingredients (TTY ``IN``) with their RxCUI, the
  RxNorm name and the ATC 4th level (chemical subgroup, e.g. ``C09AA`` ACE
  inhibitors, plain; ``C09CA`` angiotensin II receptor blockers, plain).
- **Products** are RxNorm clinical (SCD) and branded (SBD) drugs. The table
  stores only the RxCUI and the normalized RxNorm name; everything else (the
  ingredients, strengths, dose form, route, brand, release) is parsed from that
  name, so a product missing from the table but carrying a normalized RxNorm
  name is understood the same way (``parse_rxnorm_name``).
- **Listed pairs** are combinations of two different ingredients that duplicate
  a mechanism (ACE inhibitor + ARB, two SSRIs, warfarin + a DOAC...), defined
  on groups of ATC classes and/or ingredients, each with a one-line reason.
  Other drug interactions are out of scope.

Brand and generic products of the same clinical drug are the same medication:
compare them by ingredients and strength (``Product.clinical_drug_key``), never
by product code. Salts and precise ingredients resolve to the base ingredient,
as RxNorm does ("metformin hydrochloride" is metformin, RxCUI 6809).

Where each code was verified is recorded in ``data/SOURCES.md``; entries that
could not be confirmed carry ``"verified": false`` in the data.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = [
    "RXNORM_SYSTEM",
    "Ingredient",
    "Product",
    "Strength",
    "all_ingredients",
    "all_products",
    "class_name",
    "identify",
    "ingredient_by_name",
    "ingredient_by_rxcui",
    "listed_pair",
    "listed_pair_reason",
    "listed_pairs_between",
    "normalize_route",
    "parse_rxnorm_name",
    "product_by_rxcui",
    "routes_equivalent",
    "same_class",
]

RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
"""The FHIR code system URI of RxNorm."""

_RXNORM_SYSTEMS = frozenset(
    {
        RXNORM_SYSTEM,
        RXNORM_SYSTEM + "/",
        "urn:oid:2.16.840.1.113883.6.88",
    }
)

DATA_FILE = Path(__file__).resolve().parent / "data" / "drugs.json"
"""Where the drug table lives (loaded once, on first use)."""


@dataclass(frozen=True)
class Ingredient:
    """An RxNorm ingredient (TTY IN) and its therapeutic class.

    ``atc_class`` is the WHO ATC 4th level (chemical subgroup), five characters:
    letter, two digits, two letters, e.g. ``"C09AA"``; ``class_name`` its name.
    """

    rxcui: str
    name: str
    atc_class: str
    class_name: str


@dataclass(frozen=True)
class Strength:
    """The strength of one ingredient in a product, as RxNorm states it.

    ``unit`` is RxNorm's unit, e.g. ``"MG"``, ``"MG/ML"``, ``"UNT/ML"``,
    ``"MG/ACTUAT"``, ``"MG/HR"``. Values compare numerically
    (``Decimal("10") == Decimal("10.0")``).
    """

    ingredient_rxcui: str
    value: Decimal
    unit: str


@dataclass(frozen=True)
class Product:
    """A clinical or branded drug (RxNorm SCD or SBD).

    ``dose_form`` is the RxNorm dose form without its release qualifier
    (``"Oral Tablet"``, ``"Pen Injector"``, ``"Metered Dose Inhaler"``);
    ``release`` carries it and the duration, e.g. ``"24 HR Extended Release"``,
    ``"Extended Release"``, ``"Delayed Release"``, ``"168 HR"`` (transdermal),
    ``"Osmotic 24 HR Extended Release"`` (with RxNorm's qualitative distinction),
    or ``None`` for an immediate-release form. ``route`` is derived from the
    dose form (``"oral"``, ``"subcutaneous"``, ``"parenteral"``,
    ``"inhalation"``, ``"topical"``, ``"transdermal"``...). ``brand`` is the
    bracketed brand of an SBD, ``None`` for a generic. ``quantity`` is the
    quantity factor of a quantified product (``"3 ML"`` pen, ``"200 ACTUAT"``
    inhaler), preceded by its dose indicator if any (``"1 MG Dose 1.5 ML"``),
    ``None`` otherwise. ``rxcui`` is ``None`` for a product that was
    parsed from a name rather than found in the table.
    """

    rxcui: str | None
    name: str
    ingredients: tuple[Strength, ...]
    dose_form: str
    route: str
    brand: str | None
    release: str | None
    quantity: str | None = None

    @property
    def ingredient_rxcuis(self) -> frozenset[str]:
        """The RxCUIs of the product's ingredients."""
        return frozenset(strength.ingredient_rxcui for strength in self.ingredients)

    @property
    def full_dose_form(self) -> str:
        """The RxNorm dose form with its release qualifier, e.g. ``"Extended Release Oral Tablet"``."""
        qualifier = _release_qualifier(self.release)
        return f"{qualifier} {self.dose_form}" if qualifier else self.dose_form

    @property
    def clinical_drug_key(self) -> tuple[Any, ...]:
        """What a branded product shares with its generic: ingredients, strengths, form, release, quantity.

        Two products with equal keys are the same medication whatever their
        RxCUI, name or brand.
        """
        strengths = tuple(sorted((s.ingredient_rxcui, s.value.normalize(), s.unit) for s in self.ingredients))
        return (strengths, self.dose_form, self.release, self.quantity)


# --- Dose forms and routes -------------------------------------------------------------------------

_RELEASE_QUALIFIERS = ("Extended Release", "Delayed Release")

# RxNorm dose forms (without release qualifier) and the route each implies.
_DOSE_FORM_ROUTES: dict[str, str] = {
    # oral
    "Oral Tablet": "oral",
    "Oral Capsule": "oral",
    "Chewable Tablet": "oral",
    "Disintegrating Oral Tablet": "oral",
    "Effervescent Oral Tablet": "oral",
    "Tablet for Oral Suspension": "oral",
    "Oral Solution": "oral",
    "Oral Suspension": "oral",
    "Suspension": "oral",
    "Oral Powder": "oral",
    "Powder for Oral Solution": "oral",
    "Powder for Oral Suspension": "oral",
    "Oral Granules": "oral",
    "Oral Pellet": "oral",
    "Oral Film": "oral",
    "Oral Gel": "oral",
    "Oral Lozenge": "oral",
    "Chewing Gum": "oral",
    "Oral Spray": "oral",
    "Sublingual Tablet": "sublingual",
    "Sublingual Film": "sublingual",
    "Buccal Tablet": "buccal",
    "Buccal Film": "buccal",
    # injection
    "Pen Injector": "subcutaneous",
    "Auto-Injector": "subcutaneous",
    "Cartridge": "subcutaneous",
    "Injectable Solution": "parenteral",
    "Injectable Suspension": "parenteral",
    "Injection": "parenteral",
    "Prefilled Syringe": "parenteral",
    # inhalation
    "Metered Dose Inhaler": "inhalation",
    "Dry Powder Inhaler": "inhalation",
    "Breath Activated Inhaler": "inhalation",
    "Inhalation Solution": "inhalation",
    "Inhalation Suspension": "inhalation",
    "Inhalation Powder": "inhalation",
    "Inhalation Spray": "inhalation",
    "Inhalant Solution": "inhalation",
    "Inhalant Powder": "inhalation",
    # nasal
    "Nasal Spray": "nasal",
    "Metered Dose Nasal Spray": "nasal",
    "Nasal Solution": "nasal",
    "Nasal Inhaler": "nasal",
    "Nasal Gel": "nasal",
    "Nasal Powder": "nasal",
    # skin
    "Transdermal System": "transdermal",
    "Transdermal Patch": "transdermal",
    "Topical Cream": "topical",
    "Topical Ointment": "topical",
    "Topical Gel": "topical",
    "Topical Lotion": "topical",
    "Topical Solution": "topical",
    "Topical Foam": "topical",
    "Topical Spray": "topical",
    "Topical Powder": "topical",
    "Medicated Patch": "topical",
    "Medicated Shampoo": "topical",
    "Medicated Liquid Soap": "topical",
    "Medicated Bar Soap": "topical",
    "Medicated Pad": "topical",
    "Augmented Topical Cream": "topical",
    # eye, ear
    "Ophthalmic Solution": "ophthalmic",
    "Ophthalmic Suspension": "ophthalmic",
    "Ophthalmic Ointment": "ophthalmic",
    "Ophthalmic Gel": "ophthalmic",
    "Ophthalmic Emulsion": "ophthalmic",
    "Otic Solution": "otic",
    "Otic Suspension": "otic",
    # rectal, vaginal, mucosal
    "Rectal Suppository": "rectal",
    "Rectal Cream": "rectal",
    "Rectal Foam": "rectal",
    "Rectal Gel": "rectal",
    "Rectal Ointment": "rectal",
    "Enema": "rectal",
    "Vaginal Cream": "vaginal",
    "Vaginal Tablet": "vaginal",
    "Vaginal Suppository": "vaginal",
    "Vaginal Gel": "vaginal",
    "Vaginal Ring": "vaginal",
    "Vaginal System": "vaginal",
    "Mucosal Spray": "oromucosal",
    "Mouthwash": "oromucosal",
    "Mucous Membrane Topical Solution": "oromucosal",
}
_DOSE_FORMS_BY_KEY = {form.lower(): form for form in _DOSE_FORM_ROUTES}

# Route words as they appear in FHIR dosage routes (text, SNOMED CT displays and codes) -> canonical route.
_ROUTE_SYNONYMS: dict[str, str] = {
    "oral": "oral",
    "po": "oral",
    "p.o.": "oral",
    "by mouth": "oral",
    "orally": "oral",
    "mouth": "oral",
    "oral route": "oral",
    "enteral": "oral",
    "26643006": "oral",
    "sublingual": "sublingual",
    "sl": "sublingual",
    "sublingual route": "sublingual",
    "37839007": "sublingual",
    "buccal": "buccal",
    "buccal route": "buccal",
    "54471007": "buccal",
    "subcutaneous": "subcutaneous",
    "subcutaneous route": "subcutaneous",
    "subcut": "subcutaneous",
    "subq": "subcutaneous",
    "sub-q": "subcutaneous",
    "sq": "subcutaneous",
    "sc": "subcutaneous",
    "s.c.": "subcutaneous",
    "34206005": "subcutaneous",
    "intravenous": "intravenous",
    "intravenous route": "intravenous",
    "iv": "intravenous",
    "i.v.": "intravenous",
    "47625008": "intravenous",
    "intramuscular": "intramuscular",
    "intramuscular route": "intramuscular",
    "im": "intramuscular",
    "i.m.": "intramuscular",
    "78421000": "intramuscular",
    "parenteral": "parenteral",
    "parenteral route": "parenteral",
    "injection": "parenteral",
    "injectable": "parenteral",
    "inhalation": "inhalation",
    "inhaled": "inhalation",
    "inh": "inhalation",
    "inhalation route": "inhalation",
    "respiratory tract route": "inhalation",
    "respiratory": "inhalation",
    "nebulized": "inhalation",
    "447694001": "inhalation",
    "18679011000001101": "inhalation",
    "nasal": "nasal",
    "intranasal": "nasal",
    "nasal route": "nasal",
    "46713006": "nasal",
    "transdermal": "transdermal",
    "transdermal route": "transdermal",
    "td": "transdermal",
    "45890007": "transdermal",
    "topical": "topical",
    "topical route": "topical",
    "cutaneous": "topical",
    "cutaneous route": "topical",
    "6064005": "topical",
    "ophthalmic": "ophthalmic",
    "ophthalmic route": "ophthalmic",
    "54485002": "ophthalmic",
    "otic": "otic",
    "otic route": "otic",
    "10547007": "otic",
    "rectal": "rectal",
    "per rectum": "rectal",
    "pr": "rectal",
    "37161004": "rectal",
    "vaginal": "vaginal",
    "per vagina": "vaginal",
    "16857009": "vaginal",
    "oromucosal": "oromucosal",
    "oromucosal route": "oromucosal",
}
_PARENTERAL_ROUTES = frozenset({"parenteral", "subcutaneous", "intravenous", "intramuscular"})


def normalize_route(route: str) -> str:
    """The canonical route for a route text, SNOMED CT display or code ("PO", "Oral route" -> "oral").

    An unknown route is returned lower-cased with collapsed whitespace.
    """
    key = " ".join(route.strip().lower().split())
    return _ROUTE_SYNONYMS.get(key, key)


def routes_equivalent(a: str, b: str) -> bool:
    """Whether two routes can denote the same route of administration (symmetric).

    Synonyms are equivalent ("PO" and "Oral route"); an unspecified parenteral
    route ("parenteral", "injection") is equivalent to subcutaneous,
    intravenous and intramuscular, which are not equivalent to each other.
    """
    first, second = normalize_route(a), normalize_route(b)
    if not first or not second:
        return False
    if first == second:
        return True
    if "parenteral" in (first, second):
        return first in _PARENTERAL_ROUTES and second in _PARENTERAL_ROUTES
    return False


def _release_qualifier(release: str | None) -> str | None:
    if not release:
        return None
    for qualifier in _RELEASE_QUALIFIERS:
        if release.endswith(qualifier):
            return qualifier
    return None


# --- The table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    name: str
    atc: frozenset[str]
    ingredients: frozenset[str]

    def __contains__(self, ingredient: object) -> bool:
        return isinstance(ingredient, Ingredient) and (
            ingredient.atc_class in self.atc or ingredient.rxcui in self.ingredients
        )


@dataclass(frozen=True)
class _Pair:
    a: _Group
    b: _Group
    reason: str


@dataclass(frozen=True)
class _Tables:
    ingredients: Mapping[str, Ingredient]
    names: Mapping[str, str]
    salt_words: frozenset[str]
    abbreviations: Mapping[str, str]
    classes: Mapping[str, str]
    pairs: tuple[_Pair, ...]
    product_names: Mapping[str, str]


def _name_key(name: str) -> str:
    """A lookup key for an ingredient name: lower case, commas and extra spaces removed."""
    return " ".join(name.lower().replace(",", " ").split())


@functools.cache
def _tables() -> _Tables:
    raw: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    classes: dict[str, str] = dict(raw["classes"])
    ingredients: dict[str, Ingredient] = {}
    names: dict[str, str] = {}
    for entry in raw["ingredients"]:
        atc = entry["atc_class"]
        ingredient = Ingredient(rxcui=entry["rxcui"], name=entry["name"], atc_class=atc, class_name=classes[atc])
        ingredients[ingredient.rxcui] = ingredient
    # Names first, then synonyms and salts, so an ingredient name always wins over another's synonym.
    for ingredient in ingredients.values():
        names[_name_key(ingredient.name)] = ingredient.rxcui
    for entry in raw["ingredients"]:
        for alias in [*entry.get("synonyms", []), *entry.get("salts", [])]:
            names.setdefault(_name_key(alias), entry["rxcui"])
    groups = {
        key: _Group(
            name=key,
            atc=frozenset(value.get("atc", [])),
            ingredients=frozenset(value.get("ingredients", [])),
        )
        for key, value in raw["groups"].items()
    }
    pairs = tuple(_Pair(groups[p["a"]], groups[p["b"]], p["reason"]) for p in raw["listed_pairs"])
    return _Tables(
        ingredients=ingredients,
        names=names,
        salt_words=frozenset(word.lower() for word in raw["salt_words"]),
        abbreviations={k.lower(): v.lower() for k, v in raw["abbreviations"].items()},
        classes=classes,
        pairs=pairs,
        product_names={p["rxcui"]: p["name"] for p in raw["products"]},
    )


@functools.cache
def _products() -> dict[str, Product]:
    products: dict[str, Product] = {}
    for rxcui, name in _tables().product_names.items():
        parsed = parse_rxnorm_name(name)
        if parsed is None:
            raise ValueError(f"drugs.json: product {rxcui} has a name the parser does not understand: {name!r}")
        products[rxcui] = dataclasses.replace(parsed, rxcui=rxcui)
    return products


def all_ingredients() -> tuple[Ingredient, ...]:
    """Every ingredient in the table, in the data file's order (by name)."""
    return tuple(_tables().ingredients.values())


def all_products() -> tuple[Product, ...]:
    """Every product (SCD/SBD) in the table."""
    return tuple(_products().values())


def class_name(atc_class: str) -> str | None:
    """The name of an ATC 4th-level class known to the table, e.g. ``"C09AA"`` -> "ACE inhibitors, plain"."""
    return _tables().classes.get(atc_class.upper())


def ingredient_by_rxcui(rxcui: str) -> Ingredient | None:
    """The ingredient with this RxNorm ingredient RxCUI, or ``None``."""
    return _tables().ingredients.get(str(rxcui).strip())


def product_by_rxcui(rxcui: str) -> Product | None:
    """The clinical or branded drug (SCD/SBD) with this RxCUI in the table, or ``None``."""
    return _products().get(str(rxcui).strip())


def ingredient_by_name(name: str) -> Ingredient | None:
    """The ingredient a substance name denotes, case-insensitively, or ``None``.

    Accepts the RxNorm ingredient name, listed synonyms (INN and older RxNorm
    names: "paracetamol", "salbutamol", "NPH insulin, human"), salts and precise
    ingredients ("metformin hydrochloride", "Metformin HCl", "metoprolol
    succinate", "losartan potassium") and, failing those, the name with trailing
    salt words removed ("dabigatran etexilate mesylate" -> dabigatran etexilate).
    """
    tables = _tables()
    words = [tables.abbreviations.get(word, word) for word in _name_key(name).split()]
    while words:
        rxcui = tables.names.get(" ".join(words))
        if rxcui is not None:
            return tables.ingredients[rxcui]
        if len(words) > 1 and words[-1] in tables.salt_words:
            words = words[:-1]
            continue
        return None
    return None


# --- Listed pairs ----------------------------------------------------------------------------------


def same_class(a: Ingredient, b: Ingredient) -> bool:
    """Whether two ingredients share their ATC 4th level (ACE inhibitors C09AA and ARBs C09CA differ)."""
    return a.atc_class == b.atc_class


def listed_pair_reason(a: Ingredient, b: Ingredient) -> str | None:
    """Why two different ingredients form a listed pair (duplicate mechanism), or ``None`` (symmetric).

    The same ingredient twice is not a pair: that is a duplicate medication.
    """
    if a.rxcui == b.rxcui:
        return None
    return _pair_reasons(a, b) if a.rxcui < b.rxcui else _pair_reasons(b, a)


@functools.cache
def _pair_reasons(a: Ingredient, b: Ingredient) -> str | None:
    """The first listed pair two ingredients form; cached, as the engine asks for every pair of medications."""
    for pair in _tables().pairs:
        if (a in pair.a and b in pair.b) or (a in pair.b and b in pair.a):
            return pair.reason
    return None


def listed_pair(a: Ingredient, b: Ingredient) -> bool:
    """Whether two different ingredients form a listed pair, a combination duplicating a mechanism (symmetric).

    Pairs are meant for ingredients of *different* medications: a combination
    product's own ingredients may form one (sacubitril/valsartan holds an ARB
    and the neprilysin inhibitor) without being a duplication; see
    ``listed_pairs_between``.
    """
    return listed_pair_reason(a, b) is not None


def listed_pairs_between(a: Product, b: Product) -> list[tuple[Ingredient, Ingredient, str]]:
    """The listed pairs one ingredient of ``a`` forms with one ingredient of ``b``: (of a, of b, reason).

    An ingredient present in both products is a duplicate medication, not a listed pair.
    """
    found: list[tuple[Ingredient, Ingredient, str]] = []
    for first in a.ingredients:
        for second in b.ingredients:
            ingredient_a = ingredient_by_rxcui(first.ingredient_rxcui)
            ingredient_b = ingredient_by_rxcui(second.ingredient_rxcui)
            if ingredient_a is None or ingredient_b is None:
                continue
            reason = listed_pair_reason(ingredient_a, ingredient_b)
            if reason is not None:
                found.append((ingredient_a, ingredient_b, reason))
    return found


# --- Normalized RxNorm names -----------------------------------------------------------------------

_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
_UNIT = r"(?:[A-Z]+|%)(?:/[A-Z]+)?"
_BRAND = re.compile(r"\s*\[(?P<brand>[^\[\]]+)\]$")
_DOSE_INDICATOR = re.compile(rf"^(?P<dose>{_NUMBER} [A-Z]+(?:, {_NUMBER} [A-Z]+)* Doses?) ")
# RxNorm qualitative distinctions that may open a name ("Abuse-Deterrent 24 HR ...", "Osmotic 24 HR ...").
# They distinguish formulations, so they belong to the release; "Sensor" (a pen with a dose sensor) does not.
_QUALITATIVE = re.compile(r"^(?P<qualitative>Abuse-Deterrent|Biphasic|Matrix Delivery|Once-Daily|Osmotic|Sensor) ")
_DURATION = re.compile(rf"^(?P<duration>{_NUMBER} HR) ")
_QUANTITY = re.compile(rf"^(?P<quantity>{_NUMBER} (?:ML|L|ACTUAT|MG|GM|UNT|CM)) ")
_COMPONENT = re.compile(rf"^(?P<name>\S.*?) (?P<value>{_NUMBER}) (?P<unit>{_UNIT})(?: (?P<rest>.+))?$")


def _split_dose_form(text: str) -> tuple[str, str | None] | None:
    """(dose form, release qualifier) of a trailing RxNorm dose form, or ``None`` when unknown."""
    qualifier: str | None = None
    for candidate in _RELEASE_QUALIFIERS:
        if text.lower().startswith(candidate.lower() + " "):
            qualifier = candidate
            text = text[len(candidate) + 1 :]
            break
    form = _DOSE_FORMS_BY_KEY.get(" ".join(text.lower().split()))
    if form is None:
        return None
    return form, qualifier


def parse_rxnorm_name(name: str) -> Product | None:
    """A product read from a normalized RxNorm SCD or SBD name, with ``rxcui`` ``None``; or ``None``.

    Understands single and multi-ingredient names ("hydrochlorothiazide 12.5 MG /
    lisinopril 10 MG Oral Tablet"), brands ("... [Prinivil]"), durations and
    release ("24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    quantified forms ("3 ML insulin glargine 100 UNT/ML Pen Injector", "200 ACTUAT
    albuterol 0.09 MG/ACTUAT Metered Dose Inhaler") and dose indicators ("1 MG Dose
    1.5 ML semaglutide 1.34 MG/ML Pen Injector"). Ingredient names resolve to
    ingredient RxCUIs through the table (salts included); a name with an unknown
    ingredient or dose form, a pack ("{...} Pack") or free text gives ``None``.
    """
    text = " ".join(str(name).split())
    if not text or text.startswith("{"):
        return None
    brand: str | None = None
    match = _BRAND.search(text)
    if match:
        brand = match.group("brand").strip()
        text = text[: match.start()].rstrip()
    qualitative: list[str] = []
    dose: str | None = None
    duration: str | None = None
    quantity: str | None = None
    changed = True
    while changed:
        changed = False
        if dose is None and (match := _DOSE_INDICATOR.match(text)):
            dose, text, changed = match.group("dose"), text[match.end() :], True
        if match := _QUALITATIVE.match(text):
            if match.group("qualitative") != "Sensor":
                qualitative.append(match.group("qualitative"))
            text, changed = text[match.end() :], True
        if duration is None and (match := _DURATION.match(text)):
            duration, text, changed = match.group("duration"), text[match.end() :], True
        if quantity is None and (match := _QUANTITY.match(text)):
            quantity, text, changed = match.group("quantity"), text[match.end() :], True
    parts = text.split(" / ")
    strengths: list[Strength] = []
    dose_form_text: str | None = None
    for index, part in enumerate(parts):
        component = _COMPONENT.match(part)
        if component is None:
            return None
        rest = component.group("rest")
        last = index == len(parts) - 1
        if (rest is None) == last:
            return None
        ingredient = ingredient_by_name(component.group("name"))
        if ingredient is None:
            return None
        try:
            value = Decimal(component.group("value"))
        except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
            return None
        strengths.append(Strength(ingredient.rxcui, value, component.group("unit")))
        if last:
            dose_form_text = rest
    if dose_form_text is None:
        return None
    split = _split_dose_form(dose_form_text)
    if split is None:
        return None
    dose_form, qualifier = split
    release = " ".join(word for word in (*qualitative, duration, qualifier) if word) or None
    if dose is not None:
        quantity = f"{dose} {quantity}" if quantity else dose
    return Product(
        rxcui=None,
        name=" ".join(str(name).split()),
        ingredients=tuple(strengths),
        dose_form=dose_form,
        route=_DOSE_FORM_ROUTES[dose_form],
        brand=brand,
        release=release,
        quantity=quantity,
    )


# --- FHIR codings ----------------------------------------------------------------------------------


def _rxnorm_codings(coding_list: Iterable[Any]) -> list[Mapping[str, Any]]:
    return [
        coding
        for coding in coding_list or ()
        if isinstance(coding, Mapping) and str(coding.get("system") or "").strip() in _RXNORM_SYSTEMS
    ]


def identify(coding_list: list[dict[str, Any]], text: str | None) -> Product | None:
    """The product a CodeableConcept names, or ``None``.

    ``coding_list`` are the concept's FHIR codings (``system``/``code``/``display``)
    and ``text`` its text. An RxNorm coding whose code is in the table wins (in
    coding order); failing that, the first RxNorm coding whose display parses as
    a normalized RxNorm name; failing that, ``text`` when it is itself a
    normalized RxNorm name. Non-RxNorm codings (NDC, SNOMED CT) are ignored. A
    product found by parsing has ``rxcui`` ``None``.
    """
    codings = _rxnorm_codings(coding_list)
    for coding in codings:
        code = coding.get("code")
        if code is not None:
            product = product_by_rxcui(str(code))
            if product is not None:
                return product
    for coding in codings:
        display = coding.get("display")
        if isinstance(display, str):
            product = parse_rxnorm_name(display)
            if product is not None:
                return product
    if isinstance(text, str):
        return parse_rxnorm_name(text)
    return None
