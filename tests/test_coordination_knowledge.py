"""The engine's view of the drug table (``knowledge``): the contract it relies on from ``drugs``."""

from __future__ import annotations

from fractions import Fraction

from fhir_ccm.coordination import knowledge

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def product(code: str, display: str = ""):
    return knowledge.identify([{"system": RXNORM, "code": code, "display": display}], None)


def test_brand_and_generic_give_the_same_facts_but_their_names():
    generic, brand = product("314076"), product("104377")
    assert generic is not None and brand is not None
    assert (generic.ingredients, generic.strengths, generic.route, generic.form) == (
        brand.ingredients,
        brand.strengths,
        brand.route,
        brand.form,
    )
    assert brand.name.endswith("[Zestril]")


def test_strengths_are_exact_milligrams_per_ingredient():
    combination = product("1656349")
    assert combination is not None
    assert combination.ingredients == ("1656328", "69749")
    assert combination.ingredient_names == ("sacubitril", "valsartan")
    assert combination.strengths == (("1656328", Fraction(49), "mg"), ("69749", Fraction(51), "mg"))
    levothyroxine = product("892246")
    assert levothyroxine is not None and levothyroxine.strengths[0][1:] == (Fraction(1, 10), "mg")


def test_a_product_missing_from_the_table_is_read_from_its_normalized_name():
    parsed = product("000000", "metoprolol tartrate 25 MG Oral Tablet")
    assert parsed is not None and parsed.ingredient_names == ("metoprolol",)


def test_the_form_reads_with_its_release():
    metoprolol = product("866427")
    assert metoprolol is not None and " ".join(metoprolol.form) == "24 HR Extended Release Oral Tablet"


def test_classes_and_listed_pairs_by_ingredient():
    lisinopril, losartan, atorvastatin, simvastatin = "29046", "52175", "83367", "36567"
    assert knowledge.listed_pair(lisinopril, losartan)
    assert knowledge.same_class(lisinopril, losartan) is None
    assert knowledge.same_class(atorvastatin, simvastatin)
    assert knowledge.same_class(atorvastatin, atorvastatin) is None
    assert knowledge.listed_pair("unknown", losartan) is None


def test_routes_from_a_dosage_route():
    snomed = {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}]}
    assert knowledge.route_name(snomed) == "oral"
    assert knowledge.route_name({"text": "PO"}) == "oral"
    assert knowledge.route_name({}) is None
    assert knowledge.routes_equivalent("oral", "by mouth")
    assert not knowledge.routes_equivalent("oral", "subcutaneous")
