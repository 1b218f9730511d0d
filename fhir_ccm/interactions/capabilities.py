"""capabilities: the CapabilityStatement (http://hl7.org/fhir/R4/http.html#capabilities).

Built from what the server really serves: the HTTP layer passes the
interactions its route table implements, the formats it reads and writes and
the patch formats it applies, so the statement cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_ccm import __version__
from fhir_ccm.definitions import FHIR_VERSION, resource_types
from fhir_ccm.interactions import Context, Result
from fhir_ccm.interactions.resource_types import unwritable_types

WRITE_INTERACTIONS = frozenset({"create", "update", "patch"})
SOFTWARE_NAME = "fhir-ccm"


def capabilities(
    context: Context,
    type_interactions: Iterable[str],
    system_interactions: Iterable[str],
    formats: Iterable[str],
    patch_formats: Iterable[str],
    started: str,
) -> Result:
    type_interactions = list(type_interactions)
    unwritable = set(unwritable_types())
    resources = []
    for resource_type in sorted(resource_types()):
        codes = [
            code for code in type_interactions if resource_type not in unwritable or code not in WRITE_INTERACTIONS
        ]
        entry: dict[str, Any] = {
            "type": resource_type,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
            "interaction": [{"code": code} for code in codes],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": False,
            "conditionalRead": "not-supported",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
        }
        if resource_type in unwritable:
            entry["documentation"] = (
                "R4-only type without a structural model: it can be read, but create, update and patch"
                " answer 501 until the definition-driven validator covers it."
            )
        resources.append(entry)
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started,
        "publisher": SOFTWARE_NAME,
        "kind": "instance",
        "software": {"name": SOFTWARE_NAME, "version": __version__},
        "implementation": {"description": "FHIR R4 server for chronic care management", "url": context.base_url},
        "fhirVersion": FHIR_VERSION,
        "format": list(formats),
        "patchFormat": list(patch_formats),
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": [{"code": code} for code in system_interactions],
            }
        ],
    }
    return Result(200, resource=statement)
