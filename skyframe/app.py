"""The FastAPI application factory: one port serves the API and the web page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from skyframe import __version__
from skyframe.api import auth, health, jobs, models, signed, tokens, uploads, webhooks
from skyframe.api.errors import install_error_handlers
from skyframe.auth.middleware import AuthMiddleware
from skyframe.auth.setup import announce_setup_link
from skyframe.config import Settings, get_settings
from skyframe.jobs.embedded import EmbeddedWorker
from skyframe.jobs.recovery import RecoveryLoop
from skyframe.services import Services

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).parent / "web"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services(settings)
        app.state.services = services
        if settings.auth:
            announce_setup_link(services)
        recovery = RecoveryLoop(
            services.db, services.queue, settings.job_lease_seconds, settings.recovery_interval_seconds
        )
        recovery.start()
        worker = EmbeddedWorker(settings) if settings.embedded_worker else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            recovery.stopped.set()
            if worker:
                worker.stop()
            services.close()

    app = FastAPI(
        title="SkyFrame",
        version=__version__,
        description="Upload drone footage, enhance it with AI, compare and download.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(AuthMiddleware, settings=settings)
    for module in (health, uploads, jobs, models, webhooks, signed, auth, tokens):
        app.include_router(module.router)
    app.include_router(auth.pages)
    if (WEB_DIR / "index.html").exists():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
