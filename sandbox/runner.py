"""Run one job, locked down: the runner interface, a Docker backend and a weaker process backend.

A :class:`Job` is an argv, named input files and limits. The job reads its inputs from ``$CUSTODY_IN``
(``/in``, read-only) and writes results only into ``$CUSTODY_OUT`` (``/out``); everything it writes
there comes back in :attr:`RunResult.outputs`. A job that fails, is killed by the timeout or by the OOM
killer is a *result*, not an exception: exceptions (``sandbox.errors``) mean the engine or the backend
itself failed.

``DockerRunner`` (docker SDK): no network, read-only root, small noexec tmpfs ``/tmp``, all capabilities
dropped, no-new-privileges, seccomp (the engine's default profile unless a profile's JSON text is given),
a non-root user, memory = memory+swap, CPU, pids limits, ulimits (nofile, core 0, fsize), ``init=True``,
private cgroup and IPC namespaces, bounded json-file logs. Inputs go through a never-started *loader*
container that shares two fresh named volumes (``put_archive`` into a read-only container fails); the job
mounts them ``/in`` read-only and ``/out`` read-write. Containers and volumes are removed in ``finally``,
whatever happened.

``ProcessRunner`` (no engine): bubblewrap (Debian's ``bubblewrap``) run as an unprivileged user, with new
user, pid, net, ipc, uts (and cgroup) namespaces, the host's root bound read-only, private ``/tmp``,
``/run``, ``/root``, ``/home``; limits by ``setrlimit`` (RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE,
RLIMIT_CORE). Without bubblewrap, ``unshare`` + ``setpriv`` (no read-only root: only file permissions keep
the job from writing, and no ``/in`` ``/out`` mounts). Both report ``isolation.weaker = True``.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from sandbox.errors import IsolationUnavailable, JobError, RunError, SandboxError, wrap_docker_error

LABEL = "org.custody.sandbox.run"


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 256  # RAM; swap is not allowed on top (memswap = memory)
    cpus: float = 1.0
    pids: int = 64
    timeout_s: float = 30.0  # wall clock, container start included
    tmpfs_mb: int = 16
    nofile: int = 256
    fsize_mb: int = 20  # largest file the job may write
    output_max_bytes: int = 64 << 20  # all of /out together
    log_max_bytes: int = 64 << 10  # per stream, what the result keeps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Job:
    argv: Sequence[str]
    inputs: Mapping[str, bytes | Path] = field(default_factory=dict)  # relative name -> bytes or a host file
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    name: str = "job"


@dataclass
class RunResult:
    backend: str
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    outputs: dict[str, bytes]
    wall_s: float
    killed_by_timeout: bool
    oom_killed: bool
    limits: dict[str, Any]
    isolation: dict[str, Any]
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    outputs_truncated: bool = False
    image_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.killed_by_timeout and not self.oom_killed

    def summary(self) -> dict[str, Any]:
        """JSON-friendly, without the bytes (their sizes instead)."""
        d = asdict(self)
        d["stdout"] = len(self.stdout)
        d["stderr"] = len(self.stderr)
        d["outputs"] = {k: len(v) for k, v in sorted(self.outputs.items())}
        return d


class Runner(Protocol):
    def run(self, job: Job) -> RunResult: ...


# --- helpers -------------------------------------------------------------------------------------

def _check_name(name: str) -> str:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or any(part in ("", ".", "..") for part in p.parts) or "\x00" in name:
        raise JobError(f"bad input name {name!r}: relative path without '.', '..' or NUL required")
    return str(p)


def _input_bytes(v: bytes | Path) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    return Path(v).read_bytes()


def _cap(data: bytes, cap: int) -> tuple[bytes, bool]:
    return (data, False) if len(data) <= cap else (data[:cap], True)


# --- Docker --------------------------------------------------------------------------------------

class DockerRunner:
    """Runs jobs in a locked-down container of ``image`` (tag or ID). See the module doc."""

    backend = "docker"

    def __init__(self, image: str, *, client: Any = None, user: str = "10001:10001",
                 seccomp_profile: str | None = None, runtime: str | None = None) -> None:
        if seccomp_profile is not None:
            try:
                json.loads(seccomp_profile)  # the API wants the JSON text; a bad one fails only at start
            except ValueError as err:
                raise JobError(f"seccomp profile is not JSON text: {err}") from err
        if user.split(":")[0] in ("0", "root", ""):
            raise JobError("refusing to run replay containers as root")
        self.image = image
        self.user = user
        self.seccomp_profile = seccomp_profile
        self.runtime = runtime
        self._client = client
        self._info: dict[str, Any] | None = None
        self._image_id: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from sandbox.image import docker_client

            self._client = docker_client()
        return self._client

    def isolation(self) -> dict[str, Any]:
        if self._info is None:
            try:
                self._info = self.client.info()
            except Exception as err:
                raise wrap_docker_error(err, "docker info") from err
        info = self._info
        sec = " ".join(info.get("SecurityOptions") or [])
        if self.seccomp_profile is not None:
            import hashlib

            seccomp = "custom:sha256:" + hashlib.sha256(self.seccomp_profile.encode()).hexdigest()
        else:
            seccomp = "engine-default" if "seccomp" in sec else "none (engine has no seccomp)"
        return {"level": "container", "weaker": False, "runtime": self.runtime or info.get("DefaultRuntime", "runc"),
                "runtimes_available": sorted((info.get("Runtimes") or {}).keys()), "network": "none",
                "read_only_root": True, "cap_drop": "ALL", "no_new_privileges": True, "seccomp": seccomp,
                "user": self.user, "userns_remap": "name=userns" in sec, "engine": info.get("ServerVersion"),
                "cgroup_version": info.get("CgroupVersion")}

    def _image(self) -> str:
        if self._image_id is None:
            from sandbox.image import image_digest

            self._image_id = image_digest(self.client, self.image)
        return self._image_id

    def _create_kwargs(self, job: Job, in_vol: str, out_vol: str, labels: dict[str, str]) -> dict[str, Any]:
        from docker.types import LogConfig, Ulimit

        lim = job.limits
        sec = ["no-new-privileges:true"]
        if self.seccomp_profile is not None:
            sec.append("seccomp=" + self.seccomp_profile)
        env = {"CUSTODY_IN": "/in", "CUSTODY_OUT": "/out", **dict(job.env)}
        kw: dict[str, Any] = dict(  # noqa: C408 - keyword form mirrors the SDK call
            command=list(job.argv), user=self.user, environment=env, working_dir="/out", labels=labels,
            network_mode="none", read_only=True, hostname="replay",
            tmpfs={"/tmp": f"size={lim.tmpfs_mb}m,mode=1777,noexec,nosuid,nodev"},
            cap_drop=["ALL"], security_opt=sec, ipc_mode="none", cgroupns="private", init=True,
            mem_limit=f"{lim.memory_mb}m", memswap_limit=f"{lim.memory_mb}m", nano_cpus=int(lim.cpus * 1e9),
            pids_limit=lim.pids, oom_kill_disable=False,
            ulimits=[Ulimit(name="nofile", soft=lim.nofile, hard=lim.nofile), Ulimit(name="core", soft=0, hard=0),
                     Ulimit(name="fsize", soft=lim.fsize_mb << 20, hard=lim.fsize_mb << 20)],
            volumes={in_vol: {"bind": "/in", "mode": "ro"}, out_vol: {"bind": "/out", "mode": "rw"}},
            log_config=LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
        )
        if self.runtime:
            kw["runtime"] = self.runtime
        return kw

    def run(self, job: Job) -> RunResult:
        import docker.errors
        import requests.exceptions

        if not job.argv:
            raise JobError("empty argv")
        names = {_check_name(k): v for k, v in job.inputs.items()}
        client = self.client
        isolation = self.isolation()
        image_id = self._image()
        run_id = uuid.uuid4().hex[:12]
        labels = {LABEL: run_id, f"{LABEL}.job": job.name[:100]}
        created: list[Any] = []  # containers, removed in finally
        volumes: list[Any] = []
        timings: dict[str, float] = {}
        notes: list[str] = []
        lim = job.limits
        uid, _, gid = self.user.partition(":")
        result: RunResult | None = None
        t_all = time.monotonic()
        try:
            try:
                t0 = time.monotonic()
                in_vol = client.volumes.create(name=f"custody-in-{run_id}", labels=labels)
                volumes.append(in_vol)
                out_vol = client.volumes.create(name=f"custody-out-{run_id}", labels=labels)
                volumes.append(out_vol)
                loader = client.containers.create(
                    image_id, command=["true"], network_mode="none", labels=labels, user="0:0",
                    volumes={in_vol.name: {"bind": "/in", "mode": "rw"}, out_vol.name: {"bind": "/out", "mode": "rw"}})
                created.append(loader)
                loader.put_archive("/", _inputs_tar(names, int(uid), int(gid or uid)))
                timings["stage_inputs"] = time.monotonic() - t0

                t0 = time.monotonic()
                box = client.containers.create(image_id, **self._create_kwargs(job, in_vol.name, out_vol.name, labels))
                created.append(box)
                timings["create"] = time.monotonic() - t0
                t_start_wall = time.time()
                t0 = time.monotonic()
                box.start()
            except docker.errors.DockerException as err:
                raise wrap_docker_error(err, "preparing the replay container") from err
            except requests.exceptions.RequestException as err:
                raise wrap_docker_error(err, "preparing the replay container") from err

            killed_by_timeout = False
            try:
                box.wait(timeout=max(0.1, lim.timeout_s - (time.monotonic() - t_all)))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as err:
                # wait() reports its timeout as ConnectionError on some stacks: either way, kill. An error
                # well before the deadline is the engine failing, not a timeout.
                if time.monotonic() - t_all < lim.timeout_s - 0.5:
                    raise wrap_docker_error(err, "waiting for the replay container") from err
                killed_by_timeout = True
                try:
                    box.kill()
                except (docker.errors.APIError, requests.exceptions.RequestException):  # it may have exited
                    pass
                try:
                    box.wait(timeout=30)
                except (requests.exceptions.RequestException, docker.errors.DockerException) as err:
                    raise wrap_docker_error(err, "waiting for the killed container") from err
            except docker.errors.DockerException as err:
                raise wrap_docker_error(err, "waiting for the replay container") from err
            wall = time.monotonic() - t0
            timings["run"] = wall

            try:
                t0 = time.monotonic()
                box.reload()
                state = box.attrs["State"]
                exit_code = state.get("ExitCode")
                oom_flag = bool(state.get("OOMKilled"))
                oom_event = False
                if not oom_flag and exit_code == 137 and not killed_by_timeout:
                    # the flag is unreliable on some kernels: look for the engine's "oom" event too
                    for ev in client.events(since=int(t_start_wall) - 1, until=int(time.time()) + 1,
                                            filters={"container": box.id, "event": "oom"}, decode=True):
                        oom_event = True
                        notes.append("OOM seen through the engine's oom event (State.OOMKilled was false)")
                        break
                stdout, so_t = _cap(box.logs(stdout=True, stderr=False), lim.log_max_bytes)
                stderr, se_t = _cap(box.logs(stdout=False, stderr=True), lim.log_max_bytes)
                outputs, out_t = _read_out(box, lim.output_max_bytes, notes)
                timings["collect"] = time.monotonic() - t0
            except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
                raise wrap_docker_error(err, "collecting the replay's results") from err
            if killed_by_timeout:
                notes.append(f"killed after the {lim.timeout_s:g} s wall-clock timeout (exit {exit_code})")
            result = RunResult(backend=self.backend, exit_code=exit_code, stdout=stdout, stderr=stderr,
                             outputs=outputs, wall_s=round(wall, 4), killed_by_timeout=killed_by_timeout,
                             oom_killed=oom_flag or oom_event, limits=lim.to_dict(), isolation=isolation,
                             stdout_truncated=so_t, stderr_truncated=se_t, outputs_truncated=out_t,
                             image_id=image_id, timings={k: round(v, 4) for k, v in timings.items()}, notes=notes)
        finally:
            t0 = time.monotonic()
            failures = _cleanup(created, volumes)
            if result is not None:
                result.timings["cleanup"] = round(time.monotonic() - t0, 4)
            if failures:
                raise RunError("could not remove sandbox objects: " + "; ".join(failures))
        return result


def _inputs_tar(inputs: Mapping[str, bytes | Path], uid: int, gid: int) -> bytes:
    """in/ (root-owned, read-only files) and out/ (owned by the job's user) for put_archive at '/'."""
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name: str, mode: int, owner: int, group: int) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.DIRTYPE, mode, owner, group, now
            tar.addfile(ti)

        add_dir("in", 0o755, 0, 0)
        add_dir("out", 0o755, uid, gid)
        made: set[str] = set()
        for name, value in sorted(inputs.items()):
            parts = PurePosixPath(name).parts
            for i in range(1, len(parts)):
                d = "in/" + "/".join(parts[:i])
                if d not in made:
                    add_dir(d, 0o755, 0, 0)
                    made.add(d)
            data = _input_bytes(value)
            ti = tarfile.TarInfo("in/" + name)
            ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = len(data), 0o444, 0, 0, now
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _read_out(box: Any, cap: int, notes: list[str]) -> tuple[dict[str, bytes], bool]:
    """Regular files under /out, at most ``cap`` bytes in all (the tar stream is read no further)."""
    stream, _ = box.get_archive("/out")
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
        return _read_out_spooled(stream, spool, cap, notes)


def _read_out_spooled(stream: Any, spool: Any, cap: int, notes: list[str]) -> tuple[dict[str, bytes], bool]:
    total, truncated = 0, False
    limit = cap + (1 << 20)  # tar headers on top of the content
    for chunk in stream:
        total += len(chunk)
        if total > limit:
            truncated = True
            break
        spool.write(chunk)
    if truncated:
        close = getattr(stream, "close", None)
        if close:
            close()
        notes.append(f"outputs exceed {cap} bytes: none returned")
        return {}, True
    spool.seek(0)
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=spool, mode="r|") as tar:
        for m in tar:
            rel = m.name.split("/", 1)[1] if "/" in m.name else ""
            if not rel:
                continue
            if m.isfile():
                f = tar.extractfile(m)
                out[rel] = f.read() if f else b""
            elif not m.isdir():
                notes.append(f"ignored non-regular output {rel!r} ({m.type!r})")
    return out, False


def _cleanup(containers: list[Any], volumes: list[Any]) -> list[str]:
    import docker.errors

    failures = []
    for c in reversed(containers):
        for attempt in range(2):
            try:
                c.remove(force=True, v=True)
                break
            except docker.errors.NotFound:
                break
            except Exception as err:  # noqa: BLE001 - retry once, then report
                if attempt:
                    failures.append(f"container {getattr(c, 'id', '?')[:12]}: {err}")
                time.sleep(0.2)
    for v in volumes:
        for attempt in range(2):
            try:
                v.remove(force=True)
                break
            except docker.errors.NotFound:
                break
            except Exception as err:  # noqa: BLE001
                if attempt:
                    failures.append(f"volume {v.name}: {err}")
                time.sleep(0.2)
    return failures


def leftover_containers(client: Any) -> list[str]:
    """IDs of any sandbox container still present (there should never be one)."""
    return [c.id for c in client.containers.list(all=True, filters={"label": LABEL})]


def leftover_volumes(client: Any) -> list[str]:
    return [v.name for v in client.volumes.list(filters={"label": LABEL})]


# --- process backend -----------------------------------------------------------------------------

class ProcessRunner:
    """Namespaces instead of a container: weaker isolation, and the result says so."""

    backend = "process"

    def __init__(self, *, tool: str = "auto", uid: int = 65534, gid: int = 65534) -> None:
        if tool == "auto":
            tool = "bwrap" if shutil.which("bwrap") else "unshare" if shutil.which("unshare") else ""
        if tool not in ("bwrap", "unshare") or not shutil.which(tool):
            raise IsolationUnavailable("no isolation tool: install bubblewrap (apt-get install bubblewrap) "
                                       "or util-linux's unshare")
        if tool == "unshare" and os.geteuid() != 0:
            raise IsolationUnavailable("the unshare backend needs root (bubblewrap does not)")
        self.tool = tool
        self.uid, self.gid = uid, gid

    def isolation(self) -> dict[str, Any]:
        common = {"level": "namespaces", "weaker": True, "tool": self.tool, "network": "none (new net namespace)",
                  "user": f"{self.uid}:{self.gid}" if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}",
                  "seccomp": "none", "cgroup_limits": False,
                  "limits_by": "setrlimit (RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE)"}
        if self.tool == "bwrap":
            return {**common, "read_only_root": True, "namespaces": ["user", "pid", "net", "ipc", "uts", "cgroup"],
                    "hidden": ["/run", "/root", "/home", "/sys", "/tmp (private)"],
                    "caveats": ["the host's other folders (/usr, /etc, /var, /work…) are visible read-only",
                                "/tmp is not noexec",
                                "RLIMIT_NPROC counts every process of the uid on the host"]}
        return {**common, "read_only_root": False, "namespaces": ["pid", "net", "ipc", "uts", "mount"],
                "caveats": ["only file permissions keep the job from writing (world-writable dirs stay writable)",
                            "no /in, /out mounts: use $CUSTODY_IN / $CUSTODY_OUT",
                            "RLIMIT_NPROC counts every process of the uid on the host"]}

    def _argv(self, job: Job, in_dir: Path, out_dir: Path) -> tuple[list[str], dict[str, str]]:
        if self.tool == "bwrap":
            # A fresh root (bwrap's tmpfs) with the host's top-level folders bound read-only into it,
            # except the private ones; /in and /out as mount points; the root remounted read-only last.
            argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
            for entry in sorted(os.listdir("/")):
                src = "/" + entry
                if entry in ("proc", "dev", "sys", "tmp", "run", "root", "home", "in", "out", "lost+found"):
                    continue
                if os.path.islink(src):
                    argv += ["--symlink", os.readlink(src), src]
                elif os.path.isdir(src):
                    argv += ["--ro-bind", src, src]
            argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", "/run", "--dir", "/root",
                     "--dir", "/home"]
            # Code the job is told to import (PYTHONPATH) may live under a hidden folder (a checkout in
            # /tmp, a venv in /root): bind exactly those folders back, read-only.
            for path in dict.fromkeys(job.env.get("PYTHONPATH", "").split(os.pathsep)):
                real = os.path.realpath(path) if path else ""
                if real and os.path.isdir(real) and real.split("/")[1] in ("tmp", "run", "root", "home"):
                    argv += ["--ro-bind", real, real]
            argv += ["--ro-bind", str(in_dir), "/in", "--bind", str(out_dir), "/out",
                     "--remount-ro", "/", "--chdir", "/out", "--cap-drop", "ALL", "--", *job.argv]
            return argv, {"CUSTODY_IN": "/in", "CUSTODY_OUT": "/out"}
        argv = ["unshare", "--net", "--ipc", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
                "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--", *job.argv]
        return argv, {"CUSTODY_IN": str(in_dir), "CUSTODY_OUT": str(out_dir)}

    def run(self, job: Job) -> RunResult:
        if not job.argv:
            raise JobError("empty argv")
        names = {_check_name(k): v for k, v in job.inputs.items()}
        lim = job.limits
        root = os.geteuid() == 0
        work = Path(tempfile.mkdtemp(prefix="custody-proc-"))
        opened: list[Any] = []
        notes: list[str] = ["process backend: weaker isolation than a container (see isolation.caveats)",
                            ("memory is capped by RLIMIT_AS: allocations fail (MemoryError/ENOMEM) rather than "
                             "an OOM kill, so oom_killed is never reported by this backend")]
        try:
            os.chmod(work, 0o711)
            in_dir, out_dir = work / "in", work / "out"
            in_dir.mkdir()
            out_dir.mkdir(mode=0o700)
            for name, value in names.items():
                p = in_dir / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(_input_bytes(value))
                p.chmod(0o444)
            for d in [in_dir, *[p for p in in_dir.rglob("*") if p.is_dir()]]:
                d.chmod(0o755)
            if root:
                os.chown(out_dir, self.uid, self.gid)
            argv, env_extra = self._argv(job, in_dir, out_dir)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": "/tmp",
                   "PYTHONDONTWRITEBYTECODE": "1", **env_extra, **dict(job.env)}
            so_f = tempfile.TemporaryFile(dir=work)  # noqa: SIM115 - closed in finally
            opened.append(so_f)
            se_f = tempfile.TemporaryFile(dir=work)  # noqa: SIM115 - closed in finally
            opened.append(se_f)
            drop = root and self.tool == "bwrap"
            uid, gid = self.uid, self.gid

            def preexec() -> None:  # runs in the child, before exec
                os.setsid()
                mem = lim.memory_mb << 20
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
                resource.setrlimit(resource.RLIMIT_NPROC, (lim.pids, lim.pids))
                resource.setrlimit(resource.RLIMIT_FSIZE, (lim.fsize_mb << 20, lim.fsize_mb << 20))
                resource.setrlimit(resource.RLIMIT_NOFILE, (lim.nofile, lim.nofile))
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                if drop:
                    os.setgroups([])
                    os.setgid(gid)
                    os.setuid(uid)

            t0 = time.monotonic()
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so_f, stderr=se_f, env=env,
                                        cwd=str(out_dir), preexec_fn=preexec,  # noqa: PLW1509 - rlimits + uid drop
                                        close_fds=True)
            except OSError as err:
                raise IsolationUnavailable(f"could not start {self.tool}: {err}") from err
            killed = False
            try:
                proc.wait(timeout=lim.timeout_s)
            except subprocess.TimeoutExpired:
                killed = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            wall = time.monotonic() - t0
            code = proc.returncode
            exit_code = 128 - code if code is not None and code < 0 else code
            so_f.seek(0)
            se_f.seek(0)
            stdout = so_f.read(lim.log_max_bytes + 1)
            stderr = se_f.read(lim.log_max_bytes + 1)
            stdout, so_t = _cap(stdout, lim.log_max_bytes)
            stderr, se_t = _cap(stderr, lim.log_max_bytes)
            if self.tool == "bwrap" and exit_code == 1 and b"bwrap:" in stderr[:300]:
                raise IsolationUnavailable(f"bubblewrap refused to set up the sandbox: {stderr[:300]!r}")
            outputs, out_t = _read_dir(out_dir, lim.output_max_bytes, notes)
            if killed:
                notes.append(f"killed after the {lim.timeout_s:g} s wall-clock timeout")
            return RunResult(backend=self.backend, exit_code=exit_code, stdout=stdout, stderr=stderr,
                             outputs=outputs, wall_s=round(wall, 4), killed_by_timeout=killed, oom_killed=False,
                             limits=lim.to_dict(), isolation=self.isolation(), stdout_truncated=so_t,
                             stderr_truncated=se_t, outputs_truncated=out_t, timings={"run": round(wall, 4)},
                             notes=notes)
        except SandboxError:
            raise
        except OSError as err:
            raise RunError(f"process backend failed: {err}") from err
        finally:
            for f in opened:
                f.close()
            shutil.rmtree(work, ignore_errors=True)


def _read_dir(out_dir: Path, cap: int, notes: list[str]) -> tuple[dict[str, bytes], bool]:
    out: dict[str, bytes] = {}
    total = 0
    for p in sorted(out_dir.rglob("*")):
        rel = p.relative_to(out_dir).as_posix()
        if p.is_symlink() or (not p.is_file() and not p.is_dir()):
            notes.append(f"ignored non-regular output {rel!r}")
            continue
        if p.is_file():
            total += p.stat().st_size
            if total > cap:
                notes.append(f"outputs exceed {cap} bytes: none returned")
                return {}, True
            out[rel] = p.read_bytes()
    return out, False


__all__ = [
    "LABEL",
    "DockerRunner",
    "Job",
    "Limits",
    "ProcessRunner",
    "RunResult",
    "Runner",
    "leftover_containers",
    "leftover_volumes",
]
