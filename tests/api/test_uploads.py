"""Upload API against a real server process: chunked, resumable, and strict about bad input."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import VIDEO_DIR, ServerProcess
from tests.helpers import put_chunk, sha256_file, upload_file

KARMA = VIDEO_DIR / "gpmf_karma.mp4"


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert len(body["error"]["message"]) > 10
    return body["error"]


def test_chunked_upload_metadata_download_and_range(client: httpx.Client) -> None:
    upload = upload_file(client, KARMA, chunks=4)
    assert upload["status"] == "ready"
    media = upload["media"]
    assert (media["width"], media["height"]) == (854, 480)
    assert media["fps"] == pytest.approx(29.97, abs=0.01)
    assert media["duration"] == pytest.approx(12.08, abs=0.05)
    assert media["frameCount"] == 362
    assert media["hasAudio"] is True and media["audioCodec"] == "aac"
    assert media["videoCodec"] == "h264"
    assert media["colorPrimaries"] == "bt709"
    assert sum(s["type"] == "data" for s in media["streams"]) == 3  # GoPro telemetry tracks
    assert upload["sha256"] == sha256_file(KARMA)

    original = KARMA.read_bytes()
    download = client.get(upload["downloadUrl"])
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(original).hexdigest()
    assert download.headers["accept-ranges"] == "bytes"

    ranged = client.get(upload["downloadUrl"], headers={"Range": "bytes=1000-1999"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 1000-1999/{len(original)}"
    assert ranged.content == original[1000:2000]
    suffix = client.get(upload["downloadUrl"], headers={"Range": "bytes=-500"})
    assert suffix.status_code == 206 and suffix.content == original[-500:]
    unsatisfiable = client.get(upload["downloadUrl"], headers={"Range": f"bytes={len(original) + 5}-"})
    assert unsatisfiable.status_code == 416

    thumb = client.get(upload["thumbnailUrl"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:3] == b"\xff\xd8\xff"

    head = client.head(f"/api/uploads/{upload['uploadId']}")
    assert head.status_code == 200 and head.headers["upload-offset"] == str(len(original))

    listing = client.get("/api/uploads").json()
    assert listing["total"] == 1 and listing["uploads"][0]["uploadId"] == upload["uploadId"]


def test_resending_a_stored_chunk_is_harmless_and_whole_file_put_works(client: httpx.Client) -> None:
    data = (VIDEO_DIR / "libopenshot_run.mp4").read_bytes()
    upload_id = client.post("/api/uploads/init", json={"filename": "run.mp4", "size": len(data)}).json()[
        "uploadId"
    ]
    half = len(data) // 2
    assert put_chunk(client, upload_id, data[:half], 0, len(data)).json()["receivedBytes"] == half
    # The same chunk again, then one overlapping the stored bytes: nothing is duplicated.
    assert put_chunk(client, upload_id, data[:half], 0, len(data)).json()["receivedBytes"] == half
    assert put_chunk(client, upload_id, data[half - 100 :], half - 100, len(data)).json()[
        "receivedBytes"
    ] == len(data)
    done = client.post(f"/api/uploads/{upload_id}/complete").json()
    assert done["sha256"] == hashlib.sha256(data).hexdigest()

    whole = client.post("/api/uploads/init", json={"filename": "run2.mp4", "size": len(data)}).json()
    response = client.put(f"/api/uploads/{whole['uploadId']}/file", content=data)
    assert response.status_code == 200 and response.json()["receivedBytes"] == len(data)
    assert client.post(f"/api/uploads/{whole['uploadId']}/complete").json()["status"] == "ready"


def _slow_body(data: bytes, sent: threading.Event, pieces: int = 40, delay: float = 0.05):
    step = len(data) // pieces
    for index in range(0, len(data), step):
        yield data[index : index + step]
        if index >= len(data) // 3:
            sent.set()
        time.sleep(delay)


def test_resume_after_server_sigkill(server_factory, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server: ServerProcess = server_factory(data_dir=data_dir)
    data = KARMA.read_bytes()
    with server.client() as client:
        init = client.post(
            "/api/uploads/init",
            json={"filename": KARMA.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        ).json()
        upload_id = init["uploadId"]
        sent = threading.Event()

        def send() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server dies under it
                client.put(
                    f"/api/uploads/{upload_id}/file",
                    content=_slow_body(data, sent),
                    headers={"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"},
                )

        sender = threading.Thread(target=send)
        sender.start()
        assert sent.wait(30)
        time.sleep(0.3)
        server.kill()
        sender.join(30)

    restarted = server_factory(data_dir=data_dir, port=server.port)
    with restarted.client() as client:
        received = client.get(f"/api/uploads/{upload_id}").json()["receivedBytes"]
        assert 0 < received < len(data), received
        rest = put_chunk(client, upload_id, data[received:], received, len(data))
        assert rest.status_code == 200 and rest.json()["receivedBytes"] == len(data)
        done = client.post(f"/api/uploads/{upload_id}/complete")
        assert done.status_code == 200, done.text
        downloaded = client.get(f"/api/uploads/{upload_id}/download").content
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(data).hexdigest()


def test_text_file_renamed_mp4_is_not_a_video(client: httpx.Client) -> None:
    data = b"This is a shopping list, not a drone clip.\n" * 50
    upload_id = client.post("/api/uploads/init", json={"filename": "notes.mp4", "size": len(data)}).json()[
        "uploadId"
    ]
    assert put_chunk(client, upload_id, data, 0, len(data)).status_code == 200
    error = assert_error(client.post(f"/api/uploads/{upload_id}/complete"), 422, "not_a_video")
    assert "not a decodable video" in error["message"]
    details = client.get(f"/api/uploads/{upload_id}").json()
    assert details["status"] == "failed" and "not a decodable video" in details["error"]
    assert_error(client.get(f"/api/uploads/{upload_id}/download"), 409, "upload_not_ready")


@pytest.mark.parametrize(
    ("clip", "hint"),
    [
        ("gpmf_karma.mp4", "truncated"),  # index (moov) at the end: it is cut off entirely
        ("intel_car-detection.mp4", "frames are present"),  # index first: it promises frames that are missing
    ],
)
def test_truncated_mp4_is_refused(client: httpx.Client, clip: str, hint: str) -> None:
    data = (VIDEO_DIR / clip).read_bytes()[:2_000_000]
    upload_id = client.post("/api/uploads/init", json={"filename": "cut.mp4", "size": len(data)}).json()[
        "uploadId"
    ]
    put_chunk(client, upload_id, data, 0, len(data))
    error = assert_error(client.post(f"/api/uploads/{upload_id}/complete"), 422, "not_a_video")
    assert hint in error["message"]


def test_type_size_and_empty_checks_at_init(server_factory) -> None:
    server = server_factory(env={"SKYFRAME_MAX_UPLOAD_SIZE": str(10 * 1024**2)})
    with server.client() as client:
        assert_error(
            client.post("/api/uploads/init", json={"filename": "a.mp4", "size": 0}), 422, "empty_file"
        )
        error = assert_error(
            client.post("/api/uploads/init", json={"filename": "a.mp4", "size": 11 * 1024**2}),
            413,
            "file_too_large",
        )
        assert "10.0 MiB" in error["message"]
        assert_error(
            client.post("/api/uploads/init", json={"filename": "a.txt", "size": 10}), 415, "unsupported_type"
        )
        assert_error(
            client.post(
                "/api/uploads/init", json={"filename": "a.mp4", "size": 10, "contentType": "text/plain"}
            ),
            415,
            "unsupported_type",
        )
        assert_error(client.post("/api/uploads/init", json={"filename": "a.mp4"}), 422, "invalid_request")
        assert_error(client.post("/api/uploads/init", content=b"{nope"), 422, "invalid_request")
        assert client.get("/api/uploads").json()["total"] == 0


def test_bad_ranges_and_states(client: httpx.Client) -> None:
    data = (VIDEO_DIR / "libopenshot_run.mp4").read_bytes()
    size = len(data)
    upload_id = client.post("/api/uploads/init", json={"filename": "run.mp4", "size": size}).json()[
        "uploadId"
    ]
    assert put_chunk(client, upload_id, data[:1000], 0, size).status_code == 200

    gap = assert_error(put_chunk(client, upload_id, data[5000:6000], 5000, size), 409, "range_gap")
    assert gap["receivedBytes"] == 1000
    past = client.put(
        f"/api/uploads/{upload_id}/file",
        content=b"x" * 10,
        headers={"Content-Range": f"bytes {size - 5}-{size + 4}/{size}"},
    )
    assert_error(past, 416, "range_past_end")
    wrong_total = client.put(
        f"/api/uploads/{upload_id}/file",
        content=data[1000:2000],
        headers={"Content-Range": f"bytes 1000-1999/{size + 1}"},
    )
    assert_error(wrong_total, 416, "size_mismatch")
    garbage = client.put(f"/api/uploads/{upload_id}/file", content=b"x", headers={"Content-Range": "lots"})
    assert_error(garbage, 416, "bad_content_range")

    early = assert_error(client.post(f"/api/uploads/{upload_id}/complete"), 409, "upload_incomplete")
    assert early["receivedBytes"] == 1000
    assert client.get(f"/api/uploads/{upload_id}").json()["receivedBytes"] == 1000  # nothing half-done

    assert_error(client.get("/api/uploads/upl_doesnotexist"), 404, "upload_not_found")
    assert_error(client.post("/api/uploads/upl_doesnotexist/complete"), 404, "upload_not_found")
    assert_error(put_chunk(client, "upl_doesnotexist", b"x", 0, 1), 404, "upload_not_found")
    assert_error(client.delete("/api/uploads/upl_doesnotexist"), 404, "upload_not_found")
    assert_error(client.get("/api/nothing-here"), 404, "not_found")


def test_sha256_mismatch_discards_bytes(client: httpx.Client) -> None:
    data = (VIDEO_DIR / "libopenshot_run.mp4").read_bytes()
    body = {"filename": "run.mp4", "size": len(data), "sha256": "0" * 64}
    upload_id = client.post("/api/uploads/init", json=body).json()["uploadId"]
    put_chunk(client, upload_id, data, 0, len(data))
    assert_error(client.post(f"/api/uploads/{upload_id}/complete"), 422, "checksum_mismatch")
    after = client.get(f"/api/uploads/{upload_id}").json()
    assert after["status"] == "pending" and after["receivedBytes"] == 0


def test_hostile_file_name_is_stored_by_id_and_shown_back(
    client: httpx.Client, server: ServerProcess
) -> None:
    name = "../../etc/passwd ✈️ Ωmega\u202e4pm.mp4"
    upload = upload_file(client, VIDEO_DIR / "libopenshot_run.mp4", filename=name)
    assert upload["filename"] == name
    assert client.get("/api/uploads").json()["uploads"][0]["filename"] == name
    stored = [p for p in server.data_dir.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(server.data_dir.resolve()) for p in stored)
    assert not any("passwd" in str(p) or "mega" in str(p) for p in stored)
    download = client.get(upload["downloadUrl"])
    assert "filename*=UTF-8''" in download.headers["content-disposition"]


def test_delete_removes_upload_and_files(client: httpx.Client, server: ServerProcess) -> None:
    upload = upload_file(client, VIDEO_DIR / "libopenshot_run.mp4")
    upload_dir = server.data_dir / "files" / "uploads" / upload["uploadId"]
    assert upload_dir.exists()
    assert client.delete(f"/api/uploads/{upload['uploadId']}").status_code == 204
    assert not upload_dir.exists()
    assert client.get(f"/api/uploads/{upload['uploadId']}").status_code == 404
