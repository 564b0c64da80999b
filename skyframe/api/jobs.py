"""/api/jobs: enhancement jobs, their live progress (SSE) and results."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from skyframe.api.deps import PrincipalDep, ServicesDep
from skyframe.api.files import stored_file_response
from skyframe.api.schemas import JobCreate, JobList, JobOut
from skyframe.db.models import Job, JobStatus, utcnow
from skyframe.errors import Conflict
from skyframe.jobs.service import output_key
from skyframe.services import Services

router = APIRouter(tags=["jobs"])

SSE_POLL_SECONDS = 0.5
SSE_KEEPALIVE_SECONDS = 15.0


def to_out(job: Job) -> JobOut:
    end = job.finished_at or (utcnow() if job.started_at else None)
    return JobOut(
        job_id=job.id,
        upload_id=job.upload_id,
        model=job.model,
        provider=job.provider,
        options=job.options,
        status=job.status,
        stage=job.stage,
        progress=job.progress,
        frames_done=job.frames_done,
        frames_total=job.frames_total,
        fps=job.fps,
        eta_seconds=job.eta_seconds,
        error=job.error,
        attempt=job.attempt,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        elapsed_seconds=round((end - job.started_at).total_seconds(), 1) if job.started_at and end else None,
        prediction_id=job.prediction_id,
        predict_time=job.predict_time,
        cost_estimate=job.cost_estimate,
        output_size=job.output_size,
        output_width=job.output_width,
        output_height=job.output_height,
        retry_of=job.retry_of,
        download_url=f"/api/jobs/{job.id}/download" if job.status == JobStatus.completed else None,
    )


@router.post("/api/jobs/create", status_code=201, response_model=JobOut)
def create_job(body: JobCreate, services: ServicesDep, principal: PrincipalDep) -> JobOut:
    job = services.jobs.create(
        principal.user_id,
        principal.scope,
        body.upload_id,
        body.model,
        body.options,
        limits=principal.limits,
    )
    return to_out(job)


@router.get("/api/jobs", response_model=JobList)
def list_jobs(
    services: ServicesDep, principal: PrincipalDep, limit: int = Query(100, ge=1, le=500)
) -> JobList:
    return JobList(jobs=[to_out(j) for j in services.jobs.list(principal.scope, limit=limit)])


@router.get("/api/uploads/{upload_id}/jobs", response_model=JobList)
def list_upload_jobs(upload_id: str, services: ServicesDep, principal: PrincipalDep) -> JobList:
    return JobList(jobs=[to_out(j) for j in services.jobs.list(principal.scope, upload_id=upload_id)])


@router.get("/api/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, services: ServicesDep, principal: PrincipalDep) -> JobOut:
    return to_out(services.jobs.get(principal.scope, job_id))


@router.post("/api/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, services: ServicesDep, principal: PrincipalDep) -> JobOut:
    return to_out(services.jobs.cancel(principal.scope, job_id))


@router.post("/api/jobs/{job_id}/retry", status_code=201, response_model=JobOut)
def retry_job(job_id: str, services: ServicesDep, principal: PrincipalDep) -> JobOut:
    return to_out(services.jobs.retry(principal.user_id, principal.scope, job_id, limits=principal.limits))


@router.get("/api/jobs/{job_id}/download")
def download_result(
    job_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    job = services.jobs.get(principal.scope, job_id)
    if job.status != JobStatus.completed:
        raise Conflict(f"Job {job_id} is {job.status}; the result is not ready.", code="job_not_completed")
    upload = services.uploads.get(None, job.upload_id)
    stem = upload.filename.rsplit(".", 1)[0]
    name = f"{stem}.skyframe-{job.model}-{job.output_width}x{job.output_height}.mp4"
    return stored_file_response(request, services.storage, output_key(job.id), "video/mp4", name)


@router.get("/api/jobs/{job_id}/events")
async def job_events(
    job_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> StreamingResponse:
    """Server-Sent Events: the job as JSON whenever it changes; the stream ends after a final status."""
    first = await run_in_threadpool(services.jobs.get, principal.scope, job_id)
    return StreamingResponse(
        _event_stream(services, principal.scope, first, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _event_stream(
    services: Services, scope: str | None, job: Job, request: Request
) -> AsyncIterator[str]:
    last, idle = "", 0.0
    yield "retry: 3000\n\n"
    while True:
        payload = to_out(job).model_dump_json(by_alias=True)
        if payload != last:
            last, idle = payload, 0.0
            yield f"event: job\ndata: {payload}\n\n"
        if JobStatus(job.status).terminal:
            yield f"event: end\ndata: {json.dumps({'status': job.status})}\n\n"
            return
        await asyncio.sleep(SSE_POLL_SECONDS)
        idle += SSE_POLL_SECONDS
        if idle >= SSE_KEEPALIVE_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"
        if await request.is_disconnected():
            return
        job = await run_in_threadpool(services.jobs.get, scope, job.id)
