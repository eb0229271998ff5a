"""The HTTP API: ``create_app(settings)`` builds a FastAPI app over one Ledger.

``create_app`` is the composition root for HTTP: it opens the ledger and the token store from
``Settings`` once (nothing connects at import time); every write this process makes goes
through one writer thread with group commit (``api.writer``), started with the app (or on first
use) and drained on shutdown, when the database is closed too. Roles: see ``api.auth``.

Endpoints (all under ``/v1``; the OpenAPI document is at ``/openapi.json``, docs at ``/docs``):

=========================================  ===============================================
``POST /records``                          append one record (JSON object), a batch (JSON
                                           array) or JSON Lines (``application/x-ndjson``);
                                           one atomic, durable transaction per request
``GET  /records/{id}[?proof=&size=]``      a record, optionally with its inclusion proof (*)
``GET  /records/{id}/trace``               its connected chain as a graph: nodes and links (*)
``GET  /records/{id}/inclusion[?size=]``   inclusion proof only (hashes, no content)
``GET  /checkpoints/latest``               the newest signed checkpoint
``GET  /checkpoints/{id}``                 any earlier one, by id ...
``GET  /checkpoints/by-size/{size}``       ... or by tree size
``GET  /proofs/consistency?old=&new=``     consistency proof between two sizes
``POST /verify[?mode=full&deep=true]``     verify the ledger (incremental by default)
``POST /holds``, ``POST /holds/release``   place / release a legal hold on a subject
``GET  /holds?subject=``                   a subject's active holds
``POST /erasures``                         erase (crypto-shred) a subject, unless held
``POST /tokens``, ``GET /tokens``,         issue, list and revoke API tokens
``POST /tokens/{name}/revoke``
``POST /bundles``                          export a case's evidence bundle, as a job (202)
``GET  /jobs/{id}``, ``GET /bundles/{id}``  the job's state; the finished zip (``api.bundles``)
``GET  /review/queue``, ``POST /review/{id}/decision``, ``GET /review/sla``
                                           the human review queue and the SLA report
                                           (``api.review_routes``)
=========================================  ===============================================

(*) Reads of evidence. The caller must say why, in two headers: ``X-Custody-Case`` (a case id,
the record ``Name`` syntax) and ``X-Custody-Purpose`` (free text). Headers, not query
parameters, so the case and purpose stay out of URLs and the proxy logs that keep them.
Missing → 400 ``access_context_required``. Each read appends an ``access`` record (actor = the
token's name, role, action, case id, purpose; ``records`` lists the ids read) linked to the
records read (up to 1,000 links; a trace's root as ``trace_root``), *before* the body is
returned; the response names it (``access_id``). Traces leave access records out of the graph
unless ``include_access=true`` (else every read would grow the next trace).

Errors are one JSON shape, ``{"error": code, "message": text}``, from one handler per kind:
``CustodyError`` → its ``status``; request validation → 422 (400 for missing access headers;
422 for query parameters a route does not declare); 401/403 before anything else is looked at; bodies over ``max_request_bytes`` → 413 before they are
read in full. Clients cannot set the ledger's time or indices: the record schema forbids any
field it does not name (``ledger_time``, ``idx``, ``sealed``, … → 400).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.bundles import JobRunner, bundle_dir_for, bundle_router
from api.review_routes import review_router
from api.auth import LeanRoute, Role, allow, api_routes, check_route_auth, route_guard
from api.composition import open_gateway, open_ledger
from api.artifact_routes import artifact_router
from api.generations import generation_router
from api.replays import investigator_jobs_router, replay_router
from api.settings import Settings
from api.tokens import NAME_MAX, NAME_PATTERN, TokenInfo, TokenStore
from api.sequencer import SequencerChannel
from api.writer import LedgerWriter
from ledger.artifacts import artifact_store_for
from ledger.errors import CustodyError, InvalidInput, NotFound, NotInitialised
from pipeline.errors import PipelineError
from ledger.records import Kind, Name, RecordIn, Text, parse_json
from ledger.service import Ledger, now_rfc3339
from ledger.verify import verify_ledger

log = logging.getLogger("custody.api")

CASE_HEADER = "X-Custody-Case"
PURPOSE_HEADER = "X-Custody-Purpose"
API_PRODUCER = "custody:api"
MAX_ACCESS_LINKS = 1000  # RecordIn allows 1,000 links; a trace's full id list goes in the body
MAX_ID = (1 << 63) - 1  # the databases' BIGINT: larger ids cannot exist, so they are refused as input
JSON_TYPES = ("application/json",)
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines")


@dataclass(frozen=True)
class ApiSettings:
    """HTTP-only settings (env ``CUSTODY_API_*``)."""

    max_request_bytes: int = 32 << 20  # a batch of records, with JSON overhead
    max_batch: int = 10_000  # records in one request
    group_commit: bool = True
    max_group_records: int = 1000  # records in one shared transaction
    token_cache_seconds: float = 2.0  # a revocation made elsewhere (CLI) takes effect within this
    # Appends sequenced in a process of their own (api.sequencer), or on a thread of the server's
    # (``CUSTODY_API_WRITER=process|thread``; ``custody serve`` uses the process).
    writer_process: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ApiSettings:
        env = dict(os.environ if env is None else env)
        try:
            s = cls(max_request_bytes=int(env.get("CUSTODY_API_MAX_REQUEST_BYTES", cls.max_request_bytes)),
                    max_batch=int(env.get("CUSTODY_API_MAX_BATCH", cls.max_batch)),
                    group_commit=env.get("CUSTODY_API_GROUP_COMMIT", "1").lower() not in ("0", "false", "no"),
                    max_group_records=int(env.get("CUSTODY_API_MAX_GROUP_RECORDS", cls.max_group_records)),
                    token_cache_seconds=float(env.get("CUSTODY_API_TOKEN_CACHE_SECONDS", cls.token_cache_seconds)),
                    writer_process=_writer_mode(env.get("CUSTODY_API_WRITER", "process")))
        except ValueError as err:
            raise InvalidInput(f"bad CUSTODY_API_* setting: {err}") from None
        if s.max_request_bytes < 1024 or s.max_batch < 1 or s.max_group_records < 1 or s.token_cache_seconds < 0:
            raise InvalidInput("CUSTODY_API_MAX_REQUEST_BYTES must be ≥ 1024, the batch limits ≥ 1, "
                               "CUSTODY_API_TOKEN_CACHE_SECONDS ≥ 0")
        return s


def _writer_mode(value: str) -> bool:
    if value not in ("process", "thread"):
        raise ValueError(f"CUSTODY_API_WRITER must be 'process' or 'thread', not {value!r}")
    return value == "process"


@dataclass
class Services:
    """What the routes need, built once by ``create_app``."""

    ledger: Ledger
    tokens: TokenStore
    writer: LedgerWriter
    config: ApiSettings


class RequestTooLarge(InvalidInput):
    status = 413
    code = "request_too_large"


class UnsupportedMediaType(InvalidInput):
    status = 415
    code = "unsupported_media_type"


class AccessContextRequired(InvalidInput):
    code = "access_context_required"


# --- request and response models ----------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Out):
    error: str = Field(description="stable machine-readable code, e.g. `not_found`, `forbidden`")
    message: str = Field(description="what went wrong, for a person")


class AppendedOut(_Out):
    id: int
    leaf_hash: str
    ledger_time: str
    existing: bool = Field(description="true when an idempotent retry returned an earlier entry")


class InclusionOut(_Out):
    index: int
    size: int
    leaf_hash: str
    proof: list[str]
    root: str
    checkpoint: str | None = Field(description="the signed note of the checkpoint at `size`, if one exists")


class RecordOut(_Out):
    id: int
    leaf_hash: str
    record: dict[str, Any] = Field(description="the leaf document (sealed fields appear as commitments only)")
    inclusion: InclusionOut | None = None
    access_id: int = Field(description="the access record this read appended")


class CheckpointOut(_Out):
    id: int
    size: int
    root: str = Field(description="base64")
    root_hex: str
    note: str = Field(description="the C2SP signed note")
    created_at: str


class ConsistencyOut(_Out):
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    proof: list[str]


class TraceNode(_Out):
    id: int
    kind: str
    leaf_hash: str
    ledger_time: str
    producer: str
    subject: str | None
    body: dict[str, Any]


class TraceLink(_Out):
    source: int
    target: int
    rel: str


class TraceOut(_Out):
    root: int
    nodes: list[TraceNode]
    links: list[TraceLink]
    truncated: bool = Field(description="the walk stopped at max_nodes")
    access_id: int = Field(description="the access record this read appended")


class ProblemOut(_Out):
    what: str
    message: str
    index: int | None
    checkpoint: int | None


class VerifyOut(_Out):
    ok: bool
    mode: str
    size: int
    start: int
    entries_checked: int
    checkpoints_checked: int
    seconds: float
    entries_per_second: int | None
    first_bad_index: int | None
    problems: list[ProblemOut]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HoldIn(_In):
    subject: Name
    case_id: Name


class HoldsOut(_Out):
    subject: str
    holds: dict[str, int] = Field(description="case id → the legal_hold record that placed the active hold")


class ErasureIn(_In):
    subject: Name
    reason: Text


TokenName = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]


class TokenIn(_In):
    name: TokenName = Field(description="who holds it; becomes the `actor` of their access records; never reused")
    role: Role


class TokenOut(_Out):
    id: int
    name: str
    role: Role
    created_at: str
    revoked: bool
    revoked_at: str | None


class TokenCreated(TokenOut):
    token: str = Field(description="the secret: shown this once, stored only as a SHA-256")


# --- dependencies -------------------------------------------------------------------------------


def services_of(request: Request) -> Services:
    return request.app.state.custody  # type: ignore[no-any-return]


async def services(request: Request) -> Services:
    # Dependencies are async so FastAPI runs them on the event loop: it sends a sync dependency to
    # the thread pool on every request, which costs more than these take.
    return request.app.state.custody  # type: ignore[no-any-return]


Svc = Annotated[Services, Depends(services)]


@dataclass(frozen=True)
class AccessContext:
    case_id: str
    purpose: str


def access_context(
    case_id: Annotated[str, Header(alias=CASE_HEADER, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
                                   description="The case this read is for (recorded in the access record).")],
    purpose: Annotated[str, Header(alias=PURPOSE_HEADER, min_length=1, max_length=2000, pattern=r"^[ -~]*[!-~][ -~]*$",
                                   description="Why the evidence is read (printable ASCII; recorded).")],
) -> AccessContext:
    return AccessContext(case_id, purpose.strip())


Access = Annotated[AccessContext, Depends(access_context)]
RecordId = Annotated[int, Path(ge=0, le=MAX_ID, description="ledger index of the record")]
SizeQ = Annotated[int | None, Query(ge=0, le=MAX_ID, description="tree size to prove against "
                                                                   "(default: the latest checkpoint's)")]


def _caller(*roles: Role) -> Any:
    return Annotated[TokenInfo, Depends(allow(*roles))]


Appender = _caller(Role.SERVICE)
Investigator = _caller(Role.INVESTIGATOR)
ProofReader = _caller(Role.SERVICE, Role.INVESTIGATOR, Role.LEGAL, Role.AUDITOR)
Monitor = _caller(Role.INVESTIGATOR, Role.LEGAL, Role.AUDITOR)
Auditor = _caller(Role.AUDITOR)
Legal = _caller(Role.LEGAL)
Admin = _caller(Role.ADMIN)


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Invalid input", 401: "Missing, unknown or revoked token", 403: "The token's role may not do this",
            404: "Not found", 409: "Conflicts with the ledger's state", 410: "The subject was erased",
            413: "Request or record too large", 415: "Unsupported media type",
            422: "Request validation failed", 503: "Storage unavailable or ledger not initialised"}
    return {c: {"model": ErrorOut, "description": text[c]} for c in sorted({401, 403, 422, 503, *codes})}


# --- access records -----------------------------------------------------------------------------


def access_record(caller: TokenInfo, ctx: AccessContext, action: str, ids: list[int],
                  root: int | None = None) -> dict[str, Any]:
    links = []
    if root is not None:
        links.append({"rel": "trace_root", "id": root})
    links += [{"rel": "read", "id": i} for i in ids if i != root]
    return {"kind": Kind.ACCESS.value, "producer": API_PRODUCER, "produced_at": now_rfc3339(),
            "links": links[:MAX_ACCESS_LINKS],
            "body": {"actor": caller.name, "role": caller.role.value, "action": action, "case_id": ctx.case_id,
                     "purpose": ctx.purpose, "records": ids, "via": "http"}}


def _query_names(dependant: Any) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def no_unknown_query(request: Request) -> None:
    """Refuse query parameters the route does not declare (422): a typo such as ``?proff=true``
    must not silently read a record without its proof."""
    route = request.scope.get("route")
    if route is None or not request.query_params:
        return
    known = _query_names(route.dependant)
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown:
        raise RequestValidationError([{"type": "extra_forbidden", "loc": ("query", name), "input": None,
                                       "msg": "unknown query parameter" + (f" (known: {', '.join(sorted(known))})"
                                                                           if known else " (this endpoint takes none)")}
                                      for name in unknown])


# --- routes -------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1", dependencies=[Depends(no_unknown_query)])


def _record_schema_ref() -> dict[str, Any]:
    return {"$ref": "#/components/schemas/RecordIn"}


APPEND_BODY = {
    "required": True,
    "description": "One record (a JSON object), a batch (a JSON array), or JSON Lines (one record per line). "
                   "A batch is one atomic transaction; in a batch a link may name an earlier line: "
                   "`{\"rel\": \"prompt\", \"batch\": 0}`. The ledger sets time and indices: any other field "
                   "is refused.",
    "content": {
        "application/json": {"schema": {"anyOf": [_record_schema_ref(),
                                                  {"type": "array", "items": _record_schema_ref(), "minItems": 1}]}},
        "application/x-ndjson": {"schema": {"type": "string", "description": "JSON Lines: one RecordIn per line"}},
    },
}


def parse_records(raw: bytes, content_type: str, ledger: Ledger) -> list[Any]:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        value = parse_json(raw, what="request body")
        if isinstance(value, dict):
            return [value]
        if isinstance(value, list):
            if not value:
                raise InvalidInput("no records in the request body (an empty array)")
            return value
        raise InvalidInput("the request body must be a record (JSON object) or a batch (JSON array)")
    if media in JSONL_TYPES:
        return ledger.parse_batch(raw)
    raise UnsupportedMediaType(f"send records as application/json (an object or an array) or as JSON Lines "
                               f"(application/x-ndjson); got {media or 'no Content-Type'!r}")


# The append route alone, served by LeanRoute (no dependency solving: it is the hot path).
append_router = APIRouter(prefix="/v1", route_class=LeanRoute)


@append_router.post("/records", status_code=201, response_model=list[AppendedOut], tags=["records"],
                    summary="Append a record or a batch", openapi_extra={"requestBody": APPEND_BODY},
                    responses={200: {"model": list[AppendedOut], "description": "every record was an idempotent retry"},
                               **_responses(400, 404, 409, 410, 413, 415)})
async def append_records(request: Request, caller: Appender) -> Response:
    svc = services_of(request)  # not a dependency: one fewer to solve on every append
    raw = await request.body()
    big = len(raw) > 64 * 1024  # parse and validate big bodies off the event loop
    content_type = request.headers.get("content-type", "")
    items = (await run_in_threadpool(parse_records, raw, content_type, svc.ledger) if big
             else parse_records(raw, content_type, svc.ledger))
    if len(items) > svc.config.max_batch:
        raise RequestTooLarge(f"a request holds at most {svc.config.max_batch} records; got {len(items)} "
                              f"(split the batch)")
    if big and svc.writer.channel is None:
        results = await run_in_threadpool(svc.writer.append, items)
    else:
        results = await svc.writer.append_async(items)
    # The bytes are built here rather than by FastAPI from response_model (which validates each
    # dict again): the hot path of every append, and AppendedOut's shape is fixed by as_dict.
    status = 200 if all(r.existing for r in results) else 201
    return Response(json.dumps([r.as_dict() for r in results], separators=(",", ":")).encode(), status_code=status,
                    media_type="application/json")


@router.get("/records/{record_id}", response_model=RecordOut, tags=["records"],
            summary="Read a record (logged as an access record)", responses=_responses(400, 404))
def get_record(record_id: RecordId, svc: Svc, caller: Investigator, access: Access,
               proof: Annotated[bool, Query(description="include an inclusion proof")] = False,
               size: SizeQ = None) -> dict[str, Any]:
    out = svc.ledger.get(record_id, proof=proof, size=size)
    [acc] = svc.writer.append([access_record(caller, access, "read_record", [record_id])], trusted=True)
    out["access_id"] = acc.id
    return out


@router.get("/records/{record_id}/trace", response_model=TraceOut, tags=["records"],
            summary="Trace a record's connected chain (logged as an access record)", responses=_responses(400, 404))
def trace_record(record_id: RecordId, svc: Svc, caller: Investigator, access: Access,
                 max_nodes: Annotated[int, Query(ge=1, le=10_000, description="stop the walk after this many records")] = 1000,
                 include_access: Annotated[bool, Query(description="also show access records (who read the chain)")] = False,
                 ) -> dict[str, Any]:
    t = svc.ledger.trace(record_id, max_nodes=max_nodes)
    nodes = {i: n for i, n in t.nodes.items() if include_access or i == record_id or n["kind"] != Kind.ACCESS.value}
    links = [{"source": e["src"], "target": e["dst"], "rel": e["rel"]} for e in t.edges
             if e["src"] in nodes and e["dst"] in nodes]
    ids = sorted(nodes)
    [acc] = svc.writer.append([access_record(caller, access, "trace", ids, root=record_id)], trusted=True)
    return {"root": record_id, "nodes": [nodes[i] for i in ids],
            "links": sorted(links, key=lambda e: (e["source"], e["target"], e["rel"])),
            "truncated": t.truncated, "access_id": acc.id}


@router.get("/records/{record_id}/inclusion", response_model=InclusionOut, tags=["proofs"],
            summary="Inclusion proof of a record (hashes only)", responses=_responses(400, 404))
def inclusion_proof(record_id: RecordId, svc: Svc, caller: ProofReader, size: SizeQ = None) -> dict[str, Any]:
    return svc.ledger.prove_inclusion(record_id, size)


@router.get("/checkpoints/latest", response_model=CheckpointOut, tags=["checkpoints"],
            summary="The newest signed checkpoint", responses=_responses(404))
def latest_checkpoint(svc: Svc, caller: ProofReader) -> dict[str, Any]:
    cp = svc.ledger.latest_checkpoint()
    if cp is None:
        raise NotFound("no checkpoint has been published yet")
    return cp.as_dict()


@router.get("/checkpoints/by-size/{size}", response_model=CheckpointOut, tags=["checkpoints"],
            summary="The checkpoint signed for a tree size", responses=_responses(404))
def checkpoint_by_size(size: Annotated[int, Path(ge=0, le=MAX_ID)], svc: Svc, caller: ProofReader) -> dict[str, Any]:
    with svc.ledger.store.read() as r:
        row = r.checkpoint_at(size)
    if row is None:
        raise NotFound(f"no checkpoint was signed for size {size}")
    return {"id": row.id, "size": row.size, "root": base64.b64encode(row.root).decode(),
            "root_hex": row.root.hex(), "note": row.note, "created_at": row.created_at}


@router.get("/checkpoints/{checkpoint_id}", response_model=CheckpointOut, tags=["checkpoints"],
            summary="A checkpoint by id", responses=_responses(404))
def checkpoint_by_id(checkpoint_id: Annotated[int, Path(ge=0, le=MAX_ID)], svc: Svc,
                     caller: ProofReader) -> dict[str, Any]:
    return svc.ledger.checkpoint(checkpoint_id).as_dict()


@router.get("/proofs/consistency", response_model=ConsistencyOut, tags=["proofs"],
            summary="Consistency proof between two tree sizes", responses=_responses(400))
def consistency_proof(svc: Svc, caller: Monitor,
                      old: Annotated[int, Query(ge=0, le=MAX_ID, description="the earlier tree size")],
                      new: Annotated[int | None, Query(ge=0, le=MAX_ID, description="the later size "
                                                                                    "(default: the current size)")] = None,
                      ) -> dict[str, Any]:
    return svc.ledger.prove_consistency(old, new)


@router.post("/verify", response_model=VerifyOut, tags=["audit"], summary="Verify the ledger",
             description="Recomputes leaves, tree nodes and roots and checks every checkpoint's signature and "
                         "consistency. `incremental` (default) starts at the last checkpoint a previous run "
                         "verified. Answers 200 with `ok: false` and the problems when verification fails.",
             responses=_responses())
def verify(svc: Svc, caller: Auditor,
           mode: Annotated[Literal["incremental", "full"], Query()] = "incremental",
           deep: Annotated[bool, Query(description="also check canonical form and link hashes")] = False,
           ) -> dict[str, Any]:
    led = svc.ledger
    return verify_ledger(led.store, led.keyring.verifiers, led.config.origin, incremental=mode == "incremental",
                         deep=deep).as_dict()


def _hold(svc: Services, caller: TokenInfo, action: str, hold: HoldIn) -> list[Any]:
    rec = {"kind": Kind.LEGAL_HOLD.value, "producer": caller.name, "produced_at": now_rfc3339(),
           "subject": hold.subject, "body": {"action": action, "case_id": hold.case_id, "by": caller.name}}
    return svc.writer.append([rec], trusted=True)


@router.post("/holds", status_code=201, response_model=AppendedOut, tags=["legal"],
             summary="Place a legal hold (erasure is refused until it is released)", responses=_responses(400, 409))
def place_hold(hold: HoldIn, svc: Svc, caller: Legal) -> dict[str, Any]:
    return _hold(svc, caller, "place", hold)[0].as_dict()


@router.post("/holds/release", status_code=201, response_model=AppendedOut, tags=["legal"],
             summary="Release a legal hold", responses=_responses(400, 409))
def release_hold(hold: HoldIn, svc: Svc, caller: Legal) -> dict[str, Any]:
    return _hold(svc, caller, "release", hold)[0].as_dict()


@router.get("/holds", response_model=HoldsOut, tags=["legal"], summary="A subject's active legal holds",
            responses=_responses())
def list_holds(svc: Svc, caller: Legal,
               subject: Annotated[str, Query(min_length=1, max_length=200,
                                             pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]) -> dict[str, Any]:
    return {"subject": subject, "holds": svc.ledger.holds(subject)}


@router.post("/erasures", status_code=201, response_model=AppendedOut, tags=["legal"],
             summary="Erase a subject (crypto-shred its key); refused under legal hold",
             responses=_responses(400, 409))
def erase(req: ErasureIn, svc: Svc, caller: Legal) -> dict[str, Any]:
    return svc.writer.call(lambda: svc.ledger.erase(req.subject, reason=req.reason,
                                                    requested_by=caller.name)).as_dict()


@router.post("/tokens", status_code=201, response_model=TokenCreated, tags=["tokens"],
             summary="Issue an API token (the secret is shown once)", responses=_responses(400, 409))
def create_token(req: TokenIn, svc: Svc, caller: Admin) -> dict[str, Any]:
    token, info = svc.tokens.create(req.role.value, req.name)
    log.info("token %r (%s) issued by %r", info.name, info.role.value, caller.name)
    return {**info.as_dict(), "token": token}


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"], summary="List API tokens (never the secrets)",
            responses=_responses())
def list_tokens(svc: Svc, caller: Admin) -> list[dict[str, Any]]:
    return [t.as_dict() for t in svc.tokens.list()]


@router.post("/tokens/{name}/revoke", response_model=TokenOut, tags=["tokens"], summary="Revoke an API token",
             responses=_responses(404))
def revoke_token(name: Annotated[str, Path(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)], svc: Svc,
                 caller: Admin) -> dict[str, Any]:
    info = svc.tokens.revoke(name)
    log.info("token %r revoked by %r", info.name, caller.name)
    return info.as_dict()


# --- errors -------------------------------------------------------------------------------------


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


async def custody_error(request: Request, err: Exception) -> JSONResponse:
    """Both exception trees (ledger.errors.CustodyError, pipeline.errors.PipelineError) carry
    ``status`` / ``code``: one mapping for both."""
    assert isinstance(err, CustodyError | PipelineError)
    if err.status >= 500:
        log.error("%s %s: %s (%s)", request.method, request.url.path, err, err.code)
    return error_response(err.status, err.code, str(err))


def _loc(loc: tuple[Any, ...]) -> str:
    where = {"body": "body", "query": "query", "path": "path", "header": "header"}.get(str(loc[0]), str(loc[0])) \
        if loc else "request"
    rest = ".".join(str(p) for p in loc[1:])
    return f"{where}.{rest}" if rest else where


async def validation_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    try:
        await check_route_auth(request)  # who you are comes before what is wrong with the request
    except CustodyError as auth_err:
        return await custody_error(request, auth_err)
    errors = err.errors()
    missing = sorted({str(e["loc"][1]) for e in errors if len(e.get("loc", ())) == 2 and e["loc"][0] == "header"
                      and e["type"] == "missing" and str(e["loc"][1]).lower() in (CASE_HEADER.lower(),
                                                                                   PURPOSE_HEADER.lower())})
    if missing:
        return error_response(400, AccessContextRequired.code,
                              f"reading evidence is recorded: send the case id in {CASE_HEADER} and the purpose "
                              f"in {PURPOSE_HEADER} (missing: {', '.join(missing)})")
    parts = []
    for e in errors[:5]:
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx") or {}
            msg = f"not valid JSON ({ctx.get('error', 'decode error')})"
        parts.append(f"{_loc(tuple(e.get('loc', ())))}: {msg}")
    more = len(errors) - 5
    return error_response(422, "validation_error", "; ".join(parts) + (f" (and {more} more)" if more > 0 else ""))


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 400: "bad_request"}


async def http_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, StarletteHTTPException)
    code = _HTTP_CODES.get(err.status_code, f"http_{err.status_code}")
    if err.status_code == 404 and err.detail == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif err.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(err.detail)
    resp = error_response(err.status_code, code, message)
    if err.headers:
        resp.headers.update(err.headers)
    return resp


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (413): by Content-Length before reading, else while
    streaming (chunked uploads), before the whole body is in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> RequestTooLarge:
        return RequestTooLarge(f"the request body exceeds {self.max_bytes} bytes (CUSTODY_API_MAX_REQUEST_BYTES); "
                               f"split the batch")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        chunked = False
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    length = None
            elif k == b"transfer-encoding":
                chunked = True
        if length is not None and length > self.max_bytes:
            err = self._too_large()
            await error_response(err.status, err.code, str(err))(scope, receive, send)
            return
        if length is not None and not chunked:
            # The server frames the body by Content-Length (it never delivers more bytes than
            # that), so a body within the limit needs no counting: no wrapper on every message.
            await self.app(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge(self._too_large())
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge as exc:
            if started:
                raise
            err = exc.error
            await error_response(err.status, err.code, str(err))(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive``; an HTTPException so FastAPI's body parsing passes it through."""

    def __init__(self, error: RequestTooLarge) -> None:
        super().__init__(status_code=413, detail=str(error))
        self.error = error


# --- the factory --------------------------------------------------------------------------------


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("custody-ledger")
    except Exception:  # noqa: BLE001 - not installed (running from a checkout)
        return "0.0.0"


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                             tags=app.openapi_tags)
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        rec = RecordIn.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        for name, definition in rec.pop("$defs", {}).items():
            comps.setdefault(name, definition)
        rec["description"] = ("A record as a producer submits it. `body` holds the kind's required fields "
                              "(see ledger/records.py) and any of the producer's own; `sensitive` values are "
                              "sealed under `subject`'s key and only a salted commitment enters the leaf.")
        comps["RecordIn"] = rec
        for route in api_routes(app.routes):  # the roles each operation allows, from the guard enforcing them
            guard = route_guard(route)
            for method in route.methods:
                op = schema["paths"].get(route.path_format, {}).get(method.lower())
                if guard is not None and op is not None:
                    op["x-custody-roles"] = sorted(r.value for r in guard.roles)
        app.openapi_schema = schema
        return schema

    return build


def require_role_rules(app: FastAPI) -> None:
    """Refuse an app with a route that declares no roles (``_openapi`` lists each route's roles)."""
    routes = list(api_routes(app.routes))
    if not routes:
        raise RuntimeError("the app has no API routes (cannot check their role rules)")
    for route in routes:
        if route_guard(route) is None:
            raise RuntimeError(f"route {sorted(route.methods)} {route.path} declares no roles (use allow(...))")


def create_app(settings: Settings, api: ApiSettings | None = None) -> FastAPI:
    """The HTTP app over the ledger that ``settings`` names (which must be initialised and migrated)."""
    api = api or ApiSettings()
    ledger = open_ledger(settings)
    tokens = TokenStore(ledger.store, cache_seconds=api.token_cache_seconds)
    try:
        tokens.check_ready()
    except NotInitialised:
        ledger.store.close()
        raise NotInitialised("this ledger has no API token table yet: run `custody migrate`") from None
    except CustodyError:
        ledger.store.close()
        raise
    channel = (SequencerChannel(settings, group_commit=api.group_commit, max_group_records=api.max_group_records)
               if api.writer_process else None)
    writer = LedgerWriter(ledger, group_commit=api.group_commit, max_group_records=api.max_group_records,
                          channel=channel)
    jobs = JobRunner()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        try:
            if channel is not None:
                await channel.start()  # the writer process: spawned and its ledger opened before serving
            yield
        finally:
            await run_in_threadpool(jobs.close)
            if channel is not None:
                await channel.stop()
            await run_in_threadpool(writer.stop)
            ledger.store.close()

    app = FastAPI(title="Custody", version=_version(), lifespan=lifespan,
                  description="A forensic provenance ledger: append records, read them with proofs, trace "
                              "abuse chains, hold and erase subjects. Every route names the roles it allows "
                              "(`x-custody-roles`); reads of evidence need `X-Custody-Case` and "
                              "`X-Custody-Purpose` and are themselves recorded.")
    app.state.custody = Services(ledger, tokens, writer, api)
    app.include_router(append_router)
    app.include_router(router)
    app.include_router(bundle_router(ledger, jobs, bundle_dir_for(settings.data_dir), _responses,
                                     data_dir=settings.data_dir))
    app.include_router(review_router(_responses))
    app.include_router(generation_router(open_gateway(settings, ledger), _responses))
    app.include_router(replay_router(ledger, jobs, settings.data_dir, _responses))
    app.include_router(investigator_jobs_router(jobs, _responses))
    app.include_router(artifact_router(artifact_store_for(settings.data_dir), _responses))
    require_role_rules(app)
    app.add_exception_handler(CustodyError, custody_error)
    app.add_exception_handler(PipelineError, custody_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(BodyLimit, max_bytes=api.max_request_bytes)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app

