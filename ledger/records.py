"""Record kinds, their validation, and the canonical bytes that become Merkle leaves.

A service submits a ``RecordIn`` (JSON). The ledger validates it, resolves its links, seals its
sensitive fields and stamps its own time; the result is a leaf document whose RFC 8785
canonical JSON is the leaf's bytes. Leaf documents look like::

    {"kind": "prompt", "schema": 1, "producer": "svc:imagine", "produced_at": "...",
     "ledger_time": "...", "subject": "subj:...",
     "links": [{"rel": "principal", "id": 0, "leaf": "<hex leaf hash of record 0>"}],
     "body": {...}, "sealed": {"text": "<hex commitment>"}}

Links carry the linked record's leaf hash, so each record commits to its ancestors by content,
not only by position: a chain of records can be checked even where the tree is not at hand.
Sensitive values never enter the leaf: only a salted commitment does (see ``ledger.sealing``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
import rfc8785
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from ledger.errors import InvalidInput, RecordTooLarge

SCHEMA_VERSION = 1
DEFAULT_MAX_RECORD_BYTES = 1 << 20
MAX_SAFE_INTEGER = (1 << 53) - 1  # I-JSON / RFC 8785: larger integers are not portable
# The fast path's encoder: orjson (compact, UTF-8, keys sorted by code point) writes exactly RFC
# 8785's bytes for what ``_fast_path_ok`` admits, and ten times faster than json.dumps (0.5 µs
# against 5.3 µs for a leaf; BENCHMARKS.md). Equality with ``rfc8785`` is a property test.
_SORTED = orjson.OPT_SORT_KEYS


def _fast_dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj, option=_SORTED)
    except orjson.JSONEncodeError as err:  # admitted values fail only on unpaired surrogates
        if "surrogate" in str(err):
            raise InvalidInput("a string holds an unpaired UTF-16 surrogate, which is not valid Unicode") from None
        raise InvalidInput(f"the record cannot be written as canonical JSON: {err}") from None

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class Kind(StrEnum):
    PRINCIPAL = "principal"
    MODEL_VERSION = "model_version"
    POLICY = "policy"
    PROMPT = "prompt"
    GENERATION = "generation"
    ARTIFACT = "artifact"
    SAFETY_DECISION = "safety_decision"
    REVIEW_DECISION = "review_decision"
    DISTRIBUTION = "distribution"
    LEGAL_HOLD = "legal_hold"
    ACCESS = "access"
    REPLAY_REPORT = "replay_report"
    ERASURE = "erasure"


class _Body(BaseModel):
    """Bodies name their required fields strictly; producers may add fields of their own."""

    model_config = ConfigDict(strict=True, extra="allow")


Surface = Literal["chat", "imagine", "api", "edit", "video"]


class PrincipalBody(_Body):
    pseudonym: Name
    principal_type: Literal["user", "service", "reviewer", "investigator"]


class ModelVersionBody(_Body):
    name: Name
    version: Name
    weights_sha256: Hex64 | None = None


class PolicyBody(_Body):
    policy_id: Name
    version: Name
    document_sha256: Hex64


class PromptBody(_Body):
    surface: Surface
    session: Name | None = None
    turn: int | None = Field(default=None, ge=0)
    language: str | None = None


class GenerationBody(_Body):
    surface: Surface
    parameters: dict[str, Any]
    seed: int = Field(ge=0, le=MAX_SAFE_INTEGER)


class ArtifactBody(_Body):
    sha256: Hex64
    media_type: Annotated[str, StringConstraints(pattern=r"^[a-z]+/[a-z0-9.+-]+$")]
    size: int = Field(ge=0)
    storage_ref: Text


class SafetyDecisionBody(_Body):
    action: Literal["allow", "hold", "block", "escalate"]
    policy_id: Name
    policy_version: Name
    pipeline_version: Name
    risk: float = Field(ge=0, le=1)
    signals: dict[str, Any] | list[Any]


class ReviewDecisionBody(_Body):
    action: Literal["approve", "remove", "escalate", "restore"]
    reviewer: Name
    reason: Text


class DistributionBody(_Body):
    action: Literal["publish", "share", "report", "takedown"]
    channel: Name | None = None


class LegalHoldBody(_Body):
    action: Literal["place", "release"]
    case_id: Name


class AccessBody(_Body):
    actor: Name
    role: Name
    action: Name
    case_id: Name
    purpose: Text


class ReplayReportBody(_Body):
    report_sha256: Hex64


class ErasureBody(_Body):
    reason: Text
    requested_by: Name


BODIES: dict[Kind, type[_Body]] = {
    Kind.PRINCIPAL: PrincipalBody,
    Kind.MODEL_VERSION: ModelVersionBody,
    Kind.POLICY: PolicyBody,
    Kind.PROMPT: PromptBody,
    Kind.GENERATION: GenerationBody,
    Kind.ARTIFACT: ArtifactBody,
    Kind.SAFETY_DECISION: SafetyDecisionBody,
    Kind.REVIEW_DECISION: ReviewDecisionBody,
    Kind.DISTRIBUTION: DistributionBody,
    Kind.LEGAL_HOLD: LegalHoldBody,
    Kind.ACCESS: AccessBody,
    Kind.REPLAY_REPORT: ReplayReportBody,
    Kind.ERASURE: ErasureBody,
}

# Values that identify a real person may only travel sealed (salted commitment in the leaf,
# ciphertext beside it); putting them in the clear body is refused.
SEALED_ONLY: dict[Kind, frozenset[str]] = {
    Kind.PRINCIPAL: frozenset({"email", "handle", "name", "real_name", "phone", "ip", "address", "real_identifiers"}),
    Kind.PROMPT: frozenset({"text"}),
}
REQUIRED_SEALED: dict[Kind, frozenset[str]] = {Kind.PROMPT: frozenset({"text"})}
# Kinds only the ledger and its own front ends append (erasure, holds, access records), never a
# client: a service token must not be able to release a hold or forge an access record.
LEDGER_ONLY: frozenset[Kind] = frozenset({Kind.ERASURE, Kind.LEGAL_HOLD, Kind.ACCESS})
NEEDS_SUBJECT: frozenset[Kind] = frozenset({Kind.LEGAL_HOLD, Kind.ERASURE})


class LinkIn(BaseModel):
    """A link to an earlier record: by ledger ``id``, or by position in the same ``batch``."""

    model_config = ConfigDict(strict=True, extra="forbid")
    rel: Name
    id: int | None = Field(default=None, ge=0)
    batch: int | None = Field(default=None, ge=0)

    def model_post_init(self, _context: Any) -> None:
        if (self.id is None) == (self.batch is None):
            raise ValueError("a link names exactly one of 'id' (a ledger record) or 'batch' (an earlier line)")


class Record(BaseModel):
    """A validated record: the envelope's fields, no Python validators (see ``RecordIn``)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    kind: Kind
    schema_: int = Field(default=SCHEMA_VERSION, alias="schema")
    producer: Name
    produced_at: str
    subject: Name | None = None
    links: list[LinkIn] = Field(default_factory=list, max_length=1000)
    body: dict[str, Any]
    sensitive: dict[str, Any] | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class RecordIn(Record):
    """What a producer submits. The ledger adds its own time and resolves links."""

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in Kind._value2member_map_:
            raise ValueError(f"unknown kind {v!r}; known kinds: {', '.join(k.value for k in Kind)}")
        return Kind(v) if isinstance(v, str) else v

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"schema version {v} is not supported (this ledger writes version {SCHEMA_VERSION})")
        return v

    @field_validator("produced_at")
    @classmethod
    def _timestamp(cls, v: str) -> str:
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", v):
            raise ValueError("must be an RFC 3339 timestamp with a time zone, e.g. 2025-12-30T10:00:00Z")
        try:
            datetime.fromisoformat(v)
        except ValueError:
            raise ValueError("is not a valid date and time") from None
        return v


# --- one validation call per record ---------------------------------------------------------
#
# ``validate`` first runs one pydantic-core call over a union of per-kind record models, tagged by
# ``kind``: envelope, body and timestamp are all checked in Rust. Only when that call refuses a
# record does the two-step path below (``RecordIn``, then ``BODIES[kind]``, with its Python
# validators) run, to word the error exactly as before. The fast models are at least as strict
# as that path (a record they accept, it accepts, with the same values: a test compares them);
# a record they refuse that it accepts is still accepted, only slower.

_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"  # 0001-9999, as datetime takes
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              r"|02-(?:0[1-9]|1[0-9]|2[0-8]))")
# RFC 3339 with a time zone that ``datetime.fromisoformat`` takes: real calendar dates, hours
# 00-23, no leap second; ASCII digits only.
TIMESTAMP_PATTERN = (rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                     r"(?:\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$")
_Timestamp = Annotated[str, StringConstraints(pattern=TIMESTAMP_PATTERN)]
_Schema = Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)]


def _body_typed_dict(model: type[_Body]) -> Any:
    """The body model as a strict TypedDict that keeps extra fields: validated in Rust, a dict out."""
    from typing import NotRequired

    from typing_extensions import TypedDict

    fields: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        ann: Any = Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
        fields[name] = ann if f.is_required() else NotRequired[ann]
    td = TypedDict(f"{model.__name__}Dict", fields)  # type: ignore[operator]
    td.__pydantic_config__ = ConfigDict(strict=True, extra="allow")  # type: ignore[attr-defined]
    return td


def _record_model(kind: Kind) -> type[Record]:
    body = BODIES[kind]
    return type(f"_{body.__name__.removesuffix('Body')}Record", (Record,), {
        "__annotations__": {"kind": Literal[kind], "schema_": _Schema, "produced_at": _Timestamp,
                            "body": _body_typed_dict(body)},
        "schema_": Field(default=SCHEMA_VERSION, alias="schema"),
        "__module__": __name__,
    })


_RECORD_MODELS = {k: _record_model(k) for k in Kind}


def _union_adapter(kinds: list[Kind]) -> TypeAdapter[Record]:
    from typing import Union

    return TypeAdapter(Annotated[Union[tuple(_RECORD_MODELS[k] for k in kinds)], Field(discriminator="kind")])  # noqa: UP007


_CLIENT_RECORDS = _union_adapter([k for k in Kind if k not in LEDGER_ONLY])
_ALL_RECORDS = _union_adapter(list(Kind))
# Float fields: strict pydantic turns an int into a float (1 → 1.0). The leaf keeps what was sent.
_FLOAT_FIELDS = {k: tuple(n for n, f in BODIES[k].model_fields.items() if f.annotation is float) for k in Kind}
_FLOAT_FIELDS = {k: v for k, v in _FLOAT_FIELDS.items() if v}


_SEALED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")


def _storable(text: str) -> bool:
    """Whether a string can be a database column value: valid Unicode, no control characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 0x20 or c == "\x7f" for c in text)


def _format_validation_error(err: ValidationError, prefix: str = "") -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"] if p != "schema_") or "record"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{prefix}{loc}: {msg}")
    more = len(err.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def validate_record(data: Any, *, allow_ledger_kinds: bool = False) -> Record:
    """Validate one submitted record (already parsed JSON). Raises InvalidInput naming the problem."""
    return validate(data, allow_ledger_kinds=allow_ledger_kinds)[0]


def validate(data: Any, *, allow_ledger_kinds: bool = False) -> tuple[Record, bool | bytes]:
    """``validate_record``, also saying how the body is canonicalised: ``True`` when it takes the
    fast path, else its RFC 8785 bytes, already computed here (``leaf_bytes`` splices them in)."""
    try:
        rec = (_ALL_RECORDS if allow_ledger_kinds else _CLIENT_RECORDS).validate_python(data)
    except ValidationError:
        return _validate_and_word(data, allow_ledger_kinds)
    kind = rec.kind
    floats = _FLOAT_FIELDS.get(kind)
    if floats:
        raw = data["body"]
        for name in floats:
            if name in raw and type(raw[name]) is int:
                rec.body[name] = raw[name]
    if rec.idempotency_key is not None or rec.sensitive or kind in _SPECIAL_KINDS:
        _rules(rec)
    return rec, _canonical_body(rec.body)


# Kinds with rules beyond their models (sealed-only body fields, a required subject).
_SPECIAL_KINDS = frozenset(SEALED_ONLY) | frozenset(REQUIRED_SEALED) | NEEDS_SUBJECT


def _validate_and_word(data: Any, allow_ledger_kinds: bool) -> tuple[Record, bool | bytes]:
    """The two-step path: every rule, each refusal worded for the producer."""
    if not isinstance(data, dict):
        raise InvalidInput(f"a record must be a JSON object, not {type(data).__name__}")
    try:
        rec = RecordIn.model_validate(data)
    except ValidationError as err:
        raise InvalidInput(_format_validation_error(err)) from None
    if rec.kind in LEDGER_ONLY and not allow_ledger_kinds:
        raise InvalidInput(f"kind {rec.kind.value!r} is appended only by the ledger itself")
    try:
        BODIES[rec.kind].model_validate(rec.body)
    except ValidationError as err:
        raise InvalidInput(_format_validation_error(err, "body.")) from None
    _rules(rec)
    return rec, _canonical_body(rec.body)


def _rules(rec: Record) -> None:
    """The rules beyond the models, in the order the two-step path has always applied them."""
    if rec.idempotency_key is not None and not _storable(rec.idempotency_key):
        raise InvalidInput("idempotency_key: must not hold NUL, control characters or unpaired surrogates")
    for name in rec.sensitive or {}:
        # Names become keys of the leaf's "sealed" object: ASCII names keep the fast canonical path exact.
        if not (1 <= len(name) <= 200 and _storable(name) and _SEALED_NAME.fullmatch(name)):
            raise InvalidInput(f"sensitive: field name {name[:40]!r} must be 1 to 200 ASCII letters, digits "
                               f"or ._:/@+- (starting with a letter or digit)")
    clear = SEALED_ONLY.get(rec.kind, frozenset()) & rec.body.keys()
    if clear:
        raise InvalidInput(
            f"body.{sorted(clear)[0]}: identifies a person and must be sent under 'sensitive', not in the clear body"
        )
    missing = REQUIRED_SEALED.get(rec.kind, frozenset()) - (rec.sensitive or {}).keys()
    if missing:
        raise InvalidInput(f"sensitive.{sorted(missing)[0]}: required for kind {rec.kind.value!r}")
    if rec.sensitive and not rec.subject:
        raise InvalidInput("subject: required when a record has sensitive fields (they are sealed under the subject's key)")
    if rec.kind in NEEDS_SUBJECT and not rec.subject:
        raise InvalidInput(f"subject: required for kind {rec.kind.value!r}")


def _canonical_body(body: dict[str, Any]) -> bool | bytes:
    """Only the body is free-form; envelope fields are ASCII names and safe integers. Whether the
    body can take the fast canonical path is decided once, here (see ``leaf_bytes``)."""
    if _fast_path_ok(body):
        return True
    # Integral or extreme floats, big integers, odd keys: the full encoder names any problem now,
    # and its bytes are kept for the leaf (they are not computed a second time).
    return canonical_json(body)


# --- JSON in and out ---------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a JSON number (RFC 8785 forbids NaN and infinities)")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # in C; a duplicate shows as a shorter dict, and only then is it looked for
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise InvalidInput(f"duplicate member name {k!r} in a JSON object")
            seen.add(k)
    return out


def parse_json(raw: bytes | str, *, what: str = "input", max_bytes: int | None = None) -> Any:
    """Parse strict JSON: UTF-8, no NaN/Infinity, no duplicate member names."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise RecordTooLarge(f"{what} is {len(raw)} bytes; the limit is {max_bytes} bytes")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidInput(f"{what} is not valid UTF-8 (byte {err.start})") from None
    try:
        value = json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as err:
        raise InvalidInput(f"{what} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise InvalidInput(f"{what} nests too deeply") from None
    if isinstance(value, float) and value != value:  # pragma: no cover - parse_constant catches NaN
        raise InvalidInput("NaN is not allowed")
    return value


def _values_ok(values: Iterable[Any], depth: int) -> bool:
    """``_fast_path_ok`` for a container's values: scalars inline, containers by recursion."""
    for v in values:
        tv = type(v)
        if tv is str or tv is bool or v is None:
            continue
        if tv is int:
            if -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
                continue
            return False
        if not _fast_path_ok(v, depth + 1):
            return False
    return True


def _fast_path_ok(obj: Any, depth: int = 0) -> bool:
    """True when orjson's sorted compact output provably equals RFC 8785 for ``obj``.

    They agree on strings, safe integers, booleans and null, non-integral floats of magnitude
    1e-4 to 1e16, and on key order whenever no key has a character at or above U+D800
    (code-point and UTF-16 orders then coincide). Other floats and keys take the ``rfc8785``
    path. Equality is a property test in the suite.

    Scalars inside a container are checked inline, not by a call each: this walk runs on every
    record and was a larger share of an append than pydantic's validation (BENCHMARKS.md).
    """
    if depth > 64:
        return False
    t = type(obj)
    if t is dict:
        for k in obj:
            if type(k) is not str or not (k.isascii() or max(k) < "\ud800"):
                return False
        return _values_ok(obj.values(), depth)
    if t is list:
        return _values_ok(obj, depth)
    if t is str or obj is None or t is bool:
        return True
    if t is int:
        return -MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER
    if t is float:
        # Both Python's repr and ECMAScript's Number::toString give the shortest round-trip digits;
        # in this range both write them in fixed notation. Integral floats differ ("5.0" vs "5").
        return 1e-4 <= abs(obj) < 1e16 and not obj.is_integer()
    return False


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 (JCS) canonical bytes. Raises InvalidInput for what JCS cannot represent."""
    try:
        if _fast_path_ok(obj):
            return _fast_dumps(obj)
        return rfc8785.dumps(obj)
    except UnicodeEncodeError:
        raise InvalidInput("a string holds an unpaired UTF-16 surrogate, which is not valid Unicode") from None
    except rfc8785.IntegerDomainError:
        raise InvalidInput(f"an integer is outside ±{MAX_SAFE_INTEGER} (RFC 8785 / I-JSON)") from None
    except rfc8785.FloatDomainError:
        raise InvalidInput("NaN and infinite numbers are not allowed (RFC 8785)") from None
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as err:
        raise InvalidInput(f"value cannot be canonicalised: {err}") from None


def leaf_document(rec: Record, *, ledger_time: str, links: list[dict[str, Any]],
                  sealed: dict[str, str]) -> dict[str, Any]:
    """The JSON object whose canonical bytes are the record's leaf."""
    doc: dict[str, Any] = {
        "kind": rec.kind.value,
        "schema": rec.schema_,
        "producer": rec.producer,
        "produced_at": rec.produced_at,
        "ledger_time": ledger_time,
        "links": links,
        "body": rec.body,
    }
    if rec.subject is not None:
        doc["subject"] = rec.subject
    if sealed:
        doc["sealed"] = sealed
    return doc


# Stands for the body while the envelope is encoded; JSON-encoded it is "\u0000body", which no
# envelope string (names, hex, timestamps: no control characters) can produce.
_BODY_MARK = "\x00body"
_BODY_MARK_JSON = b'"\\u0000body"'


def leaf_bytes(doc: dict[str, Any], fast_body: bool | bytes) -> bytes:
    """Canonical bytes of a leaf document built by ``leaf_document``.

    The envelope, links and commitments are ASCII names, safe integers and hex, so the document
    takes the fast path exactly when its body does (``fast_body is True``, as ``validate`` says).
    Otherwise ``fast_body`` is the body's RFC 8785 bytes from ``validate``: RFC 8785 is
    compositional (members in key order, no whitespace), so the envelope is encoded around a
    placeholder and the body's bytes are put in its place. ``False`` means RFC 8785 in full.
    """
    if fast_body is True:
        return _fast_dumps(doc)
    if isinstance(fast_body, bytes):
        envelope = {**doc, "body": _BODY_MARK}
        if _fast_path_ok(envelope):
            data = _fast_dumps(envelope)
            if data.count(_BODY_MARK_JSON) == 1:
                head, _, tail = data.partition(_BODY_MARK_JSON)
                return head + fast_body + tail
    return canonical_json(doc)


class InBatch(int):
    """A link to the record at this position of the same batch (``{"rel", "batch": n}``), where a
    plain ``int`` is a ledger index (``{"rel", "id": n}``)."""


def draft(kind: Kind | str, producer: str, produced_at: str, body: dict[str, Any],
          links: Sequence[tuple[str, int]] = (), **extra: Any) -> dict[str, Any]:
    """A record as a producer submits it (what ``Ledger.append`` takes): ``links`` are (rel, target)
    pairs, the target an :class:`InBatch` position or a ledger index; ``extra`` adds envelope fields
    (``subject``, ``sensitive``, ``idempotency_key``)."""
    return {"kind": kind.value if isinstance(kind, Kind) else kind, "producer": producer,
            "produced_at": produced_at, "body": body,
            "links": [{"rel": rel, ("batch" if isinstance(ref, InBatch) else "id"): int(ref)} for rel, ref in links],
            **extra}


def request_fingerprint(data: dict[str, Any]) -> bytes:
    """What "the same record" means for an idempotent retry: the submission's canonical bytes."""
    return hashlib.sha256(canonical_json({k: v for k, v in data.items() if k != "idempotency_key"})).digest()
