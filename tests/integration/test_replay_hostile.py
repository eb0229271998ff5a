"""Hostile code *inside a replay* (issue 4, "Hostile input"): a worker that opens a network connection,
writes outside its output folder, fork-bombs, hogs memory or sleeps past the timeout. Each is contained
by the Docker sandbox, the replay ends with a signed report that says what happened, the host is
unharmed (nothing written outside, no container or volume left, the ledger verifies), and nothing from
the hostile run is quarantined or returned.

The worker's source goes into the sandbox as an input (its SHA-256 is in the report), so the test swaps
in a hostile one; the limits are made small so the test is quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sandbox.replay as replay_mod
from api.sample import sample_incident
from ledger.service import Ledger
from ledger.verify import verify_ledger
from sandbox.runner import Limits, leftover_containers, leftover_volumes
from tests.integration.conftest_docker import docker_client, require_docker, sandbox_image  # noqa: F401

PROMPT = 6  # the sample incident's edit prompt
LIMITS = Limits(memory_mb=96, cpus=1.0, pids=24, timeout_s=6.0)
MARK = "/tmp/custody-hostile-replay-was-here"

RESULT = "import json, os\ndef done(msg):\n    open(os.path.join(os.environ['CUSTODY_OUT'], 'result.json'), 'w').write(json.dumps({'fatal': msg}))\n"
WORKERS = {
    "network": RESULT + (
        "import socket\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=3); done('network: connected')\n"
        "except OSError as e:\n    done('network: ' + type(e).__name__ + ' ' + str(e))\n"),
    "write_outside": RESULT + (
        "errs = []\n"
        "for p in ['/custody-x', '/etc/custody-x', os.path.join(os.environ['CUSTODY_IN'], 'x'), '/usr/x']:\n"
        "    try:\n        open(p, 'w').write('x'); errs.append(p + ': written')\n"
        "    except OSError as e:\n        errs.append(p + ': ' + type(e).__name__)\n"
        f"open('{MARK}', 'w').write('scratch')\n"  # /tmp is the container's own small tmpfs: allowed, gone after
        "done('write_outside: ' + '; '.join(errs))\n"),
    "fork_bomb": RESULT + (
        "import time\nn, err = 0, None\n"
        "while n < 1000:\n"
        "    try:\n        pid = os.fork()\n    except OSError as e:\n        err = e.errno; break\n"
        "    if pid == 0:\n        time.sleep(30); os._exit(0)\n    n += 1\n"
        "done(f'fork_bomb: forked {n} errno {err}')\n"),
    "memory_hog": "chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))\n",
    "sleep": "import time\ntime.sleep(600)\n",
}


@pytest.fixture
def incident(ledger: Ledger) -> Ledger:
    ledger.append(sample_incident())
    ledger.publish()
    return ledger


@pytest.mark.parametrize("what", sorted(WORKERS))
def test_hostile_worker_is_contained_and_reported(what: str, incident: Ledger, settings: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, docker_client: Any,  # noqa: F811
                                                   sandbox_image: str) -> None:  # noqa: F811
    worker = tmp_path / "hostile_worker.py"
    worker.write_text(WORKERS[what])
    monkeypatch.setattr(replay_mod, "WORKER_PATH", worker)
    monkeypatch.setattr(replay_mod, "_limits", lambda n_heavy: LIMITS)
    size = incident.size()

    out = replay_mod.replay(incident, PROMPT, data_dir=settings.data_dir, backend="docker", image=sandbox_image)
    rep = out["report"]
    assert incident.size() == size + 1  # the report, and nothing else
    assert rep["status"] == "failed" and not rep["steps"]
    [failed] = [f for f in rep["findings"] if f["code"] == "worker_failed"]
    run = rep["runner"]
    assert run["backend"] == "docker" and run["isolation"]["network"] == "none"
    if what == "network":
        assert "connected" not in failed["message"] and "network: " in failed["message"]
    elif what == "write_outside":
        assert "written" not in failed["message"] and failed["message"].count("Error") == 4
    elif what == "fork_bomb":
        import errno
        import re

        forked, err = re.search(r"forked (\d+) errno (\w+)", failed["message"]).groups()
        assert int(forked) < LIMITS.pids and err == str(errno.EAGAIN)  # the pids limit stopped it
        assert run["limits"]["pids"] == LIMITS.pids
    elif what == "memory_hog":
        assert run["oom_killed"] is True
    elif what == "sleep":
        assert run["killed_by_timeout"] is True and run["wall_s"] < LIMITS.timeout_s + 10
    # the host is unharmed and nothing leaked
    assert not Path(MARK).exists()
    assert leftover_containers(docker_client) == [] and leftover_volumes(docker_client) == []
    assert not (Path(settings.data_dir) / "quarantine").exists()
    assert verify_ledger(incident.store, incident.keyring.verifiers, incident.config.origin).ok
