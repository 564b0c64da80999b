"""Helpers the benchmarks share: a real server in a subprocess, machine facts, RSS sampling, percentiles."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata"

KEY_PACKAGES = ("fastapi", "starlette", "uvicorn", "httptools", "uvloop", "h11", "httpx", "sqlalchemy")


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m skyframe serve`` in its own process group, with a private data dir; a context manager."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SKYFRAME_DATA_DIR": str(data_dir),
            "SKYFRAME_MIN_FREE_DISK": "0",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60) -> Server:
        """Start and wait until ``/api/health`` answers 200."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "skyframe", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGTERM the process group (server and embedded worker), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- machine -----------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine_lines(extra_packages: tuple[str, ...] = ()) -> list[str]:
    """What the numbers were measured on: date, CPU, cores, RAM, kernel, Python, key package versions."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0))
    packages = " ".join(f"{p}={_version(p)}" for p in (*KEY_PACKAGES, *extra_packages))
    return [
        f"date:     {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"cpu:      {cpu_model()} ({cores} logical cores, {usable} usable)",
        f"memory:   {_mem_total_gib():.1f} GiB",
        f"kernel:   {platform.system()} {platform.release()}",
        f"python:   {platform.python_version()} ({platform.python_implementation()})",
        f"packages: {packages}",
    ]


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


class CpuMeter:
    """System-wide CPU use (all processes, all cores) between ``start()`` and ``busy()``, 0..1."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self._busy0, self._total0 = _cpu_times()

    def busy(self) -> float:
        busy, total = _cpu_times()
        return (busy - self._busy0) / max(1, total - self._total0)


def wait_for_quiet(max_wait: float, threshold: float = 0.15, window: float = 2.0) -> float:
    """Wait (up to ``max_wait`` s) until the machine's CPU use over ``window`` s is below ``threshold``.

    Other work on a shared machine skews every number here; returns the last measured CPU use.
    """
    deadline = time.monotonic() + max_wait
    while True:
        meter = CpuMeter()
        time.sleep(window)
        busy = meter.busy()
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def load_line(busy_before: float) -> str:
    """The machine's load when a benchmark starts: other processes make every number worse."""
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"load:     loadavg {load}; CPU busy just before start {busy_before:.0%} (all cores)"


# -- memory ------------------------------------------------------------------------------------------


def proc_status_kib(pid: int, field_name: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class RssSampler:
    """Samples VmRSS of one process in a background thread; ``peak_kib`` is the largest sample seen."""

    pid: int
    interval: float = 0.01
    samples: int = 0
    peak_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, proc_status_kib(self.pid, "VmRSS"))
            self.samples += 1
            self._stop.wait(self.interval)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid``."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


# -- statistics --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with columns padded for reading in a terminal too."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)
