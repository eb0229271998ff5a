"""API tokens: issue, authenticate, list, revoke. Only a SHA-256 of each token is stored.

A token is ``cst_`` + 32 random bytes (URL-safe base64): unguessable, so an unsalted SHA-256 is
the right hash (a slow password hash would buy nothing against 256 bits of entropy and cost a
hash per request). The token itself is shown once, when it is created.

Why this lives in ``api/`` and not ``ledger/``: tokens and roles are how *HTTP callers* are let
in; the ledger neither knows nor needs them (the CLI and the offline verifier run without any).
The table's SQLModel class sits in ``ledger.store_sql`` only so one metadata object describes
the whole database for Alembic; the rows are read and written here, through the ledger store's
transactions (so SQLite's write lock, PostgreSQL's advisory lock and the store's error wrapping
apply unchanged).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, insert, select, update

from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.service import now_rfc3339
from ledger.store_sql import ApiToken, SqlStore

TOKEN_PREFIX = "cst_"
# A token name becomes the ``actor`` of access records and the ``producer`` of legal-hold
# records, so it must be a record ``Name`` (here without "/", so it fits in a URL path segment).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$"
NAME_MAX = 100
_NAME = re.compile(NAME_PATTERN)
_TOKEN = re.compile(r"^cst_[A-Za-z0-9_-]{43}$")


class Role(StrEnum):
    SERVICE = "service"
    INVESTIGATOR = "investigator"
    LEGAL = "legal"
    AUDITOR = "auditor"
    ADMIN = "admin"
    REVIEWER = "reviewer"  # trust-and-safety moderators: the review queue (api.review_routes)


@dataclass(frozen=True)
class TokenInfo:
    """What the server knows about a token: never the token itself."""

    id: int
    name: str
    role: Role
    created_at: str
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role.value, "created_at": self.created_at,
                "revoked": self.revoked, "revoked_at": self.revoked_at}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}") from None


def check_name(name: str) -> str:
    if not (1 <= len(name) <= NAME_MAX) or not _NAME.fullmatch(name):
        raise InvalidInput(f"token name {name!r} must be 1-{NAME_MAX} characters of A-Z a-z 0-9 . _ : @ + - "
                           f"and start with a letter or digit")
    return name


_COLS = ("id", "name", "role", "created_at", "revoked_at")


def _info(row: Any) -> TokenInfo:
    return TokenInfo(int(row[0]), row[1], Role(row[2]), row[3], row[4])


class TokenStore:
    """Tokens in the ledger's database (table ``api_tokens``, migration 0002)."""

    def __init__(self, store: SqlStore, *, cache_seconds: float = 0.0) -> None:
        """``cache_seconds``: how long a successful lookup is reused without a database read.
        A revocation through this object takes effect at once; one made elsewhere (the CLI,
        another server process) within that many seconds."""
        self.store = store
        self.table = ApiToken.__table__  # type: ignore[attr-defined]
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[TokenInfo, float]] = {}

    def _select(self) -> Any:
        return select(*[self.table.c[c] for c in _COLS])

    def check_ready(self) -> int:
        """Fail fast (NotInitialised) if the table is missing; returns how many tokens are active."""
        with self.store.read() as r:
            return int(r.conn.execute(select(func.count()).select_from(self.table)
                                      .where(self.table.c.revoked_at.is_(None))).scalar_one())

    def create(self, role: str, name: str) -> tuple[str, TokenInfo]:
        """Issue a token. Returns (the token, shown only now; its info). Names are never reused."""
        r = check_role(role)
        check_name(name)
        token = new_token()
        created = now_rfc3339()
        with self.store.write() as w:
            if w.conn.execute(select(self.table.c.id).where(self.table.c.name == name)).first() is not None:
                raise Conflict(f"a token named {name!r} exists (names are never reused, even once revoked)")
            tid = w.conn.execute(insert(self.table).values(token_sha256=token_hash(token), name=name, role=r.value,
                                                           created_at=created).returning(self.table.c.id)).scalar_one()
        return token, TokenInfo(int(tid), name, r, created)

    def cached(self, token: str) -> TokenInfo | None:
        """The token's info if a lookup within ``cache_seconds`` found it active; else None (not a
        refusal: ask ``authenticate``). Never touches the database, so the event loop may call it."""
        hit = self._cache.get(token_hash(token))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def authenticate(self, token: str) -> TokenInfo | None:
        """The active token's info, or None (unknown, malformed or revoked)."""
        if not _TOKEN.fullmatch(token):
            return None  # not one of ours: no database round trip
        digest = token_hash(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        with self.store.read() as r:
            row = r.conn.execute(self._select().where(self.table.c.token_sha256 == digest)).first()
        if row is None or row[4] is not None:
            self._cache.pop(digest, None)
            return None
        info = _info(row)
        if self.cache_seconds > 0:
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[digest] = (info, now + self.cache_seconds)
        return info

    def list(self) -> list[TokenInfo]:
        with self.store.read() as r:
            rows = r.conn.execute(self._select().order_by(self.table.c.id)).all()
        return [_info(row) for row in rows]

    def revoke(self, name: str) -> TokenInfo:
        """Revoke by name (idempotent: revoking a revoked token returns it unchanged)."""
        self._forget(name)
        with self.store.write() as w:
            row = w.conn.execute(self._select().where(self.table.c.name == name)).first()
            if row is None:
                raise NotFound(f"no token named {name!r}")
            if row[4] is not None:
                return _info(row)
            at = now_rfc3339()
            w.conn.execute(update(self.table).where(self.table.c.id == row[0]).values(revoked_at=at))
        self._forget(name)  # again: a lookup may have cached it while we wrote
        return TokenInfo(int(row[0]), row[1], Role(row[2]), row[3], at)

    def _forget(self, name: str) -> None:
        for digest, (info, _) in list(self._cache.items()):
            if info.name == name:
                self._cache.pop(digest, None)
