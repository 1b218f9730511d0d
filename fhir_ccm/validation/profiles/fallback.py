"""fhirpathpy for the expressions the native compiler does not cover.

Compiled once per expression with the R4 model. fhirpathpy lacks ``resolve()``,
``hasValue()``, ``conformsTo()``, ``memberOf()`` and ``htmlChecks()``; they are
added through its ``userInvocationTable`` hook and reach the validation run
through a context variable (a user function receives only its inputs).
``trace()`` is replaced by a silent one: fhirpathpy's prints to stdout.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from fhir_ccm.validation.profiles.fhirpath import Env
from fhir_ccm.validation.profiles.values import EvaluationError, Item

_ENV: ContextVar[Env | None] = ContextVar("fhirpath_env", default=None)

Fallback = Callable[[Item, Env], bool | None]


def _env() -> Env:
    env = _ENV.get()
    if env is None:  # pragma: no cover - only reachable when called outside evaluate()
        raise EvaluationError("no evaluation environment")
    return env


def _resolve(inputs: list[Any]) -> list[Any]:
    from fhirpathpy.engine.nodes import ResourceNode

    env = _env()
    out = []
    for value in inputs:
        reference = value.get("reference") if isinstance(value, dict) else value
        if isinstance(reference, str):
            resolved = env.services.resolve(reference, env)
            if resolved is not None:
                out.append(ResourceNode.create_node(resolved, resolved.get("resourceType")))
    return out


def _has_value(inputs: list[Any]) -> list[bool]:
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))]


def _conforms_to(inputs: list[Any], url: Any) -> list[bool]:
    if len(inputs) != 1 or not isinstance(inputs[0], dict) or not isinstance(url, str):
        return []
    result = _env().services.conforms_to(inputs[0], url)
    return [] if result is None else [result]


def _member_of(inputs: list[Any], url: Any) -> list[bool]:
    if len(inputs) != 1 or not isinstance(url, str):
        return []
    value = inputs[0]
    type_name = "string" if isinstance(value, str) else ("Coding" if "code" in value else "CodeableConcept")
    result = _env().services.member_of((value, type_name, None), url)
    return [] if result is None else [result]


def _html_checks(inputs: list[Any]) -> list[bool]:
    if len(inputs) != 1 or not isinstance(inputs[0], str):
        return []
    return [_env().services.html_checks(inputs[0])]


def _trace(inputs: list[Any], *args: Any) -> list[Any]:
    return inputs


USER_FUNCTIONS: dict[str, dict[str, Any]] = {
    "resolve": {"fn": _resolve, "arity": {0: []}},
    "hasValue": {"fn": _has_value, "arity": {0: []}},
    "conformsTo": {"fn": _conforms_to, "arity": {1: ["String"]}},
    "memberOf": {"fn": _member_of, "arity": {1: ["String"]}},
    "htmlChecks": {"fn": _html_checks, "arity": {0: []}},
    "trace": {"fn": _trace, "arity": {1: ["String"], 2: ["String", "Expr"]}},
}


@lru_cache(maxsize=1024)
def compile_fallback(expression: str) -> Fallback:
    """The fhirpathpy evaluation of ``expression`` as a Boolean; raises when fhirpathpy cannot parse it."""
    import fhirpathpy
    from fhirpathpy.engine.nodes import ResourceNode
    from fhirpathpy.models import models

    compiled = fhirpathpy.compile(expression, model=models["r4"], options={"userInvocationTable": USER_FUNCTIONS})

    def evaluate(item: Item, env: Env) -> bool | None:
        value, type_name, node = item
        token = _ENV.set(env)
        try:
            focus = ResourceNode.create_node(value, node or type_name) if isinstance(value, dict) else value
            result = compiled(focus, {"resource": env.resource, "rootResource": env.root, "context": value})
        except EvaluationError:
            raise
        except Exception as error:  # fhirpathpy raises bare Exceptions for evaluation errors
            raise EvaluationError(str(error)) from error
        finally:
            _ENV.reset(token)
        return _as_boolean(result)

    return evaluate


def _as_boolean(result: Any) -> bool | None:
    values = result if isinstance(result, list) else [result]
    if not values:
        return None
    if len(values) > 1:
        raise EvaluationError("a single Boolean was expected, found a collection")
    value = getattr(values[0], "data", values[0])
    return value if isinstance(value, bool) else True
