"""Content-addressed artifact stores: durable by name, never altered, never overwritten."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ledger.artifacts import LocalArtifactStore, MemoryArtifactStore, ref_for, sha256_from_ref
from ledger.errors import InvalidInput, NotFound, VerificationError


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalArtifactStore | MemoryArtifactStore:
    return LocalArtifactStore(tmp_path / "a") if request.param == "local" else MemoryArtifactStore()


def test_put_get_roundtrip_and_idempotent(store) -> None:
    sha = store.put(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest()
    assert store.put(b"hello") == sha
    assert store.get(sha) == b"hello" and store.has(sha)
    assert not store.has("0" * 64)
    with pytest.raises(NotFound):
        store.get("0" * 64)


@pytest.mark.parametrize("bad", ["", "abc", "G" * 64, "../" + "a" * 61, "A" * 64])
def test_bad_names_are_refused(store, bad: str) -> None:
    with pytest.raises(InvalidInput):
        store.get(bad)


def test_local_files_are_read_only_and_tamper_is_detected(tmp_path: Path) -> None:
    s = LocalArtifactStore(tmp_path)
    sha = s.put(b"evidence")
    path = tmp_path / "sha256" / sha[:2] / sha
    assert path.stat().st_mode & 0o777 == 0o400
    assert not list(path.parent.glob(".*.tmp"))
    os.chmod(path, 0o600)
    path.write_bytes(b"altered")
    with pytest.raises(VerificationError, match="altered"):
        s.get(sha)


def test_refs() -> None:
    sha = "ab" * 32
    assert sha256_from_ref(ref_for(sha)) == sha
    assert sha256_from_ref("blob://uploads/9a1") is None
    with pytest.raises(InvalidInput):
        ref_for("nope")
