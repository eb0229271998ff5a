"""Alembic environment: the engine comes from the caller (``migrations.upgrade``), never from a config file,
so migrations run against exactly the database the CLI or service was configured with."""

from __future__ import annotations

from alembic import context

from ledger.store_sql import SQLModel  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata
engine = context.config.attributes.get("engine")
if engine is None:  # pragma: no cover - plain `alembic` CLI use
    from sqlalchemy import create_engine

    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    connection.info["write"] = True  # SQLite: take the write lock up front
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
