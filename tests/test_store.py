"""The SQLite store: versions, history paging, atomicity, durability settings."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from fhir_ccm.errors import Conflict
from fhir_ccm.store import HistoryQuery, NewVersion
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
    assert store.change_stamp(types) == ((0, 0), (0, 0))
    write(store, "sd", 1, resource_type="StructureDefinition")
    first = store.change_stamp(types)
    assert first[0][1] == 1 and first[0][0] > 0 and first[1] == (0, 0)
    write(store, "p", 1)
    assert store.change_stamp(types) == first
    write(store, "sd", 2, json=None, resource_type="StructureDefinition", method="DELETE")
    second = store.change_stamp(types)
    assert second[0][0] > first[0][0] and second[0][1] == 2


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
