"""/api/webhooks/replicate: unauthenticated but signature-checked; records state, work stays in the queue."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from skyframe.api.deps import ServicesDep
from skyframe.jobs.webhooks import record_replicate_webhook

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.post("/replicate")
async def replicate_webhook(request: Request, services: ServicesDep) -> dict[str, str]:
    body = await request.body()
    outcome = await run_in_threadpool(record_replicate_webhook, services, body, dict(request.headers))
    return {"status": outcome}
