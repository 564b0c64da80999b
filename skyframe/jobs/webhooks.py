"""Replicate webhook deliveries: verify, de-duplicate, and note the prediction's state on its job.

Deliveries can repeat and arrive out of order; a delivery id is acted on once, and a final state is never
overwritten by an earlier one. The job's worker notices the change and does the actual work.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from skyframe.db.models import Job, JobStatus, WebhookDelivery
from skyframe.errors import Conflict
from skyframe.providers.replicate import TERMINAL_STATUSES, ReplicateProvider, verify_webhook
from skyframe.services import Services

log = logging.getLogger(__name__)


def record_replicate_webhook(services: Services, body: bytes, headers: dict[str, str]) -> str:
    provider = ReplicateProvider(services.settings)
    payload = verify_webhook(
        body, headers, provider.webhook_secret(), tolerance_s=services.settings.replicate_webhook_tolerance
    )
    state = provider.parse_prediction(payload)
    delivery_id = headers.get("webhook-id", "")
    with services.db.session() as session:
        session.add(WebhookDelivery(id=delivery_id))
        try:
            session.flush()
        except IntegrityError:
            raise Conflict("This webhook delivery was already received.", code="webhook_replayed") from None
        job = session.scalar(select(Job).where(Job.prediction_id == state.id))
        if job is None:
            log.info("webhook for unknown prediction %s ignored", state.id)
            return "ignored"
        if JobStatus(job.status).terminal or (job.prediction_status in TERMINAL_STATUSES):
            return "unchanged"
        job.prediction_status = state.status
        if state.progress is not None and job.status == JobStatus.running:
            job.progress = max(job.progress, round(5.0 + 90.0 * state.progress, 2))
        if state.predict_time is not None:
            job.predict_time = state.predict_time
    log.info("webhook: prediction %s is %s", state.id, state.status)
    return "recorded"
