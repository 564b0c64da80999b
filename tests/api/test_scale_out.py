"""Scale-out: a Redis queue and separate `skyframe worker` processes, one of which dies mid-job."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_jobs import wait_for
from tests.conftest import VIDEO_DIR, free_port
from tests.helpers import upload_file

pytestmark = pytest.mark.redis
RUN = VIDEO_DIR / "libopenshot_run.mp4"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (scripts/test.sh installs it with apt-get)")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while (
        subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip()
        != "PONG"
    ):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def cluster(server_factory, redis_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {
        "SKYFRAME_REDIS_URL": redis_url,
        "SKYFRAME_EMBEDDED_WORKER": "false",  # only the separate workers below compute
        "SKYFRAME_JOB_LEASE_SECONDS": "4",
        "SKYFRAME_RECOVERY_INTERVAL_SECONDS": "1",
    }
    server = server_factory(env=env, data_dir=tmp_path / "data")
    workers: list[subprocess.Popen[bytes]] = []

    def add_worker() -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(workers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "skyframe", "worker"],
            env={**server.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        workers.append(proc)
        return proc

    yield server, add_worker
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def job_row(data_dir: Path, job_id: str) -> dict:
    with sqlite3.connect(data_dir / "skyframe.db") as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


def test_a_separate_worker_completes_a_job(cluster) -> None:  # type: ignore[no-untyped-def]
    server, add_worker = cluster
    worker = add_worker()
    with server.client() as client:
        upload = upload_file(client, RUN)
        options = {"scale": 2, "duration": 0.5}
        job = client.post(
            "/api/jobs/create", json={"uploadId": upload["uploadId"], "options": options}
        ).json()
        done = wait_for(client, job["jobId"], lambda j: j["status"] in ("completed", "failed"), timeout=180)
        assert done["status"] == "completed", done
        assert client.get(done["downloadUrl"]).status_code == 200
    assert f":{worker.pid}:" in job_row(server.data_dir, job["jobId"])["worker_id"]


def test_sigkilled_worker_job_is_taken_over_once(cluster) -> None:  # type: ignore[no-untyped-def]
    server, add_worker = cluster
    first, second = add_worker(), add_worker()
    with server.client() as client:
        upload = upload_file(client, RUN)
        options = {"scale": 2, "duration": 1.0}
        job = client.post(
            "/api/jobs/create", json={"uploadId": upload["uploadId"], "options": options}
        ).json()
        wait_for(client, job["jobId"], lambda j: (j["framesDone"] or 0) >= 2, timeout=180)
        holder = job_row(server.data_dir, job["jobId"])["worker_id"]
        victim, survivor = (first, second) if f":{first.pid}:" in holder else (second, first)
        assert f":{victim.pid}:" in holder
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)

        done = wait_for(client, job["jobId"], lambda j: j["status"] in ("completed", "failed"), timeout=240)
        assert done["status"] == "completed", done
        assert done["attempt"] == 2
        row = job_row(server.data_dir, job["jobId"])
        assert f":{survivor.pid}:" in row["worker_id"]
        assert client.get(done["downloadUrl"]).status_code == 200
        # Exactly one job, completed once: no duplicate run left a second result or job behind.
        assert [j["jobId"] for j in client.get("/api/jobs").json()["jobs"]] == [job["jobId"]]
    outputs = list((server.data_dir / "files" / "jobs" / job["jobId"]).iterdir())
    assert [p.name for p in outputs] == ["output.mp4"]
    assert httpx.get(f"{server.url}/api/health").status_code == 200
