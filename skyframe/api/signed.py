"""/api/files/signed/{token}: expiring links for services that fetch our files (Replicate inputs)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from skyframe.api.deps import ServicesDep
from skyframe.api.files import stored_file_response
from skyframe.signing import secret_key, verify

router = APIRouter(prefix="/api/files", tags=["files"])


@router.api_route("/signed/{token}", methods=["GET", "HEAD"])
def signed_file(token: str, request: Request, services: ServicesDep) -> Response:
    key = verify(secret_key(services.settings), token)
    return stored_file_response(request, services.storage, key, "video/mp4")
