"""Appends over HTTP under load (issue 5), against a no-op FastAPI peer in the same run.

On demand, not a test. One command:

    python bench/bench_http.py [--repeat 3] [--duration 10] [--database-url postgresql+psycopg://...]
    python bench/bench_http.py bundle [--repeat 3]       # only the 1,000-record bundle export + verify

What it does, per backend (SQLite on embedded defaults; PostgreSQL too with ``--database-url``):

1. creates a fresh ledger (``custody init`` in a temp folder; SQLite WAL + synchronous=FULL, or a
   fresh database ``custody_bench_http`` on the given server, synchronous_commit=on) and a
   service token (``custody token create``);
2. starts ``custody serve`` (uvicorn, one worker) and the no-op peer (``bench/noop_app.py``: one
   POST endpoint that reads and JSON-parses the body, served with the same uvicorn options) on
   free local ports;
3. runs ``wrk`` (Debian's package; installed with apt-get when missing and running as root) with
   16 connections and 2 threads for each configuration, ``--repeat`` times, alternating the order
   of the configurations between repeats: the no-op peer with a one-record body, single-record
   appends, the no-op peer with a 100-record body, batches of 100. ``bench/wrk_records.lua``
   makes every record distinct and prints wrk's latency percentiles in its ``done`` hook;
4. reads the ledger size before and after each append run (records really appended; every
   acknowledged record must be there, so appended ≥ 2xx responses × batch), refuses any run with
   a non-2xx answer or socket error, and verifies the whole ledger at the end (``custody verify
   --json``, full);
5. records ``/proc/loadavg`` before and after every run, prints a Markdown table (medians over
   the repeats, with min–max) and writes the raw figures as JSON.

The bundle part builds a 1,000-record case (a principal, then prompts with sealed text,
generations and artifacts linked into one chain) and times ``ledger.evidence.record_export``
and the offline ``verify_bundle``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "wrk_records.lua"
PG_DB = "custody_bench_http"
CUSTODY = [sys.executable, "-c", "import sys; from api.cli import main; sys.argv[0] = 'custody'; sys.exit(main())"]


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0:3].__str__().replace("'", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL, check=False)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], stdout=subprocess.DEVNULL, check=False)
        found = shutil.which("wrk")
    if not found:
        sys.exit("this benchmark needs wrk: install Debian's package (sudo apt-get install wrk)")
    return found


def custody(args: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(CUSTODY + args, env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"custody {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def fresh_pg(url: str) -> str:
    """Drop and re-create the benchmark's own database on the server ``url`` names; its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {PG_DB}")
    return u.set(database=PG_DB).render_as_string(hide_password=False)


class Server:
    """A child process serving HTTP on ``port``; its output goes to a log file."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str], log: Path, probe: str) -> None:
        self.port, self.log, self.probe = port, log, probe
        self._fh = open(log, "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._fh, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.probe}", timeout=2).read()
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not answer within {timeout}s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()


def run_wrk(wrk: str, url: str, *, batch: int, token: str, run: int, duration: float, connections: int,
            threads: int) -> dict[str, Any]:
    path = "/" + url.split("/", 3)[3]
    env = {**os.environ, "BENCH_PATH": path, "BENCH_BATCH": str(batch), "BENCH_TOKEN": token, "BENCH_RUN": str(run)}
    before = loadavg()
    out = subprocess.run([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s", "--timeout", "30s",
                          "-s", str(LUA), url], env=env, capture_output=True, text=True)
    after = loadavg()
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()}")
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{out.stdout}")
    r: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    r["req_per_s"] = r["requests"] / (r["duration_us"] / 1e6)
    r["loadavg_before"], r["loadavg_after"] = before, after
    r["batch"] = batch
    errors = sum(r[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_status", "errors_timeout"))
    if errors:
        raise RuntimeError(f"wrk saw {errors} failed requests (non-2xx or socket errors): {r}\n{out.stdout}")
    return r


def ledger_size(env: dict[str, str], data_dir: Path) -> int:
    code = ("import sys; from api.settings import Settings; from api.composition import open_ledger; "
            "L = open_ledger(Settings.from_env()); print(L.size()); L.store.close()")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"could not read the ledger size: {out.stderr}")
    return int(out.stdout.strip())


def bench_backend(name: str, database_url: str | None, args: argparse.Namespace, wrk: str,
                  workdir: Path) -> dict[str, Any]:
    data = workdir / f"ledger-{name}"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "CUSTODY_DATA_DIR": str(data), "PYTHONPATH": str(ROOT),
           "CUSTODY_API_LOOP": args.loop, "CUSTODY_API_HTTP": args.http}
    env.pop("CUSTODY_DATABASE_URL", None)
    if database_url:
        env["CUSTODY_DATABASE_URL"] = fresh_pg(database_url)
    custody(["init", "--origin", "bench.example/http"], env)
    token = json.loads(custody(["token", "create", "--role", "service", "--name", "bench", "--json"], env))["token"]

    ports = {"custody": free_port(), "noop": free_port()}
    servers = {
        "custody": Server(CUSTODY + ["serve", "--port", str(ports["custody"])], ports["custody"], env,
                          workdir / f"serve-{name}.log", "/openapi.json"),
        "noop": Server([sys.executable, str(ROOT / "bench" / "noop_app.py"), str(ports["noop"])], ports["noop"], env,
                       workdir / f"noop-{name}.log", "/openapi.json"),
    }
    configs = [("noop", 1), ("custody", 1), ("noop", args.batch), ("custody", args.batch)]
    runs: dict[str, list[dict[str, Any]]] = {f"{s}-{b}": [] for s, b in configs}
    run_no = 0
    try:
        for s in servers.values():
            s.wait_ready()
        urls = {"custody": f"http://127.0.0.1:{ports['custody']}/v1/records",
                "noop": f"http://127.0.0.1:{ports['noop']}/noop"}
        # Warm-up (imports, pools, caches), not reported.
        for server, batch in configs:
            run_no += 1
            run_wrk(wrk, urls[server], batch=batch, token=token, run=run_no, duration=2, connections=args.connections,
                    threads=args.threads)
        for rep in range(args.repeat):
            order = configs if rep % 2 == 0 else configs[::-1]
            for server, batch in order:
                run_no += 1
                size0 = ledger_size(env, data) if server == "custody" else 0
                r = run_wrk(wrk, urls[server], batch=batch, token=token, run=run_no, duration=args.duration,
                            connections=args.connections, threads=args.threads)
                r["records_per_s"] = r["req_per_s"] * batch
                if server == "custody":
                    appended = ledger_size(env, data) - size0
                    acked = r["requests"] * batch
                    # Requests in flight when wrk stops may be appended without being counted.
                    if not acked <= appended <= acked + args.connections * batch:
                        raise RuntimeError(f"{acked} records acknowledged but the ledger grew by {appended}")
                    r["appended"] = appended
                r["repeat"] = rep
                runs[f"{server}-{batch}"].append(r)
                print(f"  [{name}] repeat {rep + 1} {server:7s} batch {batch:3d}: {r['req_per_s']:8.0f} req/s "
                      f"{r['records_per_s']:8.0f} records/s  p50 {r['p50_us'] / 1000:6.1f} ms  "
                      f"p99 {r['p99_us'] / 1000:6.1f} ms  load {r['loadavg_before']} → {r['loadavg_after']}",
                      flush=True)
    finally:
        for s in servers.values():
            s.stop()
    verify = json.loads(custody(["verify", "--json"], env))
    if not verify.get("ok"):
        raise RuntimeError(f"the ledger does not verify after the run: {verify}")
    return {"backend": name, "runs": runs, "verify": {k: verify.get(k) for k in ("ok", "size", "entries_checked")}}


def _med(rs: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
    vals = [r[key] for r in rs]
    return statistics.median(vals), min(vals), max(vals)


def table(result: dict[str, Any], batch: int) -> str:
    runs = result["runs"]
    n1 = _med(runs["noop-1"], "req_per_s")[0]
    lines = [f"**{result['backend']}** (medians of {len(runs['custody-1'])} repeats; min–max in brackets; "
             f"ledger verified after the run: {result['verify']['ok']}, {result['verify']['size']} records)", "",
             "| configuration | requests/s | records/s | p50 ms | p99 ms | vs no-op (1 record) | load avg (1 min) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for key, label in (("noop-1", "no-op POST, 1-record body"), ("custody-1", "append, single record"),
                       (f"noop-{batch}", f"no-op POST, {batch}-record body"),
                       (f"custody-{batch}", f"append, batches of {batch}")):
        rs = runs[key]
        med, lo, hi = _med(rs, "req_per_s")
        rec = _med(rs, "records_per_s")
        loads = sorted({r["loadavg_before"].strip("[]").split(",")[0] for r in rs}
                       | {r["loadavg_after"].strip("[]").split(",")[0] for r in rs}, key=float)
        lines.append(f"| {label} | {med:,.0f} ({lo:,.0f}–{hi:,.0f}) | {rec[0]:,.0f} | "
                     f"{_med(rs, 'p50_us')[0] / 1000:.1f} | {_med(rs, 'p99_us')[0] / 1000:.1f} | "
                     f"{med / n1:.2f}× | {loads[0]}–{loads[-1]} |")
    ratios = [c["req_per_s"] / n["req_per_s"] for c, n in zip(runs["custody-1"], runs["noop-1"], strict=True)]
    lines += ["", f"single-record appends ÷ no-op, per repeat: {', '.join(f'{x:.2f}×' for x in ratios)} "
                  f"(median {statistics.median(ratios):.2f}×; target ≥ 0.7×); batches of {batch}: "
                  f"{_med(runs[f'custody-{batch}'], 'records_per_s')[0]:,.0f} records/s (target ≥ 30,000)"]
    return "\n".join(lines)


# --- bundle export and offline verify --------------------------------------------------------------


def bench_bundle(repeat: int, workdir: Path, n: int = 1000) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from api.composition import init_ledger
    from api.settings import Settings
    from ledger.evidence import record_export, verify_bundle

    data = workdir / "ledger-bundle"
    shutil.rmtree(data, ignore_errors=True)
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data}/ledger.db", key_dir=data / "keys")
    ledger = init_ledger(settings, origin="bench.example/bundle")
    t = "2026-11-25T12:00:00Z"
    recs: list[dict[str, Any]] = [{"kind": "principal", "producer": "svc:accounts", "produced_at": t,
                                   "subject": "subj:bench", "body": {"pseudonym": "u-bench", "principal_type": "user"}}]
    while len(recs) < n:
        k = len(recs)
        recs.append({"kind": "prompt", "producer": "svc:imagine", "produced_at": t, "subject": "subj:bench",
                     "links": [{"rel": "principal", "batch": 0}], "body": {"surface": "imagine"},
                     "sensitive": {"text": f"prompt number {k}"}})
        if len(recs) < n:
            recs.append({"kind": "generation", "producer": "svc:imagine", "produced_at": t,
                         "links": [{"rel": "prompt", "batch": k}],
                         "body": {"surface": "imagine", "parameters": {"steps": 30}, "seed": k}})
        if len(recs) < n:
            recs.append({"kind": "artifact", "producer": "svc:imagine", "produced_at": t,
                         "links": [{"rel": "generation", "batch": k + 1}],
                         "body": {"sha256": f"{k:064x}", "media_type": "image/png", "size": k,
                                  "storage_ref": f"blob://bench/{k}"}})
    ledger.append(recs, publish=True)
    vkeys = [ledger.keyring.active.vkey]
    out: list[dict[str, Any]] = []
    for rep in range(repeat):
        load = loadavg()
        t0 = time.perf_counter()
        bundle, _receipt = record_export(ledger, f"case-bench-{rep}", [0], actor="bench", role="legal",
                                         purpose="benchmark", data_dir=data)
        t1 = time.perf_counter()
        report = verify_bundle(bundle.data, vkeys)
        t2 = time.perf_counter()
        # Earlier repeats' export receipts (access records) point into the case, so they join it.
        if not report.ok or not n <= len(bundle.record_ids) <= n + rep:
            raise RuntimeError(f"bundle: ok={report.ok}, {len(bundle.record_ids)} records")
        ledger.publish(force=True)  # the export's access record gets a checkpoint too
        out.append({"export_s": t1 - t0, "verify_s": t2 - t1, "bytes": len(bundle.data),
                    "records": len(bundle.record_ids), "loadavg": load})
        print(f"  [bundle] repeat {rep + 1}: export {t1 - t0:.3f} s, verify {t2 - t1:.3f} s, "
              f"{len(bundle.data):,} bytes, load {load}", flush=True)
    ledger.store.close()
    return {"runs": out, "export_s": statistics.median(r["export_s"] for r in out),
            "verify_s": statistics.median(r["verify_s"] for r in out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", nargs="?", default="all", choices=["all", "http", "bundle"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--loop", default="asyncio", help="uvicorn event loop for both servers (asyncio, uvloop, auto)")
    ap.add_argument("--http", default="h11", help="uvicorn HTTP parser for both servers (h11, httptools, auto)")
    ap.add_argument("--database-url", default=os.environ.get("CUSTODY_BENCH_PG_URL"),
                    help="also run on this PostgreSQL server (a database custody_bench_http is re-created there)")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json-out", type=Path, default=Path("/tmp/custody-bench/results"))
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="custody-bench-http-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    result: dict[str, Any] = {"started": started, "commit": commit.strip(), "nproc": os.cpu_count(),
                              "python": sys.version.split()[0], "args": {k: str(v) for k, v in vars(args).items()},
                              "loadavg_start": loadavg(), "backends": []}
    print(f"workdir {workdir}; load average {result['loadavg_start']}", flush=True)
    if args.part in ("all", "http"):
        wrk = ensure_wrk()
        result["wrk"] = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines()[0]
        if not args.no_sqlite:
            result["backends"].append(bench_backend("SQLite (WAL, synchronous=FULL)", None, args, wrk, workdir))
        if args.database_url:
            result["backends"].append(bench_backend("PostgreSQL (synchronous_commit=on)", args.database_url, args,
                                                    wrk, workdir))
    args.json_out.mkdir(parents=True, exist_ok=True)
    path = args.json_out / f"http-{started.replace(':', '')}.json"
    path.write_text(json.dumps(result, indent=1))  # the HTTP figures are kept even if the bundle part fails
    if args.part in ("all", "bundle"):
        result["bundle"] = bench_bundle(args.repeat, workdir)
    result["loadavg_end"] = loadavg()
    print()
    print(f"{started}, commit {result['commit']}, {os.cpu_count()} cores, Python {result['python']}, "
          f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, uvicorn --loop {args.loop} "
          f"--http {args.http}; load average at start "
          f"{result['loadavg_start']}, at end {result['loadavg_end']}")
    for b in result["backends"]:
        print()
        print(table(b, args.batch))
    if "bundle" in result:
        bd = result["bundle"]
        print()
        print(f"bundle, 1,000-record case: export (record_export) {bd['export_s']:.3f} s, offline verify_bundle "
              f"{bd['verify_s']:.3f} s (medians of {len(bd['runs'])})")
    path.write_text(json.dumps(result, indent=1))
    print(f"\nraw figures: {path}")


if __name__ == "__main__":
    main()
