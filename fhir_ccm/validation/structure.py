"""Structural and datatype checks by the ``fhir.resources`` R4B models.

R4 and R4B define CarePlan, Goal, MedicationStatement, CareTeam, Patient and
Bundle identically. R4-only types without an R4B model, and the two types R4B
redefined, are checked by the definition-driven validator instead.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_ccm.errors import Issue

# R4 types whose R4B model has other elements (R4B redefined them): their R4B
# model would refuse valid R4 content, so they are treated as having no model.
REDEFINED_IN_R4B = frozenset({"Evidence", "EvidenceVariable"})


@cache
def model_class(resource_type: str) -> Any | None:
    """The R4B model of a type, or ``None`` when R4B has no such type or redefined it."""
    if resource_type in REDEFINED_IN_R4B:
        return None
    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError, ImportError):
        return None


@cache
def has_model(resource_type: str) -> bool:
    """Whether R4B has a model of the type, found without importing it (importing all takes seconds)."""
    if resource_type in REDEFINED_IN_R4B:
        return False
    return importlib.util.find_spec(f"fhir.resources.R4B.{resource_type.lower()}") is not None


def check_structure(resource: dict[str, Any]) -> list[Issue]:
    """Problems the R4B model of the resource's type finds.

    A type without a usable R4B model is checked by the definition-driven
    validator instead (its errors only), so every R4 type can be written.
    """
    model = model_class(resource["resourceType"])
    if model is None:
        from fhir_ccm.validation.profiles import validate

        return [issue for issue in validate(resource) if issue.severity in ("error", "fatal")]
    try:
        model.model_validate(resource)
    except ValidationError as error:
        return [_issue(resource["resourceType"], detail) for detail in error.errors(include_url=False)]
    except (ValueError, TypeError, RecursionError) as error:
        return [Issue("error", "structure", f"The resource is malformed: {error}", (resource["resourceType"],))]
    return []


def _issue(resource_type: str, detail: Any) -> Issue:
    expression = resource_type
    for part in detail.get("loc", ()):
        if isinstance(part, int):
            expression += f"[{part}]"
        elif part not in ("root", "__root__") and not part.startswith("function-"):
            expression += "." + part
    message = str(detail.get("msg", "invalid")).removeprefix("Value error, ")
    code = "structure" if detail.get("type") in ("extra_forbidden", "model_validation_format") else "value"
    return Issue("error", code, message, (expression,))
