"""The sandbox's errors: part of Custody's one exception tree (``ledger.errors.CustodyError``).

Foreign errors (the ``docker`` SDK's, ``requests``', ``subprocess``') are wrapped here, with the
same ``status`` / ``exit_code`` / ``code`` attributes the API and the CLI map in one place.
"""

from __future__ import annotations

from ledger.errors import CustodyError, VerificationError


class SandboxError(CustodyError):
    """Base of every sandbox error."""

    status = 500
    exit_code = 7
    code = "sandbox_error"


class EngineUnavailable(SandboxError):
    """No Docker engine answers (or the isolation tool a backend needs is missing)."""

    status = 503
    exit_code = 6
    code = "sandbox_engine_unavailable"


class IsolationUnavailable(EngineUnavailable):
    """The process backend cannot isolate here (no bubblewrap / unshare, or namespaces refused)."""

    code = "sandbox_isolation_unavailable"


class ImageNotFound(SandboxError):
    status = 404
    exit_code = 3
    code = "sandbox_image_not_found"


class ImageBuildError(SandboxError):
    """debootstrap, import, wheelhouse or ``docker build`` failed; ``log`` holds the tail of its output."""

    code = "sandbox_image_build_failed"

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message + (f"\n--- log tail ---\n{log[-4000:]}" if log else ""))
        self.log = log


class ImageDigestMismatch(VerificationError):
    """The image's digest is not the pinned one (refused unless the caller says otherwise)."""

    status = 409
    code = "sandbox_image_digest_mismatch"

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class JobError(SandboxError):
    """The job itself is malformed (bad input names, outputs too big)."""

    status = 400
    exit_code = 2
    code = "sandbox_bad_job"


class RunError(SandboxError):
    """The engine failed while running a job (not the job's own failure: that is a RunResult)."""

    code = "sandbox_run_failed"


def wrap_docker_error(err: BaseException, doing: str) -> SandboxError:
    """Map a docker SDK / requests error to ours. ``doing`` says what we were doing, for the message."""
    try:
        import docker.errors as de
    except ImportError:  # pragma: no cover - docker is a dependency
        de = None  # type: ignore[assignment]
    import requests.exceptions as rq

    msg = f"{doing}: {type(err).__name__}: {err}"
    if de is not None:
        if isinstance(err, de.ImageNotFound):
            return ImageNotFound(msg)
        if isinstance(err, de.BuildError):
            log = "".join(str(c.get("stream", c.get("error", ""))) for c in (err.build_log or []) if isinstance(c, dict))
            return ImageBuildError(msg, log)
        if isinstance(err, de.DockerException) and not isinstance(err, de.APIError):
            # DockerException without an HTTP response: typically "Error while fetching server API version"
            return EngineUnavailable(msg)
        if isinstance(err, de.APIError):
            return RunError(msg)
    if isinstance(err, (rq.ConnectionError, rq.Timeout, ConnectionError, FileNotFoundError)):
        return EngineUnavailable(msg)
    return RunError(msg)
