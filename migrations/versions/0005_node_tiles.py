"""Stored hashes in tiles: ``node_tiles (tile, hashes)``, one row per complete tile of 62 hashes.

Tile t holds the stored hashes with ids [62·t, 62·(t+1)) (Go tlog's stored hash index, see
``ledger.merkle``), 32 bytes each, concatenated: 1,984 bytes, so two tiles share a 4 KiB SQLite
page and four an 8 KiB PostgreSQL page, stored inline (below PostgreSQL's TOAST threshold; the
column is also ``STORAGE PLAIN`` so it is never compressed or moved out of line). From this
revision on ``ledger.store_sql`` writes a tile as soon as it is complete and a ``tree_nodes`` row
only for a hash whose tile is not; the table is append-only, with the same triggers as the others.

The upgrade backfills a tile for every complete tile of an existing ledger: ``tree_nodes`` is
read in id order in batches of ``BATCH_TILES`` tiles, on both backends, in the migration's one
transaction. The rows stay (tables are append-only; verify checks that they agree with their
tiles). If ``tree_nodes`` has a gap (a damaged ledger), tiles are written up to the gap only and
``custody verify`` names the damage. Downgrading writes a ``tree_nodes`` row for every hash that
only a tile holds, then drops the table: the rows are then complete again, as revision 0004 needs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TILE_SIZE = 62  # ledger.store.NODE_TILE_SIZE at this revision (a test checks they agree)
HASH_SIZE = 32
BATCH_TILES = 512  # tiles per read of tree_nodes while backfilling (about 32,000 rows, 1 MB)

log = logging.getLogger("alembic.runtime.migration")


def backfill(conn: Connection, tile_size: int = TILE_SIZE, batch_tiles: int = BATCH_TILES) -> int:
    """Write a tile for every complete tile that ``tree_nodes`` holds and ``node_tiles`` does not,
    in order, from the first tile ``node_tiles`` lacks; stop at the first gap. Returns the tiles written."""
    k = tile_size
    start = conn.execute(sa.text("SELECT MAX(tile) FROM node_tiles")).scalar()
    t = 0 if start is None else start + 1
    end = conn.execute(sa.text("SELECT MAX(id) FROM tree_nodes")).scalar()
    if end is None:
        return 0
    last_tile = (end + 1) // k  # tiles [t, last_tile) can be complete
    written = 0
    read = sa.text("SELECT id, hash FROM tree_nodes WHERE id >= :lo AND id < :hi ORDER BY id")
    insert = sa.text("INSERT INTO node_tiles (tile, hashes) VALUES (:tile, :hashes)")
    while t < last_tile:
        stop = min(last_tile, t + batch_tiles)
        rows = conn.execute(read, {"lo": t * k, "hi": stop * k}).all()
        ok = 0  # how many leading rows are where they belong
        for j, (i, h) in enumerate(rows):
            if i != t * k + j or len(h) != HASH_SIZE:
                break
            ok = j + 1
        complete = t + ok // k  # tiles [t, complete) are whole
        if complete > t:
            conn.execute(insert, [{"tile": tile, "hashes": b"".join(bytes(h) for _, h in
                                                                    rows[(tile - t) * k:(tile - t + 1) * k])}
                                  for tile in range(t, complete)])
            written += complete - t
        if complete < stop:
            bad = t * k + ok
            log.warning("tree_nodes has no %d-byte hash for stored index %d: tiles from %d on are not "
                        "backfilled (custody verify will name the damage)", HASH_SIZE, bad, bad // k)
            break
        t = stop
    return written


def upgrade() -> None:
    op.create_table("node_tiles",
                    sa.Column("tile", BIGINT, primary_key=True, autoincrement=False),
                    sa.Column("hashes", sa.LargeBinary, nullable=False))
    t = "node_tiles"
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE node_tiles ALTER COLUMN hashes SET STORAGE PLAIN")
        # custody_append_only() is migration 0001's
        op.execute(f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                   f"FOR EACH ROW EXECUTE FUNCTION custody_append_only()")
        op.execute(f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {t}_no_{action.lower()} BEFORE {action} ON {t} BEGIN "
                       f"SELECT RAISE(ABORT, 'custody: table {t} is append-only ({action} refused)'); END")
    n = backfill(op.get_bind())
    if n:
        log.info("backfilled %d node tiles", n)


def downgrade() -> None:
    """Give every hash that only a tile holds its ``tree_nodes`` row (inserts only), then drop the tiles."""
    conn = op.get_bind()
    k = TILE_SIZE
    have = sa.text("SELECT id FROM tree_nodes WHERE id >= :lo AND id < :hi")
    insert = sa.text("INSERT INTO tree_nodes (id, hash) VALUES (:id, :hash)")
    after = -1
    while True:
        tiles = conn.execute(sa.text("SELECT tile, hashes FROM node_tiles WHERE tile > :after ORDER BY tile "
                                     "LIMIT :n"), {"after": after, "n": BATCH_TILES}).all()
        if not tiles:
            break
        lo, hi = tiles[0][0] * k, (tiles[-1][0] + 1) * k
        present = {r[0] for r in conn.execute(have, {"lo": lo, "hi": hi})}
        rows = [{"id": t * k + j, "hash": bytes(blob[j * HASH_SIZE:(j + 1) * HASH_SIZE])}
                for t, blob in tiles for j in range(k) if t * k + j not in present]
        if rows:
            conn.execute(insert, rows)
        after = tiles[-1][0]
    op.drop_table("node_tiles")  # its triggers go with it; no trigger fires on DROP
