"""Shared fixtures: a ledger on every backend the suite runs against.

``ledger`` is parametrised over SQLite (a file in a temp folder, WAL, synchronous=FULL) and
PostgreSQL (a fresh schema per test on the server named by CUSTODY_TEST_POSTGRES_URL). Without
a reachable server the PostgreSQL cases skip — unless CUSTODY_REQUIRE_POSTGRES=1 (as in CI),
where they fail.

The suite runs on every core with pytest-xdist (``-n auto --dist loadgroup``, see scripts/test.sh). Tests that
share one global resource run in one worker, one after another (xdist group "sandbox"): every test that uses the Docker
engine (they assert that no sandbox container or volume is left behind, which another worker's running replay would
break) and the process sandbox's tests (they look for the job's processes by user id, which a container's job shares).
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


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the group marks into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of a module that takes the Docker fixtures share the xdist group "sandbox" (one worker, in order)."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "docker_client"):
            item.add_marker(pytest.mark.xdist_group("sandbox"))


@pytest.hookimpl(trylast=True)  # after xdist's hook
def pytest_collection_finish(session: pytest.Session) -> None:
    """Fail loudly if xdist's grouping did not take effect: with pytest 9.2, pytest-xdist 3.8's loadgroup silently
    distributes grouped tests as if ungrouped (pytest-xdist#1386), and the Docker tests then break each other."""
    if not session.config.getoption("loadgroup", default=False):
        return
    lost = [i.nodeid for i in session.items if any(i.iter_markers("xdist_group")) and "@" not in i.nodeid]
    if lost:
        raise pytest.UsageError(f"--dist loadgroup did not group {len(lost)} tests (e.g. {lost[0]}); "
                                "pytest-xdist#1386 with pytest >= 9.2: install 'pytest<9.2'")


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
