"""Where a unified resource came from (http://hl7.org/fhir/R4/provenance.html).

One Provenance per unified resource: ``target`` the resource, ``recorded``
the caller's clock, the server as the assembler agent (with ``onBehalfOf``
when given: US Core requires it when the agent is a Device), and one entity
(role source) per source it was derived from, at the version read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_ccm.coordination.narrative import heading, labelled, narrative
from fhir_ccm.coordination.references import SourceRef

ASSEMBLER = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": "assembler",
            "display": "Assembler",
        }
    ]
}
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
OPERATIONS = {"CREATE": "create", "UPDATE": "revise"}


def provenance(
    provenance_id: str,
    target: str,
    clock: str,
    assembler: dict[str, Any],
    on_behalf_of: dict[str, Any] | None,
    sources: Sequence[SourceRef],
    operation: str,
) -> dict[str, Any]:
    agent: dict[str, Any] = {"type": ASSEMBLER, "who": assembler}
    if on_behalf_of is not None:
        agent["onBehalfOf"] = on_behalf_of
    cited = sorted(set(sources))
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": provenance_id,
        "text": narrative(
            heading("Provenance of ", target),
            labelled(
                [
                    ("Recorded", clock),
                    ("Assembled by", str(assembler.get("display") or assembler.get("reference"))),
                    ("Derived from", "; ".join(source.label() for source in cited) or "no source"),
                ]
            ),
        ),
        "target": [{"reference": target}],
        "recorded": clock,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": operation, "display": OPERATIONS[operation]}]},
        "agent": [agent],
    }
    if cited:
        resource["entity"] = [{"role": "source", "what": source.reference()} for source in cited]
    return resource
