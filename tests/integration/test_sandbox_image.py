"""The replay image as built by sandbox.image (scripts/test.sh builds it before pytest)."""

from __future__ import annotations

import json

from sandbox.image import LABEL_PREFIX, SANDBOX_UID, WORKER_PACKAGES
from sandbox.runner import DockerRunner, Job
from tests.integration.conftest_docker import docker_client, docker_runner, sandbox_image  # noqa: F401


def test_image_metadata(docker_client, sandbox_image) -> None:
    img = docker_client.images.get(sandbox_image)
    cfg = img.attrs["Config"]
    assert cfg["User"] == f"{SANDBOX_UID}:{SANDBOX_UID}"
    assert cfg["WorkingDir"] == "/out"
    labels = cfg["Labels"]
    assert labels[LABEL_PREFIX] == "1"
    pinned = labels[f"{LABEL_PREFIX}.packages"].split(",")
    assert [p.split("==")[0] for p in pinned] == list(WORKER_PACKAGES)
    assert len(labels[f"{LABEL_PREFIX}.rootfs-sha256"]) == 64


def test_image_contents(docker_runner: DockerRunner) -> None:
    code = r"""
import json, os, shutil, sys
import numpy, cv2, sandbox, pipeline.policy
st = os.stat('/out')
print(json.dumps({'python': sys.version.split()[0], 'prefix': sys.prefix, 'pip': shutil.which('pip'),
  'pip_module': os.path.exists('/opt/custody/bin/pip'), 'out_owner': [st.st_uid, st.st_gid],
  'in_owner': os.stat('/in').st_uid, 'cv2': cv2.__version__, 'numpy': numpy.__version__,
  'lock': open('/opt/custody/requirements.lock').read().split()}))
"""
    res = docker_runner.run(Job(["python3", "-c", code]))
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["python"].startswith("3.11.") and info["prefix"] == "/opt/custody"
    assert info["pip"] is None and info["pip_module"] is False  # no installer left in the image
    assert info["out_owner"] == [SANDBOX_UID, SANDBOX_UID] and info["in_owner"] == 0
    assert any(line.startswith(("custody-ledger", "custody_ledger")) for line in info["lock"])
