"""Fixtures for the HTTP API tests: one token per role and a TestClient over the ``ledger`` fixture's
database (so every test runs on SQLite and on PostgreSQL). Import the ``*_fixture`` functions to use
the fixtures ``tokens``, ``client`` and ``auth``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.cli_service import create_token
from api.settings import Settings
from api.tokens import Role
from ledger.service import Ledger

T = "2025-12-30T10:00:00Z"
ACCESS = {"X-Custody-Case": "case-42", "X-Custody-Purpose": "abuse investigation"}


@pytest.fixture(name="tokens")
def tokens_fixture(settings: Settings, ledger: Ledger) -> dict[str, str]:
    """role → a valid token whose name is ``<role>-1`` (created through the CLI service function)."""
    return {r.value: create_token(settings, r.value, f"{r.value}-1") for r in Role}


def make_client(settings: Settings, api: ApiSettings | None = None) -> Iterator[TestClient]:
    with TestClient(create_app(settings, api)) as c:
        yield c


@pytest.fixture(name="client")
def client_fixture(settings: Settings, ledger: Ledger, tokens: dict[str, str]) -> Iterator[TestClient]:
    yield from make_client(settings)


class Auth:
    """Headers for a role: ``auth("investigator", access=True)``."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    def __call__(self, role: str | None, access: bool = False, **extra: str) -> dict[str, str]:
        h: dict[str, str] = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        if access:
            h.update(ACCESS)
        h.update(extra)
        return h


@pytest.fixture(name="auth")
def auth_fixture(tokens: dict[str, str]) -> Auth:
    return Auth(tokens)


def artifact(n: int, **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"kind": "artifact", "producer": "svc:test", "produced_at": T,
                           "body": {"sha256": f"{n:064x}", "media_type": "image/png", "size": n,
                                    "storage_ref": f"blob://{n}"}}
    rec.update(over)
    return rec


def wait_for_job(client: TestClient, url: str, headers: dict[str, str], seconds: float = 60.0) -> dict[str, Any]:
    """Poll a job's status URL until it is done or failed; its last state."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = client.get(url, headers=headers).json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish within {seconds:.0f} s")
