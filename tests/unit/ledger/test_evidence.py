"""Evidence bundles: export, the offline verifier, determinism, redaction, and tampering of every file."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from api.sample import sample_incident
from ledger.evidence import ROOT, export_bundle, record_export, verify_bundle
from ledger.service import Ledger


@pytest.fixture
def case(ledger: Ledger) -> Ledger:
    ledger.append(sample_incident())
    ledger.append([{"kind": "distribution", "producer": "svc:share", "produced_at": "2025-12-30T12:00:00Z",
                    "body": {"action": "share"}, "links": [{"rel": "artifact", "id": 8}]}])
    return ledger


def vkeys(ledger: Ledger) -> list[str]:
    return [ledger.keyring.active.vkey]


def members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    z = zipfile.ZipFile(io.BytesIO(data))
    return [(i, z.read(i)) for i in z.infolist()]


def rezip(items: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info, content in items:
            z.writestr(info, content)
    return buf.getvalue()


def test_export_verifies_and_is_deterministic(case: Ledger) -> None:
    a = export_bundle(case, "case-1", [8])
    b = export_bundle(case, "case-1", [8])
    assert a.data == b.data and a.sha256 == b.sha256
    report = verify_bundle(a.data, vkeys(case))
    assert report.ok, report.as_dict()
    assert report.case_id == "case-1" and report.records == 15
    names = [i.filename for i, _ in members(a.data)]
    assert names == sorted(names) and f"{ROOT}/data/records/000000000008.json" in names
    # the consistency proof starts at the first non-empty checkpoint (size 14)
    cons = json.loads(dict((i.filename, c) for i, c in members(a.data))[f"{ROOT}/data/consistency.json"])
    assert (cons["old_size"], cons["new_size"]) == (14, 15)


def test_export_is_recorded_and_appears_in_the_next_bundle(case: Ledger) -> None:
    first, receipt = record_export(case, "case-7", [8], actor="counsel", role="legal", purpose="court order")
    rec = case.get(receipt.id)["record"]
    assert rec["kind"] == "access" and rec["body"]["bundle_sha256"] == first.sha256
    second, _ = record_export(case, "case-7", [8], actor="counsel", role="legal", purpose="appeal")
    files = dict((i.filename, c) for i, c in members(second.data))
    log = json.loads(files[f"{ROOT}/data/custody-log.json"])
    assert [e["id"] for e in log] == [receipt.id] and log[0]["bundle_sha256"] == first.sha256
    assert verify_bundle(second.data, vkeys(case)).ok


def test_redacted_bundle_has_no_sensitive_values_and_still_verifies(case: Ledger) -> None:
    full = export_bundle(case, "c", [8])
    red = export_bundle(case, "c", [8], redact=True)
    assert b"b1kini" in b"".join(c for _, c in members(full.data))
    assert all(b"b1kini" not in c and b"Jane Example" not in c for _, c in members(red.data))
    assert not any("disclosures" in i.filename for i, _ in members(red.data))
    assert verify_bundle(red.data, vkeys(case)).ok


def test_wrong_key_and_garbage_fail_cleanly(case: Ledger) -> None:
    data = export_bundle(case, "c", [8]).data
    other = "custody.test/ledger+6e2d1a3b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
    bad = verify_bundle(data, [other])
    assert not bad.ok
    assert not verify_bundle(b"not a zip", vkeys(case)).ok
    assert not verify_bundle(data[: len(data) // 2], vkeys(case)).ok
    assert not verify_bundle(data, ["not a key"]).ok


def test_every_single_byte_flip_in_every_file_is_detected(case: Ledger) -> None:
    data = export_bundle(case, "c", [8]).data
    items = members(data)
    for k, (info, content) in enumerate(items):
        for pos in sorted({0, len(content) // 2, len(content) - 1}):
            flipped = bytearray(content)
            flipped[pos] ^= 0x01  # the smallest change: one bit
            tampered = rezip(items[:k] + [(info, bytes(flipped))] + items[k + 1:])
            assert not verify_bundle(tampered, vkeys(case)).ok, f"{info.filename} byte {pos} flip went unnoticed"


def test_reordered_dropped_and_added_files_are_detected(case: Ledger) -> None:
    items = members(export_bundle(case, "c", [8]).data)
    assert verify_bundle(rezip(items), vkeys(case)).ok  # re-zipping unchanged members is fine
    assert not verify_bundle(rezip(items[1:2] + items[:1] + items[2:]), vkeys(case)).ok
    for k in range(len(items)):
        assert not verify_bundle(rezip(items[:k] + items[k + 1:]), vkeys(case)).ok, items[k][0].filename
    for extra in (f"{ROOT}/data/records/000000000099.json", f"{ROOT}/data/zz.txt", f"{ROOT}/zz.txt"):
        info = zipfile.ZipInfo(extra, date_time=(1980, 1, 1, 0, 0, 0))
        added = sorted(items + [(info, b"{}")], key=lambda x: x[0].filename)
        assert not verify_bundle(rezip(added), vkeys(case)).ok, extra


def test_cli_verifies_offline_without_network_or_database(case: Ledger, tmp_path: Path) -> None:
    bundle = tmp_path / "b.zip"
    bundle.write_bytes(export_bundle(case, "c", [8]).data)
    env = {"PATH": "/usr/bin:/bin", "CUSTODY_DATABASE_URL": "postgresql+psycopg://nobody@203.0.113.1/none",
           "CUSTODY_DATA_DIR": str(tmp_path / "nothing-here")}
    cmd = [sys.executable, "-m", "api.cli", "verify-bundle", str(bundle), "--key", case.keyring.active.vkey]
    unshare = shutil.which("unshare")
    assert unshare, "util-linux unshare is needed to test with networking off"
    p = subprocess.run([unshare, "-n", *cmd], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "bundle verifies" in p.stdout and "FAIL" not in p.stdout
    bundle.write_bytes(bundle.read_bytes()[:-10])
    p = subprocess.run([unshare, "-n", *cmd], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 5 and "Traceback" not in p.stderr


def test_crafted_content_is_a_finding_not_a_crash(case: Ledger) -> None:
    items = members(export_bundle(case, "c", [8]).data)
    for k, (info, _) in enumerate(items):
        for junk in (b"[]", b"not json", b'{"text": []}'):
            report = verify_bundle(rezip(items[:k] + [(info, junk)] + items[k + 1:]), vkeys(case))
            assert not report.ok, info.filename
    clash = zipfile.ZipInfo(f"{ROOT}/data/records", date_time=(1980, 1, 1, 0, 0, 0))
    report = verify_bundle(rezip(sorted(items + [(clash, b"x")], key=lambda x: x[0].filename)), vkeys(case))
    assert not report.ok


def test_a_truncated_trace_is_not_exported_as_a_case(case: Ledger) -> None:
    import pytest as _pytest

    from ledger.errors import InvalidInput

    orig = case.trace
    case.trace = lambda rid, **kw: orig(rid, max_nodes=3)  # type: ignore[method-assign]
    with _pytest.raises(InvalidInput, match="trace limit"):
        export_bundle(case, "c", [8])
