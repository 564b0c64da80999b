"""Replicate jobs end to end: our server and worker, the official client, and a fake Replicate that really
rescales the video, delivers signed webhooks and fails on request."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest

from tests.api.test_jobs import wait_for
from tests.conftest import VIDEO_DIR, ServerProcess, free_port
from tests.fake_replicate import FakeReplicate
from tests.helpers import upload_file

RUN = VIDEO_DIR / "libopenshot_run.mp4"  # 720x400, 150 frames, 29.97 fps
TERMINAL = ("completed", "failed", "canceled")


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with FakeReplicate() as running:
        yield running


def start(server_factory, fake: FakeReplicate, *, webhooks: bool = False, **env: str) -> ServerProcess:  # type: ignore[no-untyped-def]
    port = free_port()
    settings = {**fake.env, "SKYFRAME_REPLICATE_POLL_INTERVAL": "0.3", **env}
    if webhooks:
        settings |= {
            "SKYFRAME_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "SKYFRAME_REPLICATE_WEBHOOK_FALLBACK_POLL": "600",  # so only webhooks can finish the job
        }
    return server_factory(env=settings, port=port)


def run_job(client: httpx.Client, upload_id: str, model: str, options: dict | None = None) -> dict:
    created = client.post(
        "/api/jobs/create", json={"uploadId": upload_id, "model": model, "options": options or {}}
    )
    assert created.status_code == 201, created.text
    return wait_for(client, created.json()["jobId"], lambda j: j["status"] in TERMINAL, timeout=180)


def video_size(data: bytes, tmp_path: Path) -> tuple[int, int, int]:
    path = tmp_path / "out.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for p in container.demux(stream) if p.size)
        return stream.codec_context.width, stream.codec_context.height, frames


@pytest.mark.parametrize(
    ("model", "options", "size"),
    [
        ("upscale", {"resolution": "fhd"}, (1920, 1066)),
        ("upscale_premium", {"resolution": "hd"}, (1280, 712)),
    ],
)
def test_seed_models_complete_by_polling(server_factory, fake, tmp_path, model, options, size) -> None:  # type: ignore[no-untyped-def]
    server = start(server_factory, fake)
    with server.client() as client:
        assert {m["key"]: m["available"] for m in client.get("/api/models").json()["models"]}[model] is True
        upload = upload_file(client, RUN)
        job = run_job(client, upload["uploadId"], model, options)
        assert job["status"] == "completed", job
        assert job["provider"] == "replicate" and job["predictionId"] in fake.prediction_ids()
        assert job["predictTime"] and job["predictTime"] > 0
        sent = fake.prediction(job["predictionId"])["input"]
        if model == "upscale":
            assert sent["resolution"] == "FHD" and sent["video_path"].startswith(fake.url)
        else:
            assert sent["target_resolution"] == "720p" and round(sent["target_fps"]) == 30
        result = client.get(job["downloadUrl"])
        assert result.status_code == 200
        assert video_size(result.content, tmp_path) == (*size, 150)
        assert (job["outputWidth"], job["outputHeight"]) == size
        assert not fake.deliveries  # no public URL: no webhooks asked for


def test_webhooks_drive_the_job_and_forgeries_change_nothing(server_factory, fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = start(server_factory, fake, webhooks=True)
    with server.client() as client:
        upload = upload_file(client, RUN)
        job = run_job(client, upload["uploadId"], "upscale", {"resolution": "fhd"})
        assert job["status"] == "completed", job
        completed = fake.wait_for_deliveries(job["predictionId"], "completed")
        assert completed[0].ok and completed[0].url == f"{server.url}/api/webhooks/replicate"
        # Only the start poll ran; the job finished because the webhook said so.
        assert len(fake.requests_to("GET /v1/predictions/{id}")) <= 3
        before = client.get(f"/api/jobs/{job['jobId']}").json()

        replay = httpx.post(completed[0].url, content=completed[0].body, headers=completed[0].headers)
        assert replay.status_code == 409 and replay.json()["error"]["code"] == "webhook_replayed"

        fake_failure = json.dumps({**completed[0].payload, "status": "failed", "error": "forged"}).encode()
        wrong_key = FakeReplicate(webhook_secret="whsec_" + base64.b64encode(b"x" * 24).decode())
        forged = httpx.post(completed[0].url, content=fake_failure, headers=wrong_key.sign(fake_failure))
        assert forged.status_code == 401

        stale = httpx.post(
            completed[0].url,
            content=fake_failure,
            headers=fake.sign(fake_failure, timestamp=int(time.time()) - 3600),
        )
        assert stale.status_code == 401
        tampered = httpx.post(completed[0].url, content=fake_failure, headers=completed[0].headers)
        assert tampered.status_code in (401, 409)
        unsigned = httpx.post(completed[0].url, content=fake_failure)
        assert unsigned.status_code == 401
        after = client.get(f"/api/jobs/{job['jobId']}").json()
        assert after == before


def test_failed_prediction_fails_the_job_with_replicates_text(server_factory, fake) -> None:  # type: ignore[no-untyped-def]
    server = start(server_factory, fake)
    fake.fail_next("CUDA out of memory while upscaling frame 1")
    with server.client() as client:
        upload = upload_file(client, RUN)
        job = run_job(client, upload["uploadId"], "upscale")
    assert job["status"] == "failed"
    assert "CUDA out of memory while upscaling frame 1" in job["error"]
    assert job["downloadUrl"] is None


def test_cancel_reaches_replicate(server_factory, fake) -> None:  # type: ignore[no-untyped-def]
    fake.set_step_delay(0.3)
    server = start(server_factory, fake)
    with server.client() as client:
        upload = upload_file(client, RUN)
        job = client.post(
            "/api/jobs/create", json={"uploadId": upload["uploadId"], "model": "upscale"}
        ).json()
        running = wait_for(client, job["jobId"], lambda j: j["predictionId"] is not None, timeout=60)
        asked = time.monotonic()
        assert client.post(f"/api/jobs/{job['jobId']}/cancel").status_code == 200
        final = wait_for(client, job["jobId"], lambda j: j["status"] in TERMINAL, timeout=10)
        assert final["status"] == "canceled" and time.monotonic() - asked < 5
    assert fake.requests_to("POST /v1/predictions/{id}/cancel")
    assert fake.prediction(running["predictionId"])["status"] == "canceled"


def test_throttled_create_is_retried(server_factory, fake) -> None:  # type: ignore[no-untyped-def]
    server = start(server_factory, fake)
    fake.throttle("POST /v1/models/{owner}/{name}/predictions", count=2)
    with server.client() as client:
        upload = upload_file(client, RUN)
        job = run_job(client, upload["uploadId"], "upscale_premium", {"resolution": "hd"})
    assert job["status"] == "completed", job
    statuses = [r.status for r in fake.requests_to("POST /v1/models/{owner}/{name}/predictions")]
    assert statuses[:2] == [429, 429] and statuses[-1] == 201


def big_video(tmp_path: Path) -> Path:
    """A real, decodable MP4 over 100 MiB: a clip followed by a large 'free' box players skip."""
    path = tmp_path / "big.mp4"
    shutil.copyfile(RUN, path)
    padding = 101 * 1024**2
    with path.open("ab") as handle:
        handle.write(struct.pack(">I4s", padding, b"free"))
        handle.truncate(path.stat().st_size + padding - 8)
    return path


def test_inputs_over_100_mib_go_by_signed_link_or_are_refused(server_factory, fake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    video = big_video(tmp_path)
    private = start(server_factory, fake)
    with private.client() as client:
        upload = upload_file(client, video, chunks=4)
        refused = client.post("/api/jobs/create", json={"uploadId": upload["uploadId"], "model": "upscale"})
        assert refused.status_code == 422
        assert "SKYFRAME_PUBLIC_URL" in refused.json()["error"]["message"]
        assert client.get("/api/jobs").json()["jobs"] == []
    private.stop()

    public = start(server_factory, fake, webhooks=True)
    with public.client() as client:
        upload = upload_file(client, video, chunks=4)
        job = run_job(client, upload["uploadId"], "upscale", {"resolution": "fhd"})
        assert job["status"] == "completed", job
    sent = fake.prediction(job["predictionId"])["input"]["video_path"]
    assert sent.startswith(f"{public.url}/api/files/signed/")
    assert not fake.requests_to("POST /v1/files")
    # The link is bound to that file and expires; a tampered one is refused.
    assert httpx.head(sent).status_code == 200
    assert httpx.get(sent[:-3] + "abc").status_code == 404
