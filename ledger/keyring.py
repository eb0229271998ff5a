"""The ledger's key folder: checkpoint signing keys (with rotation) and the sealing key.

Layout (the folder is created 0700, every secret file 0600)::

    <key dir>/checkpoint-<keyid>.key   Go-format Ed25519 signing key (PRIVATE+KEY+...)
    <key dir>/verifiers.txt            every verifier key ever used, oldest first; the last is active
    <key dir>/sealing.key              32-byte AES key that wraps per-subject keys

The verifier list is the trust anchor ``custody verify`` checks checkpoints against: it lives
beside the private keys, not in the database, so whoever can write the database cannot also
slip in a key of their own. Rotation adds a key and destroys the previous private key; the old
public key stays in ``verifiers.txt`` so every checkpoint it signed stays verifiable.

A long-running process (the API server) sees a rotation made by another process (``custody keys
--rotate``): ``verifiers`` and ``signer()`` re-read ``verifiers.txt`` when its size or mtime changed,
so the next checkpoint is signed by the new key — never by a retired key held in memory. The list may
only grow: a file that no longer starts with the keys already known is refused (FormatError), and
nothing is signed until a person looks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import Conflict, FormatError, NotInitialised
from ledger.keys import NoteSigner, NoteVerifier, generate_signing_key, load_signing_key
from ledger.sealing import Sealer

VERIFIERS = "verifiers.txt"
SEALING = "sealing.key"


@dataclass(frozen=True)
class KeyInfo:
    name: str
    key_id: str
    vkey: str
    active: bool
    private_key_present: bool


class Keyring:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        path = self.dir / VERIFIERS
        if not path.exists():
            raise NotInitialised(f"no keys in {self.dir} (run `custody init`)")
        self._verifiers: list[NoteVerifier] = []
        self._stamp: tuple[int, int] | None = None
        self._signer: NoteSigner | None = None
        self._load()

    def _load(self) -> None:
        path = self.dir / VERIFIERS
        try:
            st = path.stat()
        except FileNotFoundError:
            raise NotInitialised(f"the verifier list {path} is gone") from None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        lines = [ln.strip() for ln in path.read_text("ascii").splitlines() if ln.strip()]
        if not lines:
            raise FormatError(f"{path} lists no verifier keys")
        fresh = [NoteVerifier.from_vkey(v) for v in lines]
        known = [v.vkey for v in self._verifiers]
        if [v.vkey for v in fresh[:len(known)]] != known:
            raise FormatError(f"{path} no longer starts with the verifier keys this process loaded: keys are "
                              f"only ever added; refusing to sign until the key folder is checked")
        if len(fresh) != len(self._verifiers):
            self._signer = None  # a rotation: the next signature is the new key's
        self._verifiers, self._stamp = fresh, stamp

    @property
    def verifiers(self) -> list[NoteVerifier]:
        """Every verifier key, oldest first (re-read when another process rotated)."""
        self._load()
        return self._verifiers

    @classmethod
    def create(cls, directory: Path, name: str) -> Keyring:
        """A new key folder with one signing key named ``name`` (the log's origin) and a sealing key."""
        directory = Path(directory)
        if (directory / VERIFIERS).exists():
            raise Conflict(f"{directory} already holds ledger keys; refusing to replace them")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        if not (directory / SEALING).exists():
            Sealer.create_key_file(directory / SEALING)
        cls._add_key(directory, name)
        return cls(directory)

    @staticmethod
    def _add_key(directory: Path, name: str) -> NoteSigner:
        pending = directory / f".checkpoint-new-{os.getpid()}.key"
        signer = generate_signing_key(pending, name)  # 0600, fsynced, never overwrites
        try:
            os.link(pending, directory / f"checkpoint-{signer.key_id.hex()}.key")
        finally:
            pending.unlink(missing_ok=True)
        with open(directory / VERIFIERS, "a", encoding="ascii") as f:
            f.write(signer.vkey + "\n")
            f.flush()
            os.fsync(f.fileno())
        return signer

    @property
    def active(self) -> NoteVerifier:
        return self.verifiers[-1]

    def signer(self) -> NoteSigner:
        self._load()
        if self._signer is None:
            path = self.dir / f"checkpoint-{self.active.key_id.hex()}.key"
            if not path.exists():
                raise NotInitialised(f"the active signing key {path} is missing")
            signer = load_signing_key(path)
            if signer.vkey != self.active.vkey:
                raise FormatError(f"{path} does not hold the key {self.active.vkey}")
            self._signer = signer
        return self._signer

    def rotate(self) -> NoteVerifier:
        """Start signing with a new key; destroy the old private key, keep its public key."""
        old = self.dir / f"checkpoint-{self.active.key_id.hex()}.key"
        new = self._add_key(self.dir, self.active.name)
        if old.exists():
            os.unlink(old)
        self._signer = None
        self._load()
        if self.active.vkey != new.vkey:  # another process rotated at the same moment
            raise FormatError(f"{self.dir / VERIFIERS} names {self.active.vkey} as active, not the new {new.vkey}")
        return self.active

    def sealer(self) -> Sealer:
        return Sealer.from_key_file(self.dir / SEALING)

    def info(self) -> list[KeyInfo]:
        return [KeyInfo(v.name, v.key_id.hex(), v.vkey, i == len(self.verifiers) - 1,
                         (self.dir / f"checkpoint-{v.key_id.hex()}.key").exists())
                for i, v in enumerate(self.verifiers)]
