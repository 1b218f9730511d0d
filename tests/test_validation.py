"""What is checked before a resource is stored, with the exact issues expected."""

from __future__ import annotations

import pytest

from fhir_ccm.errors import Invalid, Unprocessable
from fhir_ccm.validation import check_issues, validate_resource
from fhir_ccm.validation.valuesets import expand, expand_codes

VALID_CAREPLAN = {
    "resourceType": "CarePlan",
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/p1"},
    "activity": [{"detail": {"kind": "Appointment", "status": "scheduled"}}],
}


def issues_of(resource):
    return {(issue.code, issue.expression[0]) for issue in check_issues(resource)}


def test_valid_careplan_has_no_issues():
    assert check_issues(VALID_CAREPLAN) == []
    validate_resource(VALID_CAREPLAN)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"status": "actve"}, {("code-invalid", "CarePlan.status")}),
        ({"intent": "wish"}, {("code-invalid", "CarePlan.intent")}),
        (
            {"activity": [{"detail": {"kind": "Appointment", "status": "bogus"}}]},
            {("code-invalid", "CarePlan.activity[0].detail.status")},
        ),
        (
            {"activity": [{"detail": {"kind": "Spaceship", "status": "scheduled"}}]},
            {("code-invalid", "CarePlan.activity[0].detail.kind")},
        ),
        ({"unknownThing": 1}, {("structure", "CarePlan.unknownThing")}),
        ({"fhir_comments": ["x"]}, {("structure", "CarePlan.fhir_comments")}),
        ({"subject": {"reference": "Patient/p1", "foo": 1}}, {("structure", "CarePlan.subject.foo")}),
        ({"identifier": []}, {("structure", "CarePlan.identifier")}),
        ({"title": ""}, {("value", "CarePlan.title")}),
        ({"title": None}, {("structure", "CarePlan.title")}),
        ({"period": {}}, {("invariant", "CarePlan.period")}),  # ele-1
        ({"period": [{"start": "2020-01-01"}]}, {("structure", "CarePlan.period")}),
        ({"title": "a\u0000b"}, {("value", "CarePlan.title")}),
        ({"title": "a\u001bb"}, {("value", "CarePlan.title")}),
        ({"created": "2020-13-45"}, {("value", "CarePlan.created")}),
        ({"_status": {"extension": [{"url": "http://x", "valueCode": "y"}]}}, set()),
        ({"_status": {"foo": 1}}, {("structure", "CarePlan.status.foo")}),
        ({"_title": {"id": "a"}}, {("invariant", "CarePlan.title")}),  # ele-1: an id is no value
        ({"_subject": {"id": "a"}}, {("structure", "CarePlan._subject")}),
        ({"text": {"status": "generated", "div": "<div>no namespace</div>"}}, {("invariant", "CarePlan.text.div")}),
        (
            {"text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">&nbsp;</div>'}},
            {("value", "CarePlan.text.div")},
        ),
        (
            {"text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><b>x</div>'}},
            {("value", "CarePlan.text.div")},
        ),
    ],
)
def test_careplan_rules(change, expected):
    assert issues_of({**VALID_CAREPLAN, **change}) == expected


def test_missing_mandatory_elements_are_all_reported():
    resource = {"resourceType": "CarePlan", "activity": [{"detail": {"kind": "Appointment"}}]}
    assert issues_of(resource) >= {
        ("required", "CarePlan.status"),
        ("required", "CarePlan.intent"),
        ("required", "CarePlan.subject"),
        ("required", "CarePlan.activity[0].detail.status"),
    }


def test_required_binding_in_datatypes_and_contained_resources():
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "HbA1c"},
        "valueQuantity": {"value": 7, "comparator": "about"},
        "contained": [{"resourceType": "Patient", "gender": "robot"}],
        "text": {"status": "made-up", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
    }
    assert issues_of(observation) >= {
        ("code-invalid", "Observation.valueQuantity.comparator"),
        ("code-invalid", "Observation.contained[0].gender"),
        ("code-invalid", "Observation.text.status"),
    }


def test_bundle_entries_are_checked():
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Goal", "lifecycleStatus": "someday"}}],
    }
    found = issues_of(bundle)
    assert ("code-invalid", "Bundle.entry[0].resource.lifecycleStatus") in found
    assert ("required", "Bundle.entry[0].resource.description") in found


def test_excessive_nesting_is_refused_not_crashing():
    extension: dict = {"url": "http://example.org/x", "valueString": "leaf"}
    for _ in range(200):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    resource = {**VALID_CAREPLAN, "extension": [extension]}
    with pytest.raises(Invalid) as raised:
        validate_resource(resource)
    assert any("nested" in issue.diagnostics for issue in raised.value.issues)


def test_status_codes_for_structure_and_binding_problems():
    with pytest.raises(Invalid):
        validate_resource({**VALID_CAREPLAN, "bogus": 1})
    with pytest.raises(Unprocessable):
        validate_resource({**VALID_CAREPLAN, "status": "actve"})


def test_value_set_expansion():
    assert expand_codes("http://hl7.org/fhir/ValueSet/request-status") == {
        "draft",
        "active",
        "on-hold",
        "revoked",
        "completed",
        "entered-in-error",
        "unknown",
    }
    assert "CarePlan" in (expand_codes("http://hl7.org/fhir/ValueSet/resource-types") or set())
    # Not enumerable from the vendored definitions: unchecked rather than wrongly refused.
    assert expand("http://hl7.org/fhir/ValueSet/mimetypes") is None
    assert expand("http://example.org/unknown") is None
