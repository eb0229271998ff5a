"""Run ``tests/interop/gocheck`` (Go's x/mod note and tlog) from Python tests.

The Go program is compiled once into a cache directory keyed by a hash of its source, the Go
version and the x/mod sources, so a test session pays for at most one ``go build`` (a few
seconds the first time, nothing afterwards). Checks are sent as one JSON array per call so
thousands of proofs cost a single process start.

Toolchain lookup: ``go`` on PATH (or ``$CUSTODY_GO``), and a GOPATH holding
``src/golang.org/x/mod/sumdb/{note,tlog}``: ``$CUSTODY_GOPATH`` if set, else Debian's
``/usr/share/gocode`` (package golang-golang-x-mod-dev), else ``go env GOPATH``. The build
runs in GOPATH mode (``GO111MODULE=off``) so it needs no network and no go.mod.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("gocheck") / "main.go"
_XMOD = Path("src/golang.org/x/mod/sumdb")
_DEBIAN_GOPATH = Path("/usr/share/gocode")


class GoUnavailable(Exception):
    """The Go toolchain or the x/mod sources are not installed (a reason to skip, not a bug)."""


class GoCheckError(Exception):
    """gocheck failed to build or to run: a real problem with the harness, never skipped."""


def _go_binary() -> str:
    go = os.environ.get("CUSTODY_GO") or shutil.which("go")
    if not go:
        raise GoUnavailable("the Go toolchain ('go') is not on PATH (Debian: apt-get install golang-go)")
    return go


def _gopath(go: str) -> Path:
    candidates: list[Path] = []
    if os.environ.get("CUSTODY_GOPATH"):
        candidates.append(Path(os.environ["CUSTODY_GOPATH"]))
    candidates.append(_DEBIAN_GOPATH)
    try:
        out = subprocess.run([go, "env", "GOPATH"], capture_output=True, text=True, timeout=60, check=True)
        candidates += [Path(p) for p in out.stdout.strip().split(os.pathsep) if p]
    except (OSError, subprocess.SubprocessError):
        pass
    for gp in candidates:
        if (gp / _XMOD / "note" / "note.go").is_file() and (gp / _XMOD / "tlog" / "tlog.go").is_file():
            return gp
    raise GoUnavailable(
        "golang.org/x/mod/sumdb sources not found in any GOPATH "
        f"({', '.join(map(str, candidates))}); Debian: apt-get install golang-golang-x-mod-dev, "
        "or set CUSTODY_GOPATH"
    )


def _cache_key(go: str, gopath: Path) -> str:
    h = hashlib.sha256(SOURCE.read_bytes())
    try:
        h.update(subprocess.run([go, "version"], capture_output=True, timeout=60).stdout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GoUnavailable(f"'{go} version' failed: {exc}") from exc
    for pkg in ("note", "tlog"):
        for f in sorted((gopath / _XMOD / pkg).glob("*.go")):
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:24]


def _cache_root() -> Path:
    """A per-user cache directory in the temp dir that nobody else can write (we run what is in it)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = Path(tempfile.gettempdir()) / f"custody-gocheck-{uid}"
    root.mkdir(mode=0o700, exist_ok=True)
    st = root.lstat()
    if root.is_symlink() or st.st_uid != uid or st.st_mode & 0o022:
        raise GoCheckError(f"{root} is not a private directory of this user; remove it and retry")
    return root


def build_gocheck() -> Path:
    """Return the path of a compiled gocheck, building it if the cache has none for this source."""
    go = _go_binary()
    gopath = _gopath(go)
    root = _cache_root()
    out_dir = root / _cache_key(go, gopath)
    binary = out_dir / "gocheck"
    if binary.is_file():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",
        GOPATH=str(gopath),
        GOCACHE=str(root / "gocache"),
        GOFLAGS="",
        CGO_ENABLED="0",
        GOTOOLCHAIN="local",
    )
    # Build to a private name and rename, so concurrent sessions never run a half-written file.
    tmp = out_dir / f".gocheck.{os.getpid()}.tmp"
    proc = subprocess.run(
        [go, "build", "-o", str(tmp), str(SOURCE.name)],
        cwd=SOURCE.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise GoCheckError(f"go build of {SOURCE} failed:\n{proc.stderr}{proc.stdout}")
    os.replace(tmp, binary)
    return binary


def run_checks(binary: Path, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send ``checks`` to gocheck in one process; return its results in the same order."""
    proc = subprocess.run(
        [str(binary)],
        input=json.dumps(checks),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
    )
    if proc.returncode != 0:
        raise GoCheckError(f"gocheck exited {proc.returncode}: {proc.stderr}")
    results = json.loads(proc.stdout)
    if len(results) != len(checks):
        raise GoCheckError(f"gocheck answered {len(results)} results for {len(checks)} checks")
    return results
