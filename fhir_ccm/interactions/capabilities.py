"""capabilities: the CapabilityStatement (http://hl7.org/fhir/R4/http.html#capabilities).

Built from what the server really serves: the HTTP layer passes the
interactions its route table implements, the formats it reads and writes and
the patch formats it applies, so the statement cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from fhir_ccm import __version__
from fhir_ccm.definitions import FHIR_VERSION, compartment_definitions, resource_types
from fhir_ccm.formats.json_format import dump_json
from fhir_ccm.interactions import Context, Result
from fhir_ccm.search.parameters import common_parameters, parameters_for
from fhir_ccm.search.parse import DEFAULT_TOTAL, MODIFIERS, PREFIXED_KINDS

VALIDATE_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"
RECONCILE_DEFINITION = "http://fhir-ccm.org/OperationDefinition/reconcile"
SOFTWARE_NAME = "fhir-ccm"


def modifiers_of(kind: str) -> tuple[str, ...]:
    modifiers = MODIFIERS.get(kind, ())
    return (*modifiers, "[type]") if kind == "reference" else modifiers


def search_param_entries(resource_type: str) -> list[dict[str, Any]]:
    """Every parameter the search code honours for the type, with its modifiers and prefixes."""
    entries = []
    params = parameters_for(resource_type) if resource_type != "Resource" else common_parameters()
    for code, param in sorted(params.items()):
        modifiers = modifiers_of(param.type)
        documentation = f"Modifiers: {', '.join(':' + m for m in modifiers)}."
        if param.type in PREFIXED_KINDS:
            documentation += " Prefixes: eq, ne, gt, lt, ge, le, sa, eb, ap."
        if param.type == "reference":
            documentation += " Chaining and _has supported."
        entries.append({"name": code, "definition": param.url, "type": param.type, "documentation": documentation})
    return entries


def include_values(resource_type: str) -> list[str]:
    references = sorted(code for code, p in parameters_for(resource_type).items() if p.type == "reference")
    return ["*", *(f"{resource_type}:{code}" for code in references)]


def revinclude_values(resource_type: str) -> list[str]:
    values = []
    for source in sorted(resource_types()):
        for code, param in sorted(parameters_for(source).items()):
            if param.type == "reference" and (not param.targets or resource_type in param.targets):
                values.append(f"{source}:{code}")
    return values


def compartments() -> list[str]:
    return sorted(d["code"] for d in compartment_definitions())


def capabilities(
    context: Context,
    type_interactions: Iterable[str],
    system_interactions: Iterable[str],
    formats: Iterable[str],
    patch_formats: Iterable[str],
    started: str,
    conditional_delete: str = "single",
) -> Result:
    """The statement; built once per set of arguments (it runs to almost a megabyte)."""
    statement = _statement(
        context.base_url,
        tuple(type_interactions),
        tuple(system_interactions),
        tuple(formats),
        tuple(patch_formats),
        started,
        conditional_delete,
    )
    return Result(200, json=statement)


@cache
def _statement(
    base_url: str,
    type_interactions: tuple[str, ...],
    system_interactions: tuple[str, ...],
    formats: tuple[str, ...],
    patch_formats: tuple[str, ...],
    started: str,
    conditional_delete: str,
) -> str:
    resources = []
    for resource_type in sorted(resource_types()):
        codes = list(type_interactions)
        entry: dict[str, Any] = {
            "type": resource_type,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
            "interaction": [{"code": code} for code in codes],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalDelete": conditional_delete,
        }
        entry["operation"] = [{"name": "validate", "definition": VALIDATE_DEFINITION}]
        if resource_type == "Patient":
            entry["operation"].append({"name": "reconcile", "definition": RECONCILE_DEFINITION})
        if "search-type" in codes:
            entry["searchInclude"] = include_values(resource_type)
            entry["searchRevInclude"] = revinclude_values(resource_type)
            entry["searchParam"] = search_param_entries(resource_type)
        resources.append(entry)
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started,
        "publisher": SOFTWARE_NAME,
        "kind": "instance",
        "software": {"name": SOFTWARE_NAME, "version": __version__},
        "implementation": {
            "description": (
                "FHIR R4 server for chronic care management. Searches report an accurate total by default"
                f" (_total={DEFAULT_TOTAL}); unknown search parameters are refused unless Prefer: handling=lenient."
            ),
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": list(formats),
        "patchFormat": list(patch_formats),
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": [{"code": code} for code in system_interactions],
                "searchParam": [
                    {"name": "_type", "type": "token", "documentation": "Resource types to search (system search)"},
                    *search_param_entries("Resource"),
                ],
                "operation": [{"name": "reconcile", "definition": RECONCILE_DEFINITION}],
                "compartment": [f"http://hl7.org/fhir/CompartmentDefinition/{c}" for c in compartments()],
            }
        ],
    }
    return dump_json(statement)
