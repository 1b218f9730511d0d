"""``python -m bench [SUITE...]``: run the benchmark suites (all of them by default).

A suite is a module with ``NAME`` and ``run(options) -> bool`` (False when it
saw errors); add new ones to ``SUITES``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from bench import reconcile, rest_core, search, transactions, validation
from bench.suite import Options

SUITES: dict[str, Callable[[Options], bool]] = {
    rest_core.NAME: rest_core.run,
    search.NAME: search.run,
    validation.NAME: validation.run,
    transactions.NAME: transactions.run,
    reconcile.NAME: reconcile.run,
}


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every server is stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of fhir-ccm over HTTP")
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"suites to run (default all): {', '.join(SUITES)}")
    parser.add_argument("--warmup", type=float, default=Options.warmup_s, help="seconds of warm-up per scenario")
    parser.add_argument("--duration", type=float, default=Options.duration_s, help="seconds measured per scenario")
    parser.add_argument("--workers", type=int, default=Options.workers, help="gunicorn workers per server")
    args = parser.parse_args(argv)
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}; known: {', '.join(SUITES)}")
    options = Options(warmup_s=args.warmup, duration_s=args.duration, workers=args.workers)
    signal.signal(signal.SIGTERM, _terminate)
    ok = True
    try:
        for name in args.suites or list(SUITES):
            try:
                ok = SUITES[name](options) and ok
            except RuntimeError as error:  # a server failed to start, died, or refused the seed data
                print(f"{name} failed: {error}", file=sys.stderr)
                ok = False
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
