"""Property-based tests of the API against its own OpenAPI document (schemathesis): whatever a
client sends, whether the document allows it (positive) or not (negative), the answer is never
a 5xx, and answers conform to the document (status codes, content types, response schemas;
schema-invalid input is refused with a 4xx). Not checked: that every schema-valid request is
accepted — the ledger refuses much the schema cannot express (a size beyond the tree, a body
without its kind's fields, a link to a record that does not exist), with a 4xx that says why.
Every operation, on SQLite and PostgreSQL, with a token of a role the operation allows.

(Cases are drawn with ``APIOperation.as_strategy`` inside an ordinary test, not with
``schemathesis.pytest.from_fixture``, whose lazy loader does not run under pytest 9.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from api.app import _responses, create_app, router
from api.auth import api_routes
from api.artifact_routes import artifact_router
from api.generations import generation_router
from api.replays import investigator_jobs_router, replay_router
from api.review_routes import review_router
from api.sample import sample_incident
from api.settings import Settings
from ledger.service import Ledger
from tests.unit.api.app_fixtures import tokens_fixture  # noqa: F401

EXAMPLES_PER_OPERATION = 20
# POST /v1/replays is left out: a generated request may start a sandbox job that outlives the test's
# app (its input validation is tested in test_replays_api.py); every other operation is in.
OPERATIONS = sorted((m, r.path) for r in [*api_routes(router.routes), *api_routes(review_router(_responses).routes),
                                          *api_routes(generation_router(None, _responses).routes),  # type: ignore[arg-type]
                                          *api_routes(replay_router(None, None, Path("."), _responses).routes),  # type: ignore[arg-type]
                                          *api_routes(investigator_jobs_router(None, _responses).routes),  # type: ignore[arg-type]
                                          *api_routes(artifact_router(None, _responses).routes)]  # type: ignore[arg-type]
                    for m in r.methods if (m, r.path) != ("POST", "/v1/replays"))


@schemathesis.serializer("application/x-ndjson")
def _jsonl(ctx: Any, value: Any) -> bytes:
    """The append endpoint documents JSON Lines as a string; send it as such (lists as real lines)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, list):
        return "\n".join(json.dumps(v) for v in value).encode()
    return json.dumps(value).encode()


def _mutated_parameter(case: Any) -> str | None:
    """The parameter a negative case mangled (schemathesis's case metadata), if it says."""
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    return getattr(data, "parameter", None)


@pytest.fixture
def api(settings: Settings, ledger: Ledger, tokens: dict[str, str]) -> Iterator[tuple[Any, dict[str, str]]]:
    ledger.append(sample_incident())  # something to read, trace and prove
    app = create_app(settings)
    yield schemathesis.openapi.from_asgi("/openapi.json", app), tokens
    app.state.custody.writer.stop()
    app.state.custody.ledger.store.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("method,path", OPERATIONS)
def test_api_conforms_and_never_fails_with_5xx(api: tuple[Any, dict[str, str]], method: str, path: str,
                                               mode: GenerationMode) -> None:
    schema, tokens = api
    op = schema[path][method]
    role = op.definition.raw["x-custody-roles"][0]
    headers = {"Authorization": f"Bearer {tokens[role]}"}

    @given(case=op.as_strategy(mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # A negative case may be one whose only flaw is a mangled Authorization header: send it as
        # generated (and expect the 401 it earns) instead of replacing it with a good token.
        # (A negative case may mangle several components and name only one of them in its metadata: one
        # without any Authorization header has had it removed, whatever else it changed.)
        mutated_auth = _mutated_parameter(case) == "Authorization"
        # A negative case without the (required) Authorization header gets our token below, which undoes
        # one of its mutations; if its other mutation is lost on the wire (an extra query parameter whose
        # value is an empty object is not serialised at all), the request is valid and is rightly accepted.
        # For those cases only "no 5xx" is checked, not "negative data rejected".
        token_added = mode == GenerationMode.NEGATIVE and not mutated_auth and "Authorization" not in (case.headers or {})
        excluded = [positive_data_acceptance] + ([negative_data_rejection] if token_added else [])
        response = case.call_and_validate(headers=None if mutated_auth else headers, excluded_checks=excluded)
        assert response.status_code < 500, response.text
        if mutated_auth:
            assert response.status_code == 401, response.text

    check()
