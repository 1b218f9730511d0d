"""Serving the app with gunicorn.

Workers are gevent workers: each connection is a greenlet, so a client that
stalls halfway through sending a request holds nothing but its own greenlet
and never stops the worker answering others (sync workers would block, and
thread pools run out). SQLite calls are short and never yield inside a
transaction, so greenlets cannot interleave within one.
"""

from __future__ import annotations

from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication

from fhir_ccm import balance
from fhir_ccm.config import Config
from fhir_ccm.errors import Issue, operation_outcome
from fhir_ccm.formats.json_format import dump_json


def write_http_error(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's answer to a request it cannot parse, as an OperationOutcome instead of an HTML page.

    A request line or header gunicorn refuses (414, 431, 400) never reaches the
    app; this keeps the rule that every error body is an OperationOutcome.
    """
    code = "too-long" if status in (413, 414, 431) else "invalid" if status < 500 else "exception"
    body = dump_json(operation_outcome([Issue("error", code, message or reason)])).encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/fhir+json;charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class GunicornServer(BaseApplication):
    def __init__(self, config: Config) -> None:
        self.fhir_config = config
        super().__init__()

    def load_config(self) -> None:
        settings: dict[str, Any] = {
            "bind": f"{self.fhir_config.host}:{self.fhir_config.port}",
            "workers": self.fhir_config.workers,
            "worker_class": "gevent",
            "worker_connections": self.fhir_config.worker_connections,
            "timeout": self.fhir_config.timeout,
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "limit_request_line": 8190,
            "limit_request_fields": 100,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from fhir_ccm.app import create_app

        balance.install()
        app = create_app(self.fhir_config)
        warm_up(app)
        return app


# A collection of the youngest objects after 100,000 new ones instead of 700: a 1,000-entry
# transaction allocates millions of short-lived dicts, nearly all freed by reference counting,
# and with the default thresholds it spent about 60 ms in 800 collections; now about 12 ms.
GC_THRESHOLDS = (100_000, 20, 20)


def warm_up(app: Any) -> None:
    """Load the definitions every request needs, then take them out of the garbage collector's sight.

    The vendored R4 definitions and the tables built from them are millions of
    long-lived objects; a full collection would walk them all, in the middle of
    some request. ``gc.freeze`` moves what exists now to a generation the
    collector never scans, and ``GC_THRESHOLDS`` makes collections rarer.
    """
    import gc

    from fhir_ccm.definitions import resource_types, search_parameters, structure_definitions
    from fhir_ccm.search.parameters import parameters_for

    structure_definitions()
    search_parameters()
    for resource_type in resource_types():
        parameters_for(resource_type)
    app.test_client().get("/fhir/metadata")
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(config: Config) -> None:
    """Run the server in the foreground until it is stopped."""
    util.write_error = write_http_error
    from fhir_ccm.store.sqlite import initialize

    initialize(config.database)
    balance.prepare()
    GunicornServer(config).run()
