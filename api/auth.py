"""Who may do what over HTTP: bearer tokens, one role each, checked by a FastAPI dependency.

Every route declares its roles with ``Depends(allow(...))``; that one object both enforces the
rule and describes it (``route_roles`` finds it, the OpenAPI document lists it as
``x-custody-roles``, and ``create_app`` refuses to build an app with a route that has none).

=====================================  =======  ============  =====  =======  =====  ========
operation                              service  investigator  legal  auditor  admin  reviewer
=====================================  =======  ============  =====  =======  =====  ========
POST /v1/records (append)                 ✓
GET  /v1/records/{id} (body; logged)                  ✓
GET  /v1/records/{id}/trace (logged)                  ✓
GET  /v1/records/{id}/inclusion           ✓           ✓          ✓       ✓
GET  /v1/checkpoints/…                    ✓           ✓          ✓       ✓
GET  /v1/proofs/consistency                           ✓          ✓       ✓
POST /v1/verify                                                          ✓
POST /v1/holds, /v1/holds/release                                ✓
GET  /v1/holds?subject=                                          ✓
POST /v1/erasures                                                ✓
POST /v1/bundles, GET /v1/jobs/{id},                             ✓
GET /v1/bundles/{id} (own jobs only; the export is logged)
POST/GET /v1/tokens, …/revoke                                                     ✓
GET  /v1/review/queue (logged)                                                          ✓
POST /v1/review/{id}/decision                                                           ✓
GET  /v1/review/sla                                                     ✓               ✓
=====================================  =======  ============  =====  =======  =====  ========

Why these overlaps:

* Checkpoints and inclusion proofs carry hashes, never record content. Whoever holds a record
  id may check it is in the log: a service its own appends, legal what it will put before a
  court, an investigator what it read. Consistency proofs are for those who watch the log
  over time (auditors, and investigators and legal checking two checkpoints they hold).
* Record bodies and traces are evidence: only investigators read them, and every such read
  appends an ``access`` record (see ``api.app``). Auditors check the log without reading it.
* Reviewers (trust-and-safety moderators) work the review queue and nothing else: reading it
  shows held items and their risk and categories, so it is logged like any read of evidence; a
  decision names the token as the reviewer. The SLA report holds record ids and timings, no
  content: auditors check the process with it, reviewers (their leads) watch their own backlog.
* Admin manages tokens and nothing else: an admin token cannot read evidence or append;
  whoever wants to, issues a token with that role, which leaves its name in every access record.

Errors: no or an unknown/revoked token → 401 (with ``WWW-Authenticate: Bearer``); a valid token
whose role the route does not allow → 403. Authentication is checked before the request's
parameters (a caller without a token learns nothing about what a valid request looks like).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.tokens import Role, TokenInfo, TokenStore
from ledger.errors import CustodyError

ALL_ROLES = frozenset(Role)


class Unauthenticated(CustodyError):
    status = 401
    exit_code = 2
    code = "unauthenticated"


class Forbidden(CustodyError):
    status = 403
    exit_code = 2
    code = "forbidden"


bearer_scheme = HTTPBearer(auto_error=False, scheme_name="token",
                           description="An API token (`cst_…`) from `custody token create --role ROLE` "
                                       "or `POST /v1/tokens`: `Authorization: Bearer cst_…`.")


def token_store(request: Request) -> TokenStore:
    return request.app.state.custody.tokens  # type: ignore[no-any-return]


def authenticate(tokens: TokenStore, credentials: HTTPAuthorizationCredentials | None) -> TokenInfo:
    if credentials is None:
        raise Unauthenticated("this endpoint needs an API token: send 'Authorization: Bearer cst_…'")
    info = tokens.authenticate(credentials.credentials)
    if info is None:
        raise Unauthenticated("the API token is unknown or revoked")
    return info


class RoleGuard:
    """A dependency: the caller's token, if its role is one of ``roles`` (else 401/403)."""

    def __init__(self, roles: Iterable[Role]) -> None:
        self.roles = frozenset(roles)
        if not self.roles:
            raise ValueError("a route must allow at least one role")

    def check(self, tokens: TokenStore, credentials: HTTPAuthorizationCredentials | None) -> TokenInfo:
        return self._allowed(authenticate(tokens, credentials))

    def _allowed(self, info: TokenInfo) -> TokenInfo:
        if info.role not in self.roles:
            allowed = ", ".join(sorted(r.value for r in self.roles))
            raise Forbidden(f"the role {info.role.value!r} may not do this (allowed: {allowed})")
        return info

    async def authorize(self, request: Request) -> TokenInfo:
        """The same check without FastAPI's dependency machinery (``LeanRoute``): the bearer token
        read from the header exactly as ``HTTPBearer`` reads it."""
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        credentials = (HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
                       if scheme.lower() == "bearer" and token else None)
        return await self(request, credentials)

    async def __call__(self, request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]) -> TokenInfo:
        # async, so FastAPI runs it on the event loop: a cached token costs no worker-thread hop
        # (a sync dependency would be sent to the thread pool on every request); a cache miss reads
        # the database on a worker thread.
        tokens = token_store(request)
        if credentials is not None:
            info = tokens.cached(credentials.credentials)
            if info is not None:
                return self._allowed(info)
        return await run_in_threadpool(self.check, tokens, credentials)

    def __repr__(self) -> str:
        return f"RoleGuard({sorted(r.value for r in self.roles)})"


def allow(*roles: Role) -> RoleGuard:
    return RoleGuard(roles)


class LeanRoute(APIRoute):
    """An APIRoute for the append hot path: declared like any route (its parameters, its
    ``Depends(allow(...))`` role rule, its OpenAPI entry), but served without FastAPI's dependency
    solving, which costs about a quarter of a no-op request (BENCHMARKS.md, "Appends over HTTP").

    The endpoint must take ``(request, caller)``: the handler checks the route's role rule itself
    (``RoleGuard.authorize``), refuses query parameters (the endpoint takes none) and calls it.
    FastAPI documents this extension point (a custom ``APIRoute.get_route_handler``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        guard = route_guard(self)
        if guard is None:
            raise ValueError(f"route {self.path} declares no roles (use allow(...))")
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            caller = await guard.authorize(request)
            if request.scope.get("query_string"):
                raise RequestValidationError([{"type": "extra_forbidden", "loc": ("query", name), "input": None,
                                               "msg": "unknown query parameter (this endpoint takes none)"}
                                              for name in sorted(set(request.query_params))] or
                                             [{"type": "extra_forbidden", "loc": ("query",), "input": None,
                                               "msg": "this endpoint takes no query string"}])
            return await endpoint(request, caller)  # type: ignore[no-any-return]

        return handler


def _find_guards(dependant: Dependant) -> list[RoleGuard]:
    found = [dependant.call] if isinstance(dependant.call, RoleGuard) else []
    for sub in dependant.dependencies:
        found.extend(_find_guards(sub))
    return found  # type: ignore[return-value]


def route_guard(route: Any) -> RoleGuard | None:
    """The one RoleGuard a route depends on (None if it has none; an error if several)."""
    if not isinstance(route, APIRoute):
        return None
    guards = _find_guards(route.dependant)
    if len(guards) > 1:
        raise ValueError(f"route {route.path} has {len(guards)} role rules; it must have exactly one")
    return guards[0] if guards else None


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute in ``routes`` (an app's or a router's), looking inside included routers
    (FastAPI ≥ 0.165 keeps an included router as one lazy entry) and mounts."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif getattr(route, "original_router", None) is not None:
            yield from api_routes(route.original_router.routes)
        elif getattr(route, "routes", None):
            yield from api_routes(route.routes)


def route_roles(route: Any) -> frozenset[Role] | None:
    guard = route_guard(route)
    return guard.roles if guard else None


async def check_route_auth(request: Request) -> None:
    """Raise 401/403 for the route ``request`` matched, if any (used before reporting a 422)."""
    guard = route_guard(request.scope.get("route"))
    if guard is None:
        return
    credentials = await bearer_scheme(request)
    await run_in_threadpool(guard.check, token_store(request), credentials)
