"""SQLModel tables and the SQL store, for SQLite (WAL, synchronous=FULL) and PostgreSQL.

Writers are serialised by the database, not by the process: SQLite's ``BEGIN IMMEDIATE``
takes the write lock before anything is read; PostgreSQL takes a transaction-scoped advisory
lock. So threads and separate processes alike see a stable tree size inside a write and get
dense indices. The hot paths use the driver cursor with positional parameters: the ORM's
per-row overhead would cost more than the hashing.

Append-only is enforced twice: this module has no UPDATE or DELETE for ledger tables, and the
migration installs triggers that make the database refuse them (see migrations/versions).

Stored hashes live in tiles of ``NODE_TILE_SIZE`` (``node_tiles``, one row per complete tile),
and as single rows (``tree_nodes``) only while their tile is incomplete: a batch of 1,000
entries writes about 32 tile rows and a few single rows instead of about 2,000 rows. Rows a
later tile covers stay where they are (append-only); reads prefer the tile, and verify checks
that both agree.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Field, SQLModel, create_engine

from ledger.errors import Conflict, StorageError
from ledger.store import (
    HASH_SIZE,
    NODE_TILE_SIZE,
    CheckpointRow,
    EntryRow,
    LinkRow,
    NodeChunk,
    SealedRow,
    tile_hashes,
)

PG_WRITER_LOCK = 0x637573746F6479  # "custody": the advisory lock that serialises writers
APPEND_ONLY_TABLES = ("entries", "tree_nodes", "node_tiles", "links", "sealed_values", "checkpoints")


# SQLite: INTEGER PRIMARY KEY makes the key the rowid (a clustered table, no second index).
BIGINT = BigInteger().with_variant(Integer, "sqlite")


def _blob(nullable: bool = False) -> Any:
    return Field(sa_column=Column(LargeBinary, nullable=nullable))


class LedgerMeta(SQLModel, table=True):
    __tablename__ = "ledger_meta"
    key: str = Field(sa_column=Column(String(64), primary_key=True))
    value: str = Field(sa_column=Column(String(2000), nullable=False))


class Entry(SQLModel, table=True):
    """One record: its leaf bytes (canonical JSON) and a few columns copied out for lookups."""

    __tablename__ = "entries"
    idx: int = Field(sa_column=Column(BIGINT, primary_key=True, autoincrement=False))
    data: bytes = _blob()
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    subject: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    ledger_time: str = Field(sa_column=Column(String(40), nullable=False))
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    request_hash: bytes | None = _blob(nullable=True)

    # Partial: most records have no subject and no idempotency key, and add no entry to these
    # (lookups name a value, which implies IS NOT NULL). Migration 0004.
    __table_args__ = (Index("ix_entries_subject_kind", "subject", "kind",
                            sqlite_where=text("subject IS NOT NULL"), postgresql_where=text("subject IS NOT NULL")),
                      Index("ux_entries_idempotency_key", "idempotency_key", unique=True,
                            sqlite_where=text("idempotency_key IS NOT NULL"),
                            postgresql_where=text("idempotency_key IS NOT NULL")),
                      Index("ix_entries_kind_time", "kind", "ledger_time", "idx"))  # review queue, SLA report


class TreeNode(SQLModel, table=True):
    """A complete subtree hash, keyed by Go tlog's stored hash index (see ledger.merkle), written
    while its tile was incomplete (migration 0005; before it, every stored hash had a row here)."""

    __tablename__ = "tree_nodes"
    id: int = Field(sa_column=Column(BIGINT, primary_key=True, autoincrement=False))
    hash: bytes = _blob()


class NodeTile(SQLModel, table=True):
    """Stored hashes [tile·K, (tile+1)·K), 32 bytes each, concatenated; written once, complete
    (K = ``ledger.store.NODE_TILE_SIZE``). Migration 0005."""

    __tablename__ = "node_tiles"
    tile: int = Field(sa_column=Column(BIGINT, primary_key=True, autoincrement=False))
    hashes: bytes = _blob()


class Link(SQLModel, table=True):
    __tablename__ = "links"
    src: int = Field(sa_column=Column(BIGINT, primary_key=True, autoincrement=False))
    dst: int = Field(sa_column=Column(BIGINT, primary_key=True, autoincrement=False))
    rel: str = Field(sa_column=Column(String(200), primary_key=True))

    __table_args__ = (Index("ix_links_dst", "dst"),)


class SealedValue(SQLModel, table=True):
    """A sensitive field's ciphertext under its subject's key; the leaf holds its commitment."""

    __tablename__ = "sealed_values"
    idx: int = Field(sa_column=Column(BIGINT, primary_key=True, autoincrement=False))
    field: str = Field(sa_column=Column(String(200), primary_key=True))
    subject: str = Field(sa_column=Column(String(200), nullable=False))
    blob: bytes = _blob()


class SubjectKey(SQLModel, table=True):
    """Per-subject data keys, wrapped by the sealing key. Deleting a row crypto-shreds a subject."""

    __tablename__ = "subject_keys"
    subject: str = Field(sa_column=Column(String(200), primary_key=True))
    wrapped_key: bytes = _blob()
    created_at: str = Field(sa_column=Column(String(40), nullable=False))


class CheckpointRecord(SQLModel, table=True):
    __tablename__ = "checkpoints"
    id: int | None = Field(default=None, sa_column=Column(BIGINT, primary_key=True, autoincrement=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    root: bytes = _blob()
    note: str = Field(sa_column=Column(String(8000), nullable=False))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))


class VerifyRun(SQLModel, table=True):
    """Where the last successful ``custody verify`` got to, for incremental verification."""

    __tablename__ = "verify_runs"
    id: int | None = Field(default=None, sa_column=Column(BIGINT, primary_key=True, autoincrement=True))
    checkpoint_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    verified_at: str = Field(sa_column=Column(String(40), nullable=False))


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'ledger.db'}"


class SqlStore:
    """The ledger's rows in SQLite or PostgreSQL (``url`` is an SQLAlchemy URL)."""

    tile_size = NODE_TILE_SIZE  # a format constant; tests may set a small one on a fresh database

    def __init__(self, url: str) -> None:
        self.url = url
        u = make_url(url)
        self.dialect = u.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StorageError(f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql+psycopg://")
        if self.dialect == "sqlite":
            if u.database and u.database != ":memory:":
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = self._sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16)
        self._p = "?" if self.dialect == "sqlite" else "%s"

    @staticmethod
    def _sqlite_engine(url: str) -> Engine:
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # durable: NORMAL can lose the last commits on power loss
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA secure_delete=ON")  # erased subject keys are overwritten, not just unlinked
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

        return engine

    # --- lifecycle -------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        from migrations import upgrade

        try:
            upgrade(self.engine)
        except SQLAlchemyError as err:
            raise StorageError(f"migration failed: {err.__class__.__name__}: {err.orig if hasattr(err, 'orig') else err}") from err

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _txn(self, write: bool) -> Iterator[_SqlTxn]:
        try:
            with self.engine.connect() as conn:
                if not write and self.dialect == "postgresql":
                    # one snapshot for the whole read (the Reader contract); read-only, so it never conflicts
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                conn.info["write"] = write
                try:
                    with conn.begin():
                        if write and self.dialect == "postgresql":
                            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITER_LOCK})")
                        yield _SqlTxn(conn, self._p, self.dialect, self.tile_size)
                finally:
                    conn.info["write"] = False
        except IntegrityError as err:
            if "unique" in str(err.orig).lower() or "duplicate" in str(err.orig).lower():
                raise Conflict(f"the database refused a duplicate: {err.orig}") from err
            raise StorageError(f"the database refused the change: {err.orig}") from err
        except (OperationalError, DBAPIError, sqlite3.Error, psycopg.Error) as err:
            if isinstance(err, (sqlite3.IntegrityError, psycopg.errors.IntegrityError)):
                if "unique" in str(err).lower() or "duplicate" in str(err).lower():
                    raise Conflict(f"the database refused a duplicate: {err}") from err
                raise StorageError(f"the database refused the change: {err}") from err
            orig = getattr(err, "orig", None)
            msg = str(orig) if orig is not None else str(err)
            if "no such table" in msg or "does not exist" in msg and "relation" in msg:
                from ledger.errors import NotInitialised

                raise NotInitialised("the ledger database has no tables yet: run `custody init`") from err
            raise StorageError(f"database error: {msg.strip()}") from err

    def read(self) -> Any:
        return self._txn(write=False)

    def write(self) -> Any:
        return self._txn(write=True)

    def iter_chunks(self, start: int, stop: int, chunk: int = 20_000) -> Iterator[NodeChunk]:
        """Entries [start, stop) with the stored hashes they produced, as stored (tiles and rows,
        see ``NodeChunk``), chunk by chunk, each chunk read in its own short transaction (so a long
        verify does not hold a snapshot open)."""
        from ledger.merkle import stored_hash_count, stored_hash_index

        k = self.tile_size
        for a in range(start, stop, chunk):
            b = min(stop, a + chunk)
            first, end = stored_hash_index(0, a), stored_hash_count(b)
            with self.read() as r:
                part = NodeChunk(r.entries(a, b), first, end, r.node_tiles(first // k, -(-end // k)),
                                 r.node_rows(first // k * k, end))
            yield part  # outside the transaction: the caller's work does not hold it open


_TILES_SQL: dict[tuple[int, int], str] = {}


class _SqlTxn:
    """A read or write transaction. Positional SQL; ``?`` is rewritten for psycopg.

    Statements run on the driver's own cursor inside the transaction SQLAlchemy opened: its
    execution machinery costs more per statement than SQLite takes to run these, and a single
    durable append is a handful of statements around one fsync.
    """

    def __init__(self, conn: Connection, p: str, dialect: str, tile_size: int = NODE_TILE_SIZE) -> None:
        self.conn = conn
        self._p = p
        self.dialect = dialect
        self.tile_size = tile_size
        self._cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def _sql(self, sql: str) -> str:
        return sql if self._p == "?" else sql.replace("?", "%s")

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._cur.execute(self._sql(sql), tuple(params))
        return self._cur.fetchall()

    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            self._cur.executemany(self._sql(sql), list(rows))

    def _in(self, n: int) -> str:
        return ",".join([self._p] * n)

    # --- reads ----------------------------------------------------------------------------

    def size(self) -> int:
        row = self._all("SELECT idx FROM entries ORDER BY idx DESC LIMIT 1")
        return row[0][0] + 1 if row else 0

    def entry(self, idx: int) -> EntryRow | None:
        rows = self._all("SELECT idx, data, kind, subject, ledger_time, idempotency_key, request_hash "
                         "FROM entries WHERE idx = ?", (idx,))
        return EntryRow(rows[0][0], bytes(rows[0][1]), *rows[0][2:6], _b(rows[0][6])) if rows else None

    def entries(self, start: int, stop: int) -> list[tuple[int, bytes]]:
        rows = self._all("SELECT idx, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, stop))
        return rows if self.dialect == "sqlite" else [(i, bytes(d)) for i, d in rows]

    def nodes(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Stored hashes by id, from their tile or else their row; ids stored nowhere are left out.

        One statement in the common case: the tiles of all ids, and, in case the highest of those
        tiles is not complete yet, that tile's ids as rows (a proof against the latest size always
        reads the last stored hash). Anything still missing (a proof against an older size, a
        snapshot taken before a tile was written) is looked up as rows in a second statement.
        Proofs call this with about 25 ids: it is written for few ids and few Python steps.
        """
        k = self.tile_size
        want = sorted(set(ids))
        if not want:
            return {}
        tiles = sorted({i // k for i in want})
        top_ids = want[bisect_left(want, tiles[-1] * k):]
        found: dict[int, bytes] = {}
        loose: dict[int, bytes] = {}
        full = k * HASH_SIZE
        for c in range(0, len(tiles), 500):
            part = tiles[c:c + 500]
            last = c + 500 >= len(tiles)
            for key, blob in self._all(self._tiles_sql(len(part), len(top_ids) if last else 0),
                                       part + top_ids if last else part):
                if key >= 0:
                    if len(blob) == full:  # a damaged tile is no source (verify names it)
                        found[key] = blob
                else:
                    loose[-1 - key] = blob
        out: dict[int, bytes] = {}
        for i in want:
            blob = found.get(i // k)
            if blob is not None:
                o = i % k * HASH_SIZE
                out[i] = blob[o:o + HASH_SIZE]
            elif i in loose:
                out[i] = loose[i]
        if len(out) < len(want):
            missing = [i for i in want if i not in out]
            for c in range(0, len(missing), 500):
                part = missing[c:c + 500]
                out.update(self._all(f"SELECT id, hash FROM tree_nodes WHERE id IN ({self._in(len(part))})", part))
        if self.dialect != "sqlite":  # psycopg may hand out memoryviews
            out = {i: bytes(h) for i, h in out.items()}
        return out

    @staticmethod
    def _tiles_sql(n_tiles: int, n_rows: int) -> str:
        """``nodes()``'s statement for so many tiles and rows (cached for the small counts proofs use)."""
        sql = _TILES_SQL.get((n_tiles, n_rows))
        if sql is None:
            sql = f"SELECT tile, hashes FROM node_tiles WHERE tile IN ({','.join('?' * n_tiles)})"
            if n_rows:
                sql += f" UNION ALL SELECT -1 - id, hash FROM tree_nodes WHERE id IN ({','.join('?' * n_rows)})"
            if n_tiles <= 64:
                _TILES_SQL[(n_tiles, n_rows)] = sql
        return sql

    def node_range(self, start: int, stop: int) -> list[tuple[int, bytes]]:
        """Every stored hash with an id in [start, stop), in id order, from its tile or else its row."""
        if stop <= start:
            return []
        k = self.tile_size
        full = k * HASH_SIZE
        out: dict[int, bytes] = {}
        for t, blob in self.node_tiles(start // k, -(-stop // k)):
            if len(blob) != full:
                continue
            out.update(tile_hashes(t, blob, k, start, stop))
        gaps = [i for i in range(start, stop) if i not in out]
        if gaps:
            for i, h in self.node_rows(gaps[0], gaps[-1] + 1):
                out.setdefault(i, h)
        return sorted(out.items())

    def node_tiles(self, start: int, stop: int) -> list[tuple[int, bytes]]:
        rows = self._all("SELECT tile, hashes FROM node_tiles WHERE tile >= ? AND tile < ? ORDER BY tile",
                         (start, stop))
        return rows if self.dialect == "sqlite" else [(t, bytes(h)) for t, h in rows]

    def node_rows(self, start: int, stop: int) -> list[tuple[int, bytes]]:
        rows = self._all("SELECT id, hash FROM tree_nodes WHERE id >= ? AND id < ? ORDER BY id", (start, stop))
        return rows if self.dialect == "sqlite" else [(i, bytes(h)) for i, h in rows]

    def leaf_ids_with_hash(self, h: bytes) -> list[int]:
        """Stored ids of hashes equal to ``h``, in tiles or rows (table scans: only verify's
        failure path uses it)."""
        ids = {r[0] for r in self._all("SELECT id FROM tree_nodes WHERE hash = ?", (h,))}
        find = "instr(hashes, ?) > 0" if self.dialect == "sqlite" else "position(? in hashes) > 0"
        for t, blob in self._all(f"SELECT tile, hashes FROM node_tiles WHERE {find}", (h,)):
            blob = bytes(blob)
            pos = blob.find(h)
            while pos >= 0:
                if pos % HASH_SIZE == 0:  # a match across two hashes is no match
                    ids.add(t * self.tile_size + pos // HASH_SIZE)
                pos = blob.find(h, pos + 1)
        return sorted(ids)

    def derived_rows(self, start: int, stop: int) -> tuple[dict[int, tuple[str, str | None]],
                                                           dict[int, set[tuple[int, str]]], dict[int, set[str]]]:
        """For entries [start, stop): the columns copied out of each leaf, its link rows and sealed fields."""
        cols = {i: (k, s) for i, k, s in self._all(
            "SELECT idx, kind, subject FROM entries WHERE idx >= ? AND idx < ?", (start, stop))}
        links: dict[int, set[tuple[int, str]]] = {}
        for src, dst, rel in self._all("SELECT src, dst, rel FROM links WHERE src >= ? AND src < ?", (start, stop)):
            links.setdefault(src, set()).add((dst, rel))
        sealed: dict[int, set[str]] = {}
        for i, f in self._all("SELECT idx, field FROM sealed_values WHERE idx >= ? AND idx < ?", (start, stop)):
            sealed.setdefault(i, set()).add(f)
        return cols, links, sealed

    def links_from(self, idxs: Sequence[int]) -> list[LinkRow]:
        return self._links("src", idxs)

    def links_to(self, idxs: Sequence[int]) -> list[LinkRow]:
        return self._links("dst", idxs)

    def _links(self, col: str, idxs: Sequence[int]) -> list[LinkRow]:
        out: list[LinkRow] = []
        idxs = list(idxs)
        for k in range(0, len(idxs), 500):
            part = idxs[k:k + 500]
            rows = self._all(f"SELECT src, dst, rel FROM links WHERE {col} IN ({self._in(len(part))})", part)
            out.extend(LinkRow(*r) for r in rows)
        return out

    def kind_entries(self, kind: str, *, since: str | None = None, until: str | None = None,
                     after: tuple[str, int] | None = None, limit: int = 1000) -> list[EntryRow]:
        """Entries of one kind in ledger-time order (then index), ``since`` ≤ ledger_time ≤ ``until``,
        after the (ledger_time, idx) cursor ``after``; index ``ix_entries_kind_time``."""
        sql = "SELECT idx, data, kind, subject, ledger_time FROM entries WHERE kind = ?"
        params: list[Any] = [kind]
        if since is not None:
            sql += " AND ledger_time >= ?"
            params.append(since)
        if until is not None:
            sql += " AND ledger_time <= ?"
            params.append(until)
        if after is not None:
            sql += " AND (ledger_time > ? OR (ledger_time = ? AND idx > ?))"
            params += [after[0], after[0], after[1]]
        rows = self._all(sql + " ORDER BY ledger_time, idx LIMIT ?", [*params, limit])
        return [EntryRow(i, bytes(d), k, s, t) for i, d, k, s, t in rows]

    def entries_at(self, idxs: Sequence[int]) -> dict[int, EntryRow]:
        out: dict[int, EntryRow] = {}
        idxs = sorted(set(idxs))
        for k in range(0, len(idxs), 500):
            part = idxs[k:k + 500]
            for i, d, kd, s, t in self._all(f"SELECT idx, data, kind, subject, ledger_time FROM entries "
                                            f"WHERE idx IN ({self._in(len(part))})", part):
                out[i] = EntryRow(i, bytes(d), kd, s, t)
        return out

    def linking_entries(self, dsts: Sequence[int], kinds: Sequence[str]) -> list[tuple[LinkRow, EntryRow]]:
        """Records of ``kinds`` that link to any of ``dsts``, with the link (``ix_links_dst``)."""
        out: list[tuple[LinkRow, EntryRow]] = []
        dsts = sorted(set(dsts))
        kinds = list(kinds)
        for k in range(0, len(dsts), 500):
            part = dsts[k:k + 500]
            rows = self._all(f"SELECT l.src, l.dst, l.rel, e.data, e.kind, e.subject, e.ledger_time "
                             f"FROM links l JOIN entries e ON e.idx = l.src "
                             f"WHERE l.dst IN ({self._in(len(part))}) AND e.kind IN ({self._in(len(kinds))}) "
                             f"ORDER BY l.src", [*part, *kinds])
            out.extend((LinkRow(src, dst, rel), EntryRow(src, bytes(d), kd, s, t))
                       for src, dst, rel, d, kd, s, t in rows)
        return out

    def by_idempotency_keys(self, keys: Sequence[str]) -> dict[str, tuple[int, bytes | None]]:
        out: dict[str, tuple[int, bytes | None]] = {}
        keys = list(keys)
        for k in range(0, len(keys), 500):
            part = keys[k:k + 500]
            rows = self._all(f"SELECT idempotency_key, idx, request_hash FROM entries "
                             f"WHERE idempotency_key IN ({self._in(len(part))})", part)
            out.update({key: (i, _b(h)) for key, i, h in rows})
        return out

    def checkpoints(self) -> list[CheckpointRow]:
        return [CheckpointRow(i, s, bytes(r), n, c) for i, s, r, n, c in
                self._all("SELECT id, size, root, note, created_at FROM checkpoints ORDER BY id")]

    def checkpoint(self, checkpoint_id: int) -> CheckpointRow | None:
        rows = self._all("SELECT id, size, root, note, created_at FROM checkpoints WHERE id = ?", (checkpoint_id,))
        return CheckpointRow(rows[0][0], rows[0][1], bytes(rows[0][2]), rows[0][3], rows[0][4]) if rows else None

    def checkpoint_at(self, size: int) -> CheckpointRow | None:
        rows = self._all("SELECT id, size, root, note, created_at FROM checkpoints WHERE size = ? "
                         "ORDER BY id DESC LIMIT 1", (size,))
        return CheckpointRow(rows[0][0], rows[0][1], bytes(rows[0][2]), rows[0][3], rows[0][4]) if rows else None

    def latest_checkpoint(self) -> CheckpointRow | None:
        rows = self._all("SELECT id, size, root, note, created_at FROM checkpoints ORDER BY id DESC LIMIT 1")
        return CheckpointRow(rows[0][0], rows[0][1], bytes(rows[0][2]), rows[0][3], rows[0][4]) if rows else None

    def subject_entries(self, subject: str, kind: str) -> list[EntryRow]:
        rows = self._all("SELECT idx, data, kind, subject, ledger_time FROM entries "
                         "WHERE subject = ? AND kind = ? ORDER BY idx", (subject, kind))
        return [EntryRow(i, bytes(d), k, s, t) for i, d, k, s, t in rows]

    def sealed(self, idx: int) -> list[SealedRow]:
        return [SealedRow(i, f, s, bytes(b)) for i, f, s, b in
                self._all("SELECT idx, field, subject, blob FROM sealed_values WHERE idx = ? ORDER BY field", (idx,))]

    def subject_key(self, subject: str) -> bytes | None:
        rows = self._all("SELECT wrapped_key FROM subject_keys WHERE subject = ?", (subject,))
        return bytes(rows[0][0]) if rows else None

    def subject_key_exists(self, subject: str) -> bool:
        return bool(self._all("SELECT 1 FROM subject_keys WHERE subject = ?", (subject,)))

    def meta(self) -> dict[str, str]:
        return dict(self._all("SELECT key, value FROM ledger_meta"))

    def last_verified(self) -> tuple[int, int] | None:
        rows = self._all("SELECT checkpoint_id, size FROM verify_runs ORDER BY id DESC LIMIT 1")
        return (rows[0][0], rows[0][1]) if rows else None

    # --- writes (inserts only; the one delete is a subject key) -------------------------------

    def insert_entries(self, rows: Sequence[EntryRow]) -> None:
        self._many("INSERT INTO entries (idx, data, kind, subject, ledger_time, idempotency_key, request_hash) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)  # EntryRow is a tuple in column order

    def insert_nodes(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """The next stored hashes (consecutive ids from the current count): each tile they complete
        as one ``node_tiles`` row, the still-incomplete tail as ``tree_nodes`` rows.

        Completing a tile that earlier writes began reads those hashes back from ``tree_nodes``
        (writers are serialised, so they are all there); the rows stay (append-only).
        """
        if not rows:
            return
        k = self.tile_size
        first, end = rows[0][0], rows[-1][0] + 1
        if end - first != len(rows):
            raise StorageError(f"stored hashes {first}..{end - 1} are not {len(rows)} consecutive ids")
        t0, t1 = first // k, end // k  # tiles [t0, t1) are complete after this write
        if t1 > t0:
            hashes: list[bytes] = []
            if first > t0 * k:
                prior = self.node_rows(t0 * k, first)
                if len(prior) != first - t0 * k:
                    raise StorageError(f"cannot complete tile {t0}: stored hashes {t0 * k}..{first - 1} are "
                                       f"not all in tree_nodes ({len(prior)} of {first - t0 * k})")
                hashes = [h for _, h in prior]
            hashes += [h for _, h in rows[:t1 * k - first]]
            tiles = [(t, b"".join(hashes[(t - t0) * k:(t - t0 + 1) * k])) for t in range(t0, t1)]
            if any(len(blob) != k * HASH_SIZE for _, blob in tiles):
                raise StorageError(f"a stored hash in {t0 * k}..{t1 * k - 1} is not {HASH_SIZE} bytes")
            self._many("INSERT INTO node_tiles (tile, hashes) VALUES (?, ?)", tiles)
            rows = rows[t1 * k - first:]
        self._many("INSERT INTO tree_nodes (id, hash) VALUES (?, ?)", rows)

    def insert_links(self, rows: Sequence[LinkRow]) -> None:
        self._many("INSERT INTO links (src, dst, rel) VALUES (?, ?, ?)", [(r.src, r.dst, r.rel) for r in rows])

    def insert_sealed(self, rows: Sequence[SealedRow]) -> None:
        self._many("INSERT INTO sealed_values (idx, field, subject, blob) VALUES (?, ?, ?, ?)",
                   [(r.idx, r.field, r.subject, r.blob) for r in rows])

    def insert_checkpoint(self, size: int, root: bytes, note: str, created_at: str) -> int:
        rows = self._all("INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                         (size, root, note, created_at))
        return int(rows[0][0])

    def put_subject_key(self, subject: str, wrapped: bytes, created_at: str) -> None:
        self._many("INSERT INTO subject_keys (subject, wrapped_key, created_at) VALUES (?, ?, ?)",
                   [(subject, wrapped, created_at)])

    def destroy_subject_key(self, subject: str) -> bool:
        self._cur.execute(self._sql("DELETE FROM subject_keys WHERE subject = ?"), (subject,))
        return bool(self._cur.rowcount)

    def set_meta(self, key: str, value: str) -> None:
        self._many("INSERT INTO ledger_meta (key, value) VALUES (?, ?)", [(key, value)])

    def record_verified(self, checkpoint_id: int, size: int, at: str) -> None:
        self._many("INSERT INTO verify_runs (checkpoint_id, size, verified_at) VALUES (?, ?, ?)",
                   [(checkpoint_id, size, at)])


def _b(v: Any) -> bytes | None:
    return None if v is None else bytes(v)


class ApiToken(SQLModel, table=True):
    """An HTTP API token (used by ``api.tokens``): only its SHA-256 is kept, never the token.

    Not evidence: rows are revoked in place (``revoked_at``), so no append-only triggers here.
    """

    __tablename__ = "api_tokens"
    id: int | None = Field(default=None, sa_column=Column(BIGINT, primary_key=True, autoincrement=True))
    token_sha256: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    role: str = Field(sa_column=Column(String(32), nullable=False))
    created_at: str = Field(sa_column=Column(String(40), nullable=False))
    revoked_at: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
