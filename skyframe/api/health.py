"""/api/health: liveness for load balancers and tests."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from skyframe import __version__
from skyframe.api.deps import ServicesDep

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
def health(services: ServicesDep) -> dict[str, str]:
    with services.db.session() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}
