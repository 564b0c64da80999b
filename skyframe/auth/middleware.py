"""Authentication, CSRF and access checks for every request, before any router runs.

Default deny: with accounts on, every path under /api needs a session cookie or an API token unless it is
listed in ``PUBLIC_API`` (or is signature-checked: Replicate webhooks, signed file links). A route added
later is therefore protected without anyone remembering to protect it.

CSRF: a state-changing request authenticated by the cookie must carry an Origin (or Referer) naming this
server, as the browser saw it (the Host header) or as ``SKYFRAME_PUBLIC_URL`` says. Bearer-token requests
are exempt: a browser never attaches those on its own.

With accounts off (single user on 127.0.0.1) the middleware still refuses clients that are not on this
machine, Host names that are not this machine (DNS rebinding) and cross-origin writes.
"""

from __future__ import annotations

import json
from typing import Literal
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skyframe.auth.mode import is_loopback
from skyframe.auth.principal import Principal
from skyframe.config import Settings

SESSION_COOKIE = "skyframe_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reachable without an account: liveness and the login / first-run setup flow.
PUBLIC_API = frozenset(
    {"/api/health", "/api/auth/login", "/api/auth/logout", "/api/auth/setup", "/api/auth/status"}
)
# Unauthenticated but signature-checked by their own handlers; no cookie, no CSRF check applies.
SIGNED_PREFIXES = ("/api/webhooks/", "/api/files/signed/")
# The app page itself: anonymous visitors are sent to /login instead of a page that cannot work.
APP_PAGES = frozenset({"/", "/index.html"})
# The interactive API docs describe every route; they are for signed-in users only.
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)

CSRF_MESSAGE = "Cross-site request refused: the Origin header does not name this server."

OriginCheck = Literal["same", "foreign", "absent"]


class AuthMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        public = urlsplit(settings.public_url) if settings.public_url else None
        self.public_origin = _origin(public.scheme, public.netloc) if public and public.netloc else None
        self.public_host = public.hostname if public else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(SIGNED_PREFIXES):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not self.settings.auth:
            refusal = self._single_user_refusal(request)
            if refusal:
                await refusal(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return

        path, method = scope["path"], scope["method"]
        is_api = path == "/api" or path.startswith("/api/")
        principal: Principal | None = None
        via: Literal["token", "cookie"] | None = None
        if is_api or path in APP_PAGES or path in DOCS_PATHS:
            auth = scope["app"].state.services.auth
            scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer":
                principal = await run_in_threadpool(auth.resolve_token, credentials.strip())
                if principal is None:
                    await _error(401, "invalid_token", "The API token is unknown or revoked.")(
                        scope, receive, send
                    )
                    return
                via = "token"
            elif cookie := request.cookies.get(SESSION_COOKIE):
                principal = await run_in_threadpool(auth.resolve_session, cookie)
                via = "cookie" if principal else None

        if method in UNSAFE_METHODS and via != "token":
            origin = self._check_origin(request)
            if origin == "foreign" or (origin == "absent" and via == "cookie"):
                await _error(403, "csrf_rejected", CSRF_MESSAGE)(scope, receive, send)
                return

        if principal is not None:
            scope.setdefault("state", {})["principal"] = principal
        if principal is None:
            if is_api and path not in PUBLIC_API:
                await _error(
                    401,
                    "unauthorized",
                    "Log in, or send an API token as 'Authorization: Bearer skf_...'.",
                    headers={"WWW-Authenticate": 'Bearer realm="skyframe"'},
                )(scope, receive, send)
                return
            if path in APP_PAGES and method in ("GET", "HEAD"):
                target = "/login" if path == "/" and not scope.get("query_string") else _login_url(request)
                await _redirect(target)(scope, receive, send)
                return
            if path in DOCS_PATHS:
                await _error(401, "unauthorized", "Log in to read the API docs.")(scope, receive, send)
                return
        # The app page must be revalidated on every visit, or a browser may show a cached copy after logout.
        await self.app(scope, receive, _with_security_headers(send, no_cache=path in APP_PAGES))

    # -- checks ------------------------------------------------------------------------------------

    def _single_user_refusal(self, request: Request) -> ASGIApp | None:
        client = request.client.host if request.client else None
        if client is not None and not is_loopback(client):
            return _error(
                403,
                "auth_required",
                "Accounts are off (SKYFRAME_AUTH=off), so only this machine may connect. "
                "Turn accounts on to share SkyFrame.",
            )
        try:
            host = urlsplit(f"//{request.headers.get('host', '')}").hostname
        except ValueError:
            host = "(malformed)"
        if host and not is_loopback(host) and host != self.public_host:
            return _error(
                403, "bad_host", f"Host {host!r} is not this machine; accounts are off (single user)."
            )
        if request.method in UNSAFE_METHODS and self._check_origin(request) == "foreign":
            return _error(403, "csrf_rejected", CSRF_MESSAGE)
        return None

    def _check_origin(self, request: Request) -> OriginCheck:
        """Compare Origin (else Referer) with this server. The request's own Host is matched without its
        scheme, because a TLS-terminating proxy hides the browser's scheme; the public URL is exact."""
        value = request.headers.get("origin") or request.headers.get("referer")
        if not value:
            return "absent"
        try:
            parts = urlsplit(value)
        except ValueError:
            return "foreign"
        if value == "null" or not parts.netloc:
            return "foreign"
        if self.public_origin and _origin(parts.scheme, parts.netloc) == self.public_origin:
            return "same"
        host = request.headers.get("host", "")
        if host and _strip_default_port(parts.netloc) == _strip_default_port(host):
            return "same"
        return "foreign"


def session_cookie_secure(request: Request, settings: Settings) -> bool:
    """Secure when the browser talks HTTPS: directly, via a trusted proxy's X-Forwarded-Proto (uvicorn
    applies it for FORWARDED_ALLOW_IPS, default 127.0.0.1), or as the public URL declares."""
    return request.url.scheme == "https" or (settings.public_url or "").lower().startswith("https://")


def _origin(scheme: str, netloc: str) -> str:
    return f"{scheme.lower()}://{_strip_default_port(netloc)}"


def _strip_default_port(netloc: str) -> str:
    netloc = netloc.lower()
    for port in (":80", ":443"):
        if netloc.endswith(port):
            return netloc[: -len(port)]
    return netloc


def _login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> ASGIApp:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw + list(SECURITY_HEADERS)})
        await send({"type": "http.response.body", "body": body})

    return respond


def _redirect(location: str) -> ASGIApp:
    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"location", location.encode()), (b"cache-control", b"no-store")]
        headers += [(b"content-length", b"0"), *SECURITY_HEADERS]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return respond


def _with_security_headers(send: Send, *, no_cache: bool = False) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for key, value in SECURITY_HEADERS:
                if key.decode() not in headers:
                    headers.append(key.decode(), value.decode())
            if no_cache:
                headers["cache-control"] = "no-cache"
        await send(message)

    return wrapped
