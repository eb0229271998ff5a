"""The storage interface the ledger service needs, and the rows it exchanges.

The service owns the rules (sequencing, tree math, signing); a store only keeps rows and
serialises writers. ``ledger.store_sql.SqlStore`` implements this over SQLite and PostgreSQL.
There is deliberately no update or delete for entries, nodes, links, sealed values or
checkpoints: the only deletion anywhere is of a subject's key (crypto-shredding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple, Protocol

# Stored hashes (numbered by Go tlog's stored hash index, see ledger.merkle) are kept in tiles:
# tile t holds the hashes with ids [t*K, (t+1)*K), 32 bytes each, concatenated, written once,
# when complete. A hash whose tile is not complete when it is written gets a row of its own
# (``tree_nodes``); that row stays when the tile is written later ("shadowed" by the tile).
# K = 62: 1,984 bytes, so two tiles share a 4 KiB SQLite page and four an 8 KiB PostgreSQL page,
# inline (under PostgreSQL's 2,032-byte TOAST threshold); 64 would leave half of each SQLite
# page empty and be toasted out of line by PostgreSQL (BENCHMARKS.md, "Node tiles").
# A storage-format constant: migration 0005 backfills with the same value.
NODE_TILE_SIZE = 62

HASH_SIZE = 32  # bytes of one stored hash (SHA-256)


def tile_hashes(tile: int, blob: bytes, tile_size: int, lo: int, hi: int) -> Iterator[tuple[int, bytes]]:
    """The stored hashes of a complete tile's ``blob`` whose ids fall in [lo, hi), with their ids."""
    base = tile * tile_size
    for i in range(max(lo, base), min(hi, base + tile_size)):
        o = (i - base) * HASH_SIZE
        yield i, blob[o:o + HASH_SIZE]


class EntryRow(NamedTuple):
    """An entry's row. A tuple in column order: inserted as it is, built once per record."""

    idx: int
    data: bytes  # the leaf's canonical JSON
    kind: str
    subject: str | None
    ledger_time: str
    idempotency_key: str | None = None
    request_hash: bytes | None = None


@dataclass(frozen=True)
class LinkRow:
    src: int
    dst: int
    rel: str


@dataclass(frozen=True)
class SealedRow:
    idx: int
    field: str
    subject: str
    blob: bytes


class NodeChunk(NamedTuple):
    """What ``Store.iter_chunks`` yields: entries and the stored hashes around them, as stored.

    The entries' appends wrote the stored hashes [``first_id``, ``end_id``). ``tiles`` are the
    ``(tile, hashes)`` rows of the tiles that overlap them; ``rows`` the individual ``(id, hash)``
    rows from the first of those tiles' first id up to ``end_id``. Nothing is merged or checked:
    that is verify's job.
    """

    entries: list[tuple[int, bytes]]
    first_id: int
    end_id: int
    tiles: list[tuple[int, bytes]]
    rows: list[tuple[int, bytes]]


@dataclass(frozen=True)
class CheckpointRow:
    id: int
    size: int
    root: bytes
    note: str
    created_at: str


class Reader(Protocol):
    """Reads; every method sees one consistent snapshot inside a transaction."""

    def size(self) -> int: ...
    def entry(self, idx: int) -> EntryRow | None: ...
    def entries(self, start: int, stop: int) -> list[tuple[int, bytes]]: ...
    # Stored hashes by stored index, whether a tile or a row holds them (a tile wins):
    def nodes(self, ids: Sequence[int]) -> dict[int, bytes]: ...
    def node_range(self, start: int, stop: int) -> list[tuple[int, bytes]]: ...
    # The two tables as stored (verify compares them): tiles [start, stop), rows with ids [start, stop).
    def node_tiles(self, start: int, stop: int) -> list[tuple[int, bytes]]: ...
    def node_rows(self, start: int, stop: int) -> list[tuple[int, bytes]]: ...
    def links_from(self, idxs: Sequence[int]) -> list[LinkRow]: ...
    def links_to(self, idxs: Sequence[int]) -> list[LinkRow]: ...
    def by_idempotency_keys(self, keys: Sequence[str]) -> dict[str, tuple[int, bytes | None]]: ...
    def checkpoints(self) -> list[CheckpointRow]: ...
    def latest_checkpoint(self) -> CheckpointRow | None: ...
    def checkpoint_at(self, size: int) -> CheckpointRow | None: ...
    def checkpoint(self, checkpoint_id: int) -> CheckpointRow | None: ...
    def subject_entries(self, subject: str, kind: str) -> list[EntryRow]: ...
    def sealed(self, idx: int) -> list[SealedRow]: ...
    def subject_key(self, subject: str) -> bytes | None: ...
    def subject_key_exists(self, subject: str) -> bool: ...
    def meta(self) -> dict[str, str]: ...
    def last_verified(self) -> tuple[int, int] | None: ...
    def leaf_ids_with_hash(self, h: bytes) -> list[int]: ...
    def derived_rows(self, start: int, stop: int) -> tuple[dict[int, tuple[str, str | None]],
                                                           dict[int, set[tuple[int, str]]], dict[int, set[str]]]: ...
    # Kind and link queries (the review queue and SLA report; they never scan the whole ledger):
    def kind_entries(self, kind: str, *, since: str | None = None, until: str | None = None,
                     after: tuple[str, int] | None = None, limit: int = 1000) -> list[EntryRow]: ...
    def entries_at(self, idxs: Sequence[int]) -> dict[int, EntryRow]: ...
    def linking_entries(self, dsts: Sequence[int], kinds: Sequence[str]) -> list[tuple[LinkRow, EntryRow]]: ...


class Writer(Reader, Protocol):
    """One write transaction; writers are serialised, so ``size()`` is stable inside it."""

    def insert_entries(self, rows: Sequence[EntryRow]) -> None: ...
    # ``rows`` are the next stored hashes, consecutive ids from the current count: the store writes
    # each tile they complete as one row, and only the still-incomplete tail as rows.
    def insert_nodes(self, rows: Sequence[tuple[int, bytes]]) -> None: ...
    def insert_links(self, rows: Sequence[LinkRow]) -> None: ...
    def insert_sealed(self, rows: Sequence[SealedRow]) -> None: ...
    def insert_checkpoint(self, size: int, root: bytes, note: str, created_at: str) -> int: ...
    def put_subject_key(self, subject: str, wrapped: bytes, created_at: str) -> None: ...
    def destroy_subject_key(self, subject: str) -> bool: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def record_verified(self, checkpoint_id: int, size: int, at: str) -> None: ...


class Store(Protocol):
    tile_size: int  # hashes per tile (NODE_TILE_SIZE)

    def migrate(self) -> None: ...
    def read(self) -> AbstractContextManager[Reader]: ...
    def write(self) -> AbstractContextManager[Writer]: ...
    def iter_chunks(self, start: int, stop: int, chunk: int) -> Iterator[NodeChunk]: ...
    def close(self) -> None: ...
