"""The hostile set on the process backend (bubblewrap, or unshare + setpriv): weaker, and it says so.

Jobs run as uid 65534 (when the tests run as root), so the interpreter must be one that user can
execute: Debian's /usr/bin/python3 (a pyenv interpreter under /root is neither visible nor executable).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from sandbox.errors import IsolationUnavailable, JobError
from tests.integration.conftest_docker import FORK_LOOP
from sandbox.runner import Job, Limits, ProcessRunner

PY = "/usr/bin/python3"
TOOLS = [t for t in ("bwrap", "unshare") if shutil.which(t) and (t == "bwrap" or os.geteuid() == 0)]

pytestmark = [
    pytest.mark.skipif(not os.path.exists(PY), reason="needs Debian's /usr/bin/python3"),
    pytest.mark.skipif(not TOOLS, reason="neither bubblewrap nor (as root) unshare is available"),
    # with the Docker tests in one xdist worker: a check below looks for the job's processes by user id, which a
    # container's job running at the same time shares (tests/conftest.py)
    pytest.mark.xdist_group("sandbox"),
]


@pytest.fixture(params=TOOLS)
def runner(request: pytest.FixtureRequest) -> ProcessRunner:
    r = ProcessRunner(tool=request.param)
    try:
        res = r.run(Job(["/bin/true"]))
    except IsolationUnavailable as err:  # e.g. user namespaces disabled on this kernel
        pytest.skip(f"{request.param} cannot isolate here: {err}")
    assert res.exit_code == 0
    return r


def py(code: str, **kw) -> Job:
    return Job([PY, "-c", code], **kw)


def out_json(res) -> dict:
    assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
    return json.loads(res.stdout.decode().strip().splitlines()[-1])


def test_inputs_outputs_and_weaker_isolation_reported(runner: ProcessRunner) -> None:
    code = r"""
import json, os, pathlib
i, o = os.environ['CUSTODY_IN'], os.environ['CUSTODY_OUT']
pathlib.Path(o, 'r.bin').write_bytes(pathlib.Path(i, 'd', 'a.bin').read_bytes()[::-1])
print(json.dumps({'uid': os.getuid()}))
"""
    res = runner.run(py(code, inputs={"d/a.bin": b"\x01\x02"}))
    info = out_json(res)
    if os.geteuid() == 0:
        assert info["uid"] == 65534
    assert res.outputs == {"r.bin": b"\x02\x01"}
    assert res.backend == "process" and res.isolation["weaker"] is True
    assert res.isolation["level"] == "namespaces" and res.isolation["tool"] == runner.tool
    assert any("weaker" in n for n in res.notes)


def test_network_connection_fails(runner: ProcessRunner) -> None:
    code = r"""
import json, socket
r = {}
for host, port in [('1.1.1.1', 80), ('127.0.0.1', 5432)]:
    try:
        socket.create_connection((host, port), timeout=3); r[host] = 'connected'
    except OSError as e:
        r[host] = e.errno
print(json.dumps(r))
"""
    r = out_json(runner.run(py(code)))
    assert "connected" not in r.values()  # even the host's loopback services are out of reach
    assert r["1.1.1.1"] == 101


def test_writing_outside_out_fails(runner: ProcessRunner, tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host file")
    victim.chmod(0o666)  # even a world-writable host file
    tmp_path.chmod(0o777)
    code = r"""
import errno, json, os, sys
r = {}
for path in ['/etc/evil', '/usr/evil', os.path.join(os.environ['CUSTODY_IN'], 'a.txt'), sys.argv[1] + '/evil']:
    try:
        with open(path, 'w') as f: f.write('x')
        r[path] = 'written'
    except OSError as e:
        r[path] = errno.errorcode[e.errno]
print(json.dumps(r))
"""
    res = runner.run(Job([PY, "-c", code, str(tmp_path)], inputs={"a.txt": b"evidence"}))
    r = out_json(res)
    assert r["/etc/evil"] in ("EROFS", "EACCES") and r["/usr/evil"] in ("EROFS", "EACCES")
    assert all(v != "written" for k, v in r.items() if not k.startswith(str(tmp_path)))
    if runner.tool == "bwrap":  # bubblewrap binds the host read-only; unshare relies on permissions only
        assert r[str(tmp_path) + "/evil"] in ("EROFS", "ENOENT")
        assert not (tmp_path / "evil").exists()
    assert victim.read_text() == "host file"


def test_fork_loop_hits_the_process_limit(runner: ProcessRunner) -> None:
    code = FORK_LOOP % 20
    res = runner.run(py(code, limits=Limits(pids=24, timeout_s=15)))
    r = out_json(res)
    assert r["errno"] == 11 and r["forked"] < 24
    assert subprocess.run(["true"], check=False, timeout=10).returncode == 0


def test_memory_hog_fails(runner: ProcessRunner) -> None:
    code = "chunks = []\nfor i in range(200):\n    chunks.append(b'\\x01' * (10 << 20))\nprint('survived')"
    res = runner.run(py(code, limits=Limits(memory_mb=128, timeout_s=30)))
    assert b"survived" not in res.stdout and res.exit_code != 0
    assert b"MemoryError" in res.stderr
    assert res.oom_killed is False  # this backend cannot tell an OOM kill; it says so in its notes
    assert any("RLIMIT_AS" in n for n in res.notes)


def test_sleep_past_timeout_is_killed(runner: ProcessRunner) -> None:
    res = runner.run(Job(["sleep", "120"], limits=Limits(timeout_s=1.5)))
    assert res.killed_by_timeout and res.exit_code == 137
    assert 1.0 < res.wall_s < 10
    out = subprocess.run(["pgrep", "-u", "65534", "-f", "sleep 120"], check=False, capture_output=True, text=True)
    assert out.stdout.strip() == ""  # nothing of the job survives the kill


def test_bad_input_names_refused(runner: ProcessRunner) -> None:
    with pytest.raises(JobError):
        runner.run(Job(["/bin/true"], inputs={"../x": b""}))
