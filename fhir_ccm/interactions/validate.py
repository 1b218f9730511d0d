"""$validate (http://hl7.org/fhir/R4/resource-operation-validate.html) and the profiles every write must meet.

The definitions a server validates with are the R4 core, the repository's
``profiles/`` folder, the files named by ``FHIR_CCM_DEFINITIONS`` and the
StructureDefinitions, ValueSets and CodeSystems stored on the server itself.
``Conformance`` keeps one ``Registry`` of them per app and rebuilds it when the
stored ones change: it compares the newest history entry of the three types
before each use, so a definition written through any worker process is used
by every worker on its next validation.

``ProfilePolicy`` says what a write must conform to: the profiles a resource
claims in ``meta.profile`` and those required for its type
(``FHIR_CCM_REQUIRED_PROFILES``). A claimed profile the server does not know is
an error unless ``FHIR_CCM_UNKNOWN_PROFILES=warn``; a required or asked-for one
the server does not know is always an error. The app installs its policy for
each request (``install_policy``; ``use_policy`` elsewhere) and ``check_on_write``, called by
``versions.prepare_resource`` for every create, update, patch and transaction
entry, reads it from there; code running outside a request (the loader, tests)
gets a policy built from the environment and the repository's profiles.

``validate_operation`` answers ``$validate`` with what a write would say: the
profile engine's checks (base R4, which includes the structural check of every
write, and the profiles) judged by the policy.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fhir_ccm.config import Config
from fhir_ccm.errors import FhirError, Gone, Invalid, Issue, NotFound, Unprocessable
from fhir_ccm.formats.json_format import parse_json, parse_resource
from fhir_ccm.formats.xml_format import xml_to_resource
from fhir_ccm.interactions import Context, Result
from fhir_ccm.store import Store
from fhir_ccm.validation import validate_resource
from fhir_ccm.validation.profiles import Registry, profile_urls, validate_parts
from fhir_ccm.validation.profiles.registry import CONFORMANCE_TYPES

logger = logging.getLogger("fhir_ccm")

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
UNKNOWN_PROFILE_HANDLING = ("reject", "warn")
MODES = ("create", "update", "delete")
SUFFIXES = (".json", ".ndjson", ".xml")
NO_ISSUES = "No issues detected during validation"
SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}
ERRORS = ("fatal", "error")


# -- reading files ------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One resource read from a file (``where`` names the file, and the line of an ndjson file)."""

    path: str
    line: int | None  # of an ndjson file
    resource: dict[str, Any] | None
    problem: str | None = None  # why nothing could be read

    @property
    def where(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


def files_under(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The files named, and the JSON, ndjson and XML files below the folders named, in order."""
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        else:
            yield path


def read_sources(paths: Iterable[str | Path]) -> Iterator[Source]:
    """Every resource in JSON, XML and ndjson files (folders recursively); a Bundle stays one resource."""
    for path in files_under(paths):
        try:
            data = path.read_bytes()
        except OSError as error:
            yield Source(str(path), None, None, error.strerror or str(error))
            continue
        if path.suffix == ".ndjson":
            for number, line in enumerate(data.splitlines(), 1):
                if line.strip():
                    yield _parsed(str(path), number, line, xml=False)
        else:
            yield _parsed(str(path), None, data, xml=path.suffix == ".xml")


def _parsed(path: str, line: int | None, data: bytes, xml: bool) -> Source:
    try:
        return Source(path, line, xml_to_resource(data) if xml else parse_resource(data))
    except FhirError as error:
        return Source(path, line, None, error.message)


# -- the definitions ----------------------------------------------------------


def definition_paths(config: Config, extra: Sequence[str | Path] = ()) -> list[Path]:
    """The repository's ``profiles/``, then ``FHIR_CCM_DEFINITIONS``, then ``extra``."""
    configured = [Path(part) for part in config.definitions.split(":") if part.strip()]
    base = [PROFILES_DIR] if PROFILES_DIR.is_dir() else []
    return [*base, *configured, *map(Path, extra)]


def read_definitions(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The resources of definition files; an unreadable file is a ``ValueError`` (a configuration mistake)."""
    found = []
    for source in read_sources(paths):
        if source.resource is None:
            raise ValueError(f"cannot read the definitions in {source.where}: {source.problem}")
        found.append(source.resource)
    return found


class Conformance:
    """The registry of one app: core + files + the stored conformance resources (see the module docstring)."""

    def __init__(self, definitions: Sequence[dict[str, Any]] = (), store: Store | None = None) -> None:
        self.definitions = tuple(definitions)
        self.store = store
        self._lock = threading.Lock()
        self._built: tuple[tuple[int, ...], Registry] | None = None  # (stamp, registry), swapped whole

    @property
    def built(self) -> bool:
        """Whether a registry was built (writes without profiles never build one)."""
        return self._built is not None

    def registry(self) -> Registry:
        stamp = self._current_stamp()
        built = self._built
        if built is not None and built[0] == stamp:
            return built[1]
        with self._lock:
            built = self._built
            if built is None or built[0] != stamp:
                registry = Registry(self.definitions)
                if self.store is not None:
                    registry.load_store(self.store)
                built = self._built = (stamp, registry)
            return built[1]

    def _current_stamp(self) -> tuple[int, ...]:
        """The newest history position of each conformance type."""
        return () if self.store is None else self.store.change_stamp(CONFORMANCE_TYPES)


# -- the policy ---------------------------------------------------------------


def parse_required_profiles(text: str) -> dict[str, tuple[str, ...]]:
    """``CarePlan=url,Goal=url`` (a type may be named more than once) as profiles by type."""
    required: dict[str, tuple[str, ...]] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        resource_type, equals, url = (piece.strip() for piece in part.partition("="))
        if not equals or not resource_type or not url:
            raise ValueError(f"FHIR_CCM_REQUIRED_PROFILES: expected Type=url, not '{part.strip()}'")
        required[resource_type] = (*required.get(resource_type, ()), url)
    return required


@dataclass(frozen=True, eq=False)
class ProfilePolicy:
    """What writes must conform to, and the definitions to check it with."""

    conformance: Conformance
    unknown: str = "reject"  # a claimed profile the server does not know: reject | warn
    required: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pinned: bool = False  # the registry is looked up once, at first use: see ``for_request``
    _registry: list[Registry] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.unknown not in UNKNOWN_PROFILE_HANDLING:
            raise ValueError(f"FHIR_CCM_UNKNOWN_PROFILES must be reject or warn, not '{self.unknown}'")

    @classmethod
    def from_config(cls, config: Config, store: Store | None = None, extra: Sequence[str | Path] = ()) -> ProfilePolicy:
        definitions = read_definitions(definition_paths(config, extra))
        required = parse_required_profiles(config.required_profiles)
        return cls(Conformance(definitions, store), config.unknown_profiles, required)

    def registry(self) -> Registry:
        if not self.pinned:
            return self.conformance.registry()
        if not self._registry:
            self._registry.append(self.conformance.registry())
        return self._registry[0]

    def for_request(self) -> ProfilePolicy:
        """This policy for one request: the stored definitions are looked up once, not per resource.

        A transaction of 1,000 entries claiming profiles then checks that its registry
        is current once instead of 1,000 times; the next request sees any change.
        """
        return replace(self, pinned=True)

    def issues(self, resource: Any, asked: Sequence[str] = (), mode: str | None = None) -> list[Issue]:
        """Base R4, the profiles asked for, required and claimed; unknown profiles judged by the policy."""
        base, profiled = self.issues_apart(resource, asked, mode)
        return list(dict.fromkeys(base + profiled))

    def issues_apart(
        self, resource: Any, asked: Sequence[str] = (), mode: str | None = None, invariants: bool = True
    ) -> tuple[list[Issue], list[Issue]]:
        """``issues`` in two lists, from one walk: base R4's, then the profiles' (and a Bundle's entries')."""
        resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
        profiles = [*asked, *self.required.get(str(resource_type), ())]
        base, profiled = validate_parts(resource, profiles, self.registry(), mode, invariants)
        found = [self._judge(issue, resource_type) for issue in profiled]
        if resource_type == "Bundle" and mode != "delete":
            found += self._entries(resource, base + found)
        return base, found

    def knows_any(self, resource: dict[str, Any]) -> bool:
        """Whether a profile ``resource`` claims, or its type requires, is one this server holds."""
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str):
            return False
        registry = self.registry()
        required = self.required.get(resource_type, ())
        return any(registry.profile(url) is not None for url, _ in profile_urls(resource, required))

    def _judge(self, issue: Issue, resource_type: Any) -> Issue:
        if issue.code != "not-found" or len(issue.expression) != 1 or not isinstance(resource_type, str):
            return issue
        expression = issue.expression[0]
        if expression == resource_type:  # a profile asked for or required
            return replace(issue, severity="error")
        if re.fullmatch(re.escape(resource_type) + r"\.meta\.profile\[\d+\]", expression):
            return replace(issue, severity="error" if self.unknown == "reject" else "warning")
        return issue

    def _entries(self, bundle: dict[str, Any], found: list[Issue]) -> list[Issue]:
        """What the entries' own claimed and required profiles add (the engine walks entries against base only)."""
        seen = set(found)
        added: list[Issue] = []
        for index, entry in enumerate(bundle.get("entry") or ()):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                continue
            if not claimed(resource) and not self.required.get(resource["resourceType"]):
                continue
            prefix = f"Bundle.entry[{index}].resource"
            for issue in self.issues(resource):
                expression = tuple(_moved(e, resource["resourceType"], prefix) for e in issue.expression)
                moved = replace(issue, expression=expression)
                if moved not in seen:
                    seen.add(moved)
                    added.append(moved)
        return added


def _moved(expression: str, resource_type: str, prefix: str) -> str:
    """``CarePlan.goal`` of entry 2 is ``Bundle.entry[2].resource.goal``."""
    if expression == resource_type or expression.startswith((resource_type + ".", resource_type + "[")):
        return prefix + expression[len(resource_type) :]
    return expression


def claimed(resource: dict[str, Any]) -> bool:
    meta = resource.get("meta")
    return isinstance(meta, dict) and bool(meta.get("profile"))


_ACTIVE: ContextVar[ProfilePolicy | None] = ContextVar("fhir_ccm_profile_policy", default=None)
_DEFAULT: list[ProfilePolicy] = []
_DEFAULT_LOCK = threading.Lock()


@contextmanager
def use_policy(policy: ProfilePolicy) -> Iterator[ProfilePolicy]:
    """Writes in this block are checked with ``policy``."""
    token = _ACTIVE.set(policy)
    try:
        yield policy
    finally:
        _ACTIVE.reset(token)


def install_policy(policy: ProfilePolicy | None) -> object:
    """``use_policy`` in two steps, for request hooks: returns the token ``uninstall_policy`` takes."""
    return _ACTIVE.set(policy)


def uninstall_policy(token: Any) -> None:
    try:
        _ACTIVE.reset(token)
    except ValueError:  # set in another context: leave nothing behind in this one
        _ACTIVE.set(None)


def active_policy() -> ProfilePolicy:
    """The policy installed for this request, else one from the environment and the repository's profiles."""
    policy = _ACTIVE.get()
    if policy is not None:
        return policy
    if not _DEFAULT:
        with _DEFAULT_LOCK:
            if not _DEFAULT:
                _DEFAULT.append(ProfilePolicy.from_config(Config.from_env()))
    return _DEFAULT[0]


def check_on_write(resource: dict[str, Any], id: str | None = None) -> None:
    """What every create, update, patch and transaction entry must pass before it is stored.

    Structure and required bindings first (``validation.validate_resource``: 400, or
    422 for codes outside their value set); then, when the resource claims profiles
    or its type requires some, conformance to them (422). A resource with profiles
    is walked once for both: the base R4 part of that walk, invariants included, is
    the structural check. One without is checked against base R4 alone, without
    invariants, and never builds the registry of stored definitions; so is one whose
    profiles are all unknown to the server (stored with a warning when the policy
    allows it), since conformance to none of them can be checked. ``id`` is the id
    the resource will be stored under, for the log.
    """
    policy = active_policy()
    resource_type = resource.get("resourceType")
    if not claimed(resource) and not policy.required.get(str(resource_type)):
        validate_resource(resource)
        return
    base, profiled = policy.issues_apart(resource, invariants=policy.knows_any(resource))
    validate_resource(resource, base)
    issues = sorted(dict.fromkeys(base + profiled), key=lambda issue: SEVERITY_ORDER.get(issue.severity, 9))
    errors = [issue for issue in issues if issue.severity in ERRORS]
    if errors:
        raise Unprocessable(
            f"{resource_type} does not conform to its profiles: {len(errors)} error(s)",
            issues=[issue for issue in issues if issue.severity != "information"],
        )
    for issue in issues:
        if issue.code == "not-found" and issue.severity == "warning":
            where = f"{resource_type}/{id or resource.get('id')}"
            logger.warning("%s stored without checking: %s", where, issue.diagnostics)


# -- $validate ----------------------------------------------------------------


@dataclass(frozen=True)
class ValidateRequest:
    """The parameters of ``$validate``: from a Parameters body, a bare resource and the query string."""

    resource: dict[str, Any] | None
    mode: str | None = None
    profiles: tuple[str, ...] = ()


PROFILE_VALUES = ("valueUri", "valueCanonical", "valueString", "valueUrl")


def parse_validate_request(
    body: dict[str, Any] | None, resource_type: str, query_profiles: Sequence[str] = (), query_mode: str | None = None
) -> ValidateRequest:
    resource: dict[str, Any] | None = body
    mode, profiles = query_mode, list(query_profiles)
    if body is not None and _is_parameters(body, resource_type):
        resource = None
        for parameter in body.get("parameter") or []:
            name = parameter.get("name") if isinstance(parameter, dict) else None
            if name == "resource":
                if resource is not None or not isinstance(parameter.get("resource"), dict):
                    raise Invalid("$validate takes one 'resource' parameter holding a resource")
                resource = parameter["resource"]
            elif name == "mode":
                mode = parameter.get("valueCode") or parameter.get("valueString")
            elif name == "profile":
                value = next((parameter[key] for key in PROFILE_VALUES if isinstance(parameter.get(key), str)), None)
                if value is None:
                    raise Invalid("The profile parameter takes a valueUri (or valueCanonical)")
                profiles.append(value)
            else:
                raise Invalid(f"Unknown $validate parameter '{name}'")
    if mode is not None and mode not in MODES:
        raise Invalid(f"mode must be one of {', '.join(MODES)}, not '{mode}'")
    return ValidateRequest(resource, mode, tuple(dict.fromkeys(profiles)))


def _is_parameters(body: dict[str, Any], resource_type: str) -> bool:
    """A Parameters body carries the operation's parameters, unless Parameters is what is validated."""
    if body.get("resourceType") != "Parameters":
        return False
    if resource_type != "Parameters":
        return True
    return any(isinstance(p, dict) and p.get("name") == "resource" for p in body.get("parameter") or [])


def validate_operation(
    store: Store,
    context: Context,
    policy: ProfilePolicy,
    resource_type: str,
    id: str | None,
    request: ValidateRequest,
) -> Result:
    """Validate a resource (or the stored one at ``[type]/[id]``) as a write of ``mode`` would; 200 with the issues."""
    resource = request.resource
    if id is not None and (request.mode == "delete" or resource is None):
        current = store.read(resource_type, id)
        if current is None:
            raise NotFound(f"{resource_type}/{id} is not known")
        if current.deleted or current.json is None:
            raise Gone(f"{resource_type}/{id} was deleted")
        if request.mode == "delete":  # deleting breaks no rule this server enforces
            return Result(200, resource=outcome([]))
        resource = parse_json(current.json)
    if request.mode == "delete":
        raise Invalid("mode=delete validates a stored resource: use [type]/[id]/$validate")
    if resource is None:
        raise Invalid("$validate needs a resource: the body, or a Parameters body with a 'resource' parameter")
    if resource.get("resourceType") != resource_type:
        raise Invalid(f"The resource is a {resource.get('resourceType')} but the URL is for {resource_type}")
    issues = validation_issues(policy, resource, request.profiles, request.mode)
    if request.mode == "update" and id is not None and resource.get("id") not in (None, id):
        message = f"The id '{resource['id']}' does not match the URL id '{id}'"
        issues.insert(0, Issue("error", "invariant", message, (f"{resource_type}.id",)))
    return Result(200, resource=outcome(issues))


def validation_issues(
    policy: ProfilePolicy, resource: Any, profiles: Sequence[str] = (), mode: str | None = None
) -> list[Issue]:
    """Everything a write would say about ``resource``, errors first.

    A write's structural check is the engine's base walk without invariants, so the
    engine's issues (base R4 with every invariant, and the profiles) include it.
    """
    issues = policy.issues(resource, profiles, mode)
    return sorted(issues, key=lambda issue: SEVERITY_ORDER.get(issue.severity, 9))


def outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """The OperationOutcome of a validation: errors first; one information issue when there is nothing to say."""
    ordered = sorted(issues, key=lambda issue: SEVERITY_ORDER.get(issue.severity, 9))
    if not ordered:
        ordered = [Issue("information", "informational", NO_ISSUES)]
    return {"resourceType": "OperationOutcome", "issue": [issue.to_fhir() for issue in ordered]}
