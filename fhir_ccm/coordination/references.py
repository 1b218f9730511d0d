"""References between resources, and who said what when about a source.

A source is named by its key ``Type/id`` everywhere in the engine; the version
(``meta.versionId``) travels beside it so outputs can cite the exact version a
conflict was found in (http://hl7.org/fhir/R4/references.html#versions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Type/id at the end of a relative or absolute reference, optionally versioned.
_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?$")

# Where each source type records when it was said, best first.
DATE_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "MedicationStatement": (("dateAsserted",), ("effectiveDateTime",), ("effectivePeriod", "start")),
    "MedicationRequest": (("authoredOn",),),
    "Goal": (("statusDate",), ("startDate",)),
    "CarePlan": (("created",), ("period", "start")),
    "CareTeam": (("period", "start"),),
    "Condition": (("recordedDate",), ("onsetDateTime",)),
}

# Who said it: the reference whose display (or reference) names the author.
AUTHOR_PATHS: dict[str, tuple[str, ...]] = {
    "MedicationStatement": ("informationSource",),
    "MedicationRequest": ("requester", "recorder"),
    "Goal": ("expressedBy",),
    "CarePlan": ("author",),
    "CareTeam": ("managingOrganization",),
    "Condition": ("asserter", "recorder"),
}


def parse_reference(value: Any) -> tuple[str, str | None] | None:
    """``(Type/id, version)`` of a literal reference, or None for contained, urn: and logical ones."""
    if isinstance(value, dict):
        value = value.get("reference")
    if not isinstance(value, str) or value.startswith(("#", "urn:")):
        return None
    match = _REFERENCE.search(value.split("?", 1)[0])
    if match is None:
        return None
    return f"{match.group(1)}/{match.group(2)}", match.group(3)


def reference_key(value: Any) -> str | None:
    """``Type/id`` of a reference (a dict or a string), or None."""
    parsed = parse_reference(value)
    return parsed[0] if parsed else None


def key_of(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def version_of(resource: dict[str, Any]) -> str | None:
    meta = resource.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return str(version) if version is not None else None


def as_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one: for optional elements."""
    return value if isinstance(value, dict) else {}


def get_path(value: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


@dataclass(frozen=True, order=True)
class SourceRef:
    """One source resource as cited in outputs: key first, so sorting is by key."""

    key: str
    version: str | None = None
    date: str | None = None
    author: str | None = None

    @property
    def resource_type(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def versioned(self) -> str:
        return f"{self.key}/_history/{self.version}" if self.version else self.key

    def reference(self) -> dict[str, str]:
        return {"reference": self.versioned}

    def label(self) -> str:
        """``Type/id (author, date)``: how a detail text names a source."""
        said = ", ".join(part for part in (self.author, self.date) if part)
        return f"{self.key} ({said})" if said else self.key


def source_ref(resource: dict[str, Any]) -> SourceRef:
    resource_type = resource["resourceType"]
    date = next(
        (value for path in DATE_PATHS.get(resource_type, ()) if isinstance(value := get_path(resource, path), str)),
        None,
    )
    if date is None:
        updated = get_path(resource, ("meta", "lastUpdated"))
        date = updated if isinstance(updated, str) else None
    if resource_type == "Practitioner":
        author = person_name(resource)
    else:
        author = next(
            (name for path in AUTHOR_PATHS.get(resource_type, ()) if (name := reference_label(resource.get(path)))),
            None,
        )
    return SourceRef(key_of(resource), version_of(resource), date, author)


def reference_label(value: Any) -> str | None:
    """The display of a reference, else its ``Type/id``."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, dict):
        return None
    display = value.get("display")
    if isinstance(display, str) and display.strip():
        return display.strip()
    return reference_key(value) or (value.get("reference") if isinstance(value.get("reference"), str) else None)


def person_name(resource: dict[str, Any]) -> str | None:
    """A HumanName as text: ``name.text`` or prefix given family suffix (official name first)."""
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    if not names:
        return None
    name = next((n for n in names if n.get("use") == "official"), names[0])
    if isinstance(name.get("text"), str):
        return str(name["text"])
    parts = [*(name.get("prefix") or []), *(name.get("given") or []), name.get("family"), *(name.get("suffix") or [])]
    text = " ".join(str(part) for part in parts if part)
    return text or None
