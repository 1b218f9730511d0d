"""Long CPU-bound work lets a gevent worker's other requests run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from fhir_ccm.interactions import LOCAL_CONTEXT, bundle
from fhir_ccm.yielding import let_others_run

# Under gevent: a request arrives while the main greenlet computes; the serving
# greenlet accepts and reads it only if the computation lets the event loop run.
GEVENT_PROGRAM = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import socket, sys, gevent
    from fhir_ccm.yielding import let_others_run

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    served = []

    def serve():
        connection, _ = listener.accept()
        served.append(connection.recv(100))
        connection.sendall(b"answer")

    gevent.spawn(serve)
    gevent.sleep(0)  # the server greenlet now waits on the socket
    client = socket.create_connection(listener.getsockname())
    client.sendall(b"request")
    total = 0
    for step in range(10_000):  # CPU-bound work, as when a transaction is validated
        total += step * step
        if step % 1000 == 0:
            {yield_call}
    print("served" if served == [b"request"] else "not served")
    """
)


def run_under_gevent(yield_call: str) -> str:
    program = GEVENT_PROGRAM.replace("{yield_call}", yield_call)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_under_gevent_a_request_that_arrives_during_cpu_work_is_served():
    assert run_under_gevent("pass") == "not served"  # without yielding, nothing else runs
    assert run_under_gevent("let_others_run()") == "served"


def test_without_gevent_it_does_nothing():
    let_others_run()


def test_a_large_transaction_lets_others_run_while_its_entries_are_checked(store, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(bundle, "let_others_run", lambda: calls.append(1))
    entries = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
            "resource": {"resourceType": "Patient", "name": [{"family": f"Family{n}"}]},
            "request": {"method": "POST", "url": "Patient"},
        }
        for n in range(4 * bundle.YIELD_EVERY)
    ]
    result = bundle.batch_or_transaction(
        store, LOCAL_CONTEXT, {"resourceType": "Bundle", "type": "transaction", "entry": entries}, None
    )
    assert result.status == 200
    assert len(calls) == 4
