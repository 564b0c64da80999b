"""Runs one job inside a queue worker: claim it, keep its lease alive, call the provider, record the end.

Every state change is a compare-and-set on the jobs row (status, worker id), so a message delivered twice,
a worker that lost its lease, or a recovery scan racing a slow worker can never complete a job twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from skyframe.catalogue import EnhanceOptions, ModelSpec, get_model
from skyframe.config import Settings
from skyframe.db.models import Job, JobStatus, utcnow
from skyframe.db.session import Database
from skyframe.errors import SkyframeError
from skyframe.storage import Storage

log = logging.getLogger(__name__)

#: This process's identity in ``jobs.worker_id``: host and pid let a restarted server on the same
#: machine see that the previous holder is dead without waiting for the lease to run out.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

#: Set when this worker process is shutting down: running jobs hand themselves back to the queue.
STOPPING = threading.Event()

_PROGRESS_INTERVAL = 0.5
_CANCEL_POLL_INTERVAL = 0.5


class JobCanceled(Exception):
    """The user asked to cancel."""


class JobInterrupted(Exception):
    """The worker is stopping or lost its lease: the job goes back to the queue (or to its new holder)."""


class JobContext:
    """What a provider sees of the job system: options in, progress and results out."""

    def __init__(self, settings: Settings, db: Database, storage: Storage, job: Job) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        self.job = job
        self.spec: ModelSpec = get_model(job.model)
        self.options = EnhanceOptions.model_validate(job.options)
        self.lease_lost = threading.Event()
        self._last_report = 0.0
        self._last_cancel_check = 0.0
        self._cancel_requested = False

    @property
    def job_id(self) -> str:
        return self.job.id

    def update(self, **values: Any) -> bool:
        """Write fields if this worker still holds the job; False (and lease lost) otherwise."""
        with self.db.session() as session:
            result = session.execute(
                update(Job)
                .where(Job.id == self.job.id, Job.worker_id == WORKER_ID, Job.status == JobStatus.running)
                .values(**values, updated_at=utcnow())
            )
        if result.rowcount == 0:
            self.lease_lost.set()
            return False
        return True

    def report(
        self,
        *,
        stage: str | None = None,
        progress: float | None = None,
        frames_done: int | None = None,
        frames_total: int | None = None,
        fps: float | None = None,
        eta_seconds: float | None = None,
        force: bool = False,
    ) -> None:
        """Progress for the page; throttled so a fast frame loop does not hammer the database."""
        now = time.monotonic()
        if not force and now - self._last_report < _PROGRESS_INTERVAL:
            return
        self._last_report = now
        values: dict[str, Any] = {
            "stage": stage,
            "progress": None if progress is None else round(max(0.0, min(100.0, progress)), 2),
            "frames_done": frames_done,
            "frames_total": frames_total,
            "fps": None if fps is None else round(fps, 3),
            "eta_seconds": None if eta_seconds is None else round(eta_seconds, 1),
        }
        self.update(**{k: v for k, v in values.items() if v is not None})

    def cancel_requested(self) -> bool:
        """True once the user asked to cancel (read from the database, at most every half second)."""
        now = time.monotonic()
        if not self._cancel_requested and now - self._last_cancel_check >= _CANCEL_POLL_INTERVAL:
            self._last_cancel_check = now
            with self.db.session() as session:
                row = session.get(Job, self.job.id)
                self._cancel_requested = bool(row is None or row.cancel_requested)
        return self._cancel_requested

    def should_stop(self) -> bool:
        """Polled between frames: cancel, shutdown or a lost lease all stop the work."""
        return self.cancel_requested() or STOPPING.is_set() or self.lease_lost.is_set()

    def stopping(self) -> bool:
        return STOPPING.is_set()

    def raise_if_stopped(self) -> None:
        if self.cancel_requested():
            raise JobCanceled()
        if STOPPING.is_set() or self.lease_lost.is_set():
            raise JobInterrupted()


class _Heartbeat(threading.Thread):
    """Renews the lease while the job runs, independent of how long one frame takes."""

    def __init__(self, ctx: JobContext, lease: float) -> None:
        super().__init__(name=f"heartbeat-{ctx.job_id}", daemon=True)
        self.ctx, self.lease, self.done = ctx, lease, threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.lease / 4):
            now = utcnow()
            if not self.ctx.update(heartbeat_at=now, lease_until=now + timedelta(seconds=self.lease)):
                log.warning("job %s: lease lost; another worker holds it now", self.ctx.job_id)
                return


def claim(db: Database, job_id: str, lease: float) -> Job | None:
    """Take a pending job for this worker, or None if it is not pending (done, canceled, held elsewhere)."""
    now = utcnow()
    with db.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.pending:
            return None
        if job.cancel_requested:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.pending)
                .values(status=JobStatus.canceled, stage="canceled", finished_at=now)
            )
            return None
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.pending)
            .values(
                status=JobStatus.running,
                worker_id=WORKER_ID,
                attempt=Job.attempt + 1,
                heartbeat_at=now,
                lease_until=now + timedelta(seconds=lease),
                started_at=job.started_at or now,
                stage="starting",
                error=None,
                updated_at=now,
            )
        )
        if result.rowcount != 1:
            return None
    with db.session() as session:
        return session.get(Job, job_id)


def finish(db: Database, job_id: str, status: JobStatus, **values: Any) -> bool:
    """Move a job this worker holds to a final (or back to pending) state; False if it no longer holds it."""
    terminal = status.terminal
    with db.session() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker_id == WORKER_ID, Job.status == JobStatus.running)
            .values(
                status=status,
                finished_at=utcnow() if terminal else None,
                lease_until=None,
                worker_id=None if not terminal else WORKER_ID,
                updated_at=utcnow(),
                **values,
            )
        )
    return result.rowcount == 1


Provider = Callable[[JobContext], dict[str, Any]]


def provider_for(name: str) -> Provider:
    if name == "local":
        from skyframe.providers.local import run_local

        return run_local
    from skyframe.providers.replicate_job import run_replicate

    return run_replicate


def run_job(
    settings: Settings, db: Database, storage: Storage, job_id: str, requeue: Callable[[Job], None]
) -> None:
    """The queue task body. Never raises: every outcome is written to the jobs row."""
    job = claim(db, job_id, settings.job_lease_seconds)
    if job is None:
        log.info("job %s: nothing to do (not pending)", job_id)
        return
    ctx = JobContext(settings, db, storage, job)
    heartbeat = _Heartbeat(ctx, settings.job_lease_seconds)
    heartbeat.start()
    log.info("job %s: attempt %d on %s (%s, %s)", job_id, job.attempt, WORKER_ID, job.provider, job.model)
    try:
        result = provider_for(job.provider)(ctx)
        if not finish(
            db, job_id, JobStatus.completed, stage="completed", progress=100.0, eta_seconds=0, **result
        ):
            log.warning("job %s finished here but another worker holds it now; result discarded", job_id)
    except JobCanceled:
        finish(db, job_id, JobStatus.canceled, stage="canceled")
        log.info("job %s: canceled", job_id)
    except JobInterrupted:
        if finish(db, job_id, JobStatus.pending, stage="queued"):
            log.info("job %s: interrupted by shutdown, handed back to the queue", job_id)
            requeue(ctx.job)
    except SkyframeError as exc:
        finish(db, job_id, JobStatus.failed, stage="failed", error=exc.message)
        log.info("job %s failed: %s", job_id, exc.message)
    except Exception as exc:
        log.exception("job %s crashed", job_id)
        finish(
            db, job_id, JobStatus.failed, stage="failed", error=f"Internal error: {type(exc).__name__}: {exc}"
        )
    finally:
        heartbeat.done.set()
