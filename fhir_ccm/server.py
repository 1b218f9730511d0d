"""Serving the app with gunicorn.

Workers are gevent workers: each connection is a greenlet, so a client that
stalls halfway through sending a request holds nothing but its own greenlet
and never stops the worker answering others (sync workers would block, and
thread pools run out). SQLite calls are short and never yield inside a
transaction, so greenlets cannot interleave within one.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from fhir_ccm.config import Config


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

        return create_app(self.fhir_config)


def serve(config: Config) -> None:
    """Run the server in the foreground until it is stopped."""
    from fhir_ccm.store.sqlite import initialize

    initialize(config.database)
    GunicornServer(config).run()
