"""The Huey queues. They only carry job ids: the jobs table is the source of truth.

Two queues keep slow waiting apart from heavy computing: ``local`` runs the frame pipeline (one slot per
CPU/GPU worker), ``remote`` waits on Replicate (cheap threads), so a Replicate job never holds a local slot.
Embedded default: SQLite storage in the data dir. With ``SKYFRAME_REDIS_URL``: Redis, for workers on other
machines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from huey import Huey, RedisHuey, SqliteHuey

from skyframe.config import Settings

log = logging.getLogger(__name__)

LOCAL = "local"
REMOTE = "remote"


class JobQueue:
    def __init__(self, settings: Settings, run_job: Callable[[str], None]) -> None:
        self.settings = settings
        self.hueys: dict[str, Huey] = {name: self._make_huey(settings, name) for name in (LOCAL, REMOTE)}
        # The same function is registered on both queues; Huey names tasks by queue + function.
        self.tasks = {
            name: huey.task(name="run_job", retries=0)(run_job) for name, huey in self.hueys.items()
        }

    @staticmethod
    def _make_huey(settings: Settings, name: str) -> Huey:
        if settings.redis_url:
            return RedisHuey(f"skyframe-{name}", url=settings.redis_url, results=False)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(
            f"skyframe-{name}", filename=str(settings.data_dir / "queue.db"), results=False, timeout=30
        )

    def enqueue(self, job_id: str, lane: str) -> None:
        self.tasks[lane](job_id)

    def queued_job_ids(self) -> set[str]:
        """Job ids that have a message waiting in either queue."""
        ids: set[str] = set()
        for huey in self.hueys.values():
            try:
                for task in huey.pending():
                    if task.args:
                        ids.add(str(task.args[0]))
            except Exception:  # a corrupt message must not stop recovery
                log.exception("could not read the %s queue", huey.name)
        return ids
