"""The policy archive: every shipped version loads, is unique and is what its index says it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.errors import InvalidPolicy
from pipeline.policy import default_policy, load_policy
from pipeline.policy_archive import INDEX, archive_dir, load_archive, registry


def test_every_archived_file_loads_and_is_unique() -> None:
    folder = archive_dir()
    files = sorted(p.name for p in folder.glob("*.json") if p.name != INDEX)
    entries = load_archive()
    assert sorted(e["file"] for e, _ in entries) == files  # no unlisted file, no listed file missing
    keys = [(p.policy_id, p.version) for _, p in entries]
    assert len(keys) == len(set(keys))
    for e, p in entries:
        assert load_policy(folder / e["file"]).sha256 == p.sha256 == e["sha256"]
        assert e["file"] == f"{p.policy_id}@{p.version}.json"


def test_registry_holds_the_archive_and_todays_default() -> None:
    reg = registry()
    cur = default_policy()
    assert reg.get(cur.policy_id, cur.version) is not None
    assert reg.get(cur.policy_id, cur.version, cur.sha256).sha256 == cur.sha256 or reg.conflicts
    for _, p in load_archive():
        assert reg.get(p.policy_id, p.version, p.sha256).sha256 == p.sha256
    assert reg.get("custody-default", "0.0.0-never") is None
    assert reg.get(cur.policy_id, cur.version, "0" * 64) is None  # the right name but not that document


def test_an_altered_archive_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    shutil.copytree(archive_dir(), folder)
    e = json.loads((folder / INDEX).read_text())["policies"][0]
    doc = json.loads((folder / e["file"]).read_text())
    doc["categories"]["sexual_content"]["block_at"] = 0.99
    (folder / e["file"]).write_text(json.dumps(doc))
    with pytest.raises(InvalidPolicy, match="altered"):
        load_archive(folder)


def test_a_version_listed_twice_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    shutil.copytree(archive_dir(), folder)
    idx = json.loads((folder / INDEX).read_text())
    idx["policies"].append(dict(idx["policies"][0]))
    (folder / INDEX).write_text(json.dumps(idx))
    with pytest.raises(InvalidPolicy, match="twice"):
        load_archive(folder)


def test_versions_are_listed_in_number_order() -> None:
    listed = [v["version"] for v in registry().versions() if v["policy_id"] == "custody-default"]
    assert listed.index("1.9.0") < listed.index("1.10.0")
    assert listed == sorted(listed, key=lambda v: tuple(int(p) for p in v.split(".")))
