"""Per-user limits, enforced by the services: concurrent jobs (429), storage (413), paid models (403)."""

from __future__ import annotations

from tests.auth.conftest import assert_error, cli, create_user, login
from tests.conftest import VIDEO_DIR, ServerProcess
from tests.helpers import upload_file

CLIP = VIDEO_DIR / "libopenshot_run.mp4"  # 559 KB


def test_concurrent_jobs_storage_and_paid_models(auth_server: ServerProcess) -> None:
    create_user(auth_server, "admin", admin=True)
    create_user(auth_server, "alice")
    cli(auth_server, "users", "set-limits", "alice", "--max-jobs", "1", "--max-storage", "1M")
    alice, admin = login(auth_server, "alice"), login(auth_server, "admin")
    limits = alice.get("/api/auth/me").json()["limits"]
    assert limits == {"maxConcurrentJobs": 1, "maxStorageBytes": 1024**2, "allowPaidModels": False}

    upload = upload_file(alice, CLIP, chunks=1)
    # Storage: a second copy would pass 1 MiB.
    over = alice.post("/api/uploads/init", json={"filename": "again.mp4", "size": upload["size"]})
    error = assert_error(over, 413, "storage_quota_exceeded")
    assert error["quotaBytes"] == 1024**2 and error["usedBytes"] == upload["size"]
    assert alice.get("/api/uploads").json()["total"] == 1  # the refused upload left nothing behind

    # Concurrency: one pending job is the limit (the worker is off, so it stays pending).
    first = alice.post("/api/jobs/create", json={"uploadId": upload["uploadId"], "options": {"scale": 2}})
    assert first.status_code == 201, first.text
    second = alice.post("/api/jobs/create", json={"uploadId": upload["uploadId"], "options": {"scale": 2}})
    assert_error(second, 429, "too_many_jobs")
    assert len(alice.get("/api/jobs").json()["jobs"]) == 1
    assert alice.post(f"/api/jobs/{first.json()['jobId']}/cancel").status_code == 200
    retried = alice.post(f"/api/jobs/{first.json()['jobId']}/retry")
    assert retried.status_code == 201, retried.text
    assert_error(alice.post(f"/api/jobs/{first.json()['jobId']}/retry"), 429, "too_many_jobs")

    # Paid (Replicate) models: refused for alice before anything else is looked at; listed as unavailable.
    paid = alice.post("/api/jobs/create", json={"uploadId": upload["uploadId"], "model": "upscale"})
    assert_error(paid, 403, "paid_models_not_allowed")
    models = {m["key"]: m for m in alice.get("/api/models").json()["models"]}
    assert models["upscale"]["available"] is False
    # An admin has no limits: the same request only fails because no Replicate token is configured.
    admin_paid = admin.post("/api/jobs/create", json={"uploadId": upload["uploadId"], "model": "upscale"})
    assert_error(admin_paid, 422, "model_unavailable")
    for _ in range(3):
        more = admin.post("/api/jobs/create", json={"uploadId": upload["uploadId"], "options": {"scale": 2}})
        assert more.status_code == 201, more.text

    # Limits back on the defaults: 2 jobs at once, 50 GiB.
    cli(auth_server, "users", "set-limits", "alice", "--default")
    assert alice.get("/api/auth/me").json()["limits"]["maxConcurrentJobs"] == 2
    again = alice.post("/api/uploads/init", json={"filename": "again.mp4", "size": upload["size"]})
    assert again.status_code == 201, again.text
