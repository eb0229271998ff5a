"""Stored hashes in tiles (``ledger.store_sql``): what each append writes, and that every read
(``nodes``, ``node_range``, ``leaf_ids_with_hash``, ``iter_chunks``) returns every stored hash,
whether a tile, a row or both hold it; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from ledger import merkle
from ledger.errors import StorageError
from ledger.service import Ledger
from ledger.store import NODE_TILE_SIZE
from ledger.store_sql import SqlStore
from ledger.verify import verify_ledger
from tests.unit.ledger.tamper import Tamper

K = NODE_TILE_SIZE


def rec(i: int) -> dict[str, Any]:
    return {"kind": "artifact", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
            "body": {"sha256": f"{i:064x}", "media_type": "image/png", "size": i, "storage_ref": f"blob://{i}"}}


def append(ledger: Ledger, n: int, publish: bool = False) -> None:
    start = ledger.size()
    ledger.append([rec(i) for i in range(start, start + n)], publish=publish)


def truth(ledger: Ledger) -> dict[int, bytes]:
    """Every stored hash, recomputed from the entries' bytes."""
    out: dict[int, bytes] = {}
    frontier: list[bytes] = []
    with ledger.store.read() as r:
        entries = r.entries(0, r.size())
    for n, data in entries:
        frontier, stored = merkle.append_leaf(n, frontier, merkle.leaf_hash(bytes(data)))
        out.update(stored)
    return out


def layout(ledger: Ledger) -> tuple[list[int], list[int]]:
    t = Tamper.of(ledger)
    return sorted(t.tiles()), t.node_row_ids()


def test_each_append_writes_complete_tiles_and_rows_only_for_the_tail(ledger: Ledger) -> None:
    append(ledger, 100)  # stored hashes 0..196: tiles 0-2 (0..185), rows 186..196
    assert layout(ledger) == ([0, 1, 2], list(range(3 * K, 197)))
    append(ledger, 1)  # 197
    assert layout(ledger) == ([0, 1, 2], list(range(3 * K, 198)))
    append(ledger, 30)  # to 258: tile 3 (186..247) completed from its 12 rows, rows 248..258
    assert merkle.stored_hash_count(131) == 259
    assert layout(ledger) == ([0, 1, 2, 3], list(range(3 * K, 198)) + list(range(4 * K, 259)))
    # Single appends: a hash is a row unless the append that writes it completes its tile.
    rows = list(range(3 * K, 198)) + list(range(4 * K, 259))
    for _ in range(80):
        a, b = merkle.stored_hash_count(ledger.size()), merkle.stored_hash_count(ledger.size() + 1)
        rows += [i for i in range(a, b) if i >= b // K * K]
        append(ledger, 1)
    count = merkle.stored_hash_count(ledger.size())
    assert count // K == 6
    assert layout(ledger) == (list(range(count // K)), rows)
    t = Tamper.of(ledger)
    expected = truth(ledger)
    assert all(t.node_row(i) == expected[i] for i in rows)
    assert all(blob == b"".join(expected[i] for i in range(tile * K, tile * K + K)) for tile, blob in t.tiles().items())


@pytest.fixture
def grown(ledger: Ledger) -> Ledger:
    """Tiles with and without rows, and a tail: batches of 1, 7, 61, 3 and 150 entries."""
    for n in (1, 7, 61, 3, 150, 1, 1):
        append(ledger, n, publish=True)
    return ledger


def test_nodes_returns_every_stored_hash(grown: Ledger) -> None:
    expected = truth(grown)
    count = len(expected)
    assert count == merkle.stored_hash_count(grown.size()) and count > 4 * K
    rng = random.Random(5)
    with grown.store.read() as r:
        assert r.nodes(range(count)) == expected
        assert r.nodes([]) == {}
        for _ in range(50):
            ids = rng.sample(range(count), rng.randint(1, 40)) + [count, count + 1000]  # and two not stored
            ids += ids[:3]  # duplicates
            assert r.nodes(ids) == {i: expected[i] for i in ids if i < count}
        assert r.nodes([count - 1]) == {count - 1: expected[count - 1]}  # the tail alone
        assert r.nodes([0, count - 1]) == {0: expected[0], count - 1: expected[count - 1]}


def test_node_range_returns_every_stored_hash(grown: Ledger) -> None:
    expected = truth(grown)
    count = len(expected)
    with grown.store.read() as r:
        assert r.node_range(0, count + 10) == sorted(expected.items())
        for a, b in ((0, 1), (K - 1, K + 1), (5, 3 * K + 7), (count - 3, count), (count - 70, count + 5), (7, 7)):
            assert r.node_range(a, b) == [(i, expected[i]) for i in range(a, min(b, count))]


def test_leaf_ids_with_hash_looks_in_tiles_and_rows(grown: Ledger) -> None:
    expected = truth(grown)
    tiles, rows = layout(grown)
    in_tile_only = next(i for i in range(K * len(tiles)) if i not in rows)
    shadowed = next(i for i in rows if i < K * len(tiles))
    tail = max(rows)
    with grown.store.read() as r:
        for sid in (in_tile_only, shadowed, tail, 0):
            assert r.leaf_ids_with_hash(expected[sid]) == [sid]
        assert r.leaf_ids_with_hash(b"\x00" * 32) == []
        # a 32-byte string that spans two hashes of a tile is no stored hash
        assert r.leaf_ids_with_hash(expected[1][16:] + expected[2][:16]) == []


def test_iter_chunks_yields_what_is_stored(grown: Ledger) -> None:
    expected = truth(grown)
    t = Tamper.of(grown)
    tiles, rows = t.tiles(), {i: t.node_row(i) for i in t.node_row_ids()}
    size = grown.size()
    seen = 0
    for part in grown.store.iter_chunks(0, size, 37):
        a = part.entries[0][0]
        assert [i for i, _ in part.entries] == list(range(a, min(size, a + 37)))
        assert (part.first_id, part.end_id) == (merkle.stored_hash_index(0, a), merkle.stored_hash_count(a + len(part.entries)))
        lo, hi = part.first_id // K, -(-part.end_id // K)
        assert part.tiles == [(x, tiles[x]) for x in range(lo, hi) if x in tiles]
        assert part.rows == [(i, rows[i]) for i in sorted(rows) if lo * K <= i < part.end_id]
        seen += len(part.entries)
    assert seen == size
    assert verify_ledger(grown.store, grown.keyring.verifiers, grown.config.origin, chunk=37).ok
    assert len(expected) == merkle.stored_hash_count(size)


def test_proofs_agree_with_the_reference(grown: Ledger) -> None:
    leaves = [merkle.leaf_hash(bytes(d)) for _, d in grown.store.iter_chunks(0, grown.size(), 10_000).__next__().entries]
    n = len(leaves)
    rng = random.Random(9)
    for _ in range(40):
        size = rng.randint(1, n)
        idx = rng.randrange(size)
        p = grown.prove_inclusion(idx, size)
        assert [bytes.fromhex(h) for h in p["proof"]] == merkle.inclusion_proof_of(leaves, idx, size)
        assert bytes.fromhex(p["root"]) == merkle.root_of(leaves[:size])
        old = rng.randint(0, size)
        c = grown.prove_consistency(old, size)
        assert [bytes.fromhex(h) for h in c["proof"]] == merkle.consistency_proof_of(leaves, old, size)


def test_a_snapshot_from_before_a_tile_was_written_reads_its_rows(ledger: Ledger) -> None:
    append(ledger, 20)  # 38 stored hashes, all rows
    expected = truth(ledger)
    with ledger.store.read() as r:
        assert r.size() == 20  # the snapshot starts here
        append(ledger, 20)  # completes tile 0 in another transaction
        assert layout(ledger)[0] == [0]
        # tile 0 is not in this snapshot: its ids come from their rows (the second statement)
        assert r.nodes([3, 37, K + 5]) == {3: expected[3], 37: expected[37]}
        assert r.node_range(0, 40) == sorted(expected.items())


def test_insert_nodes_refuses_what_is_not_the_next_hashes(ledger: Ledger) -> None:
    h = b"\x11" * 32
    with pytest.raises(StorageError, match="consecutive"), ledger.store.write() as w:
        w.insert_nodes([(0, h), (2, h)])
    with pytest.raises(StorageError, match="cannot complete tile 0"), ledger.store.write() as w:
        w.insert_nodes([(i, h) for i in range(5, K + 3)])  # rows 0..4 are not there
    with pytest.raises(StorageError, match="not 32 bytes"), ledger.store.write() as w:
        w.insert_nodes([(i, h if i != 7 else h[:31]) for i in range(K)])
    assert layout(ledger) == ([], [])  # nothing was written


def test_threads_and_small_tiles(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent writers complete each other's tiles (5 hashes a tile, so nearly every append
    does); the tree verifies and every tile holds the right hashes."""
    monkeypatch.setattr(ledger.store, "tile_size", 5)
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(15):
                ledger.append([rec(rng.randrange(10**6)) for _ in range(rng.randint(1, 7))], publish=rng.random() < 0.3)
        except BaseException as err:  # noqa: BLE001 - re-raised below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    ledger.publish()
    count = merkle.stored_hash_count(ledger.size())
    t = Tamper(ledger.store.url, 5)
    expected = truth(ledger)
    assert sorted(t.tiles()) == list(range(count // 5))
    assert all(blob == b"".join(expected[i] for i in range(x * 5, x * 5 + 5)) for x, blob in t.tiles().items())
    assert set(range(count // 5 * 5, count)) <= set(t.node_row_ids())
    report = verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin)
    assert report.ok, report.as_dict()


def test_the_store_class_tiles_as_the_format_says() -> None:
    assert SqlStore.tile_size == NODE_TILE_SIZE == 62


@pytest.mark.parametrize("tile_size", [1, 2])
def test_nodes_reads_more_than_500_tiles(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tile_size: int) -> None:
    """Reads of many tiles go in statements of 500 (the rows of the top tile with the last)."""
    monkeypatch.setattr(ledger.store, "tile_size", tile_size)
    append(ledger, 301)
    append(ledger, 300)  # 1,199 stored hashes: 1,199 or 599 tiles, and a row at 2 a tile
    expected = truth(ledger)
    assert len(Tamper(ledger.store.url, tile_size).tiles()) == len(expected) // tile_size > 500
    with ledger.store.read() as r:
        assert r.nodes(range(len(expected))) == expected
        assert r.nodes([len(expected) - 1, 0]) == {0: expected[0], len(expected) - 1: expected[len(expected) - 1]}
        assert r.node_range(0, len(expected)) == sorted(expected.items())
    assert verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin).ok
