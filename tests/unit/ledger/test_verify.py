"""`custody verify` against a ledger damaged behind the code's back, on SQLite and PostgreSQL.

Every test builds a ledger of 14 entries in four batches with a checkpoint at sizes 0, 3, 7, 12
and 14, then tampers with the database through a connection of its own (``tamper.Tamper``:
raw SQL, append-only triggers dropped and put back) and asserts that verify names the damage
and the first bad index. The last tests check that, with the triggers in place, the database
itself refuses UPDATE, DELETE and TRUNCATE, and that the CLI reports what verify found.

Every test runs twice: at the ledger's tile size (``NODE_TILE_SIZE``: the 14 entries' 25 stored
hashes are all ``tree_nodes`` rows, as in any young ledger) and at 4 hashes a tile, where they
are 6 tiles, 5 rows that a tile completed later covers (8, 9, 10, 20, 21) and one tail row (24).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from api.composition import init_ledger
from api.settings import Settings
from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.keys import NoteSigner, sign_note
from ledger.service import Ledger
from ledger.store import NODE_TILE_SIZE
from ledger.store_sql import SqlStore
from ledger.verify import VerifyReport, verify_ledger
from tests.unit.ledger.tamper import APPEND_ONLY, NODE_TABLES, Tamper, edited, junk_hash, trigger_names

BATCHES = (3, 4, 5)  # published one checkpoint per batch; then 2 more, published by publish(force=True)
SIZE = 14
CHECKPOINT_SIZES = [0, 3, 7, 12, 14]
SMALL_TILES = 4


@pytest.fixture(autouse=True, params=[NODE_TILE_SIZE, SMALL_TILES], ids=lambda k: f"tiles{k}")
def tile_size(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The store's tile size for the whole test (set before the ledger is made: autouse)."""
    monkeypatch.setattr(SqlStore, "tile_size", request.param)
    return int(request.param)


def record(i: int, pos: int) -> dict[str, Any]:
    """Record ``i`` of the test ledger, at position ``pos`` of its batch.

    Every third is a principal with a sealed field (rows in sealed_values); the others are
    artifacts linked to the record before them (rows in links), in the batch or in the ledger.
    """
    t = "2026-01-01T00:00:00Z"
    if i % 3 == 0:
        return {"kind": "principal", "producer": "svc:test", "produced_at": t, "subject": f"subj:u-{i}",
                "body": {"pseudonym": f"u-{i}", "principal_type": "user"},
                "sensitive": {"handle": f"@user{i}"}}
    link = {"rel": "derived_from", "batch": pos - 1} if pos > 0 else {"rel": "derived_from", "id": i - 1}
    return {"kind": "artifact", "producer": "svc:test", "produced_at": t, "links": [link],
            "body": {"sha256": hashlib.sha256(str(i).encode()).hexdigest(), "media_type": "image/png",
                     "size": 1000 + i, "storage_ref": f"blob://test/{i}"}}


def append_n(ledger: Ledger, n: int, *, publish: bool = True) -> list[int]:
    start = ledger.size()
    out = ledger.append([record(start + k, k) for k in range(n)], publish=publish)
    return [a.id for a in out]


@dataclass
class Built:
    ledger: Ledger
    tamper: Tamper
    cp: dict[int, int]  # checkpoint size → checkpoint id
    roots: dict[int, bytes]  # checkpoint size → signed root

    def verify(self, **kw: Any) -> VerifyReport:
        return run_verify(self.ledger, **kw)


def run_verify(ledger: Ledger, **kw: Any) -> VerifyReport:
    return verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin, **kw)


def build(ledger: Ledger) -> Built:
    for n in BATCHES:
        append_n(ledger, n)
    append_n(ledger, 2, publish=False)
    assert ledger.latest_checkpoint().size == 12  # type: ignore[union-attr]
    ledger.publish(force=True)
    again = ledger.publish(force=True)  # already covered: no new checkpoint
    cps = ledger.checkpoints()
    assert [c.size for c in cps] == CHECKPOINT_SIZES
    assert again is not None and again.id == cps[-1].id
    assert ledger.size() == SIZE
    return Built(ledger, Tamper.of(ledger), {c.size: c.id for c in cps}, {c.size: c.root for c in cps})


@pytest.fixture
def built(ledger: Ledger) -> Built:
    return build(ledger)


def whats(report: VerifyReport) -> list[str]:
    return [p.what for p in report.problems]


def only(report: VerifyReport, what: str) -> Any:
    """The report's one problem, which must be ``what``."""
    assert not report.ok
    assert whats(report) == [what], report.as_dict()
    return report.problems[0]


def resign(ledger: Ledger, size: int, root: bytes | None = None) -> str:
    """A checkpoint note for ``size`` signed with the ledger's real key."""
    body = Checkpoint(ledger.config.origin, size, ledger.root(size) if root is None else root).body()
    return sign_note(body, [ledger.keyring.signer()])


# --- a clean ledger ---------------------------------------------------------------------------------


def test_clean_ledger_verifies(built: Built) -> None:
    report = built.verify()
    assert report.ok, report.as_dict()
    assert report.first_bad_index is None
    assert (report.mode, report.size, report.start) == ("full", SIZE, 0)
    assert report.entries_checked == SIZE
    assert report.checkpoints_checked == len(CHECKPOINT_SIZES)
    d = report.as_dict()
    assert d["ok"] is True and d["problems"] == [] and d["first_bad_index"] is None
    assert built.verify(deep=True).ok
    assert built.verify(chunk=4).ok  # chunking changes nothing


def test_empty_ledger_verifies(ledger: Ledger) -> None:
    report = run_verify(ledger)
    assert report.ok and report.size == 0 and report.entries_checked == 0
    assert report.checkpoints_checked == 1  # init signs the empty tree


# --- (a) a modified record -------------------------------------------------------------------------


@pytest.mark.parametrize("idx", [0, 5, 13])
def test_modified_record(built: Built, idx: int) -> None:
    built.tamper.set_entry_data(idx, edited(built.tamper.entry_data(idx)))
    p = only(built.verify(), "modified_record")
    assert p.index == idx
    assert built.verify().first_bad_index == idx
    assert only(built.verify(chunk=4), "modified_record").index == idx


def test_modified_record_by_one_byte(built: Built) -> None:
    data = built.tamper.entry_data(8)
    built.tamper.set_entry_data(8, data.replace(b'"size":1008', b'"size":1009'))
    assert only(built.verify(), "modified_record").index == 8


def test_first_of_several_modified_records_is_named(built: Built) -> None:
    for idx in (9, 4, 11):
        built.tamper.set_entry_data(idx, edited(built.tamper.entry_data(idx)))
    report = built.verify()
    assert report.first_bad_index == 4
    assert report.problems[0].what == "modified_record" and report.problems[0].index == 4


def test_modified_leaf_node(built: Built) -> None:
    """The record is intact but its leaf in the tree was changed: the two no longer agree at that index."""
    built.tamper.set_node(merkle.stored_hash_index(0, 6), junk_hash())
    report = built.verify()
    assert not report.ok and report.first_bad_index == 6
    assert whats(report) == ["modified_record"]


# --- (b) a record rewritten together with its tree --------------------------------------------------------


def test_rewritten_history_with_consistent_tree(built: Built) -> None:
    """Entry 5 and its leaf, (1,2), (2,1) and (3,0) rewritten consistently: every node recomputes
    from the bytes, so only the checkpoints signed over the old tree can tell."""
    changed = built.tamper.rewrite_history(5, edited(built.tamper.entry_data(5)))
    assert len(changed) == 4
    p = only(built.verify(), "rewritten_history")
    assert p.checkpoint == built.cp[7]  # the first checkpoint covering entry 5
    assert p.index == 6  # "entries before index 7 were changed"


def test_rewritten_history_in_the_first_checkpoint(built: Built) -> None:
    built.tamper.rewrite_history(1, edited(built.tamper.entry_data(1)))
    p = only(built.verify(), "rewritten_history")
    assert p.checkpoint == built.cp[3] and p.index == 2


def test_rewrite_after_the_last_checkpoint_has_no_evidence_against_it(built: Built) -> None:
    """Nothing signed covers entry 14 yet and its tree path was rewritten to match: the database
    alone cannot show it (the boundary of what verify can know without outside witnesses)."""
    append_n(built.ledger, 1, publish=False)
    built.tamper.rewrite_history(14, edited(built.tamper.entry_data(14)))
    assert built.verify().ok


# --- (c) a deleted entry -----------------------------------------------------------------------------


@pytest.mark.parametrize("idx", [0, 6, 12])
def test_deleted_entry(built: Built, idx: int) -> None:
    with built.tamper.unguarded("entries") as c:
        c.execute("DELETE FROM entries WHERE idx = ?", (idx,))
    p = only(built.verify(), "missing_entry")
    assert p.index == idx
    assert only(built.verify(chunk=4), "missing_entry").index == idx


def test_deleted_entry_and_its_nodes(built: Built, tile_size: int) -> None:
    with built.tamper.unguarded("entries", *NODE_TABLES) as c:
        c.execute("DELETE FROM entries WHERE idx = 4")
        built.tamper.drop_node(c, merkle.stored_hash_index(0, 4))
    if tile_size == SMALL_TILES:
        # Entry 4's leaf (stored hash 7) shares tile 1 (hashes 4..7) with entry 3's three hashes. A
        # tile cannot lose one hash: it was deleted (the others kept as rows), and a complete tile
        # that is gone is damage at the first hash it held.
        p = only(built.verify(), "bad_tree_node")
        assert p.index == 3 and "tile 1 (tree nodes 4..7) is missing" in p.message
    else:
        assert only(built.verify(), "missing_entry").index == 4


def test_deleted_entry_with_the_rest_shifted_down(built: Built) -> None:
    """Entry 6 removed and 7..13 renumbered to close the gap: the log is one shorter and every
    entry from 6 on holds the bytes of the next index."""
    with built.tamper.unguarded("entries") as c:
        c.execute("DELETE FROM entries WHERE idx = 6")
        for i in range(7, SIZE):
            c.execute("UPDATE entries SET idx = ? WHERE idx = ?", (i - 1, i))
    report = built.verify()
    assert report.first_bad_index == 6
    assert ("reordered_entry", 6) in [(p.what, p.index) for p in report.problems]
    assert "truncated_log" in whats(report)  # the checkpoint of size 14 covers more than the log holds


# --- (d) reordered entries ----------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [(4, 5), (2, 9), (0, 13)])
def test_swapped_entries(built: Built, a: int, b: int) -> None:
    da, db = built.tamper.entry_data(a), built.tamper.entry_data(b)
    with built.tamper.unguarded("entries") as c:
        c.execute("UPDATE entries SET data = ? WHERE idx = ?", (db, a))
        c.execute("UPDATE entries SET data = ? WHERE idx = ?", (da, b))
    p = only(built.verify(), "reordered_entry")
    assert p.index == a
    assert f"index {b}" in p.message


def test_entry_copied_over_a_later_one(built: Built) -> None:
    """Entry 3's bytes put at index 10 as well (a replay): the bytes belong at index 3."""
    built.tamper.set_entry_data(10, built.tamper.entry_data(3))
    p = only(built.verify(), "reordered_entry")
    assert p.index == 10 and "index 3" in p.message


def test_swapped_entries_across_chunks(built: Built) -> None:
    da, db = built.tamper.entry_data(1), built.tamper.entry_data(9)
    with built.tamper.unguarded("entries") as c:
        c.execute("UPDATE entries SET data = ? WHERE idx = ?", (db, 1))
        c.execute("UPDATE entries SET data = ? WHERE idx = ?", (da, 9))
    assert built.verify().problems[0].what == "reordered_entry"  # the default chunk sees both
    p = only(built.verify(chunk=4), "reordered_entry")
    assert p.index == 1


# --- (e) a truncated log ---------------------------------------------------------------------------


def test_truncated_log(built: Built) -> None:
    with built.tamper.unguarded("entries", *NODE_TABLES) as c:
        c.execute("DELETE FROM entries WHERE idx >= 12")
        built.tamper.drop_nodes_from(c, merkle.stored_hash_count(12))
    report = built.verify()
    p = only(report, "truncated_log")
    assert p.index == 12 and p.checkpoint == built.cp[14]
    assert report.size == 12 and report.first_bad_index == 12


def test_truncated_log_entries_only(built: Built) -> None:
    with built.tamper.unguarded("entries") as c:
        c.execute("DELETE FROM entries WHERE idx >= 13")
    p = only(built.verify(), "truncated_log")
    assert p.index == 13 and p.checkpoint == built.cp[14]


def test_truncated_past_several_checkpoints(built: Built) -> None:
    with built.tamper.unguarded("entries", *NODE_TABLES) as c:
        c.execute("DELETE FROM entries WHERE idx >= 5")
        built.tamper.drop_nodes_from(c, merkle.stored_hash_count(5))
    report = built.verify()
    assert whats(report) == ["truncated_log"] * 3
    assert {p.checkpoint for p in report.problems} == {built.cp[7], built.cp[12], built.cp[14]}
    assert report.first_bad_index == 5


def test_everything_deleted(built: Built) -> None:
    with built.tamper.unguarded("entries", *NODE_TABLES) as c:
        c.execute("DELETE FROM entries")
        c.execute("DELETE FROM tree_nodes")
        c.execute("DELETE FROM node_tiles")
    report = built.verify()
    assert set(whats(report)) == {"truncated_log"} and report.first_bad_index == 0


def test_truncated_log_with_its_checkpoints_removed_after_a_verified_run(built: Built) -> None:
    assert built.verify().ok  # verify_runs now names the checkpoint of size 14
    with built.tamper.unguarded("entries", *NODE_TABLES, "checkpoints") as c:
        c.execute("DELETE FROM entries WHERE idx >= 12")
        built.tamper.drop_nodes_from(c, merkle.stored_hash_count(12))
        c.execute("DELETE FROM checkpoints WHERE size > 12")
    report = built.verify(incremental=True)
    assert not report.ok
    assert report.first_bad_index == 12


# --- (f) forged checkpoints ----------------------------------------------------------------------


def test_checkpoint_signed_by_another_key(built: Built) -> None:
    """Same origin, same key name, a key the verifier list does not hold."""
    impostor = NoteSigner.generate(built.ledger.config.origin)
    root = junk_hash("fake root")
    note = sign_note(Checkpoint(built.ledger.config.origin, SIZE, root).body(), [impostor])
    cid = built.tamper.insert_checkpoint(SIZE, root, note)
    report = built.verify()
    p = only(report, "forged_checkpoint")
    assert p.checkpoint == cid and p.index is None
    assert report.checkpoints_checked == len(CHECKPOINT_SIZES) + 1


def test_checkpoint_with_edited_note_text(built: Built) -> None:
    """The real note of size 12 with its root line swapped for another; the signature is kept."""
    real = next(c for c in built.ledger.checkpoints() if c.size == 12)
    fake_root = junk_hash("other root")
    note = real.note.replace(base64.b64encode(real.root).decode(), base64.b64encode(fake_root).decode())
    assert note != real.note
    cid = built.tamper.insert_checkpoint(12, fake_root, note)
    p = only(built.verify(), "forged_checkpoint")
    assert p.checkpoint == cid


def test_checkpoint_with_edited_size(built: Built) -> None:
    """The real note of size 7 claiming size 9 (its root unchanged): the signature no longer verifies."""
    real = next(c for c in built.ledger.checkpoints() if c.size == 7)
    note = real.note.replace("\n7\n", "\n9\n", 1)
    cid = built.tamper.insert_checkpoint(9, real.root, note)
    assert only(built.verify(), "forged_checkpoint").checkpoint == cid


def test_checkpoint_note_edited_in_place(built: Built) -> None:
    real = next(c for c in built.ledger.checkpoints() if c.size == 14)
    with built.tamper.unguarded("checkpoints") as c:
        note = real.note.replace("\n14\n", "\n15\n", 1)
        c.execute("UPDATE checkpoints SET note = ? WHERE id = ?", (note, real.id))
    assert only(built.verify(), "forged_checkpoint").checkpoint == real.id


@pytest.mark.parametrize("column", ["size", "root"])
def test_checkpoint_row_disagrees_with_its_note(built: Built, column: str) -> None:
    """The note is intact but the row's copied-out size or root was changed."""
    cid = built.cp[12]
    value: Any = 11 if column == "size" else built.roots[7]
    with built.tamper.unguarded("checkpoints") as c:
        c.execute(f"UPDATE checkpoints SET {column} = ? WHERE id = ?", (value, cid))
    p = only(built.verify(), "forged_checkpoint")
    assert p.checkpoint == cid


def test_checkpoint_for_another_origin(built: Built) -> None:
    """Signed with the real key, but for another log's origin."""
    root = built.ledger.root(SIZE)
    note = sign_note(Checkpoint("custody.test/other-log", SIZE, root).body(), [built.ledger.keyring.signer()])
    cid = built.tamper.insert_checkpoint(SIZE, root, note)
    assert only(built.verify(), "forged_checkpoint").checkpoint == cid


def test_garbage_checkpoint_note(built: Built) -> None:
    cid = built.tamper.insert_checkpoint(SIZE, built.roots[14], "not a signed note")
    assert only(built.verify(), "forged_checkpoint").checkpoint == cid


# --- (g) rolled-back checkpoints -------------------------------------------------------------------


def test_rolled_back_checkpoint(built: Built) -> None:
    """The real key re-signs size 7 (its true root) after size 14 was published."""
    cid = built.tamper.insert_checkpoint(7, built.roots[7], resign(built.ledger, 7))
    report = built.verify()
    p = only(report, "rolled_back_checkpoint")
    assert p.checkpoint == cid
    assert "7" in p.message and "14" in p.message


def test_rollback_to_size_zero(built: Built) -> None:
    cid = built.tamper.insert_checkpoint(0, merkle.EMPTY_ROOT, resign(built.ledger, 0))
    assert only(built.verify(), "rolled_back_checkpoint").checkpoint == cid


def test_truncation_with_a_re_signed_rollback(built: Built) -> None:
    """The log cut back to 7 entries and a fresh checkpoint of size 7 signed on top: both are named
    (a checkpoint beyond the log still raises the high-water size the rollback is measured against)."""
    with built.tamper.unguarded("entries", *NODE_TABLES) as c:
        c.execute("DELETE FROM entries WHERE idx >= 7")
        built.tamper.drop_nodes_from(c, merkle.stored_hash_count(7))
    cid = built.tamper.insert_checkpoint(7, built.roots[7], resign(built.ledger, 7, built.roots[7]))
    report = built.verify()
    assert sorted((p.what, p.checkpoint) for p in report.problems) == sorted(
        [("truncated_log", built.cp[12]), ("truncated_log", built.cp[14]), ("rolled_back_checkpoint", cid)])
    assert report.first_bad_index == 7


def test_re_signed_checkpoint_with_a_wrong_root(built: Built) -> None:
    """A (stolen) real key signs size 14 with another root: the tree recomputed says otherwise."""
    cid = built.tamper.insert_checkpoint(SIZE, junk_hash(), resign(built.ledger, SIZE, junk_hash()))
    p = only(built.verify(), "rewritten_history")
    assert p.checkpoint == cid


# --- (h) damaged tree nodes --------------------------------------------------------------------


@pytest.mark.parametrize(("address", "written_by"), [((1, 2), 5), ((2, 1), 7), ((3, 0), 7), ((1, 6), 13)])
def test_modified_interior_node(built: Built, address: tuple[int, int], written_by: int) -> None:
    built.tamper.set_node(merkle.stored_hash_index(*address), junk_hash())
    p = only(built.verify(), "bad_tree_node")
    assert p.index == written_by
    assert str(merkle.stored_hash_index(*address)) in p.message


def test_deleted_interior_node(built: Built) -> None:
    sid = merkle.stored_hash_index(2, 1)
    built.tamper.delete_node(sid)
    p = only(built.verify(), "bad_tree_node")
    assert p.index == 7 and "missing" in p.message


# --- (i) damaged tiles and rows a tile covers ---------------------------------------------------------------


@dataclass
class Tiled:
    k: int
    complete: int  # tiles the tree has completed
    owner: dict[int, int]  # stored id → the entry whose append wrote it
    shadowed: list[int]  # ids with a tree_nodes row that a complete tile covers too


def owners(built: Built) -> dict[int, int]:
    """stored id → the entry whose append wrote it, for the whole ledger."""
    owner: dict[int, int] = {}
    frontier: list[bytes] = []
    for n, data in enumerate(built.tamper.all_data()):
        frontier, stored = merkle.append_leaf(n, frontier, merkle.leaf_hash(data))
        owner.update((sid, n) for sid, _ in stored)
    return owner


def tiled(built: Built) -> Tiled:
    """The built ledger, grown until the tree has completed three tiles: batches of 5, so each tile
    is begun by one batch and completed by a later one, and its first hashes are rows too (the
    14 entries already are that at 4 hashes a tile)."""
    k = built.tamper.tile_size
    while merkle.stored_hash_count(built.ledger.size()) // k < 3:
        append_n(built.ledger, 5)
    owner = owners(built)
    complete = merkle.stored_hash_count(built.ledger.size()) // k
    assert sorted(built.tamper.tiles()) == list(range(complete))
    shadowed = [i for i in built.tamper.node_row_ids() if i < complete * k]
    assert shadowed
    assert built.verify().ok
    return Tiled(k, complete, owner, shadowed)


def is_leaf(sid: int, owner: dict[int, int]) -> bool:
    return merkle.stored_hash_index(0, owner[sid]) == sid


@pytest.mark.parametrize("which", ["interior", "leaf"])
def test_modified_hash_in_a_tile(built: Built, which: str) -> None:
    """One hash of tile 1 changed (its row, if it has one, left alone): the tile disagrees with the tree."""
    t = tiled(built)
    sid = next(i for i in range(t.k, 2 * t.k) if is_leaf(i, t.owner) == (which == "leaf"))
    built.tamper.set_tile_hash(sid, junk_hash())
    report = built.verify()
    if which == "leaf":
        assert only(report, "modified_record").index == t.owner[sid]
    else:
        p = only(report, "bad_tree_node")
        assert p.index == t.owner[sid]
        assert f"tree node {sid} " in p.message and "in tile 1" in p.message
    assert only(built.verify(chunk=3), whats(report)[0]).index == t.owner[sid]


def test_a_tile_and_its_rows_modified_together(built: Built) -> None:
    """A hash that is in a row and in its tile, changed in both: the recomputed tree still tells."""
    t = tiled(built)
    sid = next(i for i in t.shadowed if not is_leaf(i, t.owner))
    built.tamper.set_node(sid, junk_hash())
    assert built.tamper.node_row(sid) == junk_hash()
    p = only(built.verify(), "bad_tree_node")
    assert p.index == t.owner[sid] and f"tree node {sid} " in p.message


@pytest.mark.parametrize("tile", [0, 1, 2])
def test_missing_tile(built: Built, tile: int) -> None:
    t = tiled(built)
    with built.tamper.unguarded("node_tiles") as c:
        c.execute("DELETE FROM node_tiles WHERE tile = ?", (tile,))
    first = tile * t.k
    p = only(built.verify(), "bad_tree_node")
    assert p.index == t.owner[first]
    assert f"tile {tile} (tree nodes {first}..{first + t.k - 1}) is missing" in p.message
    assert only(built.verify(chunk=2), "bad_tree_node").index == t.owner[first]


def test_missing_tile_whose_hashes_all_have_rows(built: Built) -> None:
    """Tile 1 deleted after each of its hashes was given its true row: nothing is lost (reads fall
    back to the rows), but a complete tile is never absent from an untouched ledger."""
    t = tiled(built)
    truth = dict(built.tamper.tile_hashes(1))
    with built.tamper.unguarded(*NODE_TABLES) as c:
        built.tamper.untile(c, 1)
    assert {i: built.tamper.node_row(i) for i in truth} == truth
    idx = t.owner[t.k]
    proof = built.ledger.prove_inclusion(idx)
    merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), idx, proof["size"],
                            [bytes.fromhex(h) for h in proof["proof"]], bytes.fromhex(proof["root"]))
    p = only(built.verify(), "bad_tree_node")
    assert p.index == t.owner[t.k] and f"tile 1 (tree nodes {t.k}..{2 * t.k - 1}) is missing" in p.message


def test_short_tile(built: Built) -> None:
    t = tiled(built)
    blob = built.tamper.tile(2)
    assert blob is not None
    built.tamper.set_tile(2, blob[:-32])
    p = only(built.verify(), "bad_tree_node")
    assert p.index == t.owner[2 * t.k]
    assert f"holds {len(blob) - 32} bytes, not {len(blob)}" in p.message


@pytest.mark.parametrize("pick", [0, -1])
def test_modified_shadowed_row(built: Built, pick: int) -> None:
    """A row a tile covers is changed: reads use the tile, so proofs are unaffected, but verify
    names the row at the entry that wrote it."""
    t = tiled(built)
    sid = t.shadowed[pick]
    built.tamper.set_node_row(sid, junk_hash())
    assert built.tamper.node(sid) != junk_hash()  # the tile still holds the true hash
    p = only(built.verify(), "bad_tree_node")
    assert p.index == t.owner[sid]
    assert f"tree_nodes row of tree node {sid} " in p.message and f"tile {sid // t.k}" in p.message
    assert only(built.verify(chunk=3), "bad_tree_node").index == t.owner[sid]
    idx = t.owner[sid]
    proof = built.ledger.prove_inclusion(idx)
    merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), idx, proof["size"],
                            [bytes.fromhex(h) for h in proof["proof"]], bytes.fromhex(proof["root"]))


@pytest.mark.parametrize("copy", ["row", "tile"])
def test_incremental_checks_the_rows_a_new_tile_covers(built: Built, copy: str) -> None:
    """At the verified size the last tile was incomplete, its first hashes rows. Appends complete it;
    the row or the tile's copy of a hash changed afterwards shows in an incremental run, which does
    not recompute that hash again but finds that the row and the tile disagree."""
    k = tiled(built).k

    def tail_ids(size: int) -> list[int]:
        """Hashes of the incomplete last tile (rows) outside the compact range (which incremental
        runs re-check against the verified root)."""
        count = merkle.stored_hash_count(size)
        frontier = {merkle.stored_hash_index(*a) for a in merkle.frontier_addresses(size)}
        return [i for i in range(count // k * k, count) if i not in frontier]

    while not tail_ids(built.ledger.size()):
        append_n(built.ledger, 1)
    size = built.ledger.size()
    assert built.verify().ok
    first = tail_ids(size)[0]
    while merkle.stored_hash_count(built.ledger.size()) < first // k * k + k:
        append_n(built.ledger, 3)
    assert built.tamper.tile(first // k) is not None and built.tamper.node_row(first) is not None
    if copy == "row":
        built.tamper.set_node_row(first, junk_hash())
    else:
        built.tamper.set_tile_hash(first, junk_hash())
    writer = owners(built)[first]
    assert writer < size
    report = built.verify(incremental=True)
    assert report.start == size
    p = only(report, "bad_tree_node")
    assert p.index == writer and f"tree_nodes row of tree node {first} " in p.message
    assert built.verify().first_bad_index == writer  # a full run recomputes it


# --- consistency between checkpoints -------------------------------------------------------------------


def test_inconsistent_checkpoints_from_an_old_proof_node(built: Built) -> None:
    """Incremental verify does not restream [0, 14) but still proves every pair of consecutive
    checkpoints from the stored nodes: a damaged node of the 3 → 7 proof shows."""
    assert built.verify().ok
    append_n(built.ledger, 3)
    plan = merkle.consistency_plan(3, 7)
    frontier = {merkle.stored_hash_index(*a) for a in merkle.frontier_addresses(SIZE)}
    sid = next(i for i in merkle.plan_indices(plan) if i not in frontier)
    built.tamper.set_node(sid, junk_hash())
    report = built.verify(incremental=True)
    p = only(report, "inconsistent_checkpoints")
    assert "3" in p.message and "7" in p.message
    assert sid == merkle.stored_hash_index(1, 0)  # completed by entry 1
    p = only(built.verify(), "bad_tree_node")  # a full run finds the node itself
    assert p.index == 1


# --- incremental verification ---------------------------------------------------------------------


def test_incremental_checks_only_new_entries(built: Built) -> None:
    first = built.verify()
    assert first.ok
    assert built.verify(incremental=True).entries_checked == 0  # nothing new
    append_n(built.ledger, 3)
    report = built.verify(incremental=True)
    assert report.ok, report.as_dict()
    assert (report.mode, report.start, report.size) == ("incremental", SIZE, SIZE + 3)
    assert report.entries_checked == 3
    assert report.checkpoints_checked == len(CHECKPOINT_SIZES) + 1  # checkpoints are always all checked
    append_n(built.ledger, 2, publish=False)
    append_n(built.ledger, 2)
    report = built.verify(incremental=True)
    assert report.ok and report.start == SIZE + 3 and report.entries_checked == 4


def test_incremental_without_a_previous_run_is_full(built: Built) -> None:
    report = built.verify(incremental=True)
    assert report.ok and report.start == 0 and report.entries_checked == SIZE


def test_failed_verify_is_not_a_starting_point(built: Built) -> None:
    assert built.verify().ok
    append_n(built.ledger, 3)
    built.tamper.set_entry_data(15, edited(built.tamper.entry_data(15)))
    assert not built.verify().ok
    assert built.verify(incremental=True).start == SIZE  # still from the last good run


def test_incremental_detects_a_modified_new_entry(built: Built) -> None:
    assert built.verify().ok
    append_n(built.ledger, 3)
    built.tamper.set_entry_data(15, edited(built.tamper.entry_data(15)))
    report = built.verify(incremental=True)
    p = only(report, "modified_record")
    assert p.index == 15 and report.start == SIZE and report.entries_checked == 1


@pytest.mark.parametrize("tamper", ["swap", "delete", "truncate", "node"])
def test_incremental_detects_other_damage_to_new_entries(built: Built, tamper: str) -> None:
    assert built.verify().ok
    append_n(built.ledger, 4)  # 14..17, checkpoint at 18
    t = built.tamper
    if tamper == "swap":
        d15, d17 = t.entry_data(15), t.entry_data(17)
        with t.unguarded("entries") as c:
            c.execute("UPDATE entries SET data = ? WHERE idx = 15", (d17,))
            c.execute("UPDATE entries SET data = ? WHERE idx = 17", (d15,))
        expected = ("reordered_entry", 15)
    elif tamper == "delete":
        with t.unguarded("entries") as c:
            c.execute("DELETE FROM entries WHERE idx = 16")
        expected = ("missing_entry", 16)
    elif tamper == "truncate":
        with t.unguarded("entries") as c:
            c.execute("DELETE FROM entries WHERE idx >= 16")
        expected = ("truncated_log", 16)
    else:
        t.set_node(merkle.stored_hash_index(1, 7), junk_hash())  # completed by entry 15
        expected = ("bad_tree_node", 15)
    report = built.verify(incremental=True)
    assert [(p.what, p.index) for p in report.problems] == [expected]


@pytest.mark.parametrize("address", merkle.frontier_addresses(SIZE))
def test_incremental_detects_tampered_nodes_at_the_verified_size(built: Built,
                                                                  address: tuple[int, int]) -> None:
    assert built.verify().ok
    append_n(built.ledger, 2)
    built.tamper.set_node(merkle.stored_hash_index(*address), junk_hash())
    report = built.verify(incremental=True)
    assert report.problems[0].what == "rewritten_history"
    assert report.problems[0].checkpoint == built.cp[SIZE]
    assert report.start == 0  # it fell back to streaming everything


def test_incremental_detects_a_deleted_node_at_the_verified_size(built: Built) -> None:
    assert built.verify().ok
    built.tamper.delete_node(merkle.stored_hash_index(2, 2))
    report = built.verify(incremental=True)
    assert report.problems[0].what == "rewritten_history"
    assert report.problems[0].checkpoint == built.cp[SIZE]


def test_incremental_detects_history_rewritten_before_the_verified_size(built: Built) -> None:
    """Entry 5 rewritten with its whole tree path: node (3,0) is in the compact range at 14."""
    assert built.verify().ok
    built.tamper.rewrite_history(5, edited(built.tamper.entry_data(5)))
    report = built.verify(incremental=True)
    assert not report.ok
    assert report.problems[0].what == "rewritten_history" and report.problems[0].checkpoint == built.cp[SIZE]
    assert only(built.verify(), "rewritten_history").checkpoint == built.cp[7]


def test_full_verify_after_incremental_still_sees_old_damage(built: Built) -> None:
    """Incremental trusts what an earlier run verified; a full run recomputes everything again."""
    assert built.verify().ok
    built.tamper.set_entry_data(3, edited(built.tamper.entry_data(3)))
    append_n(built.ledger, 2)
    assert built.verify(incremental=True).entries_checked == 2
    assert only(built.verify(), "modified_record").index == 3


# --- deep verification ---------------------------------------------------------------------------


def test_deep_names_non_canonical_bytes(built: Built) -> None:
    """Re-serialised with spaces: a new leaf, so the plain check already calls it modified; deep says why."""
    data = built.tamper.entry_data(4)
    built.tamper.set_entry_data(4, json.dumps(json.loads(data)).encode())
    assert only(built.verify(), "modified_record").index == 4
    assert only(built.verify(deep=True), "modified_record").index == 4


def test_deep_names_copied_out_columns_that_disagree_with_the_leaf(built: Built) -> None:
    with built.tamper.unguarded("entries") as c:
        c.execute("UPDATE entries SET kind = 'policy', subject = 'subj:someone-else' WHERE idx = 3")
    assert built.verify(deep=True).first_bad_index == 3


def test_deep_names_link_rows_that_disagree_with_the_leaf(built: Built) -> None:
    with built.tamper.unguarded("links") as c:
        c.execute("DELETE FROM links WHERE src = 5")
    assert built.verify(deep=True).first_bad_index == 5


# --- the database refuses UPDATE, DELETE and TRUNCATE ------------------------------------------------

UPDATES = {
    "entries": "UPDATE entries SET data = ? WHERE idx = 5",
    "tree_nodes": "UPDATE tree_nodes SET hash = ? WHERE id = (SELECT MAX(id) FROM tree_nodes)",
    "node_tiles": "UPDATE node_tiles SET hashes = ? WHERE tile = 0",
    "links": "UPDATE links SET rel = 'x' || ? WHERE src = 5",
    "sealed_values": "UPDATE sealed_values SET blob = ? WHERE idx = 3",
    "checkpoints": "UPDATE checkpoints SET root = ? WHERE size = 14",
    "ledger_meta": "UPDATE ledger_meta SET value = 'x' || ? WHERE key = 'origin'",
}


def _value(table: str) -> Any:
    return "tampered" if table in ("links", "ledger_meta") else junk_hash()


def _snapshot(built: Built) -> tuple[Any, ...]:
    counts = tuple(built.tamper.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in APPEND_ONLY)
    return (built.ledger.size(), built.ledger.root(), counts,
            built.tamper.query("SELECT value FROM ledger_meta WHERE key = 'origin'")[0][0])


def _refused(built: Built, sql: str, params: tuple[Any, ...] = ()) -> str:
    # sqlite3.IntegrityError / psycopg.errors.RaiseException
    with pytest.raises(Exception) as info:
        built.tamper.execute(sql, params)
    return str(info.value)


def with_a_tile(built: Built) -> None:
    """At the ledger's own tile size the 14 entries complete no tile: append until one is complete."""
    while built.tamper.query("SELECT COUNT(*) FROM node_tiles")[0][0] == 0:
        append_n(built.ledger, 20)
    assert built.tamper.node_row_ids()  # and some hashes are rows


def test_every_append_only_table_has_rows(built: Built) -> None:
    with_a_tile(built)
    for t in APPEND_ONLY:
        assert built.tamper.query(f"SELECT COUNT(*) FROM {t}")[0][0] > 0, t
    assert built.tamper.query("SELECT COUNT(*) FROM links WHERE src = 5")[0][0] == 1
    assert built.tamper.query("SELECT COUNT(*) FROM sealed_values WHERE idx = 3")[0][0] == 1


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_database_refuses_update_and_delete(built: Built, table: str) -> None:
    with_a_tile(built)
    before = _snapshot(built)
    msg = _refused(built, UPDATES[table], (_value(table),))
    assert "append-only" in msg and table in msg and "UPDATE" in msg
    msg = _refused(built, f"DELETE FROM {table}")
    assert "append-only" in msg and table in msg and "DELETE" in msg
    assert _snapshot(built) == before
    assert built.verify().ok


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
@pytest.mark.parametrize("table", APPEND_ONLY)
def test_postgres_refuses_truncate(built: Built, table: str) -> None:
    """SQLite has no TRUNCATE (its DELETE without WHERE still fires the row triggers)."""
    assert built.tamper.dialect == "postgresql"
    with_a_tile(built)
    before = _snapshot(built)
    msg = _refused(built, f"TRUNCATE {table}")
    assert "append-only" in msg and "TRUNCATE" in msg
    assert _snapshot(built) == before


def test_triggers_have_their_names(built: Built) -> None:
    t = built.tamper
    with t._conn() as c:
        defs = t.trigger_definitions(c, APPEND_ONLY)
    assert set(defs) == {n for table in APPEND_ONLY for n in trigger_names(t.dialect, table)}


def test_tampering_puts_the_triggers_back(built: Built) -> None:
    built.tamper.set_entry_data(5, edited(built.tamper.entry_data(5)))
    assert "append-only" in _refused(built, "DELETE FROM entries WHERE idx = 5")
    assert "append-only" in _refused(built, "UPDATE tree_nodes SET hash = ? WHERE id = 24", (junk_hash(),))
    assert built.ledger.size() == SIZE
    with_a_tile(built)
    built.tamper.set_node(0, junk_hash())  # in tile 0 (and its row, if it has one)
    assert "append-only" in _refused(built, "DELETE FROM node_tiles WHERE tile = 0")
    assert "append-only" in _refused(built, "UPDATE tree_nodes SET hash = ? WHERE id = 24", (junk_hash(),))
    assert built.tamper.node(0) == junk_hash()


def test_ledger_connection_is_refused_too(built: Built) -> None:
    """Even through the ledger's own engine (no special path around the triggers)."""
    with_a_tile(built)
    before = _snapshot(built)
    for sql in ("DELETE FROM entries", "UPDATE tree_nodes SET id = id + 1000", "DELETE FROM node_tiles"):
        with pytest.raises(Exception, match="append-only"), built.ledger.store.engine.begin() as conn:
            conn.exec_driver_sql(sql)
    assert _snapshot(built) == before


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def cli_ledger(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Built]:
    """A ledger the CLI finds from --data-dir (and CUSTODY_DATABASE_URL for PostgreSQL)."""
    monkeypatch.setenv("CUSTODY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CUSTODY_DATABASE_URL", database_url)
    monkeypatch.delenv("CUSTODY_KEY_DIR", raising=False)
    ledger = init_ledger(Settings.from_env(tmp_path), origin="custody.test/cli")
    built = build(ledger)
    yield built
    ledger.store.close()


def test_cli_verify_clean(cli_ledger: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--data-dir", str(tmp_path)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["verify", "--data-dir", str(tmp_path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["ok"] is True and d["first_bad_index"] is None and d["entries_checked"] == SIZE


def test_cli_verify_tampered(cli_ledger: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_ledger.tamper.set_entry_data(6, edited(cli_ledger.tamper.entry_data(6)))
    assert main(["verify", "--data-dir", str(tmp_path)]) == 5
    out = capsys.readouterr().out
    assert "FAIL" in out and "modified_record" in out and "entry 6" in out
    assert main(["verify", "--data-dir", str(tmp_path), "--json"]) == 5
    d = json.loads(capsys.readouterr().out)
    assert d["ok"] is False and d["first_bad_index"] == 6
    assert [p["what"] for p in d["problems"]] == ["modified_record"]


def test_cli_verify_incremental(cli_ledger: Built, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--data-dir", str(tmp_path)]) == 0
    append_n(cli_ledger.ledger, 3)
    capsys.readouterr()
    assert main(["verify", "--data-dir", str(tmp_path), "--incremental", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["mode"] == "incremental" and d["start"] == SIZE and d["entries_checked"] == 3
    cli_ledger.tamper.insert_checkpoint(3, cli_ledger.roots[3], resign(cli_ledger.ledger, 3))
    assert main(["verify", "--data-dir", str(tmp_path), "--incremental"]) == 5
    assert "rolled_back_checkpoint" in capsys.readouterr().out


def test_cli_verify_sqlite_from_data_dir_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """No CUSTODY_* database setting at all: --data-dir names the SQLite file."""
    for var in ("CUSTODY_DATA_DIR", "CUSTODY_DATABASE_URL", "CUSTODY_KEY_DIR"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "ledger-dir"
    ledger = init_ledger(Settings.from_env(data), origin="custody.test/cli")
    try:
        built = build(ledger)
        assert main(["verify", "--data-dir", str(data)]) == 0
        with built.tamper.unguarded("entries", *NODE_TABLES) as c:
            c.execute("DELETE FROM entries WHERE idx >= 12")
            built.tamper.drop_nodes_from(c, merkle.stored_hash_count(12))
        capsys.readouterr()
        assert main(["verify", "--data-dir", str(data)]) == 5
        assert "truncated_log" in capsys.readouterr().out
    finally:
        ledger.store.close()


def test_deep_names_deleted_sealed_values(built: Built) -> None:
    idx = built.tamper.query("SELECT MIN(idx) FROM sealed_values")[0][0]
    with built.tamper.unguarded("sealed_values") as c:
        c.execute("DELETE FROM sealed_values WHERE idx = ?", (idx,))
    assert built.verify().ok  # the tree is intact: only the deep check looks beside it
    p = only(built.verify(deep=True), "missing_sealed_value")
    assert p.index == idx


def test_a_verified_checkpoint_that_disappears_is_named(built: Built) -> None:
    assert built.verify().ok
    with built.tamper.unguarded("checkpoints") as c:
        c.execute("DELETE FROM checkpoints WHERE size = 14")
    assert "missing_checkpoint" in whats(built.verify())


def test_deep_verify_reports_garbage_bytes_instead_of_crashing(built: Built) -> None:
    built.tamper.set_entry_data(1, b"not json")
    assert only(built.verify(deep=True), "modified_record").index == 1
