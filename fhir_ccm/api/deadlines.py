"""A deadline for reading a request body.

Under gevent workers a client that sends its headers and then trickles (or
stops sending) its body would hold its connection slot forever: gunicorn times
out half-sent headers, not bodies. The deadline answers such a client 408 and
frees the slot. Outside gevent (tests, the development server) it does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fhir_ccm.errors import RequestTimeout


def _under_gevent() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("socket"))


@contextmanager
def read_deadline(seconds: float) -> Iterator[None]:
    if not _under_gevent():
        yield
        return
    from gevent import Timeout

    error = RequestTimeout(f"The request body did not arrive within {seconds:g} s")
    error.headers["Connection"] = "close"
    timeout = Timeout(seconds, error)
    timeout.start()
    try:
        yield
    finally:
        timeout.close()
