"""The ledger's tables, and triggers that make the database itself refuse UPDATE and DELETE on them.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Tables whose rows are evidence: never updated, never deleted (subject_keys and verify_runs are not).
# SQLite: INTEGER PRIMARY KEY makes the key the rowid (a clustered table, no second index).
BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
APPEND_ONLY = ("ledger_meta", "entries", "tree_nodes", "links", "sealed_values", "checkpoints")


def upgrade() -> None:
    op.create_table("ledger_meta",
                    sa.Column("key", sa.String(64), primary_key=True),
                    sa.Column("value", sa.String(2000), nullable=False))
    op.create_table("entries",
                    sa.Column("idx", BIGINT, primary_key=True, autoincrement=False),
                    sa.Column("data", sa.LargeBinary, nullable=False),
                    sa.Column("kind", sa.String(32), nullable=False),
                    sa.Column("subject", sa.String(200), nullable=True),
                    sa.Column("ledger_time", sa.String(40), nullable=False),
                    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
                    sa.Column("request_hash", sa.LargeBinary, nullable=True))
    op.create_index("ix_entries_subject_kind", "entries", ["subject", "kind"])
    op.create_table("tree_nodes",
                    sa.Column("id", BIGINT, primary_key=True, autoincrement=False),
                    sa.Column("hash", sa.LargeBinary, nullable=False))
    op.create_table("links",
                    sa.Column("src", BIGINT, primary_key=True, autoincrement=False),
                    sa.Column("dst", BIGINT, primary_key=True, autoincrement=False),
                    sa.Column("rel", sa.String(200), primary_key=True))
    op.create_index("ix_links_dst", "links", ["dst"])
    op.create_table("sealed_values",
                    sa.Column("idx", BIGINT, primary_key=True, autoincrement=False),
                    sa.Column("field", sa.String(200), primary_key=True),
                    sa.Column("subject", sa.String(200), nullable=False),
                    sa.Column("blob", sa.LargeBinary, nullable=False))
    op.create_table("subject_keys",
                    sa.Column("subject", sa.String(200), primary_key=True),
                    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
                    sa.Column("created_at", sa.String(40), nullable=False))
    op.create_table("checkpoints",
                    sa.Column("id", BIGINT, primary_key=True,
                              autoincrement=True),
                    sa.Column("size", sa.BigInteger, nullable=False),
                    sa.Column("root", sa.LargeBinary, nullable=False),
                    sa.Column("note", sa.String(8000), nullable=False),
                    sa.Column("created_at", sa.String(40), nullable=False))
    op.create_index("ix_checkpoints_size", "checkpoints", ["size"])
    op.create_table("verify_runs",
                    sa.Column("id", BIGINT, primary_key=True,
                              autoincrement=True),
                    sa.Column("checkpoint_id", sa.BigInteger, nullable=False),
                    sa.Column("size", sa.BigInteger, nullable=False),
                    sa.Column("verified_at", sa.String(40), nullable=False))

    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION custody_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'custody: table % is append-only (% refused)', TG_TABLE_NAME, TG_OP;
            END $$""")
        for t in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                       f"FOR EACH ROW EXECUTE FUNCTION custody_append_only()")
            op.execute(f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()")
    else:
        for t in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {t}_no_{action.lower()} BEFORE {action} ON {t} BEGIN "
                           f"SELECT RAISE(ABORT, 'custody: table {t} is append-only ({action} refused)'); END")


def downgrade() -> None:
    raise NotImplementedError("the ledger's first revision is not reversible: its tables are evidence")
