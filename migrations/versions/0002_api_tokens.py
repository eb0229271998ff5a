"""HTTP API tokens: a SHA-256 of each token (never the token), its role and name.

Not evidence, so not append-only: revoking a token sets ``revoked_at`` in place. Rows are never
deleted by the code (a revoked token's name stays taken, so an access record's actor names one
token for good).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table("api_tokens",
                    sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
                    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
                    sa.Column("name", sa.String(200), nullable=False, unique=True),
                    sa.Column("role", sa.String(32), nullable=False),
                    sa.Column("created_at", sa.String(40), nullable=False),
                    sa.Column("revoked_at", sa.String(40), nullable=True))


def downgrade() -> None:
    op.drop_table("api_tokens")
