"""Letting a gevent worker's other requests run during long CPU-bound work.

A gevent worker runs one greenlet at a time and switches only when one waits
for I/O, so a large transaction being validated would hold back every other
request on that worker until it finishes. Code doing such work calls
``let_others_run`` now and then. It uses ``gevent.idle``, which resumes the
caller once the event loop has polled for I/O and run every greenlet that was
ready: measured on one worker, a read sent while a 2,000-entry transaction was
being checked waited for the whole transaction with ``gevent.sleep(0)`` in
that place, and was answered halfway through with ``gevent.idle``.
"""

from __future__ import annotations

import sys


def let_others_run() -> None:
    """Under gevent, let the event loop poll I/O and run every greenlet that is ready; elsewhere nothing."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        import gevent

        gevent.idle()
