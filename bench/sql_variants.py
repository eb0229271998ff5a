#!/usr/bin/env python
"""How much of a batched append is the SQL itself, and what would a leaner schema cost?

On-demand, not a test. Raw ``sqlite3`` (WAL + ``synchronous=FULL``, ``BEGIN IMMEDIATE`` …
``COMMIT`` per batch, as the ledger does), the same precomputed rows each time, so only the
schema differs:

* ``current``: the schema of migrations 0001: ``entries`` with the
  ``(subject, kind)`` index and the UNIQUE ``idempotency_key``, plus one ``tree_nodes`` row
  per stored hash (about 2 per entry);
* ``m0003``: ``current`` + ``ix_entries_kind_time (kind, ledger_time, idx)`` (migration 0003);
* ``m0004``: the ledger's schema now (migration 0004): partial indexes + ``ix_entries_kind_time``;
* ``m0004_no_kind_time``: ``m0004`` without ``ix_entries_kind_time`` (what that index costs);
* ``m0004_kind_time_2col``: ``m0004`` with ``(kind, ledger_time)``: in SQLite every index ends
  with the rowid (= ``idx``), so this serves the same queries in the same order;
* ``partial_indexes``: the same, with both ``entries`` indexes made partial
  (``WHERE subject IS NOT NULL`` / ``WHERE idempotency_key IS NOT NULL``), so records without a
  subject or key add no index entries;
* ``partial_indexes_tiled_nodes``: partial indexes, and each batch's new hashes stored as one
  blob row (a lower bound for tile storage: Tessera/Trillian-style tiles of 256 hashes);
* ``m0005_tilesK`` (K = 32, 62, 63, 64, 128, 256): the ledger's schema with migration 0005, stored
  hashes written as ``ledger.store_sql`` writes them: one ``node_tiles`` row per complete tile of K
  hashes (completing a tile reads its earlier rows back from ``tree_nodes``), individual
  ``tree_nodes`` rows only for the incomplete tail; K = 62 is the ledger's (``NODE_TILE_SIZE``);
* ``entries_only``: partial indexes, no node rows at all (a floor, not a design);
* ``pymerkle_like``: one table ``(id INTEGER PRIMARY KEY AUTOINCREMENT, entry, hash)``.

The table also gives the database's size per record (``page_count × page_size``). ``--pg URL`` adds
how PostgreSQL stores a tile of 62, 63 and 64 hashes, with the column's default storage and with
``STORAGE PLAIN``: bytes per tile (heap + TOAST), insert time, and a read of 20 tiles by key.

    python bench/sql_variants.py [--records 20000] [--batch 1000] [--repeat 3] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ledger import make_records

ENTRIES = """CREATE TABLE entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, kind VARCHAR(32) NOT NULL,
    subject VARCHAR(200), ledger_time VARCHAR(40) NOT NULL, idempotency_key VARCHAR(200){unique},
    request_hash BLOB)"""
NODES = "CREATE TABLE tree_nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)"
TILES = "CREATE TABLE node_tiles (tile INTEGER PRIMARY KEY, hashes BLOB NOT NULL)"
TILE_SIZES = (32, 62, 63, 64, 128, 256)
KIND_TIME = "CREATE INDEX ix_entries_kind_time ON entries (kind, ledger_time, idx)"
PARTIAL = ["CREATE INDEX ix_entries_subject_kind ON entries (subject, kind) WHERE subject IS NOT NULL",
           "CREATE UNIQUE INDEX ux_entries_idempotency_key ON entries (idempotency_key) WHERE idempotency_key IS NOT NULL"]

VARIANTS = {
    "current": [ENTRIES.format(unique=" UNIQUE"), "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind)", NODES],
    "m0003": [ENTRIES.format(unique=" UNIQUE"), "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind)",
              KIND_TIME, NODES],
    "m0004": [ENTRIES.format(unique=""), *PARTIAL, KIND_TIME, NODES],
    **{f"m0005_tiles{k}": [ENTRIES.format(unique=""), *PARTIAL, KIND_TIME, NODES, TILES] for k in TILE_SIZES},
    "m0004_no_kind_time": [ENTRIES.format(unique=""), *PARTIAL, NODES],
    "m0004_kind_time_2col": [ENTRIES.format(unique=""), *PARTIAL,
                             "CREATE INDEX ix_entries_kind_time ON entries (kind, ledger_time)", NODES],
    "partial_indexes": [ENTRIES.format(unique=""),
                        "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind) WHERE subject IS NOT NULL",
                        "CREATE UNIQUE INDEX ux_idem ON entries (idempotency_key) WHERE idempotency_key IS NOT NULL",
                        NODES],
    "partial_indexes_tiled_nodes": [ENTRIES.format(unique=""),
                                    "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind) WHERE subject IS NOT NULL",
                                    "CREATE UNIQUE INDEX ux_idem ON entries (idempotency_key) WHERE idempotency_key IS NOT NULL",
                                    "CREATE TABLE tiles (id INTEGER PRIMARY KEY, hashes BLOB NOT NULL)"],
    "entries_only": [ENTRIES.format(unique=""),
                     "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind) WHERE subject IS NOT NULL",
                     "CREATE UNIQUE INDEX ux_idem ON entries (idempotency_key) WHERE idempotency_key IS NOT NULL"],
    "pymerkle_like": ["CREATE TABLE leaf (id INTEGER PRIMARY KEY AUTOINCREMENT, entry BLOB, hash BLOB)"],
}


def rows(n: int) -> tuple[list[tuple], list[tuple[int, bytes]]]:
    lt = "2025-12-30T10:00:00.000000Z"
    entries, nodes, sid = [], [], 0
    for i, rec in enumerate(make_records(0, n)):
        data = json.dumps({**rec, "ledger_time": lt, "links": [], "schema": 1}, sort_keys=True,
                          separators=(",", ":")).encode()
        entries.append((i, data, rec["kind"], None, lt, None, None))
        # ~2 stored hashes per entry, consecutive ids (the leaf, then the subtrees it completes)
        for _ in range(1 + ((i + 1) & -(i + 1)).bit_length() - 1):
            nodes.append((sid, hashlib.sha256(data + bytes([sid & 255])).digest()))
            sid += 1
    return entries, nodes


def insert_tiled(con: sqlite3.Connection, rows: list[tuple[int, bytes]], k: int) -> None:
    """What ``SqlStore``'s ``insert_nodes`` does: complete tiles as one row each, the tail as rows."""
    if not rows:
        return
    first, end = rows[0][0], rows[-1][0] + 1
    t0, t1 = first // k, end // k
    if t1 > t0:
        hashes = [h for (h,) in con.execute("SELECT hash FROM tree_nodes WHERE id >= ? AND id < ? ORDER BY id",
                                            (t0 * k, first))]
        hashes += [h for _, h in rows[:t1 * k - first]]
        con.executemany("INSERT INTO node_tiles VALUES (?, ?)",
                        [(t, b"".join(hashes[(t - t0) * k:(t - t0 + 1) * k])) for t in range(t0, t1)])
        rows = rows[t1 * k - first:]
    con.executemany("INSERT INTO tree_nodes VALUES (?, ?)", rows)


def run(variant: str, d: Path, entries: list[tuple], nodes: list[tuple[int, bytes]], batch: int) -> tuple[float, int]:
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    con = sqlite3.connect(d / "db.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    for ddl in VARIANTS[variant]:
        con.execute(ddl)
    per_batch = len(nodes) / len(entries)
    t = time.perf_counter()
    lo = 0
    for k in range(0, len(entries), batch):
        part = entries[k:k + batch]
        hi = min(len(nodes), round((k + len(part)) * per_batch))
        con.execute("BEGIN IMMEDIATE")
        if variant == "pymerkle_like":
            con.executemany("INSERT INTO leaf (entry, hash) VALUES (?, ?)",
                            [(e[1], hashlib.sha256(b"\x00" + e[1]).digest()) for e in part])
        else:
            con.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", part)
            if variant == "partial_indexes_tiled_nodes":
                con.execute("INSERT INTO tiles VALUES (?, ?)", (k, b"".join(h for _, h in nodes[lo:hi])))
            elif variant.startswith("m0005_tiles"):
                insert_tiled(con, nodes[lo:hi], int(variant.removeprefix("m0005_tiles")))
            elif variant != "entries_only":
                con.executemany("INSERT INTO tree_nodes VALUES (?, ?)", nodes[lo:hi])
        con.execute("COMMIT")
        lo = hi
    dt = time.perf_counter() - t
    size = con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    return dt / len(entries) * 1e6, size


def pg_tiles(url: str, tiles: int = 5000) -> None:
    """How PostgreSQL stores tiles of K hashes: above 2,032 bytes a row is toasted (compression is
    tried, then the value moves out of line) unless the column is STORAGE PLAIN."""
    import os

    import psycopg

    print(f"\nPostgreSQL, {tiles:,} tiles of random hashes (one executemany), read: 20 tiles by key, 200 times\n")
    print("| K | tile bytes | storage | table bytes / tile (heap + TOAST) | insert µs / tile | read of 20 tiles µs |")
    print("|---:|---:|---|---:|---:|---:|")
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP SCHEMA IF EXISTS bench_tiles CASCADE")
        c.execute("CREATE SCHEMA bench_tiles")
        c.execute("SET search_path = bench_tiles")
        try:
            for k in (62, 63, 64):
                for storage in ("default", "plain"):
                    t = f"t{k}_{storage}"
                    c.execute(f"CREATE TABLE {t} (tile BIGINT PRIMARY KEY, hashes BYTEA NOT NULL)")
                    if storage == "plain":
                        c.execute(f"ALTER TABLE {t} ALTER COLUMN hashes SET STORAGE PLAIN")
                    rows = [(i, os.urandom(32 * k)) for i in range(tiles)]
                    t0 = time.perf_counter()
                    with c.cursor() as cur:
                        cur.executemany(f"INSERT INTO {t} VALUES (%s, %s)", rows)
                    ins = (time.perf_counter() - t0) / tiles * 1e6
                    size = c.execute(f"SELECT pg_table_size('{t}')").fetchone()[0]
                    ids = list(range(0, tiles, tiles // 20))
                    t0 = time.perf_counter()
                    for _ in range(200):
                        c.execute(f"SELECT tile, hashes FROM {t} WHERE tile = ANY(%s)", (ids,)).fetchall()
                    rd = (time.perf_counter() - t0) / 200 * 1e6
                    print(f"| {k} | {32 * k:,} | {storage} | {size / tiles:,.0f} | {ins:.0f} | {rd:.0f} |")
        finally:
            c.execute("DROP SCHEMA bench_tiles CASCADE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/custody-bench/scratch/sql-variants"))
    ap.add_argument("--pg", default=None, help="also measure tile storage on this PostgreSQL server (libpq URL)")
    args = ap.parse_args()
    entries, nodes = rows(args.records)
    res: dict[str, list[float]] = {v: [] for v in VARIANTS}
    sizes: dict[str, int] = {}
    for rep in range(args.repeat):
        for v in (VARIANTS if rep % 2 == 0 else reversed(list(VARIANTS))):
            us, sizes[v] = run(v, args.workdir / v, entries, nodes, args.batch)
            res[v].append(us)
    print(f"{args.records:,} rows, batches of {args.batch:,}, {len(nodes) / len(entries):.2f} stored hashes per entry; "
          f"median of {args.repeat}\n")
    print("| schema | µs / record (insert + commit) | min–max | database bytes / record |\n|---|---:|---:|---:|")
    for v, xs in res.items():
        print(f"| {v} | {statistics.median(xs):.1f} | {min(xs):.1f}–{max(xs):.1f} | {sizes[v] / len(entries):.0f} |")
    if args.pg:
        pg_tiles(args.pg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
