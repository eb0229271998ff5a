"""Partial indexes on entries: the (subject, kind) index and the idempotency-key uniqueness only
hold rows that have a subject / an idempotency key.

Most records carry neither, so until now each one added two index entries that no lookup could
use: the lookups (``subject = ? AND kind = ?``, ``idempotency_key IN (…)``) name a value, which
implies ``IS NOT NULL``, so both databases still use these indexes for them. Uniqueness of the
keys that are set is unchanged (NULLs were never compared).

PostgreSQL drops the column's UNIQUE constraint and creates a partial unique index. SQLite cannot
drop a column constraint: the table is rebuilt (rows copied as they are, in one transaction),
then its indexes and append-only triggers are created again. On a large ledger this copies every
entry once (not timed on a large ledger yet: expect time in proportion to the database size).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SUBJECT_WHERE = "subject IS NOT NULL"
KEY_WHERE = "idempotency_key IS NOT NULL"


def _sqlite_rebuild(unique_column: bool) -> None:
    unique = " UNIQUE" if unique_column else ""
    op.execute(f"""CREATE TABLE entries_new (
        idx INTEGER NOT NULL, data BLOB NOT NULL, kind VARCHAR(32) NOT NULL, subject VARCHAR(200),
        ledger_time VARCHAR(40) NOT NULL, idempotency_key VARCHAR(200){unique}, request_hash BLOB,
        PRIMARY KEY (idx))""")
    op.execute("INSERT INTO entries_new (idx, data, kind, subject, ledger_time, idempotency_key, request_hash) "
               "SELECT idx, data, kind, subject, ledger_time, idempotency_key, request_hash FROM entries ORDER BY idx")
    op.execute("DROP TABLE entries")  # its indexes and triggers go with it; no trigger fires on DROP
    op.execute("ALTER TABLE entries_new RENAME TO entries")
    op.create_index("ix_entries_kind_time", "entries", ["kind", "ledger_time", "idx"])
    for action in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER entries_no_{action.lower()} BEFORE {action} ON entries BEGIN "
                   f"SELECT RAISE(ABORT, 'custody: table entries is append-only ({action} refused)'); END")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(unique_column=False)
    else:
        op.drop_index("ix_entries_subject_kind", "entries")
        uniques = sa.inspect(op.get_bind()).get_unique_constraints("entries")
        for uc in uniques:
            if uc["column_names"] == ["idempotency_key"]:
                op.drop_constraint(uc["name"], "entries", type_="unique")
    op.create_index("ix_entries_subject_kind", "entries", ["subject", "kind"],
                    sqlite_where=sa.text(SUBJECT_WHERE), postgresql_where=sa.text(SUBJECT_WHERE))
    op.create_index("ux_entries_idempotency_key", "entries", ["idempotency_key"], unique=True,
                    sqlite_where=sa.text(KEY_WHERE), postgresql_where=sa.text(KEY_WHERE))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(unique_column=True)
    else:
        op.drop_index("ux_entries_idempotency_key", "entries")
        op.drop_index("ix_entries_subject_kind", "entries")
        op.create_unique_constraint("entries_idempotency_key_key", "entries", ["idempotency_key"])
    op.create_index("ix_entries_subject_kind", "entries", ["subject", "kind"])
