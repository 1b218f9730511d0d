"""FHIR XML <-> JSON conversion (fhir_ccm.formats.xml_format)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.definitions import DATA_DIR
from fhir_ccm.errors import Invalid
from fhir_ccm.formats.xml_format import resource_to_xml, xml_to_resource

XHTML = "http://www.w3.org/1999/xhtml"
BIRTH_TIME = "http://hl7.org/fhir/StructureDefinition/patient-birthTime"


def div(body: str) -> str:
    return f'<div xmlns="{XHTML}">{body}</div>'


def round_trip(resource: dict[str, Any], pretty: bool = False) -> dict[str, Any]:
    return xml_to_resource(resource_to_xml(resource, pretty=pretty))


def fhir(body: str, root: str = "Patient") -> bytes:
    return f'<{root} xmlns="http://hl7.org/fhir">{body}</{root}>'.encode()


def invalid(data: bytes) -> Invalid:
    with pytest.raises(Invalid) as caught:
        xml_to_resource(data)
    return caught.value


def expression(error: Invalid) -> tuple[str, ...]:
    return error.issues[0].expression


# --------------------------------------------------------------------------- fixtures

SMALL_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "example",
    "text": {"status": "generated", "div": div("Donald Duck")},
    "active": True,
    "name": [{"use": "official", "family": "Duck", "given": ["Donald"]}],
    "gender": "male",
    "birthDate": "1934-06-09",
    "_birthDate": {"extension": [{"url": BIRTH_TIME, "valueDateTime": "1934-06-09T10:00:00+01:00"}]},
    "managingOrganization": {"reference": "Organization/1"},
}

SMALL_PATIENT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <id value="example"/>
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml">Donald Duck</div>
  </text>
  <active value="true"/>
  <name>
    <use value="official"/>
    <family value="Duck"/>
    <given value="Donald"/>
  </name>
  <gender value="male"/>
  <birthDate value="1934-06-09">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1934-06-09T10:00:00+01:00"/>
    </extension>
  </birthDate>
  <managingOrganization>
    <reference value="Organization/1"/>
  </managingOrganization>
</Patient>"""


def care_plan() -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": "cp1",
        "meta": {"versionId": "3", "lastUpdated": "2024-01-02T03:04:05.678Z", "tag": [{"code": "t"}]},
        "text": {
            "status": "additional",
            "div": div(
                '<p>Plan for <b>weight</b> &amp; diet:</p>\n  <ul><li class="x">walk 2.50 km</li>'
                "<li>eat &lt;less&gt;</li></ul>"
            ),
        },
        "contained": [
            {
                "resourceType": "Condition",
                "id": "p1",
                "clinicalStatus": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
                },
                "code": {"text": "obesity"},
                "subject": {"reference": "Patient/example", "display": "Peter James Chalmers"},
            },
            {
                "resourceType": "Goal",
                "id": "g1",
                "lifecycleStatus": "active",
                "description": {"text": "target weight 160 lbs"},
                "subject": {"reference": "Patient/example"},
                "target": [
                    {"measure": {"text": "weight"}, "detailQuantity": {"value": Decimal("72.50"), "unit": "kg"}}
                ],
            },
        ],
        "extension": [{"url": "http://example.org/ext/priority", "valueInteger": 3}],
        "identifier": [{"value": "12345"}],
        "instantiatesCanonical": ["http://example.org/PlanDefinition/a", "http://example.org/PlanDefinition/b"],
        "_instantiatesCanonical": [
            None,
            {"id": "ic2", "extension": [{"url": "http://example.org/ext/note", "valueString": "second"}]},
        ],
        "status": "active",
        "_status": {"extension": [{"url": "http://example.org/ext/since", "valueDate": "2023"}]},
        "intent": "plan",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "698360004", "display": "Diabetes"}]}],
        "subject": {"reference": "Patient/example", "display": "Peter James Chalmers"},
        "period": {"end": "2024-06-01"},
        "addresses": [{"reference": "#p1", "display": "obesity"}],
        "goal": [{"reference": "#g1"}],
        "activity": [
            {
                "id": "a1",
                "outcomeReference": [{"reference": "Procedure/p1"}],
                "progress": [{"time": "2024-02-01", "text": 'Line one\nline "two" <&> \u00e9\u20ac\t end'}],
                "detail": {
                    "kind": "ServiceRequest",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3141-9"}]},
                    "status": "completed",
                    "_status": {"id": "st"},
                    "doNotPerform": False,
                    "scheduledTiming": {
                        "repeat": {
                            "frequency": 1,
                            "period": Decimal("2.50"),
                            "periodUnit": "d",
                            "dayOfWeek": ["mon", "fri"],
                        }
                    },
                    "performer": [{"reference": "Practitioner/example"}],
                    "dailyAmount": {
                        "value": Decimal("2.50"),
                        "unit": "mg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mg",
                    },
                    "quantity": {"value": Decimal("0.0000001")},
                    "description": "walk",
                },
            },
            {"reference": {"reference": "ServiceRequest/1"}},
        ],
        "note": [{"authorString": "Dr. X", "text": "# Heading\n\n* markdown & <stuff>"}],
    }


def bundle() -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": "b1",
        "type": "transaction-response",
        "link": [{"relation": "self", "url": "http://example.org/fhir"}],
        "entry": [
            {
                "fullUrl": "http://example.org/fhir/Patient/example",
                "resource": copy.deepcopy(SMALL_PATIENT),
                "response": {"status": "201 Created", "location": "Patient/example/_history/1", "etag": 'W/"1"'},
            },
            {
                "response": {
                    "status": "400 Bad Request",
                    "outcome": {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "invalid", "expression": ["Patient.birthDate"]}],
                    },
                }
            },
            {"fullUrl": "urn:uuid:1", "resource": care_plan(), "search": {"mode": "match", "score": Decimal("1.0")}},
        ],
    }


def parameters() -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "count", "valueInteger": 10},
            {"name": "ratio", "valueDecimal": Decimal("2.50")},
            {"name": "flag", "valueBoolean": True},
            {"name": "patient", "resource": copy.deepcopy(SMALL_PATIENT)},
            {"name": "nested", "part": [{"name": "a", "valueString": "x"}, {"name": "b", "part": [{"name": "c"}]}]},
        ],
    }


# --------------------------------------------------------------------------- JSON -> XML


def test_small_patient_matches_expected_xml() -> None:
    assert resource_to_xml(SMALL_PATIENT, pretty=True).decode("utf-8") == SMALL_PATIENT_XML


def test_compact_output_has_no_whitespace_between_elements() -> None:
    expected = "".join(line.strip() for line in SMALL_PATIENT_XML.splitlines()[1:])
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n'
    assert resource_to_xml(SMALL_PATIENT).decode("utf-8") == declaration + expected


def test_elements_follow_definition_order_not_json_order() -> None:
    reversed_patient = dict(reversed(list(SMALL_PATIENT.items())))
    assert resource_to_xml(reversed_patient, pretty=True) == resource_to_xml(SMALL_PATIENT, pretty=True)


def test_choice_variants_take_the_choice_element_position() -> None:
    xml = resource_to_xml({"resourceType": "Patient", "address": [{"city": "X"}], "deceasedBoolean": False}).decode()
    assert xml.index("<deceasedBoolean") < xml.index("<address")


def test_id_and_url_are_attributes_and_primitive_id_merges() -> None:
    resource = {
        "resourceType": "Patient",
        "id": "p",
        "name": [{"id": "n1", "family": "F"}],
        "gender": "other",
        "_gender": {"id": "g1", "extension": [{"url": "http://x", "valueCode": "y"}]},
    }
    xml = resource_to_xml(resource).decode()
    assert '<id value="p"/>' in xml  # Resource.id is an element
    assert '<name id="n1"><family value="F"/></name>' in xml
    assert '<gender id="g1" value="other"><extension url="http://x"><valueCode value="y"/></extension></gender>' in xml


def test_contained_resources_are_wrapped() -> None:
    xml = resource_to_xml(care_plan()).decode()
    assert '<contained><Condition><id value="p1"/>' in xml
    assert "<contained><Goal>" in xml


def test_bundle_resources_and_outcome_are_wrapped() -> None:
    xml = resource_to_xml(bundle()).decode()
    assert '<resource><Patient><id value="example"/>' in xml
    assert "<outcome><OperationOutcome><issue>" in xml


def test_narrative_is_embedded_as_xhtml() -> None:
    xml = resource_to_xml(care_plan()).decode()
    assert f'<text><status value="additional"/><div xmlns="{XHTML}"><p>Plan for <b>weight</b> &amp; diet:</p>' in xml


def test_decimals_keep_their_digits() -> None:
    resource = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "a", "valueDecimal": Decimal("2.50")},
            {"name": "b", "valueDecimal": Decimal("0.0000001")},  # Decimal('1E-7'); str() would write an exponent
            {"name": "c", "valueDecimal": Decimal("1E+2")},
            {"name": "d", "valueDecimal": Decimal("-0.10")},
            {"name": "e", "valueDecimal": 3},
        ],
    }
    xml = resource_to_xml(resource).decode()
    for text in ("2.50", "0.0000001", "1E+2", "-0.10", "3"):
        assert f'<valueDecimal value="{text}"/>' in xml
    back = xml_to_resource(xml.encode())
    assert [str(parameter["valueDecimal"]) for parameter in back["parameter"]] == ["2.50", "1E-7", "1E+2", "-0.10", "3"]


def test_pretty_output_leaves_narrative_whitespace_alone() -> None:
    resource = {"resourceType": "Basic", "text": {"status": "generated", "div": div("<p>a</p><p>b</p>")}}
    xml = resource_to_xml(resource, pretty=True).decode()
    assert div("<p>a</p><p>b</p>") in xml


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ({"resourceType": "Patient", "colour": "blue"}, "Unknown property 'colour'"),
        ({"resourceType": "Patient", "_name": [{"id": "x"}]}, "Unknown property '_name'"),
        ({"resourceType": "Patient", "name": {"family": "F"}}, "Patient.name must be an array"),
        ({"resourceType": "Patient", "active": "true"}, "Patient.active has a value of the wrong JSON type"),
        ({"resourceType": "Patient", "multipleBirthInteger": True}, "wrong JSON type"),
        ({"resourceType": "Patient", "name": [{"given": ["a", None]}]}, "Patient.name[0].given[1] has neither"),
        ({"resourceType": "Patient", "name": [{"given": ["a"], "_given": [None, None]}]}, "same length"),
        ({"resourceType": "Patient", "name": [{"id": 5}]}, "Patient.name[0].id must be a string"),
        ({"resourceType": "Patient", "gender": "a\x00b"}, "cannot be represented in XML"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<p>x</p>"}}, "XHTML namespace"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<div"}}, "not well-formed XHTML"),
        ({"resourceType": "Patient", "contained": [{"id": "x"}]}, "unknown or missing resourceType"),
        ({"resourceType": "Nope"}, "unknown or missing resourceType 'Nope'"),
        ({"id": "x"}, "unknown or missing resourceType"),
    ],
)
def test_malformed_json_raises_invalid(resource: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid) as caught:
        resource_to_xml(resource)
    assert message in caught.value.message


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("pretty", [False, True])
@pytest.mark.parametrize("make", [lambda: copy.deepcopy(SMALL_PATIENT), care_plan, bundle, parameters])
def test_round_trip(make: Any, pretty: bool) -> None:
    resource = make()
    assert round_trip(resource, pretty=pretty) == resource


def test_round_trip_keeps_decimal_text_and_json_types() -> None:
    back = round_trip(care_plan())
    detail = back["activity"][0]["detail"]
    assert str(detail["dailyAmount"]["value"]) == "2.50"
    assert str(detail["scheduledTiming"]["repeat"]["period"]) == "2.50"
    assert str(back["contained"][1]["target"][0]["detailQuantity"]["value"]) == "72.50"
    assert detail["scheduledTiming"]["repeat"]["frequency"] == 1
    assert type(detail["scheduledTiming"]["repeat"]["frequency"]) is int
    assert detail["doNotPerform"] is False
    assert next(iter(back)) == "resourceType"
    assert next(iter(back["contained"][0])) == "resourceType"


def test_round_trip_primitive_array_with_partial_extensions() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [
            {
                "given": ["Peter", "James", "Jim"],
                "_given": [None, {"extension": [{"url": "http://x", "valueString": "middle"}]}, {"id": "g3"}],
            },
            {"given": ["Only"]},
        ],
    }
    assert round_trip(patient) == patient


def test_primitive_array_items_without_values() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"given": ["A", None], "_given": [None, {"extension": [{"url": "http://x", "valueBoolean": True}]}]}],
    }
    assert round_trip(patient) == patient
    only_extensions = {"resourceType": "Patient", "name": [{"_given": [{"id": "1"}, {"id": "2"}]}]}
    assert round_trip(only_extensions) == only_extensions


def test_primitive_with_extension_and_no_value() -> None:
    patient = {"resourceType": "Patient", "_birthDate": {"extension": [{"url": BIRTH_TIME, "valueDateTime": "2000"}]}}
    xml = resource_to_xml(patient).decode()
    assert f'<birthDate><extension url="{BIRTH_TIME}">' in xml
    assert xml_to_resource(xml.encode()) == patient


def test_round_trip_special_characters_in_attributes() -> None:
    text = "tab\there\nnew line\r\n\"quotes\" 'apostrophe' <tag> & amp \u2603 \U0001f600"
    patient = {"resourceType": "Patient", "name": [{"text": text}]}
    assert round_trip(patient)["name"][0]["text"] == text


@pytest.mark.parametrize(
    ("file", "ids"),
    [
        ("structure-definitions.ndjson", {"Patient", "CarePlan", "Bundle", "Extension", "elementdefinition-de"}),
        ("value-sets.ndjson", None),
        ("compartment-definitions.ndjson", None),
    ],
)
def test_round_trip_vendored_definitions(file: str, ids: set[str] | None) -> None:
    """The official definitions are large, extension-rich resources: a realistic corpus."""
    with open(Path(DATA_DIR) / file, encoding="utf-8") as handle:
        resources = [json.loads(line, parse_float=Decimal) for line in handle if line.strip()]
    selected = [r for r in resources if ids is None or r["id"] in ids]
    assert selected
    for resource in selected:
        assert round_trip(resource) == resource, resource["id"]


# --------------------------------------------------------------------------- XML -> JSON


def test_reads_spec_style_xml() -> None:
    assert xml_to_resource(SMALL_PATIENT_XML.encode()) == SMALL_PATIENT
    without_declaration = SMALL_PATIENT_XML.split("\n", 1)[1]
    assert xml_to_resource(without_declaration.encode()) == SMALL_PATIENT
    assert xml_to_resource(without_declaration) == SMALL_PATIENT  # str is accepted too


def test_comments_processing_instructions_and_schema_location_are_ignored() -> None:
    data = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet href="x.xsl"?>\n<!-- about -->\n'
        b'<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        b' xsi:schemaLocation="http://hl7.org/fhir ../patient.xsd">\n'
        b'  <!-- the id --><id value="x"/>\n  <active value="false"><!-- c --></active>\n</Patient>\n'
    )
    assert xml_to_resource(data) == {"resourceType": "Patient", "id": "x", "active": False}


def test_xhtml_is_serialized_with_only_the_xhtml_namespace() -> None:
    data = (
        b'<Patient xmlns="http://hl7.org/fhir" xmlns:h="http://www.w3.org/1999/xhtml" xmlns:other="urn:x">'
        b'<text><status value="generated"/><h:div><h:p class="c">Hi <h:b>you</h:b> &amp; &#233;</h:p></h:div>'
        b"</text></Patient>"
    )
    back = xml_to_resource(data)
    assert back["text"]["div"] == div('<p class="c">Hi <b>you</b> &amp; \u00e9</p>')


def test_numbers_and_booleans_get_json_types() -> None:
    data = fhir(
        '<parameter><name value="i"/><valueInteger value="-5"/></parameter>'
        '<parameter><name value="u"/><valueUnsignedInt value="0"/></parameter>'
        '<parameter><name value="p"/><valuePositiveInt value="7"/></parameter>'
        '<parameter><name value="d"/><valueDecimal value="1.000"/></parameter>'
        '<parameter><name value="b"/><valueBoolean value="true"/></parameter>',
        root="Parameters",
    )
    values = [next(v for k, v in p.items() if k != "name") for p in xml_to_resource(data)["parameter"]]
    assert values == [-5, 0, 7, Decimal("1.000"), True]
    assert [type(v) for v in values] == [int, int, int, Decimal, bool]
    assert str(values[3]) == "1.000"


@pytest.mark.parametrize(
    ("body", "root", "message", "where"),
    [
        ('<active value="yes"/>', "Patient", "is not a boolean", "Patient.active"),
        ('<active value="True"/>', "Patient", "is not a boolean", "Patient.active"),
        ('<multipleBirthInteger value="1.5"/>', "Patient", "is not a valid integer", "Patient.multipleBirthInteger"),
        ('<multipleBirthInteger value="9999999999"/>', "Patient", "out of range", "Patient.multipleBirthInteger"),
        ('<valueQuantity><value value="abc"/></valueQuantity>', "Observation", "not a valid decimal", None),
        ('<valueQuantity><value value="NaN"/></valueQuantity>', "Observation", "not a valid decimal", None),
        ('<colour value="blue"/>', "Patient", "Unknown element 'colour'", "Patient.colour"),
        ('<name><nick value="b"/></name>', "Patient", "Unknown element 'nick'", "Patient.name[0].nick"),
        ('<maritalStatus value="M"/>', "Patient", "'value' is not allowed on complex element", "Patient.maritalStatus"),
        ('<name><id value="x"/></name>', "Patient", "must be an XML attribute", "Patient.name[0].id"),
        ('<gender value="male" colour="x"/>', "Patient", "Attribute 'colour' is not allowed", "Patient.gender"),
        ("<birthDate/>", "Patient", "neither a value attribute nor extensions", "Patient.birthDate"),
        ('<gender value="male"/><gender value="female"/>', "Patient", "may occur only once", "Patient.gender"),
        ('<deceasedBoolean value="true"/><deceasedDateTime value="2020"/>', "Patient", "choice 'deceased[x]'", None),
        ("<active>true</active>", "Patient", "Unexpected text 'true'", "Patient.active"),
        ('<id xmlns="urn:other" value="x"/>', "Patient", "namespace 'urn:other'", "Patient.id"),
        ('<text><status value="generated"/><div>x</div></text>', "Patient", "XHTML element", "Patient.text.div"),
        ("<contained/>", "Patient", "exactly one resource element, found 0", "Patient.contained[0]"),
        ("<contained><Nope/></contained>", "Patient", "Unknown resource type 'Nope'", "Patient.contained[0]"),
        ('<birthDate value="2000"><foo/></birthDate>', "Patient", "Unknown element 'foo'", "Patient.birthDate.foo"),
    ],
)
def test_bad_xml_content_raises_invalid(body: str, root: str, message: str, where: str | None) -> None:
    error = invalid(fhir(body, root))
    assert message in error.message
    assert error.status == 400
    if where is not None:
        assert expression(error) == (where,)


def test_errors_name_the_path_deep_inside_the_resource() -> None:
    data = fhir(
        '<status value="active"/><intent value="plan"/><subject><reference value="Patient/1"/></subject>'
        '<activity><detail><status value="completed"/></detail></activity>'
        '<activity><detail><status value="completed"/><doNotPerform value="maybe"/></detail></activity>',
        root="CarePlan",
    )
    error = invalid(data)
    assert expression(error) == ("CarePlan.activity[1].detail.doNotPerform",)
    assert "CarePlan.activity[1].detail.doNotPerform: 'maybe' is not a boolean" in error.message
    error = invalid(fhir('<activity><detail><statuz value="completed"/></detail></activity>', root="CarePlan"))
    assert expression(error) == ("CarePlan.activity[0].detail.statuz",)


def test_errors_inside_contained_resources_name_the_container() -> None:
    error = invalid(fhir('<contained><Patient><active value="1"/></Patient></contained>', root="CarePlan"))
    assert expression(error) == ("CarePlan.contained[0].active",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "Malformed XML"),
        (b"not xml at all", "Malformed XML"),
        (b'<Patient xmlns="http://hl7.org/fhir"><id value="1"></Patient>', "Malformed XML"),
        (b'<Patient xmlns="http://hl7.org/fhir"><id value="1"/>', "Malformed XML"),
        (b'<Patient xmlns="http://hl7.org/fhir"><id value="&nbsp;"/></Patient>', "Malformed XML"),
        (b'<Patient xmlns="http://hl7.org/fhir" a="1" a="2"/>', "Malformed XML"),
        (b'<Patient xmlns="http://hl7.org/fhir"><id value="\xff"/></Patient>', "Malformed XML"),
        ('<Patient xmlns="http://hl7.org/fhir"/>'.encode("utf-16"), "Malformed XML"),
        (b'<Patient><id value="1"/></Patient>', "in no namespace; a resource must be in the FHIR namespace"),
        (b'<Patient xmlns="http://hl7.org/fhir/"/>', "namespace 'http://hl7.org/fhir/'"),
        (b'<f:Patient xmlns:f="urn:hl7-org:v3"/>', "namespace 'urn:hl7-org:v3'"),
        (b'<Person2 xmlns="http://hl7.org/fhir"/>', "Unknown resource type 'Person2'"),
        (b'<Patient xmlns="http://hl7.org/fhir" id="x"/>', "Attribute 'id' is not allowed"),
    ],
)
def test_malformed_documents_raise_invalid(data: bytes, message: str) -> None:
    assert message in invalid(data).message


# --------------------------------------------------------------------------- hostile XML

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Patient [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Patient xmlns="http://hl7.org/fhir"><id value="&lol9;"/><name><text value="&lol9;"/></name></Patient>"""


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-SENTINEL", encoding="utf-8")
    return path


def hostile_documents(secret: Path) -> list[bytes]:
    uri = secret.as_uri()
    patient = '<Patient xmlns="http://hl7.org/fhir">{}</Patient>'
    return [
        BILLION_LAUGHS,
        # external entity in an attribute value and in text
        f'<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "{uri}">]>'.encode() + patient.format('<id value="&xxe;"/>').encode(),
        f'<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "{uri}">]>'.encode()
        + patient.format('<text><status value="generated"/><div xmlns="{XHTML}">&xxe;</div></text>').encode(),
        b'<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        + patient.format('<id value="&xxe;"/>').encode(),
        # external DTD and parameter entities
        f'<!DOCTYPE Patient SYSTEM "{uri}">'.encode() + patient.format("").encode(),
        b'<!DOCTYPE Patient SYSTEM "http://127.0.0.1:9/evil.dtd">' + patient.format("").encode(),
        f'<!DOCTYPE Patient [<!ENTITY % p SYSTEM "{uri}"> %p;]>'.encode() + patient.format("").encode(),
        # a harmless-looking DOCTYPE is refused too
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE Patient>' + patient.format("").encode(),
        # an encoding the DOCTYPE check cannot see through is not read as anything but UTF-8
        ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Patient [<!ENTITY e "x">]>' + patient.format("")).encode(
            "utf-16"
        ),
    ]


def test_hostile_xml_is_refused_without_reading_files(secret_file: Path) -> None:
    for data in hostile_documents(secret_file):
        error = invalid(data)
        assert "TOP-SECRET-SENTINEL" not in error.message
        assert "root:" not in error.message
        assert "DOCTYPE" in error.message or "Malformed XML" in error.message


def test_doctype_is_refused_in_the_narrative_of_json_too(secret_file: Path) -> None:
    narrative = f'<!DOCTYPE div [<!ENTITY x SYSTEM "{secret_file.as_uri()}">]><div xmlns="{XHTML}">&x;</div>'
    with pytest.raises(Invalid) as caught:
        resource_to_xml({"resourceType": "Basic", "text": {"status": "generated", "div": narrative}})
    assert "DOCTYPE" in caught.value.message


def test_parser_itself_never_resolves_external_entities(secret_file: Path) -> None:
    """Defence in depth: even past the DOCTYPE check the parser would not read the file."""
    from lxml import etree

    from fhir_ccm.formats.xml_format import _parser

    data = f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "{secret_file.as_uri()}">]><x>&xxe;</x>'.encode()
    assert b"TOP-SECRET-SENTINEL" not in etree.tostring(etree.fromstring(data, _parser()))
