"""An index on entries (kind, ledger_time, idx), for the review queue and the SLA report.

They read one kind of record (safety decisions, review decisions, distributions) in ledger-time
order, within a time window, without scanning the whole table. ``ledger_time`` is the ledger's
own fixed-width RFC 3339 stamp (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), so string order is time order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""
from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_entries_kind_time", "entries", ["kind", "ledger_time", "idx"])


def downgrade() -> None:
    op.drop_index("ix_entries_kind_time", "entries")
