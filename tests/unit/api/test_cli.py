"""The `custody` CLI end to end on a SQLite ledger: every command, --json, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import main
from api.sample import sample_incident


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("CUSTODY_DATABASE_URL", "CUSTODY_KEY_DIR", "CUSTODY_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    d = tmp_path / "ledger"
    assert main(["init", "--data-dir", str(d), "--origin", "custody.test/cli"]) == 0
    return d


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, object, str]:
    capsys.readouterr()
    code = main(list(args))
    cap = capsys.readouterr()
    try:
        out: object = json.loads(cap.out)
    except json.JSONDecodeError:
        out = cap.out
    return code, out, cap.err


def test_full_cli_flow(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(data_dir)
    batch = tmp_path / "incident.jsonl"
    batch.write_text("\n".join(json.dumps(r) for r in sample_incident()) + "\n")
    code, out, _ = run(capsys, "append", str(batch), "--data-dir", d, "--json")
    assert code == 0 and [a["id"] for a in out] == list(range(14))  # type: ignore[union-attr]

    code, out, _ = run(capsys, "checkpoint", "--data-dir", d, "--json")
    assert code == 0 and out["size"] == 14 and "\u2014 custody.test/cli " in out["note"]  # type: ignore[index]

    code, out, _ = run(capsys, "get", "8", "--proof", "--data-dir", d, "--json")
    assert code == 0 and out["inclusion"]["size"] == 14 and out["record"]["kind"] == "artifact"  # type: ignore[index]

    code, out, _ = run(capsys, "get", "6", "--reveal", "--data-dir", d, "--json")
    assert out["revealed"]["text"]["value"].startswith("put her")  # type: ignore[index]

    code, out, _ = run(capsys, "prove", "inclusion", "3", "--data-dir", d, "--json")
    assert code == 0 and out["index"] == 3  # type: ignore[index]
    code, out, _ = run(capsys, "prove", "consistency", "0", "14", "--data-dir", d, "--json")
    assert code == 0 and out["new_size"] == 14  # type: ignore[index]

    code, out, _ = run(capsys, "trace", "8", "--data-dir", d, "--json")
    assert code == 0 and 13 in [n["id"] for n in out["nodes"]]  # type: ignore[index]

    code, out, _ = run(capsys, "keys", "--data-dir", d, "--json")
    assert code == 0 and out[0]["vkey"].startswith("custody.test/cli+")  # type: ignore[index]

    code, out, _ = run(capsys, "hold", "place", "subj:u-7f3a", "--case", "c-1", "--data-dir", d, "--json")
    assert code == 0
    code, _, err = run(capsys, "erase", "subj:u-7f3a", "--data-dir", d)
    assert code == 4 and "legal hold" in err
    assert run(capsys, "hold", "release", "subj:u-7f3a", "--case", "c-1", "--data-dir", d)[0] == 0
    code, out, _ = run(capsys, "erase", "subj:u-7f3a", "--data-dir", d, "--json")
    assert code == 0 and out["id"] == 16  # type: ignore[index]

    code, out, _ = run(capsys, "keys", "--rotate", "--data-dir", d, "--json")
    assert code == 0 and len(out) == 2  # type: ignore[arg-type]

    code, out, _ = run(capsys, "migrate", "--data-dir", d, "--json")
    assert code == 0 and out == {"revision": "0005"}

    code, out, _ = run(capsys, "verify", "--data-dir", d, "--json")
    assert code == 0 and out["ok"] and out["entries_checked"] == 17  # type: ignore[index]
    code, out, _ = run(capsys, "verify", "--incremental", "--deep", "--data-dir", d, "--json")
    assert code == 0 and out["entries_checked"] == 0  # type: ignore[index]


@pytest.mark.parametrize("line,code,msg", [
    ('{"kind": "nope", "producer": "p", "produced_at": "2025-01-01T00:00:00Z", "body": {}}', 2, "unknown kind"),
    ('{"kind": "artifact"', 2, "not valid JSON"),
    ('{"a": NaN}', 2, "NaN"),
    ('{"kind": "distribution", "producer": "p", "produced_at": "2025-01-01T00:00:00Z", '
     '"body": {"action": "publish"}, "links": [{"rel": "artifact", "id": 42}]}', 2, "does not exist"),
])
def test_bad_append_exits_nonzero_and_appends_nothing(data_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       line: str, code: int, msg: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(line + "\n")
    before = run(capsys, "prove", "consistency", "0", "--data-dir", str(data_dir), "--json")[1]
    got, _, err = run(capsys, "append", str(f), "--data-dir", str(data_dir))
    assert got == code and msg in err and "Traceback" not in err
    assert run(capsys, "prove", "consistency", "0", "--data-dir", str(data_dir), "--json")[1] == before


def test_bad_requests_are_clear_errors(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(data_dir)
    assert run(capsys, "get", "5", "--data-dir", d)[0] == 3
    code, _, err = run(capsys, "prove", "inclusion", "0", "--size", "10", "--data-dir", d)
    assert code == 2 and "beyond the tree" in err
    code, _, err = run(capsys, "prove", "inclusion", "7", "--data-dir", d)
    assert code == 3 and "does not exist" in err
    code, _, err = run(capsys, "prove", "consistency", "0", "10", "--data-dir", d)
    assert code == 2 and "beyond the tree" in err
    code, _, err = run(capsys, "append", "/nonexistent.jsonl", "--data-dir", d)
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "get", "abc", "--data-dir", d)
    assert code == 2 and "Traceback" not in err
    code, _, err = run(capsys, "verify", "--data-dir", str(data_dir.parent / "missing"))
    assert code == 6 and "custody init" in err
    assert not (data_dir.parent / "missing").exists()  # a typo in --data-dir creates nothing


def test_invalid_utf8_on_stdin_via_subprocess(data_dir: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "api.cli", "append", "-", "--data-dir", str(data_dir)],
                       input=b'{"kind": "\xff"}\n', capture_output=True, timeout=60)
    assert p.returncode == 2 and b"UTF-8" in p.stderr and b"Traceback" not in p.stderr


def test_pipeline_commands(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "pipeline", "check-prompt", "put her in a b1k1ni, make it look real",
                       "--surface", "edit", "--json")
    assert code == 0 and out["action"] == "block"  # type: ignore[index]
    code, out, _ = run(capsys, "pipeline", "check-prompt", "a watercolour of a lighthouse", "--json")
    assert code == 0 and out["action"] == "allow"  # type: ignore[index]
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy_id: [\n")
    code, _, err = run(capsys, "pipeline", "policy", "validate", str(bad))
    assert code == 2 and "invalid YAML" in err
    # custody init made the C2PA chain: mark an image with it
    import cv2
    import numpy as np

    img = tmp_path / "gen.png"
    rng = np.random.default_rng(7)
    cv2.imwrite(str(img), cv2.GaussianBlur(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), (9, 9), 3))
    code, out, err = run(capsys, "pipeline", "mark", str(img), "--out", str(tmp_path / "marked.png"),
                         "--payload", "8", "--key", "00" * 16, "--chain", str(data_dir / "keys" / "c2pa"), "--json")
    assert code == 0, err
    from pipeline.watermark import detect

    found = detect(cv2.imread(str(tmp_path / "marked.png")), bytes(16))
    assert found.found and found.payload == 8
