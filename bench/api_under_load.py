"""API latency while a local job computes, and what polling costs the job's frame rate.

Starts the real server (API + embedded worker), uploads a test clip and runs one local enhancement job
per phase: with no load, then once per load profile with 50 clients polling ``GET /api/jobs/{id}``,
then with no load again (the mean of the two no-load jobs is the reference, their gap the noise).
Each phase waits for the job's steady state, measures for ``--seconds``, then cancels the job. The
load runs in its own process (asyncio + httpx.AsyncClient, one connection per client) so it does not
skew the observer, which samples the job JSON every 50 ms and takes the frame rate from the points
where ``framesDone`` changed: (frames_last - frames_first) / (t_last - t_first).

Load profiles (``--intervals``): an interval of 1 s is a page polling once a second per client; 0 is
closed loop, each client sending its next request as soon as the last one answered (the worst case).

    python bench/api_under_load.py [--clients 50] [--seconds 20] [--intervals 1 0] [--engine-threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
from common import (
    TESTDATA,
    CpuMeter,
    Server,
    children,
    cpu_seconds,
    load_line,
    machine_lines,
    percentile,
    table,
    verdict,
    wait_for_quiet,
)

TARGET_P99_MS = 100.0
TARGET_ERRORS = 0
TARGET_FPS_DROP = 0.10
DEFAULT_VIDEO = TESTDATA / "video" / "libopenshot_run.mp4"
_OBSERVE_EVERY = 0.05
_REQUEST_TIMEOUT = 10.0
_OTHER_WARN = 0.2  # CPU (1 core = 1.0) used by unrelated processes that spoils a phase
_SLICE = 5.0  # seconds per slice in the latency-over-time column


# -- load (runs in a child process) ------------------------------------------------------------------


async def _client(
    client: httpx.AsyncClient,
    url: str,
    start: float,
    deadline: float,
    interval: float,
    latencies: list[tuple[float, float]],
    errors: list[str],
) -> None:
    """One polling client on its own connection until ``deadline``; latencies as (sent at, seconds)."""
    while (sent := time.perf_counter()) < deadline:
        try:
            response = await client.get(url)
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}")
            else:
                response.json()
        except (httpx.HTTPError, ValueError) as exc:
            errors.append(type(exc).__name__)
        else:
            latencies.append((sent - start, time.perf_counter() - sent))
        if interval:
            await asyncio.sleep(max(0.0, sent + interval - time.perf_counter()))


def _load_process(url: str, clients: int, seconds: float, interval: float, pipe: Connection) -> None:
    """Child process: on "go", open ``clients`` keep-alive connections, say "started", poll for ``seconds``.

    Sends back (latencies, errors, seconds the load ran).
    """

    async def run() -> tuple[list[tuple[float, float]], list[str], float]:
        latencies: list[tuple[float, float]] = []
        errors: list[str] = []
        limits = httpx.Limits(max_connections=1)
        pool = [httpx.AsyncClient(timeout=_REQUEST_TIMEOUT, limits=limits) for _ in range(clients)]
        try:
            pipe.send("ready")
            pipe.recv()  # go
            # One untimed request each: connections are open, as for a page that has been polling a while.
            await asyncio.gather(*(c.get(url) for c in pool), return_exceptions=True)
            pipe.send("started")
            start = time.perf_counter()
            # Spread the first requests over one interval so paced clients do not fire in lockstep.
            window = (start, start + seconds, interval, latencies, errors)
            tasks = [_delayed(interval * i / clients, _client(c, url, *window)) for i, c in enumerate(pool)]
            await asyncio.gather(*tasks)
            return latencies, errors, time.perf_counter() - start
        finally:
            await asyncio.gather(*(c.aclose() for c in pool))

    pipe.send(asyncio.run(run()))
    pipe.close()


async def _delayed(delay: float, coro: Coroutine[None, None, None]) -> None:
    await asyncio.sleep(delay)
    await coro


# -- observation ---------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One job measured over a window: frame progress, engine-reported fps, the load's latencies."""

    name: str
    interval: float | None  # None: no load
    points: list[tuple[float, int]] = field(default_factory=list)  # (t, framesDone) where it changed
    engine_fps: list[float] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds)
    errors: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    window: float = 0.0
    ended_early: str | None = None
    cpu_busy: float = 0.0
    cpu_split: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        if len(self.points) < 2:
            return float("nan")
        (t0, f0), (t1, f1) = self.points[0], self.points[-1]
        return (f1 - f0) / (t1 - t0)

    @property
    def frames(self) -> int:
        return self.points[-1][1] - self.points[0][1] if self.points else 0


def descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (the embedded worker and anything it started)."""
    found, todo = [], children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children(child))
    return found


def upload_clip(client: httpx.Client, path: Path) -> str:
    """init -> one PUT -> complete; returns the upload id."""
    data = path.read_bytes()
    init = client.post(
        "/api/uploads/init", json={"filename": path.name, "size": len(data), "contentType": "video/mp4"}
    )
    init.raise_for_status()
    upload_id = init.json()["uploadId"]
    client.put(
        f"/api/uploads/{upload_id}/file",
        content=data,
        headers={"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"},
    ).raise_for_status()
    done = client.post(f"/api/uploads/{upload_id}/complete")
    if done.status_code != 200:
        raise RuntimeError(f"complete: {done.status_code} {done.text}")
    return upload_id


def wait_steady(client: httpx.Client, job_id: str, warmup: float, timeout: float = 300) -> dict:
    """Wait until the job runs, has done frames, and ``warmup`` s have passed since its first frame."""
    deadline = time.monotonic() + timeout
    first_frame: float | None = None
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "canceled"):
            raise RuntimeError(f"job {job_id} ended before steady state: {job['status']} {job.get('error')}")
        if (job.get("framesDone") or 0) > 0:
            first_frame = first_frame or time.monotonic()
            if time.monotonic() - first_frame >= warmup:
                return job
        time.sleep(_OBSERVE_EVERY)
    raise RuntimeError(f"job {job_id} did not reach steady state in {timeout:.0f} s")


def run_phase(
    server: Server, client: httpx.Client, upload_id: str, phase: Phase, args: argparse.Namespace
) -> Phase:
    """Create a job, wait for steady state, observe it for ``args.seconds`` (under load or not), cancel."""
    body = {"uploadId": upload_id, "model": args.model, "options": {"scale": args.scale}}
    created = client.post("/api/jobs/create", json=body)
    if created.status_code != 201:
        raise RuntimeError(f"create job: {created.status_code} {created.text}")
    job_id = created.json()["jobId"]
    url = f"{server.url}/api/jobs/{job_id}"

    load: mp.process.BaseProcess | None = None
    pipe: Connection | None = None
    if phase.interval is not None:
        ctx = mp.get_context("spawn")
        pipe, child_end = ctx.Pipe()
        load_args = (url, args.clients, args.seconds, phase.interval, child_end)
        load = ctx.Process(target=_load_process, args=load_args, daemon=True)
        load.start()
        if pipe.recv() != "ready":
            raise RuntimeError("load process did not start")

    wait_steady(client, job_id, args.warmup)
    procs = {"API server": [server.pid], "worker": descendants(server.pid), "observer": [os.getpid()]}
    if load is not None and load.pid is not None:
        procs["load clients"] = [load.pid]
    cpu0 = {name: sum(map(cpu_seconds, pids)) for name, pids in procs.items()}
    meter = CpuMeter()
    if pipe is not None:
        pipe.send("go")
        if pipe.recv() != "started":
            raise RuntimeError("load process did not start polling")
    start = time.perf_counter()
    end = start + args.seconds
    last_frames = -1
    while (now := time.perf_counter()) < end:
        job = client.get(f"/api/jobs/{job_id}", timeout=_REQUEST_TIMEOUT).json()
        seen = time.perf_counter()
        if job["status"] != "running":
            phase.ended_early = f"job {job['status']} after {now - start:.1f} s of the window"
            break
        frames = job.get("framesDone") or 0
        if last_frames >= 0 and frames != last_frames:
            # A change seen inside the window, stamped at the midpoint of the request that saw it.
            phase.points.append(((now + seen) / 2 - start, frames))
            if job.get("fps"):
                phase.engine_fps.append(float(job["fps"]))
        last_frames = frames
        time.sleep(max(0.0, _OBSERVE_EVERY - (time.perf_counter() - now)))
    phase.window = time.perf_counter() - start
    phase.cpu_busy = meter.busy()
    for name, pids in procs.items():
        phase.cpu_split[name] = (sum(map(cpu_seconds, pids)) - cpu0[name]) / phase.window
    # Whatever else ran on the machine in the window (other users' work skews the comparison).
    cores = len(os.sched_getaffinity(0))
    phase.cpu_split["other"] = max(0.0, phase.cpu_busy * cores - sum(phase.cpu_split.values()))
    if load is not None and pipe is not None:
        phase.latencies, phase.errors, phase.load_seconds = pipe.recv()
        load.join(30)
    client.post(f"/api/jobs/{job_id}/cancel")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get(f"/api/jobs/{job_id}").json()["status"] in ("completed", "failed", "canceled"):
            break
        time.sleep(0.2)
    return phase


# -- report --------------------------------------------------------------------------------------------


def describe(phase: Phase, clients: int) -> str:
    interval = phase.interval
    if interval is None:
        return phase.name
    if interval == 0:
        return f"{clients} clients, closed loop"
    return f"{clients} clients, 1 req / {interval:g} s each"


def report(phases: list[Phase], args: argparse.Namespace) -> bool:
    bases = [p for p in phases if p.interval is None]
    reference = sum(p.fps for p in bases) / len(bases)
    rows, ok = [], True
    for phase in phases:
        drop = 1 - phase.fps / reference
        lat = [seconds for _, seconds in phase.latencies]
        p50, p99 = percentile(lat, 50) * 1000, percentile(lat, 99) * 1000
        if phase.interval is None:
            checks = ""
        else:
            passed = p99 < TARGET_P99_MS and len(phase.errors) <= TARGET_ERRORS and drop < TARGET_FPS_DROP
            ok = ok and passed
            checks = " ".join(
                (
                    f"p99 {verdict(p99 < TARGET_P99_MS)}",
                    f"err {verdict(len(phase.errors) <= TARGET_ERRORS)}",
                    f"fps {verdict(drop < TARGET_FPS_DROP)}",
                )
            )
        requests = len(phase.latencies) + len(phase.errors)
        rows.append(
            [
                describe(phase, args.clients),
                "-" if phase.interval is None else f"{requests / phase.load_seconds:.0f}",
                "-" if phase.interval is None else f"{p50:.1f}",
                "-" if phase.interval is None else f"{p99:.1f}",
                "-" if phase.interval is None else f"{max(lat, default=0) * 1000:.0f}",
                "-" if phase.interval is None else str(len(phase.errors)),
                f"{phase.fps:.2f}",
                f"{drop:+.1%}" + (" (ref.)" if phase.interval is None else ""),
                checks,
            ]
        )
    print(
        table(
            ["load", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "job fps", "fps drop", "targets"],
            rows,
        )
    )
    print(
        f"\nTargets: p99 < {TARGET_P99_MS:.0f} ms, {TARGET_ERRORS} errors, fps drop < {TARGET_FPS_DROP:.0%} "
        "(vs the mean of the no-load jobs in this run; their own rows show the run's noise).\n"
    )
    detail_rows = []
    for phase in phases:
        split = ", ".join(f"{name} {share:.0%}" for name, share in phase.cpu_split.items())
        engine = sum(phase.engine_fps) / len(phase.engine_fps) if phase.engine_fps else float("nan")
        errors = {e: phase.errors.count(e) for e in sorted(set(phase.errors))}
        slices = [
            [x for t, x in phase.latencies if k * _SLICE <= t < (k + 1) * _SLICE]
            for k in range(int(phase.load_seconds // _SLICE) + 1)
        ]
        by_slice = " / ".join(f"{percentile(x, 99) * 1000:.0f}" for x in slices if x) or "-"
        detail_rows.append(
            [
                describe(phase, args.clients),
                f"{phase.frames} in {phase.points[-1][0] - phase.points[0][0]:.1f} s"
                if len(phase.points) > 1
                else "-",
                f"{engine:.2f}",
                f"{phase.cpu_busy:.0%}",
                split,
                by_slice,
                ", ".join(f"{k} x{v}" for k, v in errors.items()) or "-",
                "; ".join(note for note in (phase.ended_early, _busy_note(phase)) if note) or "-",
            ]
        )
    print(
        table(
            [
                "load",
                "frames in window",
                "engine fps (mean)",
                "machine CPU",
                "CPU by process (1 core = 100%)",
                f"p99 ms per {_SLICE:g} s",
                "error kinds",
                "note",
            ],
            detail_rows,
        )
    )
    return ok


def _busy_note(phase: Phase) -> str | None:
    other = phase.cpu_split.get("other", 0.0)
    if other < _OTHER_WARN:
        return None
    return f"other processes used {other:.0%} of a core: not comparable"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per job (default 20)")
    parser.add_argument(
        "--intervals",
        type=float,
        nargs="+",
        default=[1.0, 0.0],
        help="seconds between one client's requests, one loaded job each; 0 = closed loop (default 1 0)",
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the first frame (default 3)")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--model", default="local_fast")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument(
        "--engine-threads", type=int, default=None, help="SKYFRAME_THREADS for the worker (default: unset)"
    )
    parser.add_argument(
        "--no-bracket",
        dest="bracket",
        action="store_false",
        help="skip the second no-load job after the loaded ones",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="wait up to this many s for the machine's CPU use to fall below 15%% first (default 60)",
    )
    args = parser.parse_args()

    busy = wait_for_quiet(args.wait_quiet, window=1.0)
    print("# SkyFrame API under load\n\n## Machine")
    for line in [*machine_lines(("numpy", "ncnn", "torch", "av")), load_line(busy)]:
        print(line)
    threads = "default" if args.engine_threads is None else str(args.engine_threads)
    print(
        f"\n## {args.clients} clients polling GET /api/jobs/{{id}} for {args.seconds:g} s while a "
        f"{args.model} x{args.scale} job runs on {args.video.name} (engine threads: {threads})\n"
    )
    # No-load jobs before and after the loaded ones: their mean is the reference, their gap the noise.
    loaded = [Phase(f"load {i:g}", i) for i in args.intervals]
    phases = [Phase("no load", None), *loaded, *([Phase("no load, again", None)] if args.bracket else [])]
    env = {"SKYFRAME_WORKERS": "1"}
    if args.engine_threads is not None:
        env["SKYFRAME_THREADS"] = str(args.engine_threads)
    with (
        tempfile.TemporaryDirectory(prefix="skyframe-bench-api-") as tmp,
        Server(Path(tmp) / "data", env) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        upload_id = upload_clip(client, args.video)
        for phase in phases:
            run_phase(server, client, upload_id, phase, args)
            print(f"  measured: {describe(phase, args.clients)}", file=sys.stderr)
    ok = report(phases, args)
    print(
        "\nNotes: load clients, observer, API server and worker share the machine's cores. fps is taken "
        "between the first and last framesDone change seen in the window (the worker reports at most "
        "every 0.5 s; the observer samples every 50 ms), so it is good to about one report step."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
