"""Recovery: no job stays ``running`` after its worker died, and no ``pending`` job lacks a queue message.

Huey deletes a message when a consumer takes it, so a worker killed mid-task (SIGKILL, OOM, lost machine)
loses the task. The jobs table knows better: a running job whose lease expired (or whose worker process on
this host is gone) goes back to the queue, up to ``max_attempts``, then fails with a reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from sqlalchemy import or_, select, update

from skyframe.db.models import Job, JobStatus, utcnow
from skyframe.db.session import Database
from skyframe.jobs.queue import JobQueue
from skyframe.jobs.service import lane_for

log = logging.getLogger(__name__)


def _holder_is_dead(worker_id: str | None) -> bool:
    """A worker on this host whose process no longer exists cannot be holding anything."""
    if not worker_id:
        return True
    host, _, rest = worker_id.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover(db: Database, queue: JobQueue, lease_seconds: float) -> dict[str, int]:
    """One scan. Safe to run from several processes at once: every change is a compare-and-set."""
    now = utcnow()
    counts = {"requeued": 0, "failed": 0, "reenqueued": 0}
    with db.session() as session:
        running = list(session.scalars(select(Job).where(Job.status == JobStatus.running)))
    for job in running:
        expired = job.lease_until is None or job.lease_until < now
        if not expired and not _holder_is_dead(job.worker_id):
            continue
        give_up = job.attempt >= job.max_attempts
        values = (
            {
                "status": JobStatus.failed,
                "stage": "failed",
                "finished_at": now,
                "error": f"The worker running this job stopped responding {job.attempt} time(s); "
                "giving up. Retry the job to try again.",
            }
            if give_up
            else {"status": JobStatus.pending, "stage": "queued", "worker_id": None}
        )
        with db.session() as session:
            result = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == JobStatus.running, Job.worker_id == job.worker_id)
                .values(lease_until=None, updated_at=now, **values)
            )
        if result.rowcount != 1:
            continue
        if give_up:
            counts["failed"] += 1
            log.warning("job %s failed after %d lost attempts", job.id, job.attempt)
        else:
            counts["requeued"] += 1
            log.warning("job %s: worker %s is gone; re-queued", job.id, job.worker_id)
            queue.enqueue(job.id, lane_for(job.provider))

    # Pending jobs with no message (a message taken by a consumer that died before claiming it).
    stale = now - timedelta(seconds=lease_seconds)
    with db.session() as session:
        pending = list(
            session.scalars(
                select(Job).where(
                    Job.status == JobStatus.pending, or_(Job.updated_at < stale, Job.updated_at.is_(None))
                )
            )
        )
    if pending:
        queued = queue.queued_job_ids()
        for job in pending:
            if job.id in queued:
                continue
            with db.session() as session:
                session.execute(update(Job).where(Job.id == job.id).values(updated_at=now))
            queue.enqueue(job.id, lane_for(job.provider))
            counts["reenqueued"] += 1
            log.warning("job %s was pending without a queue message; re-enqueued", job.id)
    return counts


class RecoveryLoop(threading.Thread):
    """Runs :func:`recover` at start and then every ``interval`` seconds, until stopped."""

    def __init__(self, db: Database, queue: JobQueue, lease_seconds: float, interval: float) -> None:
        super().__init__(name="job-recovery", daemon=True)
        self.db, self.queue, self.lease, self.interval = db, queue, lease_seconds, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                recover(self.db, self.queue, self.lease)
            except Exception:
                log.exception("recovery scan failed; will try again")
            if self.stopped.wait(self.interval):
                return
