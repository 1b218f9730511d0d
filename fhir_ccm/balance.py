"""Spreading connections over the gunicorn workers.

All workers wait on one listening socket, and the kernel wakes them in the
order they last went to sleep: the worker that accepted the last connection
tends to accept the next one too. Clients that connect together (an HIE's
connection pool, a load test) would keep their keep-alive connections on one
worker, so one core works while the others idle.

Here the workers share a small table in memory made before they are forked:
one row per worker, its pid, the connections it holds and whether it is
holding back. A worker that holds more connections than another live worker
holds back a little before accepting (2 ms at a time, 50 ms at most); after
that it accepts anyway, so a connection never waits long on a worker busy with
a long request. When connections arrive in a burst the kernel may not wake the
other workers again, so every worker also looks every 5 ms for a worker
holding back with more connections than itself, and then accepts in its place.
Each worker writes only its own row.

gunicorn's gevent worker builds its servers from ``ggevent.StreamServer``;
``install`` points that name at ``BalancedStreamServer``.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import gevent
from gevent.server import StreamServer

MAX_WORKERS = 64
WAIT_S = 0.002  # one pause before accepting
MAX_WAIT_S = 0.05  # the longest a connection waits for a less busy worker
HELP_INTERVAL_S = 0.005  # how often a worker looks for one holding back
PID, HELD, HOLDING_BACK = range(3)  # the columns of a row


class ConnectionTable:
    """Per worker: its pid, the connections it holds and whether it holds back, shared across ``fork``."""

    def __init__(self, size: int = MAX_WORKERS) -> None:
        self.size = size
        self._cells = multiprocessing.RawArray("q", 3 * size)
        self._lock = multiprocessing.Lock()
        self.slot: int | None = None  # this process's row, once claimed

    def _get(self, slot: int, column: int) -> int:
        return int(self._cells[3 * slot + column])

    def _set(self, column: int, value: int) -> None:
        if self.slot is not None:
            self._cells[3 * self.slot + column] = value

    def claim(self) -> int:
        """Take a free row (or a dead worker's) for this process."""
        with self._lock:
            for slot in range(self.size):
                pid = self._get(slot, PID)
                if pid == 0 or not _alive(pid):
                    self.slot = slot
                    self._set(PID, os.getpid())
                    self._set(HELD, 0)
                    self._set(HOLDING_BACK, 0)
                    return slot
        raise RuntimeError(f"more than {self.size} workers")

    def add(self, change: int) -> None:
        self._set(HELD, self.held() + change)

    def held(self) -> int:
        return self._get(self.slot, HELD) if self.slot is not None else 0

    def hold_back(self, holding: bool) -> None:
        self._set(HOLDING_BACK, int(holding))

    def _others(self) -> list[int]:
        """The rows of the other workers: rows are claimed from the top and never emptied again."""
        others = []
        for slot in range(self.size):
            if self._get(slot, PID) == 0:
                break
            if slot != self.slot:
                others.append(slot)
        return others

    def fewest_elsewhere(self) -> int | None:
        """The fewest connections any other live worker holds; None when there is no other."""
        counts = [self._get(slot, HELD) for slot in self._others() if _alive(self._get(slot, PID))]
        return min(counts) if counts else None

    def should_help(self) -> bool:
        """Whether another worker holds back a connection and holds more connections than this one."""
        held = self.held()
        return any(self._get(slot, HOLDING_BACK) and self._get(slot, HELD) > held for slot in self._others())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TABLE: ConnectionTable | None = None


def prepare() -> None:
    """In the master, before workers are forked: make the shared table."""
    global _TABLE
    _TABLE = ConnectionTable()


def install() -> None:
    """In a worker: claim a row and make gunicorn's gevent worker use ``BalancedStreamServer``."""
    from gunicorn.workers import ggevent

    if _TABLE is None:
        return
    _TABLE.claim()
    ggevent.StreamServer = BalancedStreamServer


class BalancedStreamServer(StreamServer):
    """A gevent server that counts its connections in the table and yields new ones to idler workers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waited = 0.0
        self._helper: Any = None
        handle: Any = vars(self)["handle"]  # set by gevent; copied to ``_handle`` when the server starts

        def counted(*handle_args: Any) -> Any:
            try:
                return handle(*handle_args)
            finally:
                if _TABLE is not None:
                    _TABLE.add(-1)

        self.handle = self._handle = counted

    def do_handle(self, *args: Any) -> None:
        """Count the connection as soon as it is accepted (its greenlet runs later), until its handler ends."""
        if _TABLE is not None:
            _TABLE.add(1)
        try:
            super().do_handle(*args)
        except BaseException:
            if _TABLE is not None:
                _TABLE.add(-1)
            raise

    def start_accepting(self) -> None:
        # gunicorn hands over the listening socket in blocking mode: an accept that loses the race
        # for a connection to another worker would then stop this whole process until the next one.
        self.socket.setblocking(False)
        super().start_accepting()
        if _TABLE is not None and self._helper is None:
            self._helper = gevent.spawn(self._help)

    def _do_read(self) -> None:
        table = _TABLE
        if table is not None and self._waited < MAX_WAIT_S:
            fewest = table.fewest_elsewhere()
            if fewest is not None and table.held() > fewest:
                self._waited += WAIT_S
                table.hold_back(True)
                self.stop_accepting()
                self._timer = self.loop.timer(WAIT_S)
                self._timer.start(self._resume)
                return
        self._waited = 0.0
        if table is not None:
            table.hold_back(False)
        super()._do_read()

    def _resume(self) -> None:
        if _TABLE is not None:
            _TABLE.hold_back(False)
        self._start_accepting_if_started()

    def _help(self) -> None:
        """Accept, now and then, a connection another worker holds back (see the module docstring)."""
        while not self.closed:
            gevent.sleep(HELP_INTERVAL_S)
            table = _TABLE
            if table is None or self.closed or not table.should_help():
                continue
            try:
                accepted = self.do_read()  # a non-blocking accept: None when another worker took it
            except OSError:
                continue
            if accepted:
                self.do_handle(*accepted)
