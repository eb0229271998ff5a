"""Every policy version we have shipped, loadable by ``(policy_id, version)`` and checked by SHA-256.

A decision records ``(policy_id, policy_version)`` and, for the analysis stage, the policy's SHA-256.
Replaying it *exactly* needs that very document, long after the default policy has moved on. The
archive keeps each shipped version as its **resolved canonical JSON** (the rules file inlined, the
defaults filled in — exactly the bytes :attr:`Policy.sha256` covers), one file per version:
``pipeline/policies/archive/<policy_id>@<version>.json``, listed in ``index.json`` with its SHA-256::

    {"schema": "custody.policy-archive/v1",
     "policies": [{"policy_id": "custody-default", "version": "1.1.0",
                   "file": "custody-default@1.1.0.json", "sha256": "809d…"}]}

:func:`registry` loads every archived file, refuses one whose computed SHA-256 is not the one the
index lists (an archived policy must never change after the fact), and adds today's default policy
(``pipeline/policies/default.yaml``). A shipped ``(policy_id, version)`` names one document only: if
the default policy carries an archived version but a different SHA-256 (the document was edited without
bumping its version), the *archived* document is what that version means, and the registry records the
conflict (``conflicts``) for the caller to report.

To archive a new version when the default policy changes: ``python -m pipeline.policy_archive add``
(writes the current default's canonical JSON and its index entry; an existing entry is never rewritten).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.errors import InvalidPolicy, PolicyNotFound
from pipeline.policy import Policy, default_policy, load_policy

ARCHIVE_SCHEMA = "custody.policy-archive/v1"
INDEX = "index.json"


def archive_dir() -> Path:
    return Path(str(resources.files("pipeline").joinpath("policies", "archive")))


@dataclass(frozen=True)
class PolicyRegistry:
    """Loaded policies by ``(policy_id, version)`` and by SHA-256; ``origin`` says where each came from."""

    by_key: dict[tuple[str, str], Policy]
    by_sha256: dict[str, Policy]
    origin: dict[str, str]  # sha256 -> "archive:<file>" | "default:<path>"
    current: Policy
    conflicts: list[str] = field(default_factory=list)

    def get(self, policy_id: str | None, version: str | None, sha256: str | None = None) -> Policy | None:
        """The policy ``policy_id@version``; with ``sha256`` it must also be that document (a recorded
        decision names both). None when this installation never shipped it."""
        if sha256 is not None:
            p = self.by_sha256.get(sha256)
            if p is not None and (policy_id is None or p.policy_id == policy_id) and (
                    version is None or p.version == version):
                return p
            return None
        if policy_id is None or version is None:
            return None
        return self.by_key.get((policy_id, version))

    def versions(self) -> list[dict[str, str]]:
        """Every policy, by id and then by version number (1.9.0 before 1.10.0, not after it)."""
        return [{"policy_id": k[0], "version": k[1], "sha256": p.sha256, "origin": self.origin[p.sha256]}
                for k, p in sorted(self.by_key.items(), key=lambda kv: (kv[0][0], _version_key(kv[0][1])))]


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A dotted version as numbers where its parts are numbers ("1.10.0" → (1, 10, 0))."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in version.split("."))


def _read_index(folder: Path) -> list[dict[str, Any]]:
    path = folder / INDEX
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise PolicyNotFound(f"the policy archive index {path} is missing") from None
    except (OSError, ValueError) as err:
        raise InvalidPolicy(f"the policy archive index {path} does not read: {err}") from None
    if not isinstance(doc, dict) or doc.get("schema") != ARCHIVE_SCHEMA or not isinstance(doc.get("policies"), list):
        raise InvalidPolicy(f"{path}: expected {{'schema': {ARCHIVE_SCHEMA!r}, 'policies': [...]}}")
    for i, e in enumerate(doc["policies"]):
        if not isinstance(e, dict) or not all(isinstance(e.get(k), str) for k in ("policy_id", "version", "file", "sha256")):
            raise InvalidPolicy(f"{path}: policies[{i}] needs policy_id, version, file and sha256 strings")
        if "/" in e["file"] or e["file"].startswith("."):
            raise InvalidPolicy(f"{path}: policies[{i}].file must be a file name in the archive folder")
    return doc["policies"]


def load_archive(folder: Path | None = None) -> list[tuple[dict[str, Any], Policy]]:
    """Every archived policy, each checked against its index entry (id, version, SHA-256)."""
    folder = folder or archive_dir()
    out: list[tuple[dict[str, Any], Policy]] = []
    seen: set[tuple[str, str]] = set()
    for e in _read_index(folder):
        key = (e["policy_id"], e["version"])
        if key in seen:
            raise InvalidPolicy(f"policy archive: {key[0]}@{key[1]} is listed twice")
        seen.add(key)
        p = load_policy(folder / e["file"])
        if (p.policy_id, p.version) != key:
            raise InvalidPolicy(f"policy archive: {e['file']} holds {p.policy_id}@{p.version}, "
                                f"not the {key[0]}@{key[1]} the index names")
        if p.sha256 != e["sha256"]:
            raise InvalidPolicy(f"policy archive: {e['file']} hashes to {p.sha256}, not the {e['sha256']} "
                                f"the index records: an archived policy was altered")
        out.append((e, p))
    return out


_registry: PolicyRegistry | None = None


def registry(folder: Path | None = None, *, current: Policy | None = None, reload: bool = False) -> PolicyRegistry:
    """The archive plus today's default policy (cached per process for the shipped archive)."""
    global _registry
    if folder is None and current is None and _registry is not None and not reload:
        return _registry
    current = current or default_policy()
    by_key: dict[tuple[str, str], Policy] = {}
    by_sha: dict[str, Policy] = {}
    origin: dict[str, str] = {}
    conflicts: list[str] = []
    for e, p in load_archive(folder):
        by_key[(p.policy_id, p.version)] = p
        by_sha[p.sha256] = p
        origin[p.sha256] = f"archive:{e['file']}"
    key = (current.policy_id, current.version)
    if key in by_key and by_key[key].sha256 != current.sha256:
        conflicts.append(f"the default policy {key[0]}@{key[1]} ({current.sha256}) differs from the archived "
                         f"{key[0]}@{key[1]} ({by_key[key].sha256}): it was edited without a new version; "
                         f"the archived document is what that version means")
    else:
        by_key[key] = current
    by_sha.setdefault(current.sha256, current)
    origin.setdefault(current.sha256, f"default:{current.source}")
    reg = PolicyRegistry(by_key, by_sha, origin, current, conflicts)
    if folder is None:
        _registry = reg
    return reg


def add_current(folder: Path | None = None) -> dict[str, str]:
    """Archive today's default policy (a new version only: an existing entry is never rewritten)."""
    folder = folder or archive_dir()
    p = default_policy()
    entries = _read_index(folder)
    for e in entries:
        if (e["policy_id"], e["version"]) == (p.policy_id, p.version):
            if e["sha256"] != p.sha256:
                raise InvalidPolicy(f"{p.policy_id}@{p.version} is archived with a different SHA-256; "
                                    f"bump the default policy's version")
            return e
    entry = {"policy_id": p.policy_id, "version": p.version, "file": f"{p.policy_id}@{p.version}.json",
             "sha256": p.sha256}
    (folder / entry["file"]).write_bytes(p.canonical_json + b"\n")
    entries.append(entry)
    (folder / INDEX).write_text(json.dumps({"schema": ARCHIVE_SCHEMA, "policies": entries}, indent=2) + "\n")
    return entry


if __name__ == "__main__":  # pragma: no cover - maintenance command
    if sys.argv[1:] == ["add"]:
        print(json.dumps(add_current()))
    else:
        print("usage: python -m pipeline.policy_archive add", file=sys.stderr)
        sys.exit(2)
