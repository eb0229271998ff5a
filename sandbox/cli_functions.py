"""Plain functions behind ``custody sandbox build`` (and ``custody sandbox check``).

They return JSON-ready dicts and raise :class:`sandbox.errors.SandboxError` subclasses (each with
``status`` / ``exit_code`` / ``code``) for the CLI and the API to map in their one error handler.
Nothing here touches the Docker engine at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.image import (
    DEFAULT_CACHE_DIR,
    DEFAULT_TAG,
    WORKER_PACKAGES,
    build_image,
    check_pinned,
    docker_client,
)


def build(tag: str = DEFAULT_TAG, cache_dir: str | Path | None = None, rebuild_rootfs: bool = False,
          mirror: str | None = None, extra_packages: list[str] | None = None,
          log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build the replay image offline (debootstrap rootfs cached under ``cache_dir``, ``docker import``,
    ``docker build`` from a local wheelhouse). Returns its ID — to pin as ``CUSTODY_SANDBOX_IMAGE_DIGEST`` —
    with timings and what was cached. Raises EngineUnavailable (exit 6) or ImageBuildError (exit 7)."""
    packages = tuple(WORKER_PACKAGES) + tuple(extra_packages or ())
    res = build_image(tag=tag, cache_dir=Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR,
                      rebuild_rootfs=rebuild_rootfs, mirror=mirror, packages=packages,
                      log=log or (lambda _: None))
    out = res.to_dict()
    out["pin"] = f"CUSTODY_SANDBOX_IMAGE_DIGEST={res.image_id}"
    return out


def check(image: str = DEFAULT_TAG, pinned: str | None = None, allow_mismatch: bool = False) -> dict[str, Any]:
    """Compare ``image`` with the pinned digest. Raises ImageDigestMismatch (exit 5, HTTP 409) on a
    mismatch unless ``allow_mismatch``; ImageNotFound (exit 3) when the image is missing."""
    return check_pinned(docker_client(), image, pinned, allow_mismatch=allow_mismatch).to_dict()
