"""Wiring: one object that holds the database, storage and services built from the settings.

The web app and ``skyframe worker`` both build one of these, so they share every code path.
"""

from __future__ import annotations

from functools import cached_property

from skyframe.auth.service import AuthService
from skyframe.config import Settings
from skyframe.db.session import Database, migrate
from skyframe.jobs.queue import JobQueue
from skyframe.jobs.service import JobService
from skyframe.storage import Storage, make_storage
from skyframe.uploads.service import UploadService


class Services:
    def __init__(self, settings: Settings, *, run_migrations: bool = True) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if run_migrations:
            migrate(settings.effective_database_url)
        self.db = Database(settings.effective_database_url)
        self.storage: Storage = make_storage(settings)

    @cached_property
    def uploads(self) -> UploadService:
        return UploadService(self.settings, self.db, self.storage)

    @cached_property
    def auth(self) -> AuthService:
        return AuthService(self.settings, self.db)

    @cached_property
    def queue(self) -> JobQueue:
        return JobQueue(self.settings, self._run_job)

    @cached_property
    def jobs(self) -> JobService:
        return JobService(self.settings, self.db, self.uploads, self.queue)

    def _run_job(self, job_id: str) -> None:
        from skyframe.jobs.runner import run_job
        from skyframe.jobs.service import lane_for

        run_job(
            self.settings,
            self.db,
            self.storage,
            job_id,
            requeue=lambda job: self.queue.enqueue(job.id, lane_for(job.provider)),
        )

    def close(self) -> None:
        self.db.dispose()
