"""Tampering with a ledger's database behind the code's back, for the verify tests.

``Tamper`` opens its own DBAPI connection (``sqlite3`` or ``psycopg``) to the database a ledger
uses: nothing goes through ``ledger.store``. ``unguarded(*tables)`` is what an attacker with
database access would do: in one transaction, drop the append-only triggers of those tables,
change rows, and put the very same triggers back (so the damage is invisible to the schema).

A stored hash lives in its tile (``node_tiles``) once the tile is complete, and in a ``tree_nodes``
row if its tile was incomplete when it was written (both, if a later append completed the tile).
The node helpers (``node``, ``set_node``, ``delete_node``, ``truncate_tree``, ``rewrite_history``)
change a hash wherever it is stored, as an attacker who wants the damage to be consistent would;
``set_tile_hash`` / ``set_node_row`` change one copy only.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import make_url

from ledger import merkle
from ledger.records import canonical_json
from ledger.store import NODE_TILE_SIZE

# The append-only tables and the triggers the migrations give each, per dialect.
APPEND_ONLY = ("entries", "tree_nodes", "node_tiles", "links", "sealed_values", "checkpoints", "ledger_meta")
NODE_TABLES = ("tree_nodes", "node_tiles")
TRIGGERS = {
    "sqlite": ("{t}_no_update", "{t}_no_delete"),
    "postgresql": ("{t}_append_only", "{t}_no_truncate"),
}


def trigger_names(dialect: str, table: str) -> list[str]:
    return [n.format(t=table) for n in TRIGGERS[dialect]]


class Cursor:
    """Positional ``?`` SQL on a raw connection, whatever the dialect."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        cur = self.conn.execute(sql, tuple(params))
        rows = cur.fetchall() if cur.description else []
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


class Tamper:
    def __init__(self, url: str, tile_size: int = NODE_TILE_SIZE) -> None:
        self.tile_size = tile_size
        u = make_url(url)
        self.dialect = u.get_backend_name()
        if self.dialect == "sqlite":
            self._connect_args: dict[str, Any] = {"database": u.database}
        else:
            self._connect_args = dict(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                      dbname=u.database)
            if "options" in u.query:
                self._connect_args["options"] = u.query["options"]  # the test schema's search_path

    @classmethod
    def of(cls, ledger: Any) -> Tamper:
        return cls(ledger.store.url, ledger.store.tile_size)

    @contextmanager
    def _conn(self) -> Iterator[Cursor]:
        """One transaction on a fresh connection: committed on success, rolled back on error."""
        if self.dialect == "sqlite":
            conn = sqlite3.connect(self._connect_args["database"], isolation_level=None, timeout=30)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Cursor(conn, "sqlite")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(**self._connect_args, connect_timeout=5) as conn:  # commits / rolls back
                yield Cursor(conn, "postgresql")

    # --- with the triggers in place ----------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement in a transaction of its own, triggers untouched (the database may refuse)."""
        with self._conn() as c:
            return c.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.execute(sql, params)

    def trigger_definitions(self, c: Cursor, tables: Sequence[str]) -> dict[str, tuple[str, str]]:
        """trigger name → (table, the SQL that creates it) for the append-only triggers of ``tables``."""
        wanted = {name: t for t in tables for name in trigger_names(self.dialect, t)}
        if self.dialect == "sqlite":
            rows = c.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
        else:
            rows = c.execute("SELECT t.tgname, cl.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
                             "JOIN pg_class cl ON cl.oid = t.tgrelid "
                             "JOIN pg_namespace n ON n.oid = cl.relnamespace "
                             "WHERE NOT t.tgisinternal AND n.nspname = current_schema()")
        return {name: (table, sql) for name, table, sql in rows if name in wanted}

    # --- with the triggers dropped -------------------------------------------------------------

    @contextmanager
    def unguarded(self, *tables: str) -> Iterator[Cursor]:
        """Drop the append-only triggers of ``tables``, yield a cursor, then recreate the triggers."""
        with self._conn() as c:
            defs = self.trigger_definitions(c, tables)
            expected = {n for t in tables for n in trigger_names(self.dialect, t)}
            assert set(defs) == expected, f"append-only triggers missing: {sorted(expected - set(defs))}"
            for name, (table, _) in defs.items():
                c.execute(f"DROP TRIGGER {name}" + ("" if self.dialect == "sqlite" else f" ON {table}"))
            yield c
            for _, sql in defs.values():
                c.execute(sql)

    # --- the tampering itself --------------------------------------------------------------------

    def entry_data(self, idx: int) -> bytes:
        return self.query("SELECT data FROM entries WHERE idx = ?", (idx,))[0][0]

    def all_data(self) -> list[bytes]:
        return [d for _, d in self.query("SELECT idx, data FROM entries ORDER BY idx")]

    def tile(self, t: int) -> bytes | None:
        rows = self.query("SELECT hashes FROM node_tiles WHERE tile = ?", (t,))
        return rows[0][0] if rows else None

    def tile_hashes(self, t: int) -> list[tuple[int, bytes]]:
        blob = self.tile(t)
        assert blob is not None, f"no tile {t}"
        return [(t * self.tile_size + j, blob[j * 32:j * 32 + 32]) for j in range(len(blob) // 32)]

    def tiles(self) -> dict[int, bytes]:
        return dict(self.query("SELECT tile, hashes FROM node_tiles ORDER BY tile"))

    def node_row(self, stored_id: int) -> bytes | None:
        rows = self.query("SELECT hash FROM tree_nodes WHERE id = ?", (stored_id,))
        return rows[0][0] if rows else None

    def node_row_ids(self) -> list[int]:
        return [r[0] for r in self.query("SELECT id FROM tree_nodes ORDER BY id")]

    def node(self, stored_id: int) -> bytes:
        """A stored hash as the ledger reads it: from its tile, else from its row."""
        blob = self.tile(stored_id // self.tile_size)
        if blob is not None:
            o = stored_id % self.tile_size * 32
            return blob[o:o + 32]
        h = self.node_row(stored_id)
        assert h is not None, f"stored hash {stored_id} is nowhere"
        return h

    def set_entry_data(self, idx: int, data: bytes) -> None:
        with self.unguarded("entries") as c:
            c.execute("UPDATE entries SET data = ? WHERE idx = ?", (data, idx))

    # --- stored hashes, in a transaction ``unguarded(*NODE_TABLES)`` opened ----------------------

    def put_node(self, c: Cursor, stored_id: int, h: bytes) -> None:
        """Change a stored hash everywhere it is: its tile and its row."""
        t, o = divmod(stored_id, self.tile_size)
        rows = c.execute("SELECT hashes FROM node_tiles WHERE tile = ?", (t,))
        if rows:
            blob = rows[0][0]
            c.execute("UPDATE node_tiles SET hashes = ? WHERE tile = ?", (blob[:o * 32] + h + blob[o * 32 + 32:], t))
        c.execute("UPDATE tree_nodes SET hash = ? WHERE id = ?", (h, stored_id))

    def drop_node(self, c: Cursor, stored_id: int) -> None:
        """Remove one stored hash: its row, and its tile, the tile's other hashes kept as rows."""
        t = stored_id // self.tile_size
        self._untile(c, t, keep=lambda i: i != stored_id)
        c.execute("DELETE FROM tree_nodes WHERE id = ?", (stored_id,))

    def drop_nodes_from(self, c: Cursor, count: int) -> None:
        """Keep only the stored hashes [0, count), the way ``count`` of them would be stored
        (tiles [0, count // K), rows for the rest): a consistent truncation."""
        k = self.tile_size
        c.execute("DELETE FROM tree_nodes WHERE id >= ?", (count,))
        for (t,) in c.execute("SELECT tile FROM node_tiles WHERE tile >= ? ORDER BY tile", (count // k,)):
            self._untile(c, t, keep=lambda i: i < count)

    def untile(self, c: Cursor, t: int) -> None:
        """Delete tile ``t``, every hash of it kept as a row (reads fall back to rows)."""
        self._untile(c, t, keep=lambda i: True)

    def _untile(self, c: Cursor, t: int, keep: Any) -> None:
        """Delete tile ``t``, first giving each hash of it that ``keep(id)`` and that has no row one."""
        rows = c.execute("SELECT hashes FROM node_tiles WHERE tile = ?", (t,))
        if not rows:
            return
        k, blob = self.tile_size, rows[0][0]
        have = {r[0] for r in c.execute("SELECT id FROM tree_nodes WHERE id >= ? AND id < ?", (t * k, t * k + k))}
        for j in range(k):
            i = t * k + j
            if keep(i) and i not in have:
                c.execute("INSERT INTO tree_nodes (id, hash) VALUES (?, ?)", (i, blob[j * 32:j * 32 + 32]))
        c.execute("DELETE FROM node_tiles WHERE tile = ?", (t,))

    # --- stored hashes, each in a transaction of its own ------------------------------------------

    def set_node(self, stored_id: int, h: bytes) -> None:
        with self.unguarded(*NODE_TABLES) as c:
            self.put_node(c, stored_id, h)

    def delete_node(self, stored_id: int) -> None:
        with self.unguarded(*NODE_TABLES) as c:
            self.drop_node(c, stored_id)

    def set_tile_hash(self, stored_id: int, h: bytes) -> None:
        """Change a hash in its tile only (a row of it, if any, keeps the old value)."""
        t, o = divmod(stored_id, self.tile_size)
        blob = self.tile(t)
        assert blob is not None, f"stored hash {stored_id} has no tile"
        self.set_tile(t, blob[:o * 32] + h + blob[o * 32 + 32:])

    def set_tile(self, t: int, blob: bytes) -> None:
        with self.unguarded("node_tiles") as c:
            c.execute("UPDATE node_tiles SET hashes = ? WHERE tile = ?", (blob, t))

    def set_node_row(self, stored_id: int, h: bytes) -> None:
        """Change a hash's tree_nodes row only (its tile, if any, keeps the old value)."""
        with self.unguarded("tree_nodes") as c:
            c.execute("UPDATE tree_nodes SET hash = ? WHERE id = ?", (h, stored_id))

    def rewrite_history(self, idx: int, data: bytes) -> list[int]:
        """Replace entry ``idx``'s bytes and rewrite its leaf and every complete ancestor to match,
        so the tree is self-consistent again; only signed checkpoints can tell. Returns the node ids."""
        leaves = [merkle.leaf_hash(d) for d in self.all_data()]
        leaves[idx] = merkle.leaf_hash(data)
        size = len(leaves)
        changed = []
        with self.unguarded("entries", *NODE_TABLES) as c:
            c.execute("UPDATE entries SET data = ? WHERE idx = ?", (data, idx))
            level = 0
            while ((idx >> level) + 1) << level <= size:
                j = idx >> level
                sid = merkle.stored_hash_index(level, j)
                self.put_node(c, sid, merkle.root_of(leaves[j << level:(j + 1) << level]))
                changed.append(sid)
                level += 1
        return changed

    def insert_checkpoint(self, size: int, root: bytes, note: str) -> int:
        """INSERT is not refused by the triggers: anyone with database access can add a checkpoint row."""
        rows = self.execute("INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?) "
                            "RETURNING id", (size, root, note, "2026-01-01T00:00:00.000000Z"))
        return int(rows[0][0])


def edited(data: bytes, **body_changes: Any) -> bytes:
    """The record's canonical bytes with its body changed: still a well-formed leaf document."""
    doc = json.loads(data)
    doc["body"].update(body_changes or {"tampered": True})
    return canonical_json(doc)


def junk_hash(label: str = "junk") -> bytes:
    return hashlib.sha256(label.encode()).digest()
