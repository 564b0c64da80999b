"""/api/uploads: resumable uploads of original clips."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import BinaryIO

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from skyframe.api.deps import PrincipalDep, ServicesDep
from skyframe.api.files import stored_file_response
from skyframe.api.schemas import UploadInit, UploadList, UploadOut
from skyframe.db.models import Upload, UploadStatus
from skyframe.errors import Conflict, Invalid
from skyframe.services import Services
from skyframe.uploads.service import WritePlan, original_key, thumbnail_key

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/uploads", tags=["uploads"])

# One writer per upload at a time; a second concurrent PUT is told to retry instead of interleaving bytes.
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
_FLUSH_BYTES = 1 << 20  # small enough that a crash loses at most 1 MiB of a slow upload


def to_out(services: Services, upload: Upload) -> UploadOut:
    ready = upload.status == UploadStatus.ready
    return UploadOut(
        upload_id=upload.id,
        filename=upload.filename,
        size=upload.size,
        content_type=upload.content_type,
        sha256=upload.sha256 if ready else None,
        received_bytes=services.uploads.received_bytes(upload),
        status=upload.status,
        error=upload.error,
        chunk_size=services.settings.upload_chunk_size,
        created_at=upload.created_at,
        completed_at=upload.completed_at,
        thumbnail_url=f"/api/uploads/{upload.id}/thumbnail" if ready else None,
        download_url=f"/api/uploads/{upload.id}/download" if ready else None,
        media=upload.media,
    )


@router.post("/init", status_code=201, response_model=UploadOut)
def init_upload(body: UploadInit, services: ServicesDep, principal: PrincipalDep) -> UploadOut:
    upload = services.uploads.init(
        principal.user_id,
        body.filename,
        body.size,
        body.content_type,
        body.sha256,
        limits=principal.limits,
    )
    return to_out(services, upload)


@router.get("", response_model=UploadList)
def list_uploads(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0),
) -> UploadList:
    rows, total = services.uploads.list(principal.scope, limit, offset)
    return UploadList(uploads=[to_out(services, u) for u in rows], total=total, limit=limit, offset=offset)


@router.api_route("/{upload_id}", methods=["GET", "HEAD"], response_model=UploadOut)
def get_upload(
    upload_id: str, services: ServicesDep, principal: PrincipalDep, response: Response
) -> UploadOut:
    out = to_out(services, services.uploads.get(principal.scope, upload_id))
    response.headers["Upload-Offset"] = str(out.received_bytes)
    response.headers["Cache-Control"] = "no-store"
    return out


@router.put(
    "/{upload_id}/file",
    response_model=UploadOut,
    openapi_extra={
        "requestBody": {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
        }
    },
)
async def put_file(
    upload_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> UploadOut:
    """Stream the body to storage in bounded buffers; never hold the file in memory."""
    lock = _locks[upload_id]
    if lock.locked():
        raise Conflict("Another request is writing this upload; retry shortly.", code="upload_busy")
    async with lock:
        try:
            plan = await run_in_threadpool(
                services.uploads.plan_write,
                principal.scope,
                upload_id,
                request.headers.get("content-range"),
            )
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) != plan.length:
                raise Invalid(
                    f"The body is {declared} bytes but Content-Range announces {plan.length}.",
                    code="length_mismatch",
                )
            handle = await run_in_threadpool(services.storage.open_append, plan.key, plan.offset)
            try:
                await _receive(request, handle, plan)
            finally:
                await run_in_threadpool(handle.close)
            upload = await run_in_threadpool(services.uploads.get, principal.scope, upload_id)
            return to_out(services, upload)
        finally:
            _locks.pop(upload_id, None)


async def _receive(request: Request, handle: BinaryIO, plan: WritePlan) -> None:
    """Copy the body into ``handle``; bytes that arrived before a disconnect are kept for resuming.

    Chunks are collected as received and written with one ``writelines`` per MiB: no copy of the bytes
    in Python (that copy cost a third of the server's CPU in bench/upload.py).
    """
    to_skip, remaining = plan.skip, plan.length - plan.skip
    pending: list[bytes] = []
    pending_bytes = 0
    try:
        async for chunk in request.stream():
            if to_skip:
                cut = min(to_skip, len(chunk))
                chunk, to_skip = chunk[cut:], to_skip - cut
            if len(chunk) > remaining:
                pending.append(chunk[:remaining])
                raise Invalid("The body is longer than its Content-Range.", code="length_mismatch")
            remaining -= len(chunk)
            if chunk:
                pending.append(chunk)
                pending_bytes += len(chunk)
            if pending_bytes >= _FLUSH_BYTES:
                batch, pending, pending_bytes = pending, [], 0
                await run_in_threadpool(handle.writelines, batch)
    except ClientDisconnect:
        log.info("upload %s: client went away; %d bytes of this chunk kept", plan.upload_id, pending_bytes)
    finally:
        if pending:
            await run_in_threadpool(handle.writelines, pending)


@router.post("/{upload_id}/complete", response_model=UploadOut)
async def complete_upload(upload_id: str, services: ServicesDep, principal: PrincipalDep) -> UploadOut:
    lock = _locks[upload_id]
    if lock.locked():
        raise Conflict(
            "This upload is still receiving bytes; retry when the transfer ends.", code="upload_busy"
        )
    try:
        async with lock:
            upload = await run_in_threadpool(services.uploads.complete, principal.scope, upload_id)
    finally:
        _locks.pop(upload_id, None)
    return to_out(services, upload)


@router.get("/{upload_id}/download")
def download_original(
    upload_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    upload = services.uploads.get(principal.scope, upload_id)
    if upload.status != UploadStatus.ready:
        raise Conflict(f"Upload {upload_id} is {upload.status}, not ready.", code="upload_not_ready")
    media_type = upload.content_type if (upload.content_type or "").startswith("video/") else "video/mp4"
    return stored_file_response(
        request, services.storage, original_key(upload.id), media_type, upload.filename
    )


@router.get("/{upload_id}/thumbnail")
def thumbnail(upload_id: str, request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    upload = services.uploads.get(principal.scope, upload_id)
    if upload.status != UploadStatus.ready:
        raise Conflict(f"Upload {upload_id} is {upload.status}; no thumbnail yet.", code="upload_not_ready")
    return stored_file_response(request, services.storage, thumbnail_key(upload.id), "image/jpeg")


@router.delete("/{upload_id}", status_code=204)
def delete_upload(upload_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    services.uploads.delete(principal.scope, upload_id)
    return Response(status_code=204)
