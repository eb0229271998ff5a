"""Content-addressed stores for artifact bytes: the evidence store and the replay quarantine.

The ledger holds each artifact's SHA-256, media type and size; the bytes live here, named by that
SHA-256, so a reader can always check bytes against the ledger and a store can never hold two
different contents under one name. There is no overwrite and no delete path: ``put`` of bytes that
are already present is a no-op (same name, same content).

``LocalArtifactStore`` keeps ``<root>/sha256/<2 hex>/<64 hex>`` files, written to a temporary file,
fsynced, then renamed (and the directory fsynced), so a crash leaves either the whole file or
nothing — an artifact record is appended only after its bytes are durable. Files are created
read-only (0400 in a 0700 tree): the quarantine holds abuse material and replay outputs that must
not be served by accident.

``MemoryArtifactStore`` is the in-memory fake for unit tests of code around a store.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

from ledger.errors import InvalidInput, NotFound, StorageError, VerificationError

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
REF_PREFIX = "cas:sha256:"


def _check_name(sha256: str) -> str:
    if not isinstance(sha256, str) or not SHA256_HEX.match(sha256):
        raise InvalidInput(f"not a SHA-256 (64 lowercase hex digits): {sha256!r}")
    return sha256


def ref_for(sha256: str) -> str:
    """The storage reference an artifact record carries for bytes kept in a content-addressed store."""
    return REF_PREFIX + _check_name(sha256)


def sha256_from_ref(ref: str) -> str | None:
    """The SHA-256 in a ``cas:sha256:…`` reference, or None for any other kind of reference."""
    if isinstance(ref, str) and ref.startswith(REF_PREFIX):
        rest = ref[len(REF_PREFIX):]
        return rest if SHA256_HEX.match(rest) else None
    return None


class ArtifactStore(Protocol):
    """Bytes by SHA-256. ``get`` re-hashes what it returns: a store never hands out altered bytes."""

    def put(self, data: bytes) -> str: ...
    def get(self, sha256: str) -> bytes: ...
    def has(self, sha256: str) -> bool: ...


class LocalArtifactStore:
    """Files under ``root``, one per SHA-256 (see the module docstring for the durability contract)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        _check_name(sha256)
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInput("artifact content must be bytes")
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        path = self._path(sha)
        if path.exists():
            return sha
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{sha}.{os.getpid()}.{id(data)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as err:
            raise StorageError(f"cannot store artifact {sha} under {self.root}: {err}") from err
        return sha

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"artifact {sha256} is not in the store at {self.root}") from None
        except OSError as err:
            raise StorageError(f"cannot read artifact {sha256}: {err}") from err
        if hashlib.sha256(data).hexdigest() != sha256:
            raise VerificationError(f"the stored file for artifact {sha256} does not hash to its name: "
                                    f"it was altered on disk")
        return data

    def has(self, sha256: str) -> bool:
        return self._path(sha256).exists()


class MemoryArtifactStore:
    """In-memory fake with the same contract (tests only)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInput("artifact content must be bytes")
        sha = hashlib.sha256(bytes(data)).hexdigest()
        self.blobs.setdefault(sha, bytes(data))
        return sha

    def get(self, sha256: str) -> bytes:
        _check_name(sha256)
        try:
            data = self.blobs[sha256]
        except KeyError:
            raise NotFound(f"artifact {sha256} is not in the store") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise VerificationError(f"the stored bytes for artifact {sha256} do not hash to its name")
        return data

    def has(self, sha256: str) -> bool:
        return _check_name(sha256) in self.blobs


def artifact_store_for(data_dir: str | Path) -> LocalArtifactStore:
    """The ledger's evidence store: ``<data dir>/artifacts``."""
    return LocalArtifactStore(Path(data_dir) / "artifacts")


def quarantine_for(data_dir: str | Path) -> LocalArtifactStore:
    """Where replay outputs go (never published, never returned in the clear): ``<data dir>/quarantine``."""
    return LocalArtifactStore(Path(data_dir) / "quarantine")


__all__ = ["ArtifactStore", "LocalArtifactStore", "MemoryArtifactStore", "REF_PREFIX", "artifact_store_for",
           "quarantine_for", "ref_for", "sha256_from_ref"]
