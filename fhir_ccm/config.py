"""Server settings, from command-line options or ``FHIR_CCM_*`` environment variables.

Every setting has one name used everywhere: ``--database`` is
``FHIR_CCM_DATABASE``, ``--workers`` is ``FHIR_CCM_WORKERS``, and so on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

ENV_PREFIX = "FHIR_CCM_"


@dataclass(frozen=True)
class Config:
    database: str = "fhir-ccm.db"  # the SQLite file; created on first use
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2  # gunicorn worker processes
    worker_connections: int = 1000  # concurrent connections per worker (gevent)
    base_url: str = ""  # public base, e.g. https://fhir.example.org/fhir; empty: from the request
    max_body_bytes: int = 16 * 1024 * 1024  # larger bodies answer 413
    timeout: int = 60  # seconds a worker may spend on one request before it is restarted
    body_timeout: int = 60  # seconds a client may take to send a request body before it gets 408
    conditional_delete_multiple: int = 0  # 1: a conditional delete may delete several matches
    unknown_profiles: str = "reject"  # a claimed profile the server does not know: reject (422) | warn (store)
    required_profiles: str = ""  # profiles every write of a type must meet: "CarePlan=url,Goal=url"
    definitions: str = ""  # extra StructureDefinition/ValueSet/CodeSystem files or folders, ":"-separated

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Defaults, overridden by the environment, overridden by ``overrides`` that are not None."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = int(raw) if field.type in ("int", int) else raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def setting_names() -> list[str]:
    """The environment variable of every setting, for the documentation test."""
    return [ENV_PREFIX + field.name.upper() for field in fields(Config)]
