"""Local enhancement jobs end to end: real server, real worker process, real engine, real clips."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import httpx
import pytest

from tests.conftest import VIDEO_DIR, ServerProcess
from tests.helpers import upload_file

KARMA = VIDEO_DIR / "gpmf_karma.mp4"
FAST_RECOVERY = {
    "SKYFRAME_JOB_LEASE_SECONDS": "4",
    "SKYFRAME_RECOVERY_INTERVAL_SECONDS": "1",
}


def wait_for(client: httpx.Client, job_id: str, predicate, timeout: float = 240) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out; last state: {job}")


def sse_events(server: ServerProcess, job_id: str, timeout: float = 300) -> list[dict]:
    events: list[dict] = []
    with (
        httpx.Client(base_url=server.url, timeout=timeout) as client,
        client.stream("GET", f"/api/jobs/{job_id}/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "job":
                events.append(json.loads(line[6:]))
            elif line.startswith("data: ") and event == "end":
                break
    return events


def frame_times(path: Path, stream_type: str = "video") -> list[float]:
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == stream_type)
        return sorted(
            float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.size
        )


def test_local_job_streams_progress_and_delivers_the_video(
    server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    upload = upload_file(client, KARMA)
    options = {"scale": 2, "start": 2.0, "duration": 1.0}
    created = client.post("/api/jobs/create", json={"uploadId": upload["uploadId"], "options": options})
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["jobId"].startswith("job_") and job["status"] == "pending" and job["model"] == "local_fast"

    events = sse_events(server, job["jobId"])
    statuses = [e["status"] for e in events]
    assert statuses[-1] == "completed", events[-1]
    assert "running" in statuses
    progress = [e["progress"] for e in events if e["status"] == "running"]
    assert len(set(progress)) >= 3, progress  # it moved, live
    assert progress == sorted(progress)
    done = events[-1]
    assert done["progress"] == 100 and done["downloadUrl"]
    assert done["framesTotal"] == done["framesDone"] > 20

    response = client.get(done["downloadUrl"])
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    result = tmp_path / "result.mp4"
    result.write_bytes(response.content)
    with av.open(str(result)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (1708, 960)
        assert container.streams.audio, "the audio track must be kept"
    out_frames = frame_times(result)
    assert len(out_frames) == done["framesTotal"]
    # The same frames as the input's segment: same count, 29.97 fps spacing.
    source = [t for t in frame_times(KARMA) if 2.0 <= t < 3.0]
    assert abs(len(out_frames) - len(source)) <= 1
    spacing = (out_frames[-1] - out_frames[0]) / (len(out_frames) - 1)
    assert spacing == pytest.approx(1001 / 30000, rel=0.01)

    ranged = client.get(done["downloadUrl"], headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and ranged.content == response.content[:100]
    listed = client.get(f"/api/uploads/{upload['uploadId']}/jobs").json()["jobs"]
    assert [j["jobId"] for j in listed] == [job["jobId"]]
    assert client.get("/api/jobs").json()["jobs"][0]["jobId"] == job["jobId"]


def test_cancel_a_running_local_job(server: ServerProcess, client: httpx.Client) -> None:
    upload = upload_file(client, KARMA)
    job = client.post(
        "/api/jobs/create", json={"uploadId": upload["uploadId"], "options": {"scale": 4}}
    ).json()
    wait_for(client, job["jobId"], lambda j: (j["framesDone"] or 0) >= 1, timeout=120)
    asked = time.monotonic()
    assert client.post(f"/api/jobs/{job['jobId']}/cancel").status_code == 200
    final = wait_for(client, job["jobId"], lambda j: j["status"] == "canceled", timeout=5)
    assert time.monotonic() - asked < 5
    assert final["downloadUrl"] is None
    job_dir = server.data_dir / "files" / "jobs" / job["jobId"]
    assert not job_dir.exists() or not any(p.is_file() for p in job_dir.rglob("*"))
    assert client.get(f"/api/jobs/{job['jobId']}/download").status_code == 409
    # Cancel is final; retry makes a new job with the same settings.
    assert client.post(f"/api/jobs/{job['jobId']}/cancel").status_code == 409
    retried = client.post(f"/api/jobs/{job['jobId']}/retry")
    assert retried.status_code == 201 and retried.json()["retryOf"] == job["jobId"]
    assert retried.json()["options"] == final["options"]
    client.post(f"/api/jobs/{retried.json()['jobId']}/cancel")


def test_server_killed_mid_job_recovers(server_factory, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = server_factory(env=FAST_RECOVERY, data_dir=data_dir)
    with server.client() as client:
        upload = upload_file(client, VIDEO_DIR / "libopenshot_run.mp4")
        options = {"scale": 2, "duration": 1.0}
        job = client.post(
            "/api/jobs/create", json={"uploadId": upload["uploadId"], "options": options}
        ).json()
        wait_for(client, job["jobId"], lambda j: (j["framesDone"] or 0) >= 2, timeout=120)
    server.kill()  # API and worker die together, mid-job, without any cleanup

    restarted = server_factory(env=FAST_RECOVERY, data_dir=data_dir, port=server.port)
    with restarted.client() as client:
        final = wait_for(client, job["jobId"], lambda j: j["status"] in ("completed", "failed"), timeout=240)
        assert final["status"] == "completed", final
        assert final["attempt"] == 2
        assert client.get(final["downloadUrl"]).status_code == 200


def test_models_and_job_validation(client: httpx.Client) -> None:
    models = {m["key"]: m for m in client.get("/api/models").json()["models"]}
    assert {"local_fast", "local_detail", "upscale", "upscale_premium"} <= set(models)
    assert models["local_fast"]["available"] and models["local_fast"]["isDefault"]
    assert models["local_fast"]["scales"] == [2, 4]
    for key in ("upscale", "upscale_premium"):
        assert models[key]["available"] is False
        assert "REPLICATE_API_TOKEN" in models[key]["unavailableReason"]
    assert models["upscale"]["resolutions"] == ["fhd", "2k", "4k"]

    data = (VIDEO_DIR / "libopenshot_run.mp4").read_bytes()
    pending = client.post("/api/uploads/init", json={"filename": "run.mp4", "size": len(data)}).json()
    not_ready = client.post("/api/jobs/create", json={"uploadId": pending["uploadId"]})
    assert not_ready.status_code == 409 and not_ready.json()["error"]["code"] == "upload_not_ready"

    ready = upload_file(client, VIDEO_DIR / "libopenshot_run.mp4")
    paid = client.post("/api/jobs/create", json={"uploadId": ready["uploadId"], "model": "upscale"})
    assert paid.status_code == 422 and "REPLICATE_API_TOKEN" in paid.json()["error"]["message"]
    unknown = client.post("/api/jobs/create", json={"uploadId": ready["uploadId"], "model": "magic"})
    assert unknown.status_code == 422
    assert (
        "local_fast" in unknown.json()["error"]["message"]
        and "upscale_premium" in unknown.json()["error"]["message"]
    )
    bad = client.post("/api/jobs/create", json={"uploadId": ready["uploadId"], "options": {"scale": 3}})
    assert bad.status_code == 422 and "scale: 2, 4" in bad.json()["error"]["message"]
    both = client.post(
        "/api/jobs/create", json={"uploadId": ready["uploadId"], "options": {"scale": 2, "resolution": "4k"}}
    )
    assert both.status_code == 422
    extra = client.post("/api/jobs/create", json={"uploadId": ready["uploadId"], "options": {"sharpen": 9}})
    assert extra.status_code == 422 and extra.json()["error"]["code"] == "invalid_options"
    missing = client.post("/api/jobs/create", json={"uploadId": "upl_nope"})
    assert missing.status_code == 404
    assert client.get("/api/jobs/job_nope").status_code == 404
    assert client.get("/api/jobs/job_nope/events").status_code == 404
