"""Sealed fields and crypto-shredding.

A sensitive value (prompt text, a person's real identifiers) never enters a leaf. The leaf holds
a commitment ``SHA-256("custody-seal-v1" 0x00 ‖ salt ‖ canonical JSON of the value)`` with a
fresh 32-byte salt; the salt and value are stored beside the entry, encrypted with AES-256-GCM
under a key of the record's *subject*. Erasing the subject destroys that key: the ciphertext
becomes noise, the commitment (and so every leaf, root and proof) stays exactly as it was, and
because the salt went with the key the commitment cannot be brute-forced from a guess.

Subject keys are themselves wrapped by a sealing key kept in a file beside the signing keys, so
a copy of the database alone discloses nothing. (Backups taken before an erasure still hold the
wrapped key; erasure is complete only once those age out — an operator's duty, said in the docs.)
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.errors import FormatError, VerificationError
from ledger.records import canonical_json, parse_json

SEAL_DOMAIN = b"custody-seal-v1\x00"
NONCE = 12


def commitment(salt: bytes, value: Any) -> bytes:
    """The salted commitment a leaf carries for a sealed value (a verifier recomputes this)."""
    return hashlib.sha256(SEAL_DOMAIN + salt + canonical_json(value)).digest()


def check_disclosure(commitment_hex: str, salt_b64: str, value: Any) -> None:
    """Raise VerificationError unless (salt, value) opens ``commitment_hex``. Pure; for verifiers."""
    try:
        salt = base64.b64decode(salt_b64, validate=True)
    except ValueError:
        raise VerificationError("disclosed salt is not base64") from None
    if commitment(salt, value).hex() != commitment_hex:
        raise VerificationError("disclosed value does not match the leaf's commitment")


class Sealer:
    """Seals and opens values under per-subject keys, which it wraps with one sealing key."""

    def __init__(self, sealing_key: bytes) -> None:
        if len(sealing_key) != 32:
            raise FormatError("the sealing key must be 32 bytes")
        self._kek = AESGCM(sealing_key)

    @staticmethod
    def create_key_file(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(os.urandom(32)) + b"\n")
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def from_key_file(cls, path: Path) -> Sealer:
        try:
            raw = base64.b64decode(path.read_bytes().strip(), validate=True)
        except FileNotFoundError:
            raise FormatError(f"sealing key {path} does not exist (run `custody init`)") from None
        except ValueError:
            raise FormatError(f"sealing key {path} is not base64") from None
        return cls(raw)

    # --- subject keys ------------------------------------------------------------------------

    def new_subject_key(self, subject: str) -> tuple[bytes, bytes]:
        """A fresh data key for ``subject``: (key, wrapped key to store)."""
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE)
        return key, nonce + self._kek.encrypt(nonce, key, b"custody-subject-key\x00" + subject.encode())

    def unwrap(self, subject: str, wrapped: bytes) -> bytes:
        try:
            return self._kek.decrypt(wrapped[:NONCE], wrapped[NONCE:], b"custody-subject-key\x00" + subject.encode())
        except InvalidTag:
            raise VerificationError(f"the key of subject {subject!r} does not open with this sealing key") from None

    # --- values ------------------------------------------------------------------------------

    @staticmethod
    def seal(subject_key: bytes, field: str, value: Any) -> tuple[str, bytes]:
        """(commitment hex for the leaf, blob to store)."""
        salt = os.urandom(32)
        c = commitment(salt, value)
        nonce = os.urandom(NONCE)
        plaintext = salt + canonical_json(value)
        return c.hex(), nonce + AESGCM(subject_key).encrypt(nonce, plaintext, c + field.encode())

    @staticmethod
    def open(subject_key: bytes, field: str, commitment_hex: str, blob: bytes) -> tuple[Any, bytes]:
        """(value, salt). Checks the decrypted value against the leaf's commitment."""
        c = bytes.fromhex(commitment_hex)
        try:
            plaintext = AESGCM(subject_key).decrypt(blob[:NONCE], blob[NONCE:], c + field.encode())
        except InvalidTag:
            raise VerificationError(f"sealed field {field!r} does not decrypt: it was altered") from None
        salt, value = plaintext[:32], parse_json(plaintext[32:], what="sealed value")
        if commitment(salt, value) != c:
            raise VerificationError(f"sealed field {field!r} does not match its commitment")
        return value, salt

