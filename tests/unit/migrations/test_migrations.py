"""The Alembic migrations create exactly the tables the SQLModel metadata describes, on every backend;
migration 0005 turns an existing ledger's stored hashes into tiles (and back, on downgrade)."""

from __future__ import annotations

import importlib

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from api.composition import init_ledger
from api.settings import Settings
from ledger import merkle
from ledger.service import Ledger
from ledger.store import NODE_TILE_SIZE
from ledger.store_sql import SQLModel, SqlStore
from ledger.verify import verify_ledger
from migrations import alembic_config, current_revision, upgrade
from tests.unit.ledger.tamper import Tamper

m0005 = importlib.import_module("migrations.versions.0005_node_tiles")


def test_migrated_schema_matches_models(database_url: str) -> None:
    store = SqlStore(database_url)
    store.migrate()
    store.migrate()  # idempotent
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    store.close()
    assert diff == []
    assert version == "0005"


def test_the_migration_tiles_as_the_store_does() -> None:
    assert m0005.TILE_SIZE == NODE_TILE_SIZE == SqlStore.tile_size


# --- a ledger from before migration 0005 ------------------------------------------------------------

RECORDS = 400  # 795 stored hashes: 12 complete tiles of 62 and a tail of 51


def _record(i: int) -> dict:
    return {"kind": "artifact", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
            "body": {"sha256": f"{i:064x}", "media_type": "image/png", "size": i, "storage_ref": f"blob://{i}"}}


def _rows_only_ledger(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[Ledger, tuple]:
    """A ledger whose stored hashes are all tree_nodes rows, as every ledger's were before 0005:
    built with tiles too large to complete, then taken back to revision 0004 (which drops the empty
    node_tiles table). Also its root and some proofs, read before the downgrade."""
    monkeypatch.setattr(SqlStore, "tile_size", 1 << 40)
    ledger = init_ledger(settings, origin="custody.test/ledger")
    for k in range(0, RECORDS, 70):  # uneven batches, a checkpoint after each
        ledger.append([_record(i) for i in range(k, min(RECORDS, k + 70))])
    monkeypatch.setattr(SqlStore, "tile_size", NODE_TILE_SIZE)
    with ledger.store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM node_tiles").scalar() == 0
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM tree_nodes").scalar() == merkle.stored_hash_count(RECORDS)
    before = _snapshot(ledger)
    command.downgrade(alembic_config(ledger.store.engine), "0004")
    assert current_revision(ledger.store.engine) == "0004"
    return ledger, before


def _snapshot(ledger: Ledger) -> tuple:
    """The root and some proofs, all read from the database (a new Ledger caches no compact range)."""
    ledger = Ledger(ledger.store, ledger.keyring, ledger.config)
    return (ledger.root(), [ledger.prove_inclusion(i, s) for i, s in ((0, 7), (123, 400), (399, 400), (250, 333))],
            [ledger.prove_consistency(a, b) for a, b in ((1, 400), (70, 210), (333, 399))])


def _tiles(ledger: Ledger) -> dict[int, bytes]:
    with ledger.store.engine.connect() as conn:
        return {t: bytes(h) for t, h in conn.exec_driver_sql("SELECT tile, hashes FROM node_tiles ORDER BY tile")}


def _rows(ledger: Ledger) -> dict[int, bytes]:
    with ledger.store.engine.connect() as conn:
        return {i: bytes(h) for i, h in conn.exec_driver_sql("SELECT id, hash FROM tree_nodes ORDER BY id")}


def _verify(ledger: Ledger):
    return verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin)


def test_upgrade_backfills_the_tiles_of_an_existing_ledger(settings: Settings,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, before = _rows_only_ledger(settings, monkeypatch)
    rows = _rows(ledger)
    upgrade(ledger.store.engine)  # what `custody migrate` runs
    assert current_revision(ledger.store.engine) == "0005"
    k = NODE_TILE_SIZE
    count = merkle.stored_hash_count(RECORDS)
    tiles = _tiles(ledger)
    assert sorted(tiles) == list(range(count // k))
    for t, blob in tiles.items():
        assert blob == b"".join(rows[i] for i in range(t * k, t * k + k))
    assert _rows(ledger) == rows  # append-only: every row stays
    assert _snapshot(ledger) == before  # read from the tiles now: the same root and proofs
    report = _verify(ledger)
    assert report.ok, report.as_dict()
    # the store writes on from there: the next tile is completed from the rows of the tail
    ledger.append([_record(i) for i in range(RECORDS, RECORDS + 40)])
    assert sorted(_tiles(ledger)) == list(range(merkle.stored_hash_count(RECORDS + 40) // k))
    assert _verify(ledger).ok
    assert _snapshot(ledger)[1:] == before[1:]  # the same proofs for the same sizes
    upgrade(ledger.store.engine)  # nothing left to do
    # every backfilled tile has all its rows: verify still checks each of them
    sid = 3 * k + 40
    Tamper(ledger.store.url).set_node_row(sid, b"\x07" * 32)
    p = _verify(ledger).problems
    assert [x.what for x in p] == ["bad_tree_node"] and f"tree_nodes row of tree node {sid} " in p[0].message
    ledger.store.close()


def test_backfill_in_small_batches_and_from_where_it_stopped(settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, _ = _rows_only_ledger(settings, monkeypatch)
    rows = _rows(ledger)
    upgrade(ledger.store.engine)
    expected = _tiles(ledger)
    assert len(expected) == 12
    # The rows-only state again, with an empty node_tiles table: the backfill on its own, in
    # batches of 5 tiles, after the first 3 tiles were written by an earlier (interrupted) run.
    command.downgrade(alembic_config(ledger.store.engine), "0004")
    blob = "BLOB" if ledger.store.dialect == "sqlite" else "BYTEA"
    with ledger.store.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE node_tiles (tile BIGINT PRIMARY KEY, hashes {blob} NOT NULL)")
        for t in range(3):
            conn.exec_driver_sql("INSERT INTO node_tiles (tile, hashes) VALUES "
                                 + ("(?, ?)" if ledger.store.dialect == "sqlite" else "(%s, %s)"), (t, expected[t]))
        assert m0005.backfill(conn, batch_tiles=5) == 9
        assert m0005.backfill(conn, batch_tiles=5) == 0  # nothing left
    assert _tiles(ledger) == expected
    assert _rows(ledger) == rows
    ledger.store.close()


def test_backfill_stops_at_a_gap(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged ledger (a stored hash without its row) is tiled up to the gap; verify names the gap."""
    ledger, _ = _rows_only_ledger(settings, monkeypatch)
    gap = 5 * NODE_TILE_SIZE + 17
    with Tamper(ledger.store.url).unguarded("tree_nodes") as c:
        c.execute("DELETE FROM tree_nodes WHERE id = ?", (gap,))
    upgrade(ledger.store.engine)
    assert sorted(_tiles(ledger)) == list(range(5))
    report = _verify(ledger)
    assert [p.what for p in report.problems] == ["bad_tree_node"]
    assert f"tile 5 (tree nodes {5 * NODE_TILE_SIZE}..{6 * NODE_TILE_SIZE - 1}) is missing" in report.problems[0].message
    ledger.store.close()


def test_downgrade_gives_every_hash_its_row(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = init_ledger(settings, origin="custody.test/ledger")
    for k in range(0, RECORDS, 130):
        ledger.append([_record(i) for i in range(k, min(RECORDS, k + 130))])
    tiles, rows = _tiles(ledger), _rows(ledger)
    k = NODE_TILE_SIZE
    assert len(rows) < merkle.stored_hash_count(RECORDS) and len(tiles) == merkle.stored_hash_count(RECORDS) // k
    command.downgrade(alembic_config(ledger.store.engine), "0004")
    after = _rows(ledger)
    assert sorted(after) == list(range(merkle.stored_hash_count(RECORDS)))
    assert all(after[i] == rows[i] for i in rows)
    assert all(after[t * k + j] == blob[32 * j:32 * j + 32] for t, blob in tiles.items() for j in range(k))
    upgrade(ledger.store.engine)
    assert _tiles(ledger) == tiles
    assert _verify(ledger).ok
    ledger.store.close()
