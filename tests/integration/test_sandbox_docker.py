"""Hostile jobs inside the Docker sandbox: each is contained, reported, and leaves nothing behind.

Skips without a Docker engine unless CUSTODY_REQUIRE_DOCKER=1 (CI), see conftest_docker.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from sandbox.errors import EngineUnavailable, ImageDigestMismatch, ImageNotFound, JobError
from sandbox.image import check_pinned
from sandbox.runner import DockerRunner, Job, Limits, leftover_containers, leftover_volumes
from tests.integration.conftest_docker import FORK_LOOP, docker_client, docker_runner, sandbox_image  # noqa: F401

PY = "python3"


def py(code: str, **kw) -> Job:
    return Job([PY, "-c", code], **kw)


def out_json(res) -> dict:
    assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
    return json.loads(res.stdout.decode().strip().splitlines()[-1])


def host_unharmed() -> None:
    assert subprocess.run(["true"], check=False, timeout=10).returncode == 0  # the host can still fork and exec


def test_lockdown_baseline_inputs_outputs(docker_runner: DockerRunner) -> None:
    code = r"""
import json, os, pathlib
st = dict(l.split(':\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\t' in l)
pathlib.Path('/out/sub').mkdir()
pathlib.Path('/out/sub/r.bin').write_bytes(open('/in/dir/a.bin', 'rb').read()[::-1])
print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'capeff': st['CapEff'].strip(),
  'nnp': st['NoNewPrivs'].strip(), 'seccomp': st['Seccomp'].strip(), 'ifaces': sorted(os.listdir('/sys/class/net')),
  'in': sorted(os.listdir('/in')), 'env': [os.environ['CUSTODY_IN'], os.environ['CUSTODY_OUT']]}))
"""
    res = docker_runner.run(py(code, inputs={"dir/a.bin": b"\x01\x02\x03", "b.txt": b"b"}))
    info = out_json(res)
    assert info["uid"] == 10001 and info["gid"] == 10001
    assert info["capeff"] == "0000000000000000"
    assert info["nnp"] == "1" and info["seccomp"] == "2"
    assert info["ifaces"] == ["lo"]
    assert info["in"] == ["b.txt", "dir"] and info["env"] == ["/in", "/out"]
    assert res.outputs == {"sub/r.bin": b"\x03\x02\x01"}
    assert not res.killed_by_timeout and not res.oom_killed and res.ok
    iso = res.isolation
    assert iso["level"] == "container" and iso["weaker"] is False and iso["network"] == "none"
    assert iso["seccomp"] == "engine-default" and iso["user"] == "10001:10001"
    assert res.limits["memory_mb"] == 256 and res.limits["pids"] == 64
    assert res.image_id and res.image_id.startswith("sha256:")


def test_network_connection_fails(docker_runner: DockerRunner) -> None:
    code = r"""
import json, socket
r = {}
for host, port in [('1.1.1.1', 80), ('172.17.0.1', 2375), ('10.0.0.1', 443)]:
    try:
        socket.create_connection((host, port), timeout=3); r[host] = 'connected'
    except OSError as e:
        r[host] = e.errno
try:
    socket.getaddrinfo('deb.debian.org', 80); r['dns'] = 'resolved'
except OSError as e:
    r['dns'] = 'failed'
print(json.dumps(r))
"""
    r = out_json(docker_runner.run(py(code)))
    assert "connected" not in r.values() and r["dns"] == "failed"
    assert r["1.1.1.1"] == 101  # ENETUNREACH: there is no route, only lo


def test_writing_outside_out_fails(docker_runner: DockerRunner) -> None:
    code = r"""
import errno, json, os, subprocess
r = {}
for path in ['/etc/evil', '/evil', '/in/a.txt', '/in/new', '/opt/custody/evil', '/var/tmp/evil', '/dev/shm/evil']:
    try:
        with open(path, 'w') as f: f.write('x')
        r[path] = 'written'
    except OSError as e:
        r[path] = errno.errorcode[e.errno]
# /tmp is writable scratch, but noexec and small
with open('/tmp/x.sh', 'w') as f: f.write('#!/bin/sh\necho ran\n')
os.chmod('/tmp/x.sh', 0o755)
try:
    subprocess.run(['/tmp/x.sh'], check=True); r['exec_tmp'] = 'ran'
except OSError as e:
    r['exec_tmp'] = errno.errorcode[e.errno]
try:
    with open('/tmp/big', 'wb') as f:
        for _ in range(64): f.write(b'\0' * (1 << 20))
    r['fill_tmp'] = 'written'
except OSError as e:
    r['fill_tmp'] = errno.errorcode[e.errno]
os.remove('/tmp/big')
open('/out/ok', 'w').write('fine')
print(json.dumps(r))
"""
    res = docker_runner.run(py(code, inputs={"a.txt": b"evidence"}))
    r = out_json(res)
    assert "written" not in r.values() and r["exec_tmp"] != "ran"
    assert r["/etc/evil"] == "EROFS" and r["/evil"] == "EROFS" and r["/opt/custody/evil"] == "EROFS"
    assert r["/in/a.txt"] in ("EROFS", "EACCES") and r["/in/new"] in ("EROFS", "EACCES")
    assert r["exec_tmp"] == "EACCES" and r["fill_tmp"] == "ENOSPC"
    assert res.outputs == {"ok": b"fine"}


def test_fork_loop_hits_pids_limit(docker_runner: DockerRunner) -> None:
    code = FORK_LOOP % 30
    res = docker_runner.run(py(code, limits=Limits(pids=32, timeout_s=20)))
    r = out_json(res)
    assert r["errno"] == 11  # EAGAIN from the pids cgroup
    assert r["forked"] < 32
    assert not res.killed_by_timeout  # the loop stopped itself; its sleeping children died with the container
    host_unharmed()


def test_shell_fork_bomb_is_contained_and_killed(docker_runner: DockerRunner) -> None:
    res = docker_runner.run(Job(["bash", "-c", ":(){ :|:& };:; sleep 60"], limits=Limits(pids=32, timeout_s=4)))
    assert res.killed_by_timeout and res.exit_code == 137 and not res.oom_killed
    assert res.wall_s < 15
    host_unharmed()


def test_memory_hog_is_oom_killed(docker_runner: DockerRunner) -> None:
    code = r"""
chunks = []
for i in range(200):
    chunks.append(b'\x01' * (10 << 20))  # touched pages, 10 MiB at a time
    print(i, flush=True)
print('survived')
"""
    res = docker_runner.run(py(code, limits=Limits(memory_mb=64, timeout_s=30)))
    assert b"survived" not in res.stdout
    assert res.oom_killed, (res.exit_code, res.notes, res.stderr)
    assert res.exit_code == 137 and not res.killed_by_timeout
    host_unharmed()


def test_sleep_past_timeout_is_killed_and_reported(docker_runner: DockerRunner) -> None:
    res = docker_runner.run(Job(["sleep", "120"], limits=Limits(timeout_s=2)))
    assert res.killed_by_timeout and not res.oom_killed and res.exit_code == 137
    assert 1.5 < res.wall_s < 15
    assert any("timeout" in n for n in res.notes)


def test_logs_and_outputs_are_capped(docker_runner: DockerRunner) -> None:
    code = "import sys; sys.stdout.write('x' * 300000); open('/out/big', 'wb').write(b'y' * 3000000)"
    res = docker_runner.run(py(code, limits=Limits(log_max_bytes=1000, output_max_bytes=100000)))
    assert res.exit_code == 0
    assert res.stdout_truncated and len(res.stdout) == 1000
    assert res.outputs_truncated and res.outputs == {}


def test_fsize_ulimit_stops_a_huge_output(docker_runner: DockerRunner) -> None:
    code = r"""
import errno, json, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
try:
    with open('/out/huge', 'wb') as f:
        for _ in range(10): f.write(b'\0' * (1 << 20))
    r = 'written'
except OSError as e:
    r = errno.errorcode[e.errno]
print(json.dumps({'r': r}))
"""
    res = docker_runner.run(py(code, limits=Limits(fsize_mb=2)))
    assert out_json(res)["r"] == "EFBIG"


def test_custom_seccomp_profile_as_json_text(docker_client, sandbox_image) -> None:
    profile = json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]})
    runner = DockerRunner(sandbox_image, client=docker_client, seccomp_profile=profile)
    code = "import os, errno\ntry:\n os.mkdir('/out/d'); print('made')\nexcept OSError as e:\n print(errno.errorcode[e.errno])"
    res = runner.run(py(code))
    assert res.stdout.strip() == b"EPERM"
    assert res.isolation["seccomp"].startswith("custom:sha256:")
    assert leftover_containers(docker_client) == [] and leftover_volumes(docker_client) == []


def test_bad_inputs_and_options_are_refused(docker_runner: DockerRunner) -> None:
    for bad in ["../x", "/etc/passwd", "a/../../b", ""]:
        with pytest.raises(JobError):
            docker_runner.run(Job(["true"], inputs={bad: b"x"}))
    with pytest.raises(JobError):
        DockerRunner("x", seccomp_profile="{not json")
    with pytest.raises(JobError):
        DockerRunner("x", user="0:0")


def test_unknown_image_raises_and_leaves_nothing(docker_client) -> None:
    runner = DockerRunner("custody-no-such-image:never", client=docker_client)
    with pytest.raises(ImageNotFound) as exc:
        runner.run(Job(["true"]))
    assert exc.value.status == 404 and exc.value.code == "sandbox_image_not_found"
    assert leftover_containers(docker_client) == [] and leftover_volumes(docker_client) == []


def test_pinned_digest(docker_client, sandbox_image) -> None:
    ok = check_pinned(docker_client, sandbox_image, sandbox_image)
    assert ok.matches is True and ok.image_id == sandbox_image
    assert check_pinned(docker_client, sandbox_image, sandbox_image.removeprefix("sha256:")).matches is True
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ImageDigestMismatch) as exc:
        check_pinned(docker_client, sandbox_image, wrong)
    assert exc.value.expected == wrong and exc.value.actual == sandbox_image and exc.value.status == 409
    allowed = check_pinned(docker_client, sandbox_image, wrong, allow_mismatch=True)
    assert allowed.matches is False and allowed.allowed_mismatch is True
    assert check_pinned(docker_client, sandbox_image, None).matches is None


def test_unreachable_engine_is_wrapped(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    with pytest.raises(EngineUnavailable) as exc:
        DockerRunner("custody-sandbox:latest").run(Job(["true"]))
    assert exc.value.status == 503 and exc.value.code == "sandbox_engine_unavailable"


def test_nothing_left_behind_after_the_hostile_set(docker_client) -> None:
    assert leftover_containers(docker_client) == []
    assert leftover_volumes(docker_client) == []
    assert os.path.exists("/proc/self")  # and this process is still here
