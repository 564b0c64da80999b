"""Enhancement jobs: create, inspect, cancel, retry. Knows nothing of HTTP."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from skyframe.auth.limits import Limits
from skyframe.catalogue import DEFAULT_MODEL, get_model, validate_options
from skyframe.config import Settings
from skyframe.db.models import Job, JobStatus, UploadStatus, new_id, utcnow
from skyframe.db.session import Database
from skyframe.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from skyframe.jobs.queue import LOCAL, REMOTE, JobQueue
from skyframe.providers import availability
from skyframe.uploads.service import UploadService


def output_key(job_id: str) -> str:
    return f"jobs/{job_id}/output.mp4"


def lane_for(provider: str) -> str:
    return LOCAL if provider == "local" else REMOTE


class JobService:
    def __init__(self, settings: Settings, db: Database, uploads: UploadService, queue: JobQueue) -> None:
        self.settings = settings
        self.db = db
        self.uploads = uploads
        self.queue = queue

    def get(self, scope: str | None, job_id: str) -> Job:
        with self.db.session() as session:
            job = session.get(Job, job_id)
        if job is None or (scope is not None and job.owner_id != scope):
            raise NotFound(f"No job with id {job_id!r}.", code="job_not_found")
        return job

    def list(self, scope: str | None, upload_id: str | None = None, limit: int = 100) -> list[Job]:
        if upload_id is not None:
            self.uploads.get(scope, upload_id)
        with self.db.session() as session:
            query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
            if scope is not None:
                query = query.where(Job.owner_id == scope)
            if upload_id is not None:
                query = query.where(Job.upload_id == upload_id)
            return list(session.scalars(query))

    def create(
        self,
        owner: str,
        scope: str | None,
        upload_id: str,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        retry_of: str | None = None,
        *,
        limits: Limits | None = None,
    ) -> Job:
        """Queue a job. ``limits`` are the caller's (None = unlimited): paid models, concurrent jobs."""
        spec = get_model(model or DEFAULT_MODEL)
        upload = self.uploads.get(scope, upload_id)  # first: a foreign upload is unknown, whatever else
        if spec.paid and limits is not None and not limits.allow_paid_models:
            raise Forbidden(
                f"Model {spec.key} runs on Replicate and is billed; your account may not use paid models. "
                "Ask the administrator.",
                code="paid_models_not_allowed",
            )
        ok, reason = availability(spec, self.settings)
        if not ok:
            raise Invalid(f"Model {spec.key} is not available: {reason}", code="model_unavailable")
        if upload.status != UploadStatus.ready:
            raise Conflict(
                f"Upload {upload_id} is {upload.status}; only a completed upload can be enhanced.",
                code="upload_not_ready",
            )
        checked = validate_options(spec, options)
        if spec.provider == "replicate":
            from skyframe.providers.replicate import ReplicateProvider

            # Refused up front, not after queueing: too big for the files API and no public URL to share.
            ReplicateProvider(self.settings).check_video_input(upload.size)
        job = Job(
            id=new_id("job"),
            owner_id=owner,
            upload_id=upload.id,
            model=spec.key,
            provider=spec.provider,
            options=checked.model_dump(exclude_none=True, exclude_defaults=False),
            status=JobStatus.pending,
            stage="queued",
            max_attempts=self.settings.job_max_attempts,
            retry_of=retry_of,
        )
        with self.db.session() as session:
            session.add(job)
            if limits is not None and limits.max_concurrent_jobs is not None:
                # Insert, then count in the same transaction: concurrent creates cannot both slip under.
                session.flush()
                self._check_concurrency(session, owner, limits.max_concurrent_jobs)
        self.queue.enqueue(job.id, lane_for(job.provider))
        return job

    def _check_concurrency(self, session: Session, owner: str, limit: int) -> None:
        active = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.owner_id == owner, Job.status.in_((JobStatus.pending, JobStatus.running)))
        )
        if (active or 0) > limit:
            raise RateLimited(
                f"You already have {limit} job(s) waiting or running, the most your account may have at "
                "once. Wait for one to finish or cancel one.",
                code="too_many_jobs",
                limit=limit,
            )

    def cancel(self, scope: str | None, job_id: str) -> Job:
        job = self.get(scope, job_id)
        with self.db.session() as session:
            row = session.get(Job, job.id, with_for_update=True)
            assert row is not None
            if JobStatus(row.status).terminal:
                raise Conflict(f"Job {job_id} already {row.status}; nothing to cancel.", code="job_finished")
            row.cancel_requested = True
            if row.status == JobStatus.pending and row.prediction_id is None:
                # Not started anywhere: it is canceled now; a queue message for it will find nothing to do.
                row.status = JobStatus.canceled
                row.stage = "canceled"
                row.finished_at = utcnow()
            else:
                row.stage = "canceling"
        return self.get(scope, job_id)

    def retry(self, owner: str, scope: str | None, job_id: str, *, limits: Limits | None = None) -> Job:
        job = self.get(scope, job_id)
        if job.status not in (JobStatus.failed, JobStatus.canceled):
            raise Conflict(
                f"Job {job_id} is {job.status}; only failed or canceled jobs can be retried.",
                code="job_not_retryable",
            )
        options = {k: v for k, v in job.options.items() if v is not None}
        return self.create(owner, scope, job.upload_id, job.model, options, retry_of=job.id, limits=limits)
