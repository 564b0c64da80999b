"""/api/auth: log in and out, who am I, change password, first-run setup; and the /login, /setup pages.

Thin: the rules live in ``skyframe.auth.service``; access checks in ``skyframe.auth.middleware``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import Field

from skyframe.api.deps import PrincipalDep, ServicesDep
from skyframe.api.schemas import ApiModel
from skyframe.auth.limits import Limits
from skyframe.auth.middleware import SESSION_COOKIE, session_cookie_secure
from skyframe.config import Settings
from skyframe.db.models import User
from skyframe.errors import Conflict
from skyframe.services import Services

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

# The sign-in pages load only their own files: no injected script can read what is typed into them.
PAGE_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

router = APIRouter(prefix="/api/auth", tags=["auth"])
pages = APIRouter(include_in_schema=False)


class LoginIn(ApiModel):
    username: str = Field(max_length=256)
    password: str = Field(max_length=4096)


class SetupIn(ApiModel):
    token: str = Field(max_length=256)
    username: str = Field(max_length=256)
    password: str = Field(max_length=4096)


class PasswordIn(ApiModel):
    current_password: str = Field(max_length=4096)
    new_password: str = Field(max_length=4096)


class LimitsOut(ApiModel):
    """``null`` means unlimited."""

    max_concurrent_jobs: int | None
    max_storage_bytes: int | None
    allow_paid_models: bool


class UsageOut(ApiModel):
    storage_bytes: int
    active_jobs: int


class UserOut(ApiModel):
    user_id: str
    username: str
    role: str
    is_admin: bool
    limits: LimitsOut
    usage: UsageOut | None = None
    created_at: datetime | None = None
    last_login_at: datetime | None = None


class MeOut(UserOut):
    auth_enabled: bool


class StatusOut(ApiModel):
    auth_enabled: bool
    setup_required: bool


def require_accounts(settings: Settings) -> None:
    if not settings.auth:
        raise Conflict(
            "Accounts are off (SKYFRAME_AUTH=off): this server has a single local user.",
            code="auth_disabled",
        )


def _limits_out(limits: Limits | None) -> LimitsOut:
    limits = limits or Limits()
    return LimitsOut(
        max_concurrent_jobs=limits.max_concurrent_jobs,
        max_storage_bytes=limits.max_storage_bytes,
        allow_paid_models=limits.allow_paid_models,
    )


def user_out(services: Services, user: User, *, usage: bool = False) -> UserOut:
    auth = services.auth
    used = auth.usage(user.id) if usage else None
    return UserOut(
        user_id=user.id,
        username=user.username,
        role=user.role,
        is_admin=user.role == "admin",
        limits=_limits_out(auth.limits_for(user)),
        usage=UsageOut(storage_bytes=used.storage_bytes, active_jobs=used.active_jobs) if used else None,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _set_session_cookie(response: Response, request: Request, settings: Settings, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.session_max_days * 86400),
        path="/",
        httponly=True,
        samesite="lax",
        secure=session_cookie_secure(request, settings),
    )


@router.get("/status", response_model=StatusOut)
def auth_status(services: ServicesDep) -> StatusOut:
    """Public: lets the login page say when the first account still has to be created."""
    enabled = services.settings.auth
    return StatusOut(auth_enabled=enabled, setup_required=enabled and services.auth.user_count() == 0)


@router.post("/login", response_model=UserOut)
def login(body: LoginIn, request: Request, response: Response, services: ServicesDep) -> UserOut:
    require_accounts(services.settings)
    user, token = services.auth.login(
        body.username, body.password, _client_ip(request), request.headers.get("user-agent")
    )
    _set_session_cookie(response, request, services.settings, token)
    response.headers["Cache-Control"] = "no-store"
    return user_out(services, user)


@router.post("/logout", status_code=204)
def logout(request: Request, services: ServicesDep) -> Response:
    """Ends this browser's session (idempotent: also fine without one)."""
    if services.settings.auth:
        services.auth.logout(request.cookies.get(SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=session_cookie_secure(request, services.settings),
    )
    return response


@router.get("/me", response_model=MeOut)
def me(services: ServicesDep, principal: PrincipalDep) -> MeOut:
    if not services.settings.auth:
        return MeOut(
            user_id=principal.user_id,
            username=principal.user_id,
            role="admin",
            is_admin=True,
            limits=_limits_out(None),
            auth_enabled=False,
        )
    out = user_out(services, services.auth.get_user(principal.user_id), usage=True)
    return MeOut(**out.model_dump(), auth_enabled=True)


@router.post("/password", response_model=UserOut)
def change_password(
    body: PasswordIn, request: Request, services: ServicesDep, principal: PrincipalDep
) -> UserOut:
    """Change your own password; your other sessions end (this one stays signed in)."""
    require_accounts(services.settings)
    user = services.auth.change_password(
        principal, body.current_password, body.new_password, _client_ip(request)
    )
    return user_out(services, user)


@router.post("/setup", status_code=201, response_model=UserOut)
def setup(body: SetupIn, services: ServicesDep) -> UserOut:
    """First run: the one-time token from the server log creates the admin account."""
    require_accounts(services.settings)
    user = services.auth.complete_setup(body.token, body.username, body.password)
    return user_out(services, user)


def _page(name: str, settings: Settings) -> Response:
    if not settings.auth:
        return RedirectResponse("/", status_code=303)
    path = WEB_DIR / name
    if not path.exists():
        return Response(status_code=404)
    return FileResponse(
        path,
        media_type="text/html",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP},
    )


@pages.get("/login")
def login_page(services: ServicesDep) -> Response:
    return _page("login.html", services.settings)


@pages.get("/setup")
def setup_page(services: ServicesDep) -> Response:
    return _page("setup.html", services.settings)
