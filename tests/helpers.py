"""Small HTTP helpers the API tests share (the client side of the resumable upload protocol)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import httpx


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def put_chunk(client: httpx.Client, upload_id: str, data: bytes, start: int, total: int) -> httpx.Response:
    end = start + len(data) - 1
    return client.put(
        f"/api/uploads/{upload_id}/file",
        content=data,
        headers={"Content-Range": f"bytes {start}-{end}/{total}", "Content-Type": "application/octet-stream"},
    )


def upload_file(
    client: httpx.Client, path: Path, *, chunks: int = 3, filename: str | None = None, sha256: bool = True
) -> dict:
    """init -> PUT in ``chunks`` Content-Range chunks -> complete; returns the completed upload."""
    data = path.read_bytes()
    body = {"filename": filename or path.name, "size": len(data), "contentType": "video/mp4"}
    if sha256:
        body["sha256"] = hashlib.sha256(data).hexdigest()
    init = client.post("/api/uploads/init", json=body)
    assert init.status_code == 201, init.text
    upload_id = init.json()["uploadId"]
    step = math.ceil(len(data) / chunks)
    for start in range(0, len(data), step):
        response = put_chunk(client, upload_id, data[start : start + step], start, len(data))
        assert response.status_code == 200, response.text
        assert response.json()["receivedBytes"] == min(start + step, len(data))
    done = client.post(f"/api/uploads/{upload_id}/complete")
    assert done.status_code == 200, done.text
    return done.json()
