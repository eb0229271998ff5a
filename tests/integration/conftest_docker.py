"""Docker fixtures for the sandbox tests (imported by the test modules, not a conftest).

Mirrors tests/conftest.py's PostgreSQL pattern: without an engine that answers, the Docker tests
skip — unless CUSTODY_REQUIRE_DOCKER=1 (as in CI), where they fail. The replay image is taken by tag
(CUSTODY_SANDBOX_IMAGE, default ``custody-sandbox:latest``; scripts/test.sh builds it before pytest) and
built here, from the cached rootfs, when it is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.image import DEFAULT_TAG
from sandbox.runner import DockerRunner, leftover_containers, leftover_volumes

IMAGE = os.environ.get("CUSTODY_SANDBOX_IMAGE", DEFAULT_TAG)
_state: dict[str, Any] = {}


def _required() -> bool:
    return os.environ.get("CUSTODY_REQUIRE_DOCKER") == "1"


def docker_available() -> str | None:
    """None if a Docker engine answers, else why not."""
    if "why" not in _state:
        try:
            import docker

            c = docker.from_env(timeout=10)
            c.ping()
            _state["client"] = c
            _state["why"] = None
        except Exception as err:  # noqa: BLE001 - any failure means "not available"
            _state["why"] = f"{type(err).__name__}: {err}"
    return _state["why"]


def require_docker() -> None:
    why = docker_available()
    if why is None:
        return
    if _required():
        pytest.fail(f"Docker is required (CUSTODY_REQUIRE_DOCKER=1) but no engine answers: {why}")
    pytest.skip(f"no Docker engine ({why}); start dockerd or set DOCKER_HOST")


@pytest.fixture(scope="session")
def docker_client() -> Any:
    require_docker()
    return _state["client"]


@pytest.fixture(scope="session")
def sandbox_image(docker_client: Any) -> str:
    """The replay image's ID (built from the cached rootfs if the tag is missing)."""
    import docker.errors

    try:
        return docker_client.images.get(IMAGE).id
    except docker.errors.ImageNotFound:
        pass
    try:
        from sandbox.image import build_image

        return build_image(docker_client, tag=IMAGE).image_id
    except Exception as err:  # noqa: BLE001
        if _required():
            pytest.fail(f"the sandbox image {IMAGE} is missing and could not be built: {err}")
        pytest.skip(f"the sandbox image {IMAGE} is missing and could not be built: {err}")


@pytest.fixture
def docker_runner(docker_client: Any, sandbox_image: str) -> Iterator[DockerRunner]:
    """A runner on the replay image; afterwards, no sandbox container or volume may be left."""
    yield DockerRunner(sandbox_image, client=docker_client)
    assert leftover_containers(docker_client) == [], "a sandbox container was left behind"
    assert leftover_volumes(docker_client) == [], "a sandbox volume was left behind"


# A hostile job both runners must contain: forks until the pids limit says EAGAIN; children sleep.
FORK_LOOP = r"""
import json, os, time
n, err = 0, None
while n < 1000:
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno; break
    if pid == 0:
        time.sleep(%d); os._exit(0)
    n += 1
print(json.dumps({'forked': n, 'errno': err}))
"""
