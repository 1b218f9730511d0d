"""The SQLite store: versions, history paging, atomicity, durability settings."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from fhir_ccm.errors import Busy, Conflict
from fhir_ccm.store import HistoryQuery, NewVersion
from fhir_ccm.store import sqlite as sqlite_module
from fhir_ccm.store.sqlite import WAL_CHECKPOINT_PAGES, SQLiteStore


def write(store, id, version, json='{"resourceType":"Patient"}', resource_type="Patient", method="PUT"):
    with store.atomic():
        return store.write(NewVersion(resource_type, id, version, store.now(), json, method))


def test_write_read_vread(store):
    write(store, "a", 1, '{"v":1}')
    write(store, "a", 2, '{"v":2}')
    assert store.read("Patient", "a").json == '{"v":2}'
    assert store.vread("Patient", "a", 1).json == '{"v":1}'
    assert store.read("Patient", "missing") is None
    assert store.vread("Patient", "a", 3) is None


def test_deletion_is_a_version(store):
    write(store, "a", 1)
    write(store, "a", 2, json=None, method="DELETE")
    current = store.read("Patient", "a")
    assert current.deleted and current.version == 2
    assert store.count("Patient") == 0


def test_a_version_is_written_once(store):
    write(store, "a", 1)
    with pytest.raises(Conflict):
        write(store, "a", 1)


def test_atomic_rolls_back_everything(store):
    with pytest.raises(RuntimeError), store.atomic():
        write(store, "a", 1)
        write(store, "b", 1)
        raise RuntimeError("boom")
    assert store.read("Patient", "a") is None
    assert store.history(HistoryQuery()).total == 0


def test_nested_atomic_uses_savepoints(store):
    with store.atomic():
        write(store, "a", 1)
        with pytest.raises(RuntimeError), store.atomic():
            write(store, "b", 1)
            raise RuntimeError("inner")
    assert store.read("Patient", "a") is not None
    assert store.read("Patient", "b") is None


def test_without_nested_savepoints_nested_writes_share_the_transaction(store):
    with store.atomic(nested_savepoints=False):
        with store.atomic():
            write(store, "a", 1)
        with store.atomic():
            write(store, "b", 1)
    assert store.read("Patient", "a") is not None and store.read("Patient", "b") is not None


def test_without_nested_savepoints_a_failed_nested_write_undoes_the_whole_transaction(store):
    with pytest.raises(RuntimeError, match="undone"), store.atomic(nested_savepoints=False):
        write(store, "a", 1)
        with pytest.raises(Conflict), store.atomic():
            write(store, "b", 1)
            write(store, "a", 1)  # version 1 of "a" exists: the nested block fails
        write(store, "c", 1)  # the error was caught, yet nothing of the transaction may stay
    assert store.history(HistoryQuery()).total == 0
    write(store, "after", 1)  # the store goes on working
    assert store.read("Patient", "after") is not None


def test_the_versions_of_one_transaction_share_their_instant(store):
    write(store, "before", 1)
    with store.atomic():
        first = store.write(NewVersion("Patient", "a", 1, store.now(), "{}", "POST"))
        second = store.write(NewVersion("Patient", "b", 1, store.now(), "{}", "POST"))
    assert first.last_updated == second.last_updated >= store.read("Patient", "before").last_updated
    assert store.now() >= first.last_updated


def test_a_write_outside_a_transaction_is_one_of_its_own(store):
    store.write(NewVersion("Patient", "a", 1, store.now(), "{}", "POST", ()))
    assert store.read("Patient", "a").version == 1
    with pytest.raises(Conflict):
        store.write(NewVersion("Patient", "a", 1, store.now(), "{}", "POST"))
    assert store.history(HistoryQuery()).total == 1


def test_change_stamp_moves_with_every_write_of_the_types_asked(store):
    types = ("StructureDefinition", "ValueSet")
    assert store.change_stamp(types) == (0, 0)
    write(store, "sd", 1, resource_type="StructureDefinition")
    first = store.change_stamp(types)
    assert first[0] > 0 and first[1] == 0
    write(store, "p", 1)
    assert store.change_stamp(types) == first
    write(store, "sd", 2, json=None, resource_type="StructureDefinition", method="DELETE")
    second = store.change_stamp(types)
    assert second[0] > first[0] and second[1] == 0
    write(store, "vs", 1, resource_type="ValueSet")
    third = store.change_stamp(types)
    assert third[0] == second[0] and third[1] > second[0]


def test_change_stamp_costs_the_same_however_many_versions_the_types_have(store):
    """Asked on every write request, it must not read each version: counted in SQLite VM steps."""
    types = ("StructureDefinition", "ValueSet", "CodeSystem")

    def steps() -> int:
        counted = [0]
        with store._connection() as connection:  # the pool hands this connection to change_stamp next
            connection.set_progress_handler(lambda: counted.__setitem__(0, counted[0] + 1) or 0, 1)
        try:
            store.change_stamp(types)
        finally:
            with store._connection() as connection:
                connection.set_progress_handler(None, 1)
        return counted[0]

    write(store, "vs0", 1, resource_type="ValueSet")
    few = steps()
    with store.atomic():
        for n in range(1, 1_000):
            store.write(NewVersion("ValueSet", f"vs{n}", 1, store.now(), "{}", "PUT"))
    assert 0 < few and steps() == few


def test_last_updated_never_goes_backwards(store):
    stamps = [write(store, f"p{n}", 1).last_updated for n in range(50)]
    assert stamps == sorted(stamps)


def test_history_paging_by_cursor(store):
    for n in range(5):
        write(store, f"p{n}", 1)
    first = store.history(HistoryQuery(resource_type="Patient", count=2))
    assert [v.id for v in first.versions] == ["p4", "p3"] and first.has_more and first.total == 5
    write(store, "late", 1)
    second = store.history(HistoryQuery(resource_type="Patient", count=2, before_seq=first.versions[-1].seq))
    assert [v.id for v in second.versions] == ["p2", "p1"]


def test_wal_and_full_sync(store, database):
    connection = sqlite3.connect(database)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()
    with store._connection() as own:
        assert own.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert own.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_CHECKPOINT_PAGES


def _initialize_after(barrier, path: str, errors) -> None:
    barrier.wait()
    try:
        sqlite_module.initialize(path)
    except Exception as error:  # reported to the test, which fails on it
        errors.put(repr(error))


def test_processes_starting_together_on_a_new_file_all_initialize_it(tmp_path):
    """The workers of a server started on a new database file create it at the same moment.

    Before initialization retried the statements SQLite refuses without waiting,
    one start in ten failed here with "database is locked".
    """
    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    for attempt in range(40):
        path = str(tmp_path / f"new-{attempt}.db")
        barrier = context.Barrier(3)
        workers = [context.Process(target=_initialize_after, args=(barrier, path, errors)) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [worker.exitcode for worker in workers] == [0, 0, 0]
        assert errors.empty(), errors.get()
        SQLiteStore(path).close()  # and it is a store that opens


def test_the_log_is_copied_back_and_reused(store, database):
    """Past WAL_CHECKPOINT_PAGES a commit checkpoints, and the log starts again from its beginning."""
    log = Path(str(database) + "-wal")
    frame = 4096 + 24  # page and frame header
    write(store, "first", 1)
    index = 1
    while (log.stat().st_size - 32) // frame < WAL_CHECKPOINT_PAGES:
        write(store, f"p{index}", 1, json='{"resourceType":"Patient","text":"' + "x" * 3000 + '"}')
        index += 1
        assert index < 2 * WAL_CHECKPOINT_PAGES, "the log never reached the checkpoint size"
    for extra in range(3):  # the commit past the limit checkpoints; the next one restarts the log
        write(store, f"q{extra}", 1)
    peak = log.stat().st_size
    for extra in range(3, 100):
        write(store, f"q{extra}", 1)
    assert log.stat().st_size == peak  # written over from the start, not grown
    assert store.count("Patient") == index + 100


def test_concurrent_writers_from_threads_and_connections(database):
    stores = [SQLiteStore(database) for _ in range(4)]
    errors = []

    def writer(store, prefix):
        try:
            for n in range(25):
                write(store, f"{prefix}-{n}", 1)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(s, f"t{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert stores[0].count("Patient") == 100
    for store in stores:
        store.close()


def test_a_writer_waits_for_the_write_lock_and_then_writes(store, database):
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, holder.execute, ("COMMIT",)).start()
    write(store, "after-the-other-writer", 1)  # waits for the commit above, then writes
    assert store.read("Patient", "after-the-other-writer") is not None
    with store._connection() as own:  # the connection got its busy timeout back
        assert own.execute("PRAGMA busy_timeout").fetchone()[0] == sqlite_module.BUSY_TIMEOUT_MS
    holder.close()


def test_a_writer_gives_up_after_the_busy_timeout(store, database, monkeypatch):
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Busy) as busy:
            write(store, "never", 1)
        assert busy.value.status == 503 and busy.value.headers["Retry-After"] == "1"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.read("Patient", "never") is None
    write(store, "now", 1)  # the connection that gave up still works


# A greenlet waits for the write lock that another process holds; a second greenlet
# counts the ticks it gets to run meanwhile. SQLite's own busy handler would sleep
# inside the call and the worker would run nothing else until the lock came free.
WAITING_UNDER_GEVENT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import sys, gevent
    from fhir_ccm.store import NewVersion
    from fhir_ccm.store.sqlite import SQLiteStore

    store = SQLiteStore(sys.argv[1])
    waiting = [True]
    ticks = []

    def tick():
        while waiting[0]:
            ticks.append(1)
            gevent.sleep(0.005)

    def write():
        with store.atomic():
            waiting[0] = False
            store.write(NewVersion("Patient", "waited", 1, store.now(), '{"resourceType":"Patient"}', "PUT"))

    print("ready", flush=True)
    sys.stdin.readline()  # the lock is taken now
    ticker = gevent.spawn(tick)
    gevent.joinall([gevent.spawn(write), ticker])
    print(len(ticks))
    """
)


def test_under_gevent_waiting_for_the_write_lock_lets_other_greenlets_run(store, database):
    child = subprocess.Popen(
        [sys.executable, "-c", WAITING_UNDER_GEVENT, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "ready"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    child.stdin.write("go\n")
    child.stdin.flush()
    threading.Event().wait(0.5)  # the child waits for the lock meanwhile
    holder.execute("COMMIT")
    holder.close()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert int(out) >= 10  # about one per 5 ms of the wait; 1 if the whole process had blocked
    assert store.read("Patient", "waited") is not None
