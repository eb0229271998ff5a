"""PDQ perceptual hashes and hash banks (StopNCII / Hasher-Matcher-Actioner style lists).

* :func:`pdq_dihedral` hashes an image and its 7 rotations / mirrors in one pass (``pdqhash``, the
  reference C++ PDQ). Hex is the reference format (64 hex digits, most significant word first, as
  ThreatExchange / HMA print it).
* A :class:`HashBank` is a list of known images' PDQ hashes. A query matches an entry when the
  Hamming distance between *any* dihedral variant of the query and the entry is ≤ ``MATCH_DISTANCE``
  (31, the PDQ reference threshold) and the query's quality is ≥ ``MIN_QUALITY`` (50; below it a
  hash is too unstable to act on — flat or tiny images). Ties break on (distance, entry order, variant
  order), so a match is deterministic.

Bank file format (text, UTF-8; ``#`` starts a comment; blank lines ignored), one entry a line::

    <64 hex digits>[,<entry id>[,<category>]]

separated by commas, tabs or spaces. ``category`` is a policy category (default
``sex_related_crimes``: intimate-image abuse, the StopNCII case; use ``child_sexual_exploitation``
for CSAM lists). A JSON file ``{"bank_id": ..., "entries": [{"hash": ..., "id": ..., "category": ...}]}``
is accepted too. A bank's identity is :attr:`HashBank.sha256`, over its canonical entry list.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import PipelineError
from pipeline.policy import CATEGORIES

MATCH_DISTANCE = 31
MIN_QUALITY = 50
MAX_BANK_BYTES = 256 * 1024 * 1024
DEFAULT_CATEGORY = "sex_related_crimes"
DIHEDRAL = ("original", "rotate90", "rotate180", "rotate270", "flip_x", "flip_y", "flip_plus1", "flip_minus1")
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


class HashBankError(PipelineError):
    status = 400
    exit_code = 2
    code = "invalid_hash_bank"


class HashBankNotFound(HashBankError):
    status = 404
    exit_code = 3
    code = "hash_bank_not_found"


def pdq_version() -> str:
    import pdqhash

    return f"pdqhash/{pdqhash.__version__}"


def _vec_to_hex(vec: np.ndarray) -> str:
    return np.packbits(np.asarray(vec, dtype=np.uint8)).tobytes().hex()


@dataclass(frozen=True)
class PdqResult:
    hashes: tuple[str, ...]  # 8 hex hashes in DIHEDRAL order; hashes[0] is the image as given
    quality: int

    @property
    def hash(self) -> str:
        return self.hashes[0]


def pdq_dihedral(bgr: np.ndarray) -> PdqResult:
    """PDQ hashes of a uint8 BGR image and its 7 dihedral transforms, plus the quality (0..100)."""
    import pdqhash

    rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    vecs, quality = pdqhash.compute_dihedral(rgb)
    return PdqResult(hashes=tuple(_vec_to_hex(v) for v in vecs), quality=int(quality))


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@dataclass(frozen=True)
class BankEntry:
    hash: str
    id: str
    category: str


@dataclass(frozen=True)
class BankMatch:
    bank_id: str
    entry_id: str
    category: str
    distance: int
    variant: str  # which dihedral variant of the query matched
    entry_hash: str

    def to_dict(self) -> dict[str, object]:
        return {"bank_id": self.bank_id, "entry_id": self.entry_id, "category": self.category,
                "distance": self.distance, "variant": self.variant, "entry_hash": self.entry_hash}


class HashBank:
    """An immutable, validated list of PDQ hashes with ids and categories."""

    def __init__(self, entries: list[BankEntry], bank_id: str = "bank"):
        seen: set[str] = set()
        for e in entries:
            if e.id in seen:
                raise HashBankError(f"hash bank {bank_id}: duplicate entry id {e.id!r}")
            seen.add(e.id)
        self.bank_id = bank_id
        self.entries = tuple(entries)
        canon = "\n".join(f"{e.hash},{e.id},{e.category}" for e in self.entries).encode()
        self.sha256 = hashlib.sha256(canon).hexdigest()
        self._bits = (np.frombuffer(b"".join(bytes.fromhex(e.hash) for e in self.entries), np.uint8)
                      .reshape(len(self.entries), 32) if self.entries else np.zeros((0, 32), np.uint8))
        self._words = self._bits.view(">u8").astype(np.uint64) if self.entries else np.zeros((0, 4), np.uint64)

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self) -> dict[str, object]:
        return {"bank_id": self.bank_id, "entries": len(self.entries), "sha256": self.sha256}

    def match(self, pdq: PdqResult, max_distance: int = MATCH_DISTANCE) -> BankMatch | None:
        """The closest entry within ``max_distance`` of any dihedral variant, or None. Does not check
        the query's quality: :func:`match_signals` does."""
        if not self.entries:
            return None
        q = np.frombuffer(b"".join(bytes.fromhex(h) for h in pdq.hashes), np.uint8).reshape(-1, 32)
        qw = q.view(">u8").astype(np.uint64)  # (8, 4)
        dist = np.bitwise_count(self._words[None, :, :] ^ qw[:, None, :]).sum(axis=2)  # (8, N)
        best_per_entry = dist.min(axis=0)
        idx = int(np.argmin(best_per_entry))  # first index among equal minima
        d = int(best_per_entry[idx])
        if d > max_distance:
            return None
        variant = int(np.argmin(dist[:, idx]))
        e = self.entries[idx]
        return BankMatch(self.bank_id, e.id, e.category, d, DIHEDRAL[variant], e.hash)


def _entry(fields: list[str], where: str, n: int) -> BankEntry:
    h = fields[0]
    if not _HEX.match(h):
        raise HashBankError(f"{where}: {h[:80]!r} is not a 256-bit PDQ hash (64 hex digits)")
    eid = fields[1] if len(fields) > 1 and fields[1] else f"#{n}"
    cat = fields[2] if len(fields) > 2 and fields[2] else DEFAULT_CATEGORY
    if cat not in CATEGORIES:
        raise HashBankError(f"{where}: unknown category {cat!r}; known: {', '.join(sorted(CATEGORIES))}")
    if len(fields) > 3:
        raise HashBankError(f"{where}: expected '<hash>[,<id>[,<category>]]', got {len(fields)} fields")
    return BankEntry(h.lower(), eid, cat)


def bank_from_text(text: str, bank_id: str = "bank") -> HashBank:
    entries: list[BankEntry] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in re.split(r"[,\t ]+", line)]
        entries.append(_entry(fields, f"hash bank {bank_id} line {lineno}", len(entries) + 1))
    return HashBank(entries, bank_id)


def bank_from_json(data: object, bank_id: str = "bank") -> HashBank:
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise HashBankError(f"hash bank {bank_id}: expected {{\"entries\": [...]}}")
    bid = data.get("bank_id", bank_id)
    if not isinstance(bid, str) or not bid:
        raise HashBankError(f"hash bank {bank_id}: bank_id must be a non-empty string")
    entries = []
    for k, item in enumerate(data["entries"]):
        if not isinstance(item, dict) or not isinstance(item.get("hash"), str):
            raise HashBankError(f"hash bank {bid} entries[{k}]: expected an object with a 'hash' string")
        extra = set(item) - {"hash", "id", "category"}
        if extra:
            raise HashBankError(f"hash bank {bid} entries[{k}]: unknown field(s) {sorted(extra)}")
        fields = [item["hash"], str(item.get("id", "")), str(item.get("category", ""))]
        entries.append(_entry(fields, f"hash bank {bid} entries[{k}]", k + 1))
    return HashBank(entries, bid)


def load_bank(path: str | Path) -> HashBank:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BANK_BYTES:
            raise HashBankError(f"hash bank {p} is larger than {MAX_BANK_BYTES:,} bytes")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise HashBankNotFound(f"hash bank {p} does not exist") from None
    except IsADirectoryError:
        raise HashBankNotFound(f"hash bank {p} is not a file") from None
    except OSError as e:
        raise HashBankNotFound(f"hash bank {p} cannot be read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HashBankError(f"hash bank {p} is not UTF-8 (byte {e.start})") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise HashBankError(f"hash bank {p}: invalid JSON at line {e.lineno}: {e.msg}") from None
        return bank_from_json(data, p.stem)
    return bank_from_text(text, p.stem)


def match_signals(pdq: PdqResult, banks: list[HashBank] | tuple[HashBank, ...]) -> dict[str, object]:
    """Signals for the decision: the best match over all banks (smallest distance, then bank order),
    or a reason it was not looked for."""
    out: dict[str, object] = {"pdq.hash": pdq.hash, "pdq.quality": pdq.quality}
    if not banks:
        out["hashbank.checked"] = False
        return out
    if pdq.quality < MIN_QUALITY:
        out["hashbank.checked"] = False
        out["hashbank.skipped"] = f"quality {pdq.quality} < {MIN_QUALITY}"
        return out
    out["hashbank.checked"] = True
    best: BankMatch | None = None
    for bank in banks:
        m = bank.match(pdq)
        if m is not None and (best is None or m.distance < best.distance):
            best = m
    out["hashbank.match"] = best.to_dict() if best else None
    return out
