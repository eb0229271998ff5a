"""Custody's one exception tree.

Every error the ledger, pipeline or sandbox raises on purpose derives from ``CustodyError``.
Adapters wrap foreign errors (SQLAlchemy, cryptography, docker) in one of these; the CLI and
the API map them to exit codes / HTTP statuses in exactly one place each, using ``status``
and ``exit_code`` below.
"""

from __future__ import annotations


class CustodyError(Exception):
    """Base of every deliberate Custody error. ``str(err)`` is a message for a person."""

    status: int = 500  # HTTP status the API answers with
    exit_code: int = 1  # CLI exit code
    code: str = "custody_error"  # stable machine-readable code


class InvalidInput(CustodyError):
    """The caller's input is malformed or violates a schema; nothing was changed."""

    status = 400
    exit_code = 2
    code = "invalid_input"


class RecordTooLarge(InvalidInput):
    status = 413
    code = "record_too_large"


class UnknownLink(InvalidInput):
    """A record links to a record that does not exist (or not yet)."""

    status = 422
    code = "unknown_link"


class NotFound(CustodyError):
    status = 404
    exit_code = 3
    code = "not_found"


class Conflict(CustodyError):
    """The request contradicts the ledger's state (e.g. an idempotency key reused for another record)."""

    status = 409
    exit_code = 4
    code = "conflict"


class LegalHoldActive(Conflict):
    code = "legal_hold_active"


class SubjectErased(CustodyError):
    """A sealed value's subject key was destroyed (crypto-shredded); the value is gone for good."""

    status = 410
    exit_code = 3
    code = "subject_erased"


class VerificationError(CustodyError):
    """A proof, signature, checkpoint or stored structure does not verify."""

    status = 422
    exit_code = 5
    code = "verification_failed"


class ProofError(VerificationError):
    code = "bad_proof"


class SignatureError(VerificationError):
    code = "bad_signature"


class FormatError(InvalidInput):
    """Bytes that should be a checkpoint, note, key or proof do not parse."""

    code = "bad_format"


class NotInitialised(CustodyError):
    status = 503
    exit_code = 6
    code = "not_initialised"


class StorageError(CustodyError):
    """The database failed or is unreachable (wrapped SQLAlchemy / driver error)."""

    status = 503
    exit_code = 6
    code = "storage_unavailable"
