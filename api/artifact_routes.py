"""``GET /v1/records/{record_id}/content``: an artifact's original bytes, for investigators.

The bytes come from the evidence store, named by the SHA-256 the artifact record holds, and are
re-hashed on the way out (``LocalArtifactStore.get``): what is served is what the ledger committed
to, or an error. Reading them is reading evidence — abuse material, often — so it needs the case and
purpose headers and appends an ``access`` record first. Bytes kept outside Custody (a ``blob://``
reference) are a 404 that says so. Replay outputs live in the quarantine store and are never served.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures, which name
# ``review_router``-style locals imported from ``api.app`` inside ``artifact_router``.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from api.auth import allow
from api.tokens import Role, TokenInfo
from ledger.artifacts import ArtifactStore
from ledger.errors import InvalidInput, NotFound
from ledger.records import Kind

MAX_ID = (1 << 63) - 1
Investigator = Annotated[TokenInfo, Depends(allow(Role.INVESTIGATOR))]


def artifact_router(store: ArtifactStore, responses: Any) -> APIRouter:
    from api.app import Access, Svc, access_record

    router = APIRouter(prefix="/v1", tags=["records"])

    @router.get("/records/{record_id}/content", response_class=Response,
                summary="An artifact record's original bytes, checked against its SHA-256 (logged as an access record)",
                responses={**responses(400, 404), 200: {"content": {"application/octet-stream": {}},
                                                        "description": "the bytes the record names"}})
    def artifact_content(record_id: Annotated[int, Path(ge=0, le=MAX_ID)], svc: Svc, caller: Investigator,
                         access: Access) -> Response:
        rec = svc.ledger.get(record_id)["record"]
        if rec["kind"] != Kind.ARTIFACT.value:
            raise InvalidInput(f"record {record_id} is a {rec['kind']!r}, not an artifact")
        sha = rec["body"]["sha256"]
        if not store.has(sha):
            raise NotFound(f"artifact {record_id}'s bytes are not in Custody's evidence store "
                           f"(stored at {rec['body'].get('storage_ref')!r})")
        data = store.get(sha)
        svc.writer.append([access_record(caller, access, "read_artifact", [record_id])], trusted=True)
        return Response(data, media_type="application/octet-stream",
                        headers={"X-Custody-Artifact-Sha256": sha, "X-Custody-Media-Type": rec["body"]["media_type"],
                                 "Content-Disposition": f'attachment; filename="{sha}"',
                                 "X-Content-Type-Options": "nosniff"})

    return router


__all__ = ["artifact_router"]
