"""Shared fixtures: a ledger on every backend the suite runs against.

``ledger`` is parametrised over SQLite (a file in a temp folder, WAL, synchronous=FULL) and
PostgreSQL (a fresh schema per test on the server named by CUSTODY_TEST_POSTGRES_URL). Without
a reachable server the PostgreSQL cases skip — unless CUSTODY_REQUIRE_POSTGRES=1 (as in CI),
where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.composition import init_ledger
from api.settings import Settings
from ledger.service import Ledger

PG_URL = os.environ.get("CUSTODY_TEST_POSTGRES_URL",
                        "postgresql+psycopg://custody:custody@127.0.0.1:5432/custody_test")
_pg_state: dict[str, object] = {}


def postgres_available() -> str | None:
    """None if the test server answers, else why not."""
    if "why" not in _pg_state:
        try:
            import psycopg

            from sqlalchemy.engine import make_url

            u = make_url(PG_URL)
            with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                 dbname=u.database, connect_timeout=3) as c:
                c.execute("SELECT 1")
            _pg_state["why"] = None
        except Exception as err:  # noqa: BLE001 - any failure means "not available"
            _pg_state["why"] = f"{type(err).__name__}: {err}"
    return _pg_state["why"]  # type: ignore[return-value]


def require_postgres() -> None:
    why = postgres_available()
    if why is None:
        return
    if os.environ.get("CUSTODY_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (CUSTODY_REQUIRE_POSTGRES=1) but {PG_URL} does not answer: {why}")
    pytest.skip(f"no PostgreSQL server ({why}); set CUSTODY_TEST_POSTGRES_URL")


def postgres_schema_url() -> Iterator[str]:
    """A fresh schema on the test server, dropped afterwards; yields a URL whose search_path is it."""
    require_postgres()
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(PG_URL)
    schema = "t_" + secrets.token_hex(6)
    conninfo = dict(host=u.host, port=u.port or 5432, user=u.username, password=u.password, dbname=u.database)
    with psycopg.connect(**conninfo, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(**conninfo, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield from postgres_schema_url()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, key_dir=tmp_path / "keys")


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    led = init_ledger(settings, origin="custody.test/ledger")
    yield led
    led.store.close()


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'ledger.db'}", key_dir=tmp_path / "keys")
