"""Fixtures for checking Custody's formats with independent implementations (Go's x/mod).

Without Go or the x/mod sources these tests are skipped; with ``CUSTODY_REQUIRE_GO=1`` (CI)
a missing toolchain fails the run instead, so interop can never silently stop being checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.interop.go_tools import GoUnavailable, build_gocheck, run_checks

GoCheck = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "go: checks against Go's golang.org/x/mod (CUSTODY_REQUIRE_GO=1 makes a missing Go fail)"
    )


@pytest.fixture(scope="session")
def gocheck() -> GoCheck:
    """``gocheck(checks) -> results``: run a batch of checks in Go (compiled once per source)."""
    try:
        binary = build_gocheck()
    except GoUnavailable as exc:
        if os.environ.get("CUSTODY_REQUIRE_GO") == "1":
            pytest.fail(f"CUSTODY_REQUIRE_GO=1 but Go interop is unavailable: {exc}", pytrace=False)
        pytest.skip(f"Go interop unavailable: {exc}")
    return lambda checks: run_checks(binary, checks)
