"""Tampering with a ledger's database behind the code's back, for the verify tests.

``Tamper`` opens its own DBAPI connection (``sqlite3`` or ``psycopg``) to the database a ledger
uses: nothing goes through ``ledger.store``. ``unguarded(*tables)`` is what an attacker with
database access would do: in one transaction, drop the append-only triggers of those tables,
change rows, and put the very same triggers back (so the damage is invisible to the schema).
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

# The append-only tables and the triggers the migration gives each, per dialect.
APPEND_ONLY = ("entries", "tree_nodes", "links", "sealed_values", "checkpoints", "ledger_meta")
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
    def __init__(self, url: str) -> None:
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
        return cls(ledger.store.url)

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

    def node(self, stored_id: int) -> bytes:
        return self.query("SELECT hash FROM tree_nodes WHERE id = ?", (stored_id,))[0][0]

    def set_entry_data(self, idx: int, data: bytes) -> None:
        with self.unguarded("entries") as c:
            c.execute("UPDATE entries SET data = ? WHERE idx = ?", (data, idx))

    def set_node(self, stored_id: int, h: bytes) -> None:
        with self.unguarded("tree_nodes") as c:
            c.execute("UPDATE tree_nodes SET hash = ? WHERE id = ?", (h, stored_id))

    def rewrite_history(self, idx: int, data: bytes) -> list[int]:
        """Replace entry ``idx``'s bytes and rewrite its leaf and every complete ancestor to match,
        so the tree is self-consistent again; only signed checkpoints can tell. Returns the node ids."""
        leaves = [merkle.leaf_hash(d) for d in self.all_data()]
        leaves[idx] = merkle.leaf_hash(data)
        size = len(leaves)
        changed = []
        with self.unguarded("entries", "tree_nodes") as c:
            c.execute("UPDATE entries SET data = ? WHERE idx = ?", (data, idx))
            level = 0
            while ((idx >> level) + 1) << level <= size:
                j = idx >> level
                sid = merkle.stored_hash_index(level, j)
                c.execute("UPDATE tree_nodes SET hash = ? WHERE id = ?",
                          (merkle.root_of(leaves[j << level:(j + 1) << level]), sid))
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
