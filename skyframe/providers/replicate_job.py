"""A job on Replicate: hand the clip over, follow the prediction, bring the result home at once.

The prediction id is saved on the job before anything else happens, so a worker that dies while waiting is
replaced by one that resumes following the *same* prediction instead of paying for a second one. Progress
arrives by webhook when the service has a public URL (with a slow poll as a safety net for lost
webhooks) and by polling otherwise. Outputs are deleted by Replicate after about an hour, so the result is
streamed into our storage as soon as the prediction succeeds.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from skyframe.db.models import Job, Upload
from skyframe.jobs.runner import JobCanceled, JobContext, JobInterrupted
from skyframe.jobs.service import output_key
from skyframe.media.probe import probe
from skyframe.providers.replicate import (
    FILES_API_LIMIT,
    PredictionState,
    ReplicateProvider,
    ReplicateProviderError,
)
from skyframe.signing import secret_key, sign
from skyframe.uploads.service import original_key

WEBHOOK_PATH = "/api/webhooks/replicate"
_DB_CHECK_SECONDS = 0.5


def webhook_url(public_url: str | None) -> str | None:
    return f"{public_url.rstrip('/')}{WEBHOOK_PATH}" if public_url else None


def signed_input_url(ctx: JobContext) -> str | None:
    """A link Replicate can fetch the original from, when this server has a public address."""
    if not ctx.settings.public_url:
        return None
    token = sign(
        secret_key(ctx.settings), original_key(ctx.job.upload_id), ctx.settings.signed_url_ttl_seconds
    )
    return f"{ctx.settings.public_url.rstrip('/')}/api/files/signed/{token}"


def run_replicate(ctx: JobContext) -> dict[str, Any]:
    provider = ReplicateProvider(ctx.settings)
    with ctx.db.session() as session:
        upload = session.get(Upload, ctx.job.upload_id)
    if upload is None:
        raise ReplicateProviderError("The original upload is gone (was it deleted?).", code="input_missing")

    if ctx.job.prediction_id:
        state = provider.get(ctx.job.prediction_id)  # a previous attempt started it: follow, don't re-run
    else:
        ctx.raise_if_stopped()
        ctx.report(stage="uploading", progress=1.0, force=True)
        with ctx.storage.local_file(original_key(upload.id)) as src:
            signed = signed_input_url(ctx) if upload.size > FILES_API_LIMIT else None
            video_url = provider.video_input(src, signed)
        fps = (upload.media or {}).get("fps")
        payload = provider.build_input(ctx.spec, ctx.options, video_url, source_fps=fps)
        ctx.raise_if_stopped()
        state = provider.create(ctx.spec, payload, webhook_url(ctx.settings.public_url))
        if not ctx.update(prediction_id=state.id, prediction_status=state.status):
            provider.cancel(state.id)  # we lost the job meanwhile: don't leave a billed orphan
            raise JobInterrupted()

    state = _follow(ctx, provider, state)
    predict = {"predict_time": state.predict_time, "cost_estimate": provider.estimate_cost(state, ctx.spec)}
    if state.status != "succeeded":
        ctx.update(prediction_status=state.status, **predict)
        if state.status == "canceled" and ctx.cancel_requested():
            raise JobCanceled()
        raise ReplicateProviderError(
            f"Replicate prediction {state.id} {state.status}: {state.error or 'no reason given'}",
            code=f"replicate_{state.status}",
        )

    ctx.report(stage="downloading", progress=97.0, force=True)
    key = output_key(ctx.job_id)
    with ctx.storage.writer(key) as tmp:
        size = provider.download_output(state, tmp)
        media = probe(tmp)
    return {
        "prediction_status": state.status,
        "output_size": size,
        "output_width": media["displayWidth"],
        "output_height": media["displayHeight"],
        "frames_done": media["frameCount"],
        "frames_total": media["frameCount"],
        **predict,
    }


def _follow(ctx: JobContext, provider: ReplicateProvider, state: PredictionState) -> PredictionState:
    """Wait for a final state: webhooks update the row, polls fill in when they are late or lost."""
    with_webhooks = bool(ctx.settings.public_url)
    poll_every = (
        ctx.settings.replicate_webhook_fallback_poll
        if with_webhooks
        else ctx.settings.replicate_poll_interval
    )
    last_poll = time.monotonic()
    cancel_sent = False
    seen_status = state.status
    while not state.terminal:
        _report(ctx, state)
        if ctx.cancel_requested() and not cancel_sent:
            state = provider.cancel(state.id)
            cancel_sent = True
            continue
        if ctx.lease_lost.is_set() or ctx.stopping():
            raise JobInterrupted()  # the prediction keeps running; the next attempt follows it
        time.sleep(_DB_CHECK_SECONDS)
        webhook_status = _webhook_status(ctx)
        due = time.monotonic() - last_poll >= poll_every
        if due or cancel_sent or (webhook_status and webhook_status != seen_status):
            state = provider.get(state.id)
            seen_status = webhook_status or state.status
            last_poll = time.monotonic()
    return state


def _webhook_status(ctx: JobContext) -> str | None:
    with ctx.db.session() as session:
        return session.scalar(select(Job.prediction_status).where(Job.id == ctx.job_id))


def _report(ctx: JobContext, state: PredictionState) -> None:
    stage = {"starting": "starting on Replicate", "processing": "processing on Replicate"}.get(state.status)
    progress = 5.0 + 90.0 * state.progress if state.progress is not None else None
    ctx.report(stage=stage or state.status, progress=progress)
