"""``skyframe worker``: the queue consumers, the recovery loop, and a clean hand-back on shutdown.

``skyframe serve`` starts one of these as a child process (the embedded default), so frame computing never
competes with the API's event loop; with Redis, more of them run on other machines.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from huey.consumer import Consumer

from skyframe.config import Settings
from skyframe.jobs.queue import LOCAL, REMOTE
from skyframe.jobs.recovery import RecoveryLoop
from skyframe.jobs.runner import STOPPING, WORKER_ID
from skyframe.services import Services

log = logging.getLogger(__name__)


def _consumer(services: Services, lane: str, workers: int) -> Consumer:
    consumer = services.queue.hueys[lane].create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=False,
        initial_delay=0.1,
        backoff=1.2,
        max_delay=0.5,  # idle polling of the SQLite queue: a new job starts within half a second
        check_worker_health=True,
        shutdown_timeout=20,
    )
    # Signals are ours (below): a stop must hand running jobs back before the threads go away.
    consumer._set_signal_handlers = lambda: None  # type: ignore[method-assign]
    return consumer


def run_worker(settings: Settings, parent_pid: int | None = None) -> None:
    services = Services(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("worker %s: %s received, stopping", WORKER_ID, signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    consumers = []
    if settings.workers > 0:
        consumers.append(_consumer(services, LOCAL, settings.workers))
    consumers.append(_consumer(services, REMOTE, settings.io_workers))
    for consumer in consumers:
        consumer.start()
    recovery = RecoveryLoop(
        services.db, services.queue, settings.job_lease_seconds, settings.recovery_interval_seconds
    )
    recovery.start()
    log.info(
        "worker %s ready (local slots: %d, remote slots: %d)",
        WORKER_ID,
        settings.workers,
        settings.io_workers,
    )
    try:
        while not stop.wait(0.5):
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("worker %s: the server process is gone; stopping", WORKER_ID)
                break
    finally:
        STOPPING.set()  # running jobs see this between frames and hand themselves back
        recovery.stopped.set()
        for consumer in consumers:
            consumer.stop(graceful=True)
        services.close()
        log.info("worker %s stopped", WORKER_ID)
