"""The Alembic migration creates exactly the tables the SQLModel metadata describes, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ledger.store_sql import SQLModel, SqlStore


def test_migrated_schema_matches_models(database_url: str) -> None:
    store = SqlStore(database_url)
    store.migrate()
    store.migrate()  # idempotent
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    store.close()
    assert diff == []
    assert version == "0004"
