"""Every route the app serves, checked three ways: anonymous, another user, and an admin.

The route list comes from the app itself, so a route added without an access check fails here. Public
routes are an explicit allow-list below; a path parameter this file has no value for fails loudly too.
"""

from __future__ import annotations

import re
from pathlib import Path

import fastapi.routing
import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from skyframe.app import create_app
from skyframe.config import Settings
from tests.auth.conftest import PASSWORD, browser_client
from tests.conftest import VIDEO_DIR, ServerProcess
from tests.helpers import upload_file

CLIP = VIDEO_DIR / "libopenshot_run.mp4"

# Reachable without an account. Anything else the app serves must answer 401 to an anonymous client.
PUBLIC = {
    ("GET", "/api/health"),
    ("GET", "/api/auth/status"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/setup"),
    ("POST", "/api/webhooks/replicate"),  # Standard Webhooks signature, checked by the handler
    ("GET", "/api/files/signed/{token}"),  # HMAC-signed, expiring link
    ("HEAD", "/api/files/signed/{token}"),
    ("GET", "/login"),
    ("GET", "/setup"),
}
# Routes with no id in the path whose body names another user's resource.
FOREIGN_BODY = {("POST", "/api/jobs/create")}
UNKNOWN_IDS = {
    "upload_id": "upl_00000000000000000000",
    "job_id": "job_00000000000000000000",
    "token_id": "tok_00000000000000000000",
}


def app_routes() -> list[tuple[str, str]]:
    """(method, path) for every route of the real app; the static page mount is covered separately."""
    app = create_app(Settings(data_dir=Path("/nonexistent-not-used")))
    # FastAPI >= 0.16x keeps included routers nested; iter_route_contexts flattens them with prefixes.
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = list(flatten(app.routes)) if flatten else list(app.routes)
    found = []
    for route in routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, Mount):
            continue
        assert isinstance(original, APIRoute | Route), f"unexpected route type {original!r}"
        assert route.path, f"route without a path: {original!r}"
        found += [(method, route.path) for method in sorted(route.methods or ())]
    # Writes last, and deleting the upload (which takes its jobs along) at the very end.
    return sorted(found, key=lambda r: (r[0] == "DELETE", r == ("DELETE", "/api/uploads/{upload_id}"), r))


def fill(path: str, ids: dict[str, str]) -> str:
    for name in re.findall(r"{(\w+)}", path):
        assert name in ids, f"{path}: the access matrix has no value for {{{name}}}; add one"
        path = path.replace(f"{{{name}}}", ids[name])
    return path


def body_for(method: str, path: str, ids: dict[str, str]) -> dict[str, object]:
    if (method, path) == ("POST", "/api/uploads/init"):
        return {"json": {"filename": "matrix.mp4", "size": 1000, "contentType": "video/mp4"}}
    if (method, path) == ("POST", "/api/jobs/create"):
        return {"json": {"uploadId": ids["upload_id"], "options": {"scale": 2}}}
    if (method, path) == ("POST", "/api/tokens"):
        return {"json": {"name": "matrix"}}
    if (method, path) == ("POST", "/api/auth/password"):
        return {"json": {"currentPassword": PASSWORD, "newPassword": PASSWORD}}
    if method == "PUT":
        return {"content": b"0", "headers": {"Content-Type": "application/octet-stream"}}
    if method == "POST":
        return {"json": {}}
    return {}


def call(client: httpx.Client, method: str, url: str, **kwargs: object) -> tuple[int, dict | None]:
    """Status and JSON error body; streams, so an SSE response is not read to its (distant) end."""
    with client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
        error = None
        if response.status_code >= 400 and method != "HEAD":
            response.read()
            error = response.json().get("error")
        return response.status_code, error


def test_public_allow_list_matches_the_app() -> None:
    routes = set(app_routes())
    assert routes >= PUBLIC, f"listed as public but not served: {PUBLIC - routes}"


def test_every_route_anonymous_other_user_admin(
    auth_server: ServerProcess, users: dict[str, httpx.Client]
) -> None:
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    upload = upload_file(alice, CLIP, chunks=2)
    job = alice.post("/api/jobs/create", json={"uploadId": upload["uploadId"], "options": {"scale": 2}})
    assert job.status_code == 201, job.text
    token = alice.post("/api/tokens", json={"name": "alice-script"})
    assert token.status_code == 201, token.text
    ids = {
        "upload_id": upload["uploadId"],
        "job_id": job.json()["jobId"],
        "token_id": token.json()["tokenId"],
    }

    anonymous = browser_client(auth_server)
    checked: list[str] = []
    problems: list[str] = []
    for method, path in app_routes():
        if (method, path) in PUBLIC:
            continue
        url = fill(path, ids)
        kwargs = body_for(method, path, ids)
        label = f"{method} {path}"

        status, _ = call(anonymous, method, url, **kwargs)
        if status != 401:
            problems.append(f"{label}: anonymous got {status}, expected 401")

        foreign = "{" in path or (method, path) in FOREIGN_BODY
        status, error = call(bob, method, url, **kwargs)
        if foreign:
            if status != 404:
                problems.append(f"{label}: another user got {status} on alice's resource, expected 404")
            unknown_ids = {**ids, **UNKNOWN_IDS}
            unknown_kwargs = body_for(method, path, unknown_ids)
            u_status, u_error = call(bob, method, fill(path, unknown_ids), **unknown_kwargs)
            if u_status != 404 or (error and u_error and error["code"] != u_error["code"]):
                problems.append(f"{label}: unknown id gave {u_status} {u_error}, foreign id {status} {error}")
        elif status >= 400:
            problems.append(f"{label}: a user got {status} {error} on their own scope")

        status, error = call(admin, method, url, **kwargs)
        if status in (401, 403, 404) or status >= 500:
            problems.append(f"{label}: admin got {status} {error}")
        checked.append(label)

    assert not problems, "\n".join(problems)
    # The matrix really covered the resource routes (guards against an empty or truncated route list).
    for must in (
        "GET /api/uploads/{upload_id}/download",
        "GET /api/jobs/{job_id}/events",
        "GET /api/jobs/{job_id}/download",
    ):
        assert must in checked
    assert len(checked) >= 20


def test_lists_only_show_your_own(auth_server: ServerProcess, users: dict[str, httpx.Client]) -> None:
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    upload = upload_file(alice, CLIP, chunks=1)
    assert alice.post("/api/jobs/create", json={"uploadId": upload["uploadId"]}).status_code == 201
    alice.post("/api/tokens", json={"name": "alice-script"})

    assert bob.get("/api/uploads").json()["total"] == 0
    assert bob.get("/api/jobs").json()["jobs"] == []
    assert bob.get("/api/tokens").json()["tokens"] == []
    assert alice.get("/api/uploads").json()["total"] == 1
    assert len(alice.get("/api/jobs").json()["jobs"]) == 1
    assert admin.get("/api/uploads").json()["total"] == 1
    assert len(admin.get("/api/jobs").json()["jobs"]) == 1
    assert len(admin.get("/api/tokens").json()["tokens"]) == 1


@pytest.mark.parametrize("path", ["/", "/index.html", "/docs", "/openapi.json"])
def test_pages_need_a_login(auth_server: ServerProcess, path: str) -> None:
    with browser_client(auth_server, follow_redirects=False) as anonymous:
        response = anonymous.get(path)
    if path in ("/", "/index.html"):
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    else:
        assert response.status_code == 401


def test_static_assets_and_login_pages_are_public(auth_server: ServerProcess) -> None:
    with browser_client(auth_server) as anonymous:
        for path in ("/login", "/setup", "/css/app.css", "/css/auth.css", "/js/auth.js", "/favicon.svg"):
            assert anonymous.get(path).status_code == 200, path
        assert anonymous.get("/api/health").status_code == 200
        assert anonymous.get("/api/auth/status").json() == {"authEnabled": True, "setupRequired": True}
