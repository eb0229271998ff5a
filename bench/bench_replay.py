"""Replay sandbox benchmark (issue 4): single-record replay latency per mode, cold and warm, on the
Docker and the process backends; a ~50-record chain replay end to end; and the container's overhead
against running the same worker job in this process with no sandbox at all.

On demand, not a test::

    /work/venv/bin/python bench/bench_replay.py [--warm 5] [--no-drop-caches] [--json OUT]

A temporary SQLite ledger is filled through the generation gateway (real reference-adapter
generations, as tests/integration/test_replay_modes.py does). Every figure is ``time.perf_counter``
around ``sandbox.replay.replay(...)`` (gather + evidence checks + the sandbox run + compare + the
signed report appended and published), i.e. what ``custody replay`` costs minus the CLI's own start.

"cold" = the first replay of that mode on that backend in this process, run right after
``sync; echo 3 > /proc/sys/vm/drop_caches`` (root only; otherwise only the first-in-process part
holds): the page cache no longer holds the image's layers, the venv's packages or the ONNX model, so
the container's Python start reads them from disk again. "warm" = the median of ``--warm`` further runs.

"in-process" = the worker's ``main()`` called in this Python process with ``CUSTODY_IN`` /
``CUSTODY_OUT`` pointing at temp folders holding the very job the replay would send (no container, no
namespaces, no new interpreter; modules already imported stay imported, so the warm figure is the
worker's work alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHAIN_PROMPTS = [
    "a lighthouse at dusk, oil painting", "a bowl of lemons on a table", "a fox in the snow, watercolour",
    "a red bicycle leaning on a wall", "mountains at sunrise, wide shot", "a cup of coffee on a wooden desk",
    "a city street in the rain at night", "a sailing boat on a calm lake", "a field of sunflowers",
    "an old stone bridge over a river", "a cat asleep on a windowsill", "a forest path in autumn",
]


def load3() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def drop_caches() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def build_world(tmp: Path, chain_n: int) -> dict[str, Any]:
    import cv2
    import numpy as np

    from api.composition import init_ledger, open_gateway
    from api.gateway import Submission
    from api.settings import Settings
    from sandbox.adapters import GenerationRequest, get_adapter

    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'ledger.db'}", key_dir=tmp / "keys")
    led = init_ledger(settings, origin="custody.bench/replay")
    people = led.append([
        {"kind": "principal", "producer": "svc:bench", "produced_at": "2026-01-01T00:00:00Z",
         "body": {"pseudonym": f"u-{i}", "principal_type": "user"}, "subject": f"subj:u-{i}"} for i in range(3)])
    user, victim, chain_user = (p.id for p in people)
    gw = open_gateway(settings, led)

    def ids(out: dict[str, Any]) -> dict[str, int]:
        named: dict[str, int] = {}
        for r in out["records"]:
            named.setdefault(r["kind"] + (":" + r["role"] if r.get("role") else ""), r["id"])
        return named

    photo = get_adapter("reference-procedural").generate(GenerationRequest("a portrait", {}, 5)).data
    _, jpg = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR))
    w: dict[str, Any] = {"settings": settings, "ledger": led}
    w["txt"] = ids(gw.submit(Submission(principal_id=user, surface="imagine", seed=11,
                                        prompt="a lighthouse at dusk, oil painting",
                                        parameters={"width": 320, "height": 320})))
    w["edit"] = ids(gw.submit(Submission(principal_id=user, surface="edit", seed=5,
                                         prompt="make the sky look stormy behind her", adapter="reference-editor",
                                         source=jpg.tobytes(), depicts_principal_id=victim)))
    # a blocked prompt: its scope is the prompt alone (prompt-only re-moderation)
    w["blocked"] = ids(gw.submit(Submission(principal_id=user, surface="imagine", seed=1,
                                            prompt="a nude photo of my classmate")))
    # one session of one principal: enough submissions that its trace holds >= 50 records
    firsts = []
    for i in range(chain_n):
        out = ids(gw.submit(Submission(principal_id=chain_user, surface="imagine", seed=100 + i,
                                       prompt=CHAIN_PROMPTS[i % len(CHAIN_PROMPTS)], session="sess-bench",
                                       parameters={"width": 256, "height": 256})))
        firsts.append(out)
    w["chain_prompt"] = firsts[0]["prompt"]
    w["chain_user"] = chain_user
    led.publish(force=True)
    return w


def in_process(job_inputs: dict[str, bytes]) -> tuple[float, dict[str, Any]]:
    """Run sandbox/worker.py's main() in this process on the job's inputs."""
    import importlib.util

    import sandbox.replay

    spec = importlib.util.spec_from_file_location("custody_bench_worker", sandbox.replay.WORKER_PATH)
    worker = sys.modules.get("custody_bench_worker")
    if worker is None:  # the very file the replay sends into the sandbox, loaded once
        worker = importlib.util.module_from_spec(spec)
        sys.modules["custody_bench_worker"] = worker
        spec.loader.exec_module(worker)

    work = Path(tempfile.mkdtemp(prefix="custody-inproc-"))
    try:
        (work / "in").mkdir()
        (work / "out").mkdir()
        for name, data in job_inputs.items():
            p = work / "in" / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        old = {k: os.environ.get(k) for k in ("CUSTODY_IN", "CUSTODY_OUT")}
        os.environ["CUSTODY_IN"], os.environ["CUSTODY_OUT"] = str(work / "in"), str(work / "out")
        try:
            t0 = time.perf_counter()
            rc = worker.main()
            dt = time.perf_counter() - t0
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        assert rc == 0, (work / "out" / "result.json").read_text()
        return dt, json.loads((work / "out" / "result.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def capture(runner: Any) -> Any:
    """Keep the last job's inputs on the runner (to re-run them in-process). The runner itself is kept
    (replay() builds a process job only for a real ProcessRunner), its ``run`` wrapped on the instance."""
    inner = runner.run

    def run(job: Any) -> Any:
        runner.last_inputs = {k: bytes(v) for k, v in job.inputs.items()}
        return inner(job)

    runner.last_inputs = {}
    runner.run = run
    return runner


def one(w: dict[str, Any], target: int, mode: str, runner: Any, info: dict[str, Any], chain: bool = False) -> dict[str, Any]:
    from sandbox.replay import replay

    before = load3()[0]
    t0 = time.perf_counter()
    out = replay(w["ledger"], target, data_dir=w["settings"].data_dir, chain=chain, mode=mode, runner=runner,
                 runner_info=info)
    dt = time.perf_counter() - t0
    rep = out["report"]
    assert rep["status"] in ("completed", "completed_with_findings"), (rep["status"], rep["findings"])
    return {"s": dt, "load1_before": before, "status": rep["status"], "steps": len(rep["steps"]),
            "inputs": len(rep["inputs"]), "timings": rep["timings"], "runner_timings": rep["runner"].get("timings"),
            "worker_wall_s": rep["runner"].get("wall_s")}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    cold, warm = runs[0], runs[1:]
    keys = sorted({k for r in warm for k in r["timings"]})
    rkeys = sorted({k for r in warm for k in (r["runner_timings"] or {})})
    return {"cold_s": round(cold["s"], 3), "cold": cold,
            "warm_median_s": round(statistics.median(r["s"] for r in warm), 3) if warm else None,
            "warm_min_s": round(min(r["s"] for r in warm), 3) if warm else None,
            "warm_max_s": round(max(r["s"] for r in warm), 3) if warm else None,
            "warm_timings_median": {k: round(statistics.median(r["timings"].get(k, 0) for r in warm), 3) for k in keys},
            "warm_runner_timings_median": {k: round(statistics.median((r["runner_timings"] or {}).get(k, 0)
                                                                      for r in warm), 3) for k in rkeys},
            "load1": [r["load1_before"] for r in runs], "steps": cold["steps"], "inputs": cold["inputs"]}


def warm_cell(s: dict[str, Any]) -> str:
    if s["warm_median_s"] is None:
        return "—"
    return f"{s['warm_median_s']:.2f} s ({s['warm_min_s']:.2f}–{s['warm_max_s']:.2f})"


def wait_for_load(limit: float, max_wait: float) -> float:
    """Check the load before a measurement; wait (bounded) while the 1-min load is above ``limit``."""
    t0 = time.monotonic()
    while load3()[0] > limit and time.monotonic() - t0 < max_wait:
        time.sleep(5)
    return load3()[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--chain-submissions", type=int, default=10)
    ap.add_argument("--chain-repeat", type=int, default=3)
    ap.add_argument("--backends", default="docker,process")
    ap.add_argument("--image", default="custody-sandbox:bench-replay",
                    help="replay image tag (its own tag: other sessions rebuild custody-sandbox:latest)")
    ap.add_argument("--worker", default=None, help="replay this worker.py instead of sandbox/worker.py "
                    "(e.g. an older revision: git show REV:sandbox/worker.py > /tmp/w.py), for before/after")
    ap.add_argument("--no-drop-caches", action="store_true")
    ap.add_argument("--load-limit", type=float, default=3.0, help="wait (≤ --load-wait s) while load1 is above")
    ap.add_argument("--load-wait", type=float, default=60.0)
    ap.add_argument("--json", default="/tmp/custody-bench/results/replay.json")
    args = ap.parse_args()

    import sandbox.replay
    from sandbox.replay import make_runner

    if args.worker:
        sandbox.replay.WORKER_PATH = Path(args.worker)

    tmp = Path(tempfile.mkdtemp(prefix="custody-bench-replay-"))
    meta: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "nproc": os.cpu_count(),
                            "python": platform.python_version(), "load_at_start": load3(), "image": args.image,
                            "worker": args.worker or "sandbox/worker.py"}
    try:
        meta["docker"] = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                                        text=True, check=False).stdout.strip()
        meta["git"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True, check=False).stdout.strip()
    except OSError:
        pass
    t0 = time.perf_counter()
    w = build_world(tmp, args.chain_submissions)
    meta["setup_s"] = round(time.perf_counter() - t0, 2)
    led = w["ledger"]
    chain_trace = led.trace(w["chain_prompt"])
    meta["chain_trace_records"] = len(chain_trace.nodes)
    print(f"# ledger ready in {meta['setup_s']} s; {led.size()} records; chain trace = "
          f"{meta['chain_trace_records']} records; load {load3()}", flush=True)

    cases = [("remoderate (prompt)", w["blocked"]["prompt"], "remoderate"),
             ("remoderate (artifact)", w["edit"]["artifact:output"], "remoderate"),
             ("regenerate", w["txt"]["generation"], "regenerate"),
             ("both (edit prompt)", w["edit"]["prompt"], "both")]
    results: dict[str, Any] = {"meta": meta, "single": {}, "chain": {}, "overhead": {}}
    runners: dict[str, tuple[Any, dict[str, Any]]] = {}
    for b in args.backends.split(","):
        r, info = make_runner(b, image=args.image if b == "docker" else None)
        runners[b] = (capture(r), info)
    first = next(iter(runners))  # the in-process figures reuse this backend's jobs

    for b, (runner, info) in runners.items():
        for label, target, mode in cases:
            runs = []
            for i in range(args.warm + 1):
                if i == 0:
                    dropped = (not args.no_drop_caches) and drop_caches()
                load = wait_for_load(args.load_limit, args.load_wait)
                runs.append(one(w, target, mode, runner, info))
                runs[-1]["caches_dropped"] = dropped if i == 0 else False
                print(f"{b:8} {label:24} run {i}: {runs[-1]['s']:.3f} s (load1 {load:.2f}) "
                      f"{runs[-1]['timings']} runner {runs[-1]['runner_timings']}", flush=True)
            results["single"][f"{b}|{label}"] = summarise(runs)
            if b == first:
                # in-process: the same job, the worker's main() here
                ip = []
                for _ in range(args.warm + 1):
                    dt, _ = in_process(runner.last_inputs)
                    ip.append(dt)
                results["overhead"][label] = {"in_process_first_s": round(ip[0], 3),
                                              "in_process_warm_median_s": round(statistics.median(ip[1:]), 3)}
                print(f"in-proc  {label:24} first {ip[0]:.3f} s, warm median {statistics.median(ip[1:]):.3f} s",
                      flush=True)

    for b, (runner, info) in runners.items():
        runs = []
        for i in range(args.chain_repeat + 1):
            if i == 0 and not args.no_drop_caches:
                drop_caches()
            load = wait_for_load(args.load_limit, args.load_wait)
            runs.append(one(w, w["chain_prompt"], "both", runner, info, chain=True))
            print(f"{b:8} chain (both)             run {i}: {runs[-1]['s']:.3f} s, {runs[-1]['steps']} steps, "
                  f"{runs[-1]['inputs']} inputs (load1 {load:.2f}) {runs[-1]['timings']} runner "
                  f"{runs[-1]['runner_timings']}", flush=True)
        results["chain"][b] = summarise(runs)
        if b == first:
            ip = [in_process(runner.last_inputs)[0] for _ in range(2)]
            results["overhead"]["chain (both)"] = {"in_process_first_s": round(ip[0], 3),
                                                   "in_process_warm_median_s": round(ip[1], 3)}
    meta["load_at_end"] = load3()

    # --- the Markdown table
    bs = list(runners)
    print()
    print("| replay | " + " | ".join(f"{b} cold | {b} warm (median, min–max)" for b in bs) + " | in-process worker |")
    print("|---|" + "---:|---:|" * len(bs) + "---:|")
    for label, _, _ in cases:
        cells = []
        for b in bs:
            s = results["single"][f"{b}|{label}"]
            cells += [f"{s['cold_s']:.2f} s", warm_cell(s)]
        o = results["overhead"].get(label, {})
        print(f"| {label} | " + " | ".join(cells) + f" | {o.get('in_process_warm_median_s', '—')} s |")
    cells = []
    for b in bs:
        s = results["chain"][b]
        cells += [f"{s['cold_s']:.2f} s", warm_cell(s)]
    o = results["overhead"].get("chain (both)", {})
    print(f"| chain, {meta['chain_trace_records']}-record trace, both ({results['chain'][bs[0]]['steps']} steps, "
          f"{results['chain'][bs[0]]['inputs']} inputs) | " + " | ".join(cells)
          + f" | {o.get('in_process_warm_median_s', '—')} s |")
    print()
    print("Where the time goes (warm medians, s): replay timings / runner timings")
    for k, s in {**results["single"], **{f"{b}|chain": v for b, v in results["chain"].items()}}.items():
        print(f"* {k}: {s['warm_timings_median']} / {s['warm_runner_timings_median']}")
    print(f"\nload average at start {meta['load_at_start']}, at end {meta['load_at_end']}")

    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"raw JSON: {args.json}")
    led.store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
