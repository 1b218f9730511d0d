"""The coordination engine's drug table: ingredients, products, name parsing, classes and listed pairs."""

from __future__ import annotations

import ast
import itertools
import json
import re
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from fhir_ccm.coordination import drugs
from fhir_ccm.coordination.drugs import (
    RXNORM_SYSTEM,
    Ingredient,
    Product,
    Strength,
    identify,
    ingredient_by_name,
    ingredient_by_rxcui,
    listed_pair,
    listed_pair_reason,
    listed_pairs_between,
    parse_rxnorm_name,
    product_by_rxcui,
    routes_equivalent,
    same_class,
)

DATA_DIR = Path(drugs.__file__).resolve().parent / "data"
RAW = json.loads((DATA_DIR / "drugs.json").read_text(encoding="utf-8"))
SOURCES_MD = (DATA_DIR / "SOURCES.md").read_text(encoding="utf-8")
ATC_4TH_LEVEL = re.compile(r"^[A-Z][0-9]{2}[A-Z]{2}$")


def ing(name: str) -> Ingredient:
    found = ingredient_by_name(name)
    assert found is not None, name
    return found


def strengths(product: Product) -> list[tuple[str, Decimal, str]]:
    return [(s.ingredient_rxcui, s.value, s.unit) for s in product.ingredients]


# --- The table ------------------------------------------------------------------------------------


def test_at_least_150_ingredients_with_verified_rxcui_and_atc_class():
    assert len(drugs.all_ingredients()) >= 150
    verified = [i for i in RAW["ingredients"] if i["verified"] and i["atc_verified"]]
    assert len(verified) >= 150


def test_every_ingredient_has_an_atc_4th_level_class_of_the_right_shape():
    for ingredient in drugs.all_ingredients():
        assert ATC_4TH_LEVEL.match(ingredient.atc_class), ingredient
        assert ingredient.class_name, ingredient
        assert drugs.class_name(ingredient.atc_class) == ingredient.class_name
    assert all(ATC_4TH_LEVEL.match(code) for code in RAW["classes"])


def test_rxcuis_and_names_are_unique_and_well_formed():
    rxcuis = [i["rxcui"] for i in RAW["ingredients"]] + [p["rxcui"] for p in RAW["products"]]
    assert all(re.fullmatch(r"[1-9][0-9]*", code) for code in rxcuis)
    assert len(rxcuis) == len(set(rxcuis))
    names = [i["name"].lower() for i in RAW["ingredients"]]
    assert len(names) == len(set(names))


def test_every_code_says_where_it_was_verified():
    source_keys = {"cpic", "hadlock", "ceda", "rxnav_dhimmel", "ssmithm_antihtn"} | {
        "vsac_acei",
        "vsac_bb",
        "vsac_statin",
        "vsac_anticoag",
    }
    for entry in RAW["ingredients"]:
        if entry["verified"]:
            assert entry["sources"], entry
            assert set(entry["sources"]) <= source_keys, entry
        else:
            assert f"**{entry['name']}**" in SOURCES_MD
        if not entry["atc_verified"]:
            assert f"**{entry['name']}**" in SOURCES_MD
        assert f"| {entry['name']} | {entry['rxcui']} |" in SOURCES_MD
    for product in RAW["products"]:
        assert product["verified"] is True
        assert product["sources"]
        for source in product["sources"]:
            assert source in source_keys or re.fullmatch(r"vsac:[0-9.]+", source), product
            assert f"`{source}`" in SOURCES_MD
    for key in source_keys:
        assert f"`{key}`" in SOURCES_MD


def test_the_data_file_is_sorted_with_one_entry_a_line():
    text = (DATA_DIR / "drugs.json").read_text(encoding="utf-8")
    assert text.endswith("}\n")
    names = [i["name"].lower() for i in RAW["ingredients"]]
    assert names == sorted(names)
    products = [(p["name"].lower(), p["rxcui"]) for p in RAW["products"]]
    assert products == sorted(products)
    for entry in RAW["products"][:5] + RAW["ingredients"][:5]:
        assert "    " + json.dumps(entry, ensure_ascii=False) in text


@pytest.mark.parametrize(
    ("rxcui", "name", "atc_class"),
    [
        ("6809", "metformin", "A10BA"),
        ("29046", "lisinopril", "C09AA"),
        ("52175", "losartan", "C09CA"),
        ("6918", "metoprolol", "C07AB"),
        ("83367", "atorvastatin", "C10AA"),
        ("11289", "warfarin", "B01AA"),
        ("1364430", "apixaban", "B01AF"),
        ("325646", "aliskiren", "C09XA"),
        ("1656328", "sacubitril", "C09DX"),
        ("593411", "sitagliptin", "A10BH"),
        ("475968", "liraglutide", "A10BJ"),
        ("1545653", "empagliflozin", "A10BK"),
        ("4603", "furosemide", "C03CA"),
        ("10582", "levothyroxine", "H03AA"),
        ("519", "allopurinol", "M04AA"),
        ("36437", "sertraline", "N06AB"),
        ("69120", "tiotropium", "R03BB"),
        ("5640", "ibuprofen", "M01AE"),
    ],
)
def test_known_verified_ingredients(rxcui, name, atc_class):
    ingredient = ingredient_by_rxcui(rxcui)
    assert ingredient == ingredient_by_name(name)
    assert ingredient is not None and ingredient.name == name and ingredient.atc_class == atc_class
    entry = next(i for i in RAW["ingredients"] if i["rxcui"] == rxcui)
    assert entry["verified"] and entry["atc_verified"]


def test_ace_inhibitors_and_arbs_are_different_classes():
    assert same_class(ing("lisinopril"), ing("enalapril"))
    assert not same_class(ing("lisinopril"), ing("losartan"))
    assert ing("lisinopril").class_name == "ACE inhibitors, plain"


# --- Names, salts and synonyms --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("metformin hydrochloride", "6809"),
        ("Metformin HCl", "6809"),
        ("METFORMIN", "6809"),
        ("losartan potassium", "52175"),
        ("metoprolol succinate", "6918"),
        ("Metoprolol Tartrate", "6918"),
        ("amlodipine besylate", "17767"),
        ("olmesartan medoxomil", "321064"),
        ("levothyroxine sodium", "10582"),
        ("dabigatran etexilate mesylate", "1037042"),
        ("heparin sodium, porcine", "5224"),
        ("fluticasone propionate", "41126"),
        ("isosorbide mononitrate", "6057"),
        ("isosorbide dinitrate", "6058"),
        ("paracetamol", "161"),
        ("acetylsalicylic acid", "1191"),
        ("salbutamol", "435"),
        ("glibenclamide", "4815"),
        ("NPH insulin, human", "253181"),
        ("insulin aspart", "51428"),
        ("  Sertraline   Hydrochloride ", "36437"),
    ],
)
def test_salts_and_synonyms_map_to_the_base_ingredient(name, base):
    found = ingredient_by_name(name)
    assert found is not None and found.rxcui == base


def test_every_listed_salt_and_synonym_resolves_to_its_ingredient():
    for entry in RAW["ingredients"]:
        for alias in entry.get("salts", []) + entry.get("synonyms", []):
            found = ingredient_by_name(alias)
            assert found is not None and found.rxcui == entry["rxcui"], (alias, entry["name"])


@pytest.mark.parametrize(
    "name", ["unobtainium", "", "sodium", "calcium carbonate", "potassium citrate", "hydrochloride", "lisinopril xyz"]
)
def test_unknown_ingredient_names_give_none(name):
    assert ingredient_by_name(name) is None


def test_unknown_codes_give_none():
    assert ingredient_by_rxcui("999999999") is None
    assert product_by_rxcui("999999999") is None
    assert product_by_rxcui("29046") is None  # an ingredient is not a product
    assert ingredient_by_rxcui("314076") is None  # nor a product an ingredient


# --- Parsing normalized RxNorm names --------------------------------------------------------------

PARSE_CASES = [
    # name, [(ingredient rxcui, value, unit)], dose form, route, brand, release, quantity
    ("lisinopril 10 MG Oral Tablet", [("29046", "10", "MG")], "Oral Tablet", "oral", None, None, None),
    ("lisinopril 10 MG Oral Tablet [Prinivil]", [("29046", "10", "MG")], "Oral Tablet", "oral", "Prinivil", None, None),
    (
        "hydrochlorothiazide 12.5 MG / lisinopril 10 MG Oral Tablet",
        [("5487", "12.5", "MG"), ("29046", "10", "MG")],
        "Oral Tablet",
        "oral",
        None,
        None,
        None,
    ),
    (
        "amlodipine 5 MG / hydrochlorothiazide 12.5 MG / olmesartan medoxomil 40 MG Oral Tablet [Tribenzor]",
        [("17767", "5", "MG"), ("5487", "12.5", "MG"), ("321064", "40", "MG")],
        "Oral Tablet",
        "oral",
        "Tribenzor",
        None,
        None,
    ),
    (
        "metformin hydrochloride 500 MG Oral Tablet [Glucophage]",
        [("6809", "500", "MG")],
        "Oral Tablet",
        "oral",
        "Glucophage",
        None,
        None,
    ),
    (
        "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
        [("6809", "500", "MG")],
        "Oral Tablet",
        "oral",
        None,
        "24 HR Extended Release",
        None,
    ),
    (
        "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet [Toprol]",
        [("6918", "100", "MG")],
        "Oral Tablet",
        "oral",
        "Toprol",
        "24 HR Extended Release",
        None,
    ),
    (
        "duloxetine 30 MG Delayed Release Oral Capsule",
        [("72625", "30", "MG")],
        "Oral Capsule",
        "oral",
        None,
        "Delayed Release",
        None,
    ),
    (
        "sacubitril 49 MG / valsartan 51 MG Oral Tablet",
        [("1656328", "49", "MG"), ("69749", "51", "MG")],
        "Oral Tablet",
        "oral",
        None,
        None,
        None,
    ),
    (
        "insulin glargine 100 UNT/ML Injectable Solution",
        [("274783", "100", "UNT/ML")],
        "Injectable Solution",
        "parenteral",
        None,
        None,
        None,
    ),
    (
        "3 ML insulin glargine 100 UNT/ML Pen Injector",
        [("274783", "100", "UNT/ML")],
        "Pen Injector",
        "subcutaneous",
        None,
        None,
        "3 ML",
    ),
    (
        "3 ML insulin aspart, human 100 UNT/ML Pen Injector",
        [("51428", "100", "UNT/ML")],
        "Pen Injector",
        "subcutaneous",
        None,
        None,
        "3 ML",
    ),
    (
        "1 MG Dose 1.5 ML semaglutide 1.34 MG/ML Pen Injector",
        [("1991302", "1.34", "MG/ML")],
        "Pen Injector",
        "subcutaneous",
        None,
        None,
        "1 MG Dose 1.5 ML",
    ),
    (
        "0.5 ML dulaglutide 1.5 MG/ML Auto-Injector",
        [("1551291", "1.5", "MG/ML")],
        "Auto-Injector",
        "subcutaneous",
        None,
        None,
        "0.5 ML",
    ),
    (
        "enoxaparin sodium 100 MG/ML Injectable Solution [Lovenox]",
        [("67108", "100", "MG/ML")],
        "Injectable Solution",
        "parenteral",
        "Lovenox",
        None,
        None,
    ),
    (
        "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
        [("435", "0.09", "MG/ACTUAT")],
        "Metered Dose Inhaler",
        "inhalation",
        None,
        None,
        "200 ACTUAT",
    ),
    (
        "60 ACTUAT fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler [Advair]",
        [("41126", "0.25", "MG/ACTUAT"), ("36117", "0.05", "MG/ACTUAT")],
        "Dry Powder Inhaler",
        "inhalation",
        "Advair",
        None,
        "60 ACTUAT",
    ),
    (
        "albuterol 0.83 MG/ML Inhalation Solution",
        [("435", "0.83", "MG/ML")],
        "Inhalation Solution",
        "inhalation",
        None,
        None,
        None,
    ),
    (
        "168 HR clonidine 0.00417 MG/HR Transdermal System",
        [("2599", "0.00417", "MG/HR")],
        "Transdermal System",
        "transdermal",
        None,
        "168 HR",
        None,
    ),
    (
        "nitroglycerin 0.4 MG Sublingual Tablet",
        [("4917", "0.4", "MG")],
        "Sublingual Tablet",
        "sublingual",
        None,
        None,
        None,
    ),
    ("diclofenac sodium 10 MG/ML Topical Gel", [("3355", "10", "MG/ML")], "Topical Gel", "topical", None, None, None),
    ("potassium chloride 20 MEQ Oral Tablet", [("8591", "20", "MEQ")], "Oral Tablet", "oral", None, None, None),
    (
        "Osmotic 24 HR nifedipine 30 MG Extended Release Oral Tablet",
        [("7417", "30", "MG")],
        "Oral Tablet",
        "oral",
        None,
        "Osmotic 24 HR Extended Release",
        None,
    ),
]


@pytest.mark.parametrize(("name", "expected", "dose_form", "route", "brand", "release", "quantity"), PARSE_CASES)
def test_parse_real_rxnorm_names(name, expected, dose_form, route, brand, release, quantity):
    product = parse_rxnorm_name(name)
    assert product is not None, name
    assert product.rxcui is None
    assert product.name == name
    assert strengths(product) == [(rxcui, Decimal(value), unit) for rxcui, value, unit in expected]
    assert (product.dose_form, product.route, product.brand, product.release, product.quantity) == (
        dose_form,
        route,
        brand,
        release,
        quantity,
    )


def test_parsing_a_tabled_name_gives_the_tabled_product_but_no_rxcui():
    for rxcui in ("314076", "104377", "861007", "860975", "197885", "1653202", "896212", "998671"):
        product = product_by_rxcui(rxcui)
        assert product is not None and product.rxcui == rxcui
        parsed = parse_rxnorm_name(product.name)
        assert parsed is not None
        assert parsed == Product(**{**product.__dict__, "rxcui": None})


def test_every_tabled_product_parses_into_known_ingredients():
    products = drugs.all_products()
    assert len(products) == len(RAW["products"]) >= 500
    tty = {entry["rxcui"]: entry["tty"] for entry in RAW["products"]}
    for product in products:
        assert product.rxcui is not None and product_by_rxcui(product.rxcui) is product
        assert product.ingredients
        assert all(ingredient_by_rxcui(s.ingredient_rxcui) is not None for s in product.ingredients)
        assert (product.brand is not None) == (tty[product.rxcui] == "SBD")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "lisinopril",
        "lisinopril 10 mg tablet daily",
        "Lisinopril 10mg Tablet",
        "unobtainium 10 MG Oral Tablet",
        "lisinopril 10 MG Oral Teapot",
        "lisinopril 10 MG",
        "lisinopril Oral Tablet",
        "hydrochlorothiazide / lisinopril Oral Tablet",
        "hydrochlorothiazide 12.5 MG Oral Tablet / lisinopril 10 MG Oral Tablet",
        "{30 (lisinopril 10 MG Oral Tablet) } Pack",
        "acetaminophen 325 MG / unobtainium 5 MG Oral Tablet",
        "3 ML insulin lispro 25 UNT/ML / insulin lispro protamine, human 75 UNT/ML Pen Injector",
    ],
)
def test_names_that_are_not_understood_give_none(name):
    assert parse_rxnorm_name(name) is None


# --- Brand and generic ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generic", "branded"),
    [
        ("314076", "104377"),  # lisinopril 10 MG Oral Tablet / [Zestril]
        ("309362", "213169"),  # clopidogrel 75 MG Oral Tablet / [Plavix]
        ("1364445", "1364447"),  # apixaban 5 MG Oral Tablet / [Eliquis]
        ("855332", "855336"),  # warfarin sodium 5 MG Oral Tablet / [Jantoven]
        ("866412", "866414"),  # 24 HR metoprolol succinate 100 MG ER / [Toprol]
        ("197885", None),
    ],
)
def test_brand_and_generic_are_the_same_medication(generic, branded):
    scd = product_by_rxcui(generic)
    assert scd is not None and scd.brand is None
    if branded is None:
        sbd = parse_rxnorm_name(scd.name + " [Zestoretic]")
    else:
        sbd = product_by_rxcui(branded)
    assert sbd is not None and sbd.brand
    assert sbd.rxcui != scd.rxcui
    assert sbd.clinical_drug_key == scd.clinical_drug_key
    assert sbd.ingredients == scd.ingredients
    assert sbd.ingredient_rxcuis == scd.ingredient_rxcuis


def test_the_table_holds_many_brand_generic_pairs():
    by_key: dict[tuple, set[bool]] = {}
    for product in drugs.all_products():
        by_key.setdefault(product.clinical_drug_key, set()).add(product.brand is None)
    assert sum(1 for kinds in by_key.values() if kinds == {True, False}) >= 50


def test_different_strength_release_or_form_is_a_different_medication():
    base = product_by_rxcui("861007")  # metformin hydrochloride 500 MG Oral Tablet
    extended = product_by_rxcui("860975")  # 24 HR ... 500 MG Extended Release Oral Tablet
    assert base is not None and extended is not None
    assert base.ingredient_rxcuis == extended.ingredient_rxcuis
    assert base.clinical_drug_key != extended.clinical_drug_key
    assert extended.full_dose_form == "Extended Release Oral Tablet"
    ten = parse_rxnorm_name("lisinopril 10 MG Oral Tablet")
    twenty = parse_rxnorm_name("lisinopril 20 MG Oral Tablet")
    assert ten is not None and twenty is not None and ten.clinical_drug_key != twenty.clinical_drug_key


def test_strength_values_compare_numerically():
    assert Strength("29046", Decimal("10"), "MG") == Strength("29046", Decimal("10.0"), "MG")
    a = parse_rxnorm_name("lisinopril 10 MG Oral Tablet")
    b = parse_rxnorm_name("lisinopril 10.0 MG Oral Tablet")
    assert a is not None and b is not None and a.clinical_drug_key == b.clinical_drug_key


# --- identify() -----------------------------------------------------------------------------------


def test_identify_by_code():
    codings = [
        {"system": "http://hl7.org/fhir/sid/ndc", "code": "00378007001"},
        {"system": RXNORM_SYSTEM, "code": "314076", "display": "lisinopril 10 MG Oral Tablet"},
    ]
    product = identify(codings, "Lisinopril 10mg tab")
    assert product is not None and product.rxcui == "314076"


def test_identify_prefers_a_tabled_code_over_parsing_a_display():
    codings = [
        {"system": RXNORM_SYSTEM, "code": "999999999", "display": "losartan potassium 50 MG Oral Tablet"},
        {"system": RXNORM_SYSTEM, "code": "104377"},
    ]
    product = identify(codings, None)
    assert product is not None and product.rxcui == "104377"


def test_identify_by_display_when_the_code_is_not_in_the_table():
    codings = [{"system": RXNORM_SYSTEM, "code": "206765", "display": "lisinopril 10 MG Oral Tablet [Prinivil]"}]
    product = identify(codings, None)
    assert product is not None
    assert product.rxcui is None
    assert product.brand == "Prinivil"
    assert product.clinical_drug_key == product_by_rxcui("314076").clinical_drug_key


def test_identify_by_text_when_it_is_a_normalized_name():
    product = identify([], "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet")
    assert product is not None and strengths(product) == [("6809", Decimal("500"), "MG")]


@pytest.mark.parametrize(
    ("codings", "text"),
    [
        ([], None),
        ([], "metformin 500mg twice daily"),
        (
            [{"system": "http://hl7.org/fhir/sid/ndc", "code": "314076", "display": "lisinopril 10 MG Oral Tablet"}],
            None,
        ),
        ([{"system": "http://snomed.info/sct", "code": "108966004", "display": "Lisinopril"}], "Lisinopril"),
        ([{"system": RXNORM_SYSTEM, "code": "29046", "display": "lisinopril"}], None),
        ([{"system": RXNORM_SYSTEM}], None),
        (["not a coding", None], None),
    ],
)
def test_identify_gives_none_when_nothing_names_a_product(codings, text):
    assert identify(codings, text) is None


def test_identify_accepts_rxnorm_system_variants():
    for system in (RXNORM_SYSTEM + "/", "urn:oid:2.16.840.1.113883.6.88"):
        product = identify([{"system": system, "code": "314076"}], None)
        assert product is not None and product.rxcui == "314076"


# --- Listed pairs ---------------------------------------------------------------------------------

REQUIRED_PAIRS = [
    ("lisinopril", "losartan"),  # ACE inhibitor + ARB
    ("ramipril", "aliskiren"),  # ACE inhibitor + renin inhibitor
    ("valsartan", "aliskiren"),  # ARB + renin inhibitor
    ("sacubitril", "enalapril"),  # ARNI + ACE inhibitor
    ("sacubitril", "losartan"),  # ARNI + ARB
    ("ibuprofen", "naproxen"),  # two NSAIDs, same class
    ("ibuprofen", "diclofenac"),  # two NSAIDs, M01AE + M01AB
    ("celecoxib", "meloxicam"),  # two NSAIDs, M01AH + M01AC
    ("sertraline", "escitalopram"),  # two SSRIs
    ("fluoxetine", "duloxetine"),  # SSRI + SNRI
    ("warfarin", "apixaban"),  # warfarin + DOAC
    ("rivaroxaban", "dabigatran etexilate"),  # two DOACs
    ("glipizide", "glimepiride"),  # two sulfonylureas
    ("sitagliptin", "semaglutide"),  # DPP-4 inhibitor + GLP-1 RA
    ("atorvastatin", "simvastatin"),  # two statins
    ("metoprolol", "carvedilol"),  # two beta blockers
    ("furosemide", "bumetanide"),  # two loop diuretics
    ("gabapentin", "pregabalin"),
    ("tiotropium", "ipratropium"),
    ("allopurinol", "febuxostat"),
]


@pytest.mark.parametrize(("a", "b"), REQUIRED_PAIRS)
def test_required_listed_pairs(a, b):
    assert listed_pair(ing(a), ing(b))
    assert listed_pair(ing(b), ing(a))
    reason = listed_pair_reason(ing(a), ing(b))
    assert reason and reason == listed_pair_reason(ing(b), ing(a))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("aspirin", "clopidogrel"),  # dual antiplatelet therapy
        ("metformin", "empagliflozin"),
        ("metformin", "glipizide"),
        ("insulin glargine", "insulin lispro"),  # basal + bolus
        ("albuterol", "salmeterol"),  # rescue + maintenance
        ("fluticasone", "salmeterol"),
        ("levothyroxine", "liothyronine"),
        ("amlodipine", "lisinopril"),
        ("hydrochlorothiazide", "lisinopril"),
        ("bupropion", "sertraline"),
        ("atorvastatin", "ezetimibe"),
        ("lisinopril", "lisinopril"),  # the same ingredient is a duplicate, not a pair
    ],
)
def test_combinations_that_are_not_listed(a, b):
    assert not listed_pair(ing(a), ing(b))
    assert listed_pair_reason(ing(a), ing(b)) is None


def test_listed_pairs_are_symmetric_over_the_whole_table():
    ingredients = drugs.all_ingredients()
    count = 0
    for a, b in itertools.combinations(ingredients, 2):
        forward = listed_pair(a, b)
        assert forward == listed_pair(b, a), (a.name, b.name)
        count += forward
    assert count > 100


def test_every_pair_names_known_groups_and_a_reason():
    classes = set(RAW["classes"])
    rxcuis = {i["rxcui"] for i in RAW["ingredients"]}
    for group in RAW["groups"].values():
        assert set(group.get("atc", [])) <= classes
        assert set(group.get("ingredients", [])) <= rxcuis
        assert group.get("atc") or group.get("ingredients")
    assert len(RAW["listed_pairs"]) >= 15
    for pair in RAW["listed_pairs"]:
        assert pair["a"] in RAW["groups"] and pair["b"] in RAW["groups"]
        assert pair["reason"].strip() and "\n" not in pair["reason"]


def test_listed_pairs_between_products():
    entresto = product_by_rxcui("1656349")  # sacubitril 49 MG / valsartan 51 MG Oral Tablet
    lisinopril = product_by_rxcui("314076")
    valsartan_hctz = parse_rxnorm_name("hydrochlorothiazide 12.5 MG / valsartan 80 MG Oral Tablet")
    assert entresto is not None and lisinopril is not None and valsartan_hctz is not None
    found = {(a.name, b.name) for a, b, _ in listed_pairs_between(entresto, lisinopril)}
    assert found == {("sacubitril", "lisinopril"), ("valsartan", "lisinopril")}
    # valsartan in both is a duplicate medication, not a listed pair; sacubitril + valsartan is one
    found = {(a.name, b.name) for a, b, _ in listed_pairs_between(entresto, valsartan_hctz)}
    assert found == {("sacubitril", "valsartan")}


# --- Routes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equivalent"),
    [
        ("oral", "oral", True),
        ("PO", "Oral route", True),
        ("by mouth", "26643006", True),
        ("subcutaneous", "SC", True),
        ("SQ", "Subcutaneous route", True),
        ("parenteral", "subcutaneous", True),
        ("injection", "IV", True),
        ("intravenous", "subcutaneous", False),
        ("IM", "SC", False),
        ("inhalation", "Respiratory tract route", True),
        ("inhaled", "nasal", False),
        ("oral", "sublingual", False),
        ("oral", "subcutaneous", False),
        ("transdermal", "topical", False),
        ("", "oral", False),
        ("gastrostomy", "Gastrostomy", True),
    ],
)
def test_routes_equivalent(a, b, equivalent):
    assert routes_equivalent(a, b) is equivalent
    assert routes_equivalent(b, a) is equivalent


def test_product_routes_come_from_dose_forms():
    assert product_by_rxcui("847230").route == "subcutaneous"  # Pen Injector
    assert product_by_rxcui("896212").route == "inhalation"  # Dry Powder Inhaler
    assert routes_equivalent(product_by_rxcui("311041").route, "SC")


# --- Standard library only ------------------------------------------------------------------------


def test_drugs_module_imports_only_the_standard_library():
    tree = ast.parse(Path(drugs.__file__).read_text(encoding="utf-8"))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            assert node.module is not None
            modules.add(node.module.split(".")[0])
    assert modules
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    assert modules <= allowed, modules - allowed
