"""The same code on PostgreSQL (the scale-out database): migrations, uploads and a job row."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import VIDEO_DIR, free_port
from tests.helpers import upload_file

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    pytest.importorskip("psycopg")
    base = Path(tempfile.mkdtemp(prefix="skyframe-pg-"))  # pytest's own tmp dirs are closed to other users
    shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
    as_postgres(
        str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "pg.log"), "-w", "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
    )  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_uploads_and_jobs_on_postgres(server_factory, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    env = {"SKYFRAME_DATABASE_URL": postgres_url, "SKYFRAME_EMBEDDED_WORKER": "false"}
    server = server_factory(env=env)
    with server.client() as client:
        upload = upload_file(client, VIDEO_DIR / "libopenshot_run.mp4")
        assert upload["media"]["frameCount"] == 150
        job = client.post("/api/jobs/create", json={"uploadId": upload["uploadId"], "options": {"scale": 2}})
        assert job.status_code == 201
        canceled = client.post(f"/api/jobs/{job.json()['jobId']}/cancel").json()
        assert canceled["status"] == "canceled"
        assert client.get("/api/uploads").json()["total"] == 1
    assert not (server.data_dir / "skyframe.db").exists()  # nothing went to SQLite
