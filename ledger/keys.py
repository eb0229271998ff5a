"""Ed25519 signed notes (C2SP signed-note), witness cosignatures and signing-key files.

Wire formats, all byte-compatible with Go's ``golang.org/x/mod/sumdb/note``:

* key ID      ``SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]``; type 0x01 for Ed25519 notes,
  0x04 for tlog-cosignature/v1 witness cosignatures.
* verifier key (vkey, public)   ``<name>+<8 lowercase hex key ID>+<base64(type ‖ 32-byte key)>``
* signer key (skey, secret)     ``PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 ‖ 32-byte seed)>``
* signed note   ``<text ending in \\n>\\n— <name> <base64(key ID ‖ signature)>\\n`` (one or more
  signature lines; the dash is U+2014 EM DASH).

Key names are non-empty and contain neither Unicode whitespace nor ``+`` (the vkey separator).

Everything here is a pure function over str/bytes except the two key-file helpers.
Errors: ``FormatError`` for anything that does not parse, ``SignatureError`` for a signature
that does not verify (or a note no trusted key signed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.checkpoint import Checkpoint
from ledger.errors import Conflict, FormatError, InvalidInput, SignatureError

__all__ = [
    "EM_DASH",
    "SIG_ED25519",
    "SIG_COSIGNATURE_V1",
    "MAX_SIGNATURES",
    "key_id",
    "NoteSigner",
    "NoteVerifier",
    "Verifier",
    "OpenedNote",
    "sign_note",
    "open_note",
    "generate_signing_key",
    "load_signing_key",
    "file_is_private",
    "CosignatureVerifier",
    "cosignature_message",
    "cosign",
    "verify_cosignature",
    "cosignature_timestamp",
]

log = logging.getLogger(__name__)

EM_DASH = "\u2014"
SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04

#: The spec says verifiers MUST accept at least 16 signature lines; Go refuses more than 100.
#: We match Go so a note one accepts the other accepts, and a hostile note full of signature
#: lines costs a bounded amount of work.
MAX_SIGNATURES = 100

_SKEY_PREFIX = "PRIVATE+KEY+"
_HEX8 = re.compile(r"[0-9a-f]{8}\Z")
_MAX_KEY_FILE_BYTES = 4096
_MAX_TIMESTAMP = 2**63 - 1


# --------------------------------------------------------------------------- helpers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(s: str, what: str) -> bytes:
    """Strict standard base64: valid alphabet and padding, and the canonical spelling.

    Python (like Go's default decoder) accepts encodings whose unused trailing bits are not
    zero; re-encoding and comparing refuses those, so each value has one spelling.
    """
    if s == "" or not s.isascii():
        raise FormatError(f"{what} is not base64")
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"{what} is not standard base64: {s!r}") from exc
    if _b64(raw) != s:
        raise FormatError(f"{what} is not canonical base64: {s!r}")
    return raw


def _check_name(name: str, what: str = "key name") -> None:
    if not isinstance(name, str):
        raise FormatError(f"{what} must be a str, not {type(name).__name__}")
    if name == "":
        raise FormatError(f"{what} is empty")
    for ch in name:
        if ch.isspace():
            raise FormatError(f"{what} {name!r} contains whitespace")
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            raise FormatError(f"{what} {name!r} contains control character U+{ord(ch):04X}")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise FormatError(f"{what} {name!r} contains a lone surrogate")
    if "+" in name:
        raise FormatError(f"{what} {name!r} contains '+', which separates the fields of a key")


def _check_note_text(text: str) -> None:
    """Rules for the text part of a signed note (C2SP signed-note, §Format).

    It must end in a newline, be valid UTF-8 (no lone surrogates in a Python str) and hold no
    ASCII control character other than newline. The spec allows empty lines inside the text:
    the reader splits text from signatures at the *last* blank line, so they are unambiguous.
    """
    if not isinstance(text, str):
        raise FormatError(f"note text must be a str, not {type(text).__name__}")
    if not text.endswith("\n"):
        raise FormatError("note text must end with a newline")
    for i, ch in enumerate(text):
        o = ord(ch)
        if o < 0x20 and ch != "\n":
            raise FormatError(f"note text contains control character U+{o:04X} at offset {i}")
        if 0xD800 <= o <= 0xDFFF:
            raise FormatError(f"note text contains a lone surrogate at offset {i}")


def _as_bytes(text: bytes | str) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else bytes(text)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: bytes, sig_type: int = SIG_ED25519) -> bytes:
    """The 4-byte key ID: ``SHA-256(name ‖ 0x0A ‖ sig_type ‖ public_key)[:4]``.

    ``sig_type`` is the signed-note signature type byte: 0x01 for Ed25519 note signatures,
    0x04 for Ed25519 tlog-cosignature/v1. The same key has different IDs under each.
    """
    _check_name(name)
    if len(public_key) != 32:
        raise FormatError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + bytes(public_key)).digest()[:4]


def _parse_vkey(vkey: str, sig_type: int) -> tuple[str, bytes, bytes]:
    """Parse ``name+hex+base64(type ‖ key)`` strictly; return (name, key_id, public key)."""
    if not isinstance(vkey, str):
        raise FormatError(f"verifier key must be a str, not {type(vkey).__name__}")
    if vkey.startswith(_SKEY_PREFIX):
        raise FormatError("this is a PRIVATE signing key, not a verifier key; keep it secret")
    # The name cannot contain '+', the base64 may: split at most twice.
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise FormatError(f"verifier key must have 3 '+'-separated fields (name+keyid+key), got {len(parts)}")
    name, hex_id, b64 = parts
    _check_name(name, "verifier key name")
    if not _HEX8.match(hex_id):
        raise FormatError(f"verifier key ID must be 8 lowercase hex digits, got {hex_id!r}")
    raw = _b64decode(b64, "verifier key material")
    if raw[0] != sig_type:
        raise FormatError(
            f"verifier key has signature type 0x{raw[0]:02x}; expected 0x{sig_type:02x}"
            + (" (Ed25519 note key)" if sig_type == SIG_ED25519 else " (Ed25519 cosignature/v1 key)")
        )
    if len(raw) != 33:
        raise FormatError(f"verifier key material must be 1+32 bytes, got {len(raw)}")
    pub = raw[1:]
    want = key_id(name, pub, sig_type)
    if want.hex() != hex_id:
        raise FormatError(f"verifier key ID {hex_id} does not match the key (computed {want.hex()})")
    return name, want, pub


def _signature_line(name: str, kid: bytes, payload: bytes) -> str:
    return f"{EM_DASH} {name} {_b64(kid + payload)}\n"


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    """``— <name> <base64(key ID ‖ sig)>`` (without the newline) → (name, key_id, sig)."""
    prefix = EM_DASH + " "
    if not line.startswith(prefix):
        raise FormatError(f"signature line does not start with an em dash and a space: {line[:40]!r}")
    name, sep, b64 = line[len(prefix) :].partition(" ")
    if not sep:
        raise FormatError(f"signature line has no space between key name and signature: {line[:40]!r}")
    _check_name(name, "signature key name")
    raw = _b64decode(b64, f"signature from {name!r}")
    if len(raw) < 5:
        raise FormatError(
            f"signature from {name!r} is {len(raw)} bytes; need a 4-byte key ID and a signature"
        )
    return name, raw[:4], raw[4:]


# --------------------------------------------------------------------------- signers and verifiers


class Verifier(Protocol):
    """What ``open_note`` needs from a verifier: the (name, key ID) it answers for, and a check."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: bytes | str, sig: bytes) -> bool: ...


class NoteSigner:
    """An Ed25519 note signing key with its name. Keep it secret: ``skey`` exports it."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise FormatError(f"NoteSigner needs an Ed25519PrivateKey, not {type(private_key).__name__}")
        self._name = name
        self._key = private_key
        self._public = _raw_public(private_key.public_key())
        self._key_id = key_id(name, self._public)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse Go's ``PRIVATE+KEY+<name>+<hex>+<base64(0x01 ‖ seed)>``; the key ID must match."""
        if not isinstance(skey, str):
            raise FormatError(f"signing key must be a str, not {type(skey).__name__}")
        if not skey.startswith(_SKEY_PREFIX):
            raise FormatError("signing key must start with 'PRIVATE+KEY+'")
        parts = skey[len(_SKEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise FormatError("signing key must be PRIVATE+KEY+<name>+<key id>+<key>")
        name, hex_id, b64 = parts
        _check_name(name, "signing key name")
        if not _HEX8.match(hex_id):
            raise FormatError(f"signing key ID must be 8 lowercase hex digits, got {hex_id!r}")
        raw = _b64decode(b64, "signing key material")
        if raw[0] != SIG_ED25519:
            raise FormatError(f"signing key has algorithm 0x{raw[0]:02x}; only Ed25519 (0x01) is supported")
        if len(raw) != 33:
            raise FormatError(f"signing key material must be 1+32 bytes, got {len(raw)}")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id.hex() != hex_id:
            # The ID is of the *public* key, so it checks the seed and the name were not mangled.
            raise FormatError(
                f"signing key ID {hex_id} does not match the key (computed {signer.key_id.hex()})"
            )
        return signer

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def vkey(self) -> str:
        return f"{self._name}+{self._key_id.hex()}+{_b64(bytes([SIG_ED25519]) + self._public)}"

    @property
    def skey(self) -> str:
        """The secret key in Go's note format. Never log or publish this."""
        seed = self._key.private_bytes_raw()
        return f"{_SKEY_PREFIX}{self._name}+{self._key_id.hex()}+{_b64(bytes([SIG_ED25519]) + seed)}"

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self._name, self._public)

    def sign(self, text: str) -> str:
        """Sign note ``text`` and return one signature line, ``— name base64(keyid‖sig)\\n``."""
        _check_note_text(text)
        return _signature_line(self._name, self._key_id, self._key.sign(text.encode("utf-8")))

    def cosign(self, body: str, timestamp: int) -> str:
        """A tlog-cosignature/v1 line for checkpoint ``body`` with this key (see ``cosign``)."""
        return cosign(body, self._key, self._name, timestamp)

    def __repr__(self) -> str:  # never show key material
        return f"NoteSigner({self.vkey!r})"


class _PublicKey:
    """A named Ed25519 public key of one signature type; the vkey string is its wire form."""

    SIG_TYPE = SIG_ED25519

    def __init__(self, name: str, public_key: bytes) -> None:
        self._name = name
        self._kid = key_id(name, public_key, self.SIG_TYPE)  # validates name and length
        self._public = bytes(public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self._public)

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        name, _, pub = _parse_vkey(vkey, cls.SIG_TYPE)
        return cls(name, pub)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._kid

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def vkey(self) -> str:
        return f"{self._name}+{self._kid.hex()}+{_b64(bytes([self.SIG_TYPE]) + self._public)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"


class NoteVerifier(_PublicKey):
    """An Ed25519 note verifier key (type 0x01): what a reader of our checkpoints is given."""

    def verify(self, text: bytes | str, sig: bytes) -> bool:
        """True iff ``sig`` (without the key ID) is this key's Ed25519 signature of ``text``."""
        if len(sig) != 64:
            return False
        try:
            self._key.verify(bytes(sig), _as_bytes(text))
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoteVerifier) and other.vkey == self.vkey

    def __hash__(self) -> int:
        return hash(self.vkey)


# --------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class OpenedNote:
    """A note whose text at least one trusted key signed.

    ``verified`` lists (key name, key ID hex) of each known key whose signature verified, in
    note order; ``unverified_count`` counts signature lines from keys we do not know (other
    witnesses, a rotated-in key we have not been told about): they are ignored, not trusted.
    """

    text: str
    verified: list[tuple[str, str]] = field(default_factory=list)
    unverified_count: int = 0


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` with every signer; return the whole note (text, blank line, signatures)."""
    _check_note_text(text)
    if not signers:
        raise InvalidInput("sign_note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise InvalidInput(f"{len(signers)} signers; a note holds at most {MAX_SIGNATURES} signatures")
    seen: set[tuple[str, bytes]] = set()
    lines = []
    for s in signers:
        ident = (s.name, s.key_id)
        if ident in seen:
            raise InvalidInput(f"key {s.name}+{s.key_id.hex()} is listed twice")
        seen.add(ident)
        lines.append(s.sign(text))
    return text + "\n" + "".join(lines)


def _split_note(note: bytes | str) -> tuple[str, list[str]]:
    """Split a note into (text, signature lines without newlines); FormatError if malformed."""
    if isinstance(note, (bytes, bytearray, memoryview)):
        try:
            note = bytes(note).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"note is not valid UTF-8 (byte offset {exc.start})") from exc
    elif not isinstance(note, str):
        raise FormatError(f"note must be str or bytes, not {type(note).__name__}")
    for i, ch in enumerate(note):
        o = ord(ch)
        if o < 0x20 and ch != "\n":
            raise FormatError(f"note contains control character U+{o:04X} at offset {i}")
        if 0xD800 <= o <= 0xDFFF:
            raise FormatError(f"note contains a lone surrogate at offset {i}")
    split = note.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no blank line separating the text from the signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    if sigs == "":
        raise FormatError("note has no signature lines after the blank line")
    if not sigs.endswith("\n"):
        raise FormatError("note's last signature line does not end with a newline")
    # Count before parsing anything, so an absurd note is refused cheaply.
    n = sigs.count("\n")
    if n > MAX_SIGNATURES:
        raise FormatError(f"note has {n} signature lines; at most {MAX_SIGNATURES} are accepted")
    return text, sigs[:-1].split("\n")


def _same_key(a: Verifier, b: Verifier) -> bool:
    if a is b:
        return True
    va, vb = getattr(a, "vkey", None), getattr(b, "vkey", None)
    return va is not None and va == vb


def open_note(note: bytes | str, verifiers: Sequence[Verifier]) -> OpenedNote:
    """Parse ``note`` and check its signatures against the trusted ``verifiers``.

    Per C2SP signed-note: lines from unknown (name, key ID) pairs are ignored; a line from a
    known key that fails to verify rejects the whole note (``SignatureError``), as does a note
    that no known key signed. Unlike Go, every line from a known key is checked, including
    repeats, rather than only the first. Verifiers may be ``NoteVerifier`` or
    ``CosignatureVerifier`` (witnesses); both answer for a (name, key ID).
    """
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        ident = (v.name, v.key_id)
        prev = known.get(ident)
        if prev is not None and not _same_key(prev, v):
            raise InvalidInput(
                f"two different verifier keys share the name and key ID {v.name}+{v.key_id.hex()}"
            )
        known[ident] = v

    text, lines = _split_note(note)
    verified: list[tuple[str, str]] = []
    unverified = 0
    for line in lines:
        name, kid, sig = _parse_signature_line(line)
        v = known.get((name, kid))
        if v is None:
            unverified += 1
            continue
        if not v.verify(text, sig):
            raise SignatureError(f"signature by known key {name}+{kid.hex()} does not verify")
        if (name, kid.hex()) not in verified:
            verified.append((name, kid.hex()))
    if not verified:
        raise SignatureError(
            f"no trusted key signed this note ({unverified} signature(s) from unknown keys; "
            f"trusted: {', '.join(f'{n}+{k.hex()}' for n, k in known) or 'none'})"
        )
    return OpenedNote(text=text, verified=verified, unverified_count=unverified)


# --------------------------------------------------------------------------- key files


def generate_signing_key(path: Path, name: str) -> NoteSigner:
    """Create a new Ed25519 signing key and write it to ``path`` (mode 0600) in Go's skey format.

    The file appears atomically and complete: the key is written and fsynced to a private
    temporary file (O_CREAT|O_EXCL, 0600) in the same directory, then hard-linked into place.
    ``link`` fails if ``path`` exists, so an existing key is never overwritten, even by a
    concurrent call: losing a signing key would orphan every checkpoint it signed.
    """
    path = Path(path)
    signer = NoteSigner.generate(name)
    if path.exists() or path.is_symlink():
        raise Conflict(f"signing key file {path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask can only remove bits; make the mode exact anyway
            os.write(fd, (signer.skey + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise Conflict(f"signing key file {path} already exists; refusing to overwrite it") from None
    finally:
        tmp.unlink(missing_ok=True)
    try:  # make the new directory entry durable too
        dfd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    return signer


def file_is_private(path: Path) -> bool:
    """True iff neither group nor others have any permission on ``path`` (e.g. mode 0600/0400)."""
    return (os.stat(path).st_mode & 0o077) == 0


def load_signing_key(path: Path) -> NoteSigner:
    """Read a signing key written by ``generate_signing_key`` (or Go's ``note.GenerateKey``).

    A trailing newline is allowed. A key file readable by group or others still loads (the
    operator may have reasons), but a warning is logged; use ``file_is_private`` to enforce.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read(_MAX_KEY_FILE_BYTES + 1)
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise FormatError(f"signing key file {path} is too large to be a key")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError(f"signing key file {path} is not ASCII text") from None
    if text.endswith("\n"):
        text = text[:-1]
    try:
        signer = NoteSigner.from_skey(text)
    except FormatError as exc:
        raise FormatError(f"signing key file {path}: {exc}") from None
    if not file_is_private(path):
        log.warning("signing key file %s is readable by group or others (mode %o); chmod 600 it",
                    path, os.stat(path).st_mode & 0o777)
    return signer


# --------------------------------------------------------------------------- witness cosignatures


def cosignature_message(body: bytes | str, timestamp: int) -> bytes:
    """The bytes a tlog-cosignature/v1 Ed25519 signature covers: two header lines, then the body."""
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise FormatError(f"cosignature timestamp must be an int in 0..2^63-1, got {timestamp!r}")
    return f"cosignature/v1\ntime {timestamp}\n".encode("ascii") + _as_bytes(body)


def cosign(body: str, signer_private_key: Ed25519PrivateKey, name: str, timestamp: int) -> str:
    """A witness's cosignature line over checkpoint ``body``, made at POSIX time ``timestamp``.

    The line's bytes are key ID (type 0x04) ‖ 8-byte big-endian timestamp ‖ Ed25519 signature.
    Append it to the checkpoint's signature lines; readers not configured for the witness
    simply ignore it.
    """
    Checkpoint.parse(body)  # a cosignature vouches for a checkpoint, nothing else
    kid = key_id(name, _raw_public(signer_private_key.public_key()), SIG_COSIGNATURE_V1)
    sig = signer_private_key.sign(cosignature_message(body, timestamp))
    return _signature_line(name, kid, timestamp.to_bytes(8, "big") + sig)


class CosignatureVerifier(_PublicKey):
    """A witness's Ed25519 cosignature/v1 key (signature type 0x04). Usable in ``open_note``."""

    SIG_TYPE = SIG_COSIGNATURE_V1

    def verify(self, text: bytes | str, sig: bytes) -> bool:
        """``sig`` is the 8-byte timestamp ‖ 64-byte signature (key ID already removed)."""
        if len(sig) != 72:
            return False
        ts = int.from_bytes(sig[:8], "big")
        if ts > _MAX_TIMESTAMP:
            return False
        try:
            self._key.verify(bytes(sig[8:]), cosignature_message(text, ts))
        except InvalidSignature:
            return False
        return True


def verify_cosignature(body: str, line: str, verifier: CosignatureVerifier) -> int:
    """Check one cosignature line over checkpoint ``body``; return its timestamp.

    ``FormatError`` if the line does not parse or is not from ``verifier``'s key;
    ``SignatureError`` if it is from that key but does not verify.
    """
    name, kid, sig = _parse_signature_line(line[:-1] if line.endswith("\n") else line)
    if (name, kid) != (verifier.name, verifier.key_id):
        raise FormatError(
            f"cosignature is by {name}+{kid.hex()}, not {verifier.name}+{verifier.key_id.hex()}"
        )
    if len(sig) != 72:
        raise FormatError(f"cosignature/v1 must be 8+64 bytes after the key ID, got {len(sig)}")
    if not verifier.verify(body, sig):
        raise SignatureError(f"cosignature by {name}+{kid.hex()} does not verify")
    return int.from_bytes(sig[:8], "big")


def cosignature_timestamp(line: str) -> int:
    """The POSIX timestamp inside a cosignature/v1 line, without verifying anything."""
    name, _, sig = _parse_signature_line(line[:-1] if line.endswith("\n") else line)
    if len(sig) != 72:
        raise FormatError(f"cosignature/v1 by {name!r} must be 8+64 bytes after the key ID, got {len(sig)}")
    ts = int.from_bytes(sig[:8], "big")
    if ts > _MAX_TIMESTAMP:
        raise FormatError(f"cosignature timestamp {ts} exceeds 2^63-1")
    return ts
