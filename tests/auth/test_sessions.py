"""Browser sessions: the cookie's flags, logout and password changes that revoke, expiry, CSRF, setup."""

from __future__ import annotations

import time
from collections.abc import Callable
from http.cookies import SimpleCookie

import httpx

from tests.auth.conftest import (
    AUTH_ENV,
    PASSWORD,
    assert_error,
    browser_client,
    create_user,
    login,
    setup_link,
)
from tests.conftest import ServerProcess


def session_cookie(response: httpx.Response) -> dict[str, str | bool]:
    """The Set-Cookie attributes of skyframe_session (lower-case keys; flags as True)."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith("skyframe_session="):
            jar = SimpleCookie()
            jar.load(header)
            morsel = jar["skyframe_session"]
            flags = {k.lower(): (v if v else k.lower() in header.lower()) for k, v in morsel.items()}
            return {"value": morsel.value, **flags}
    raise AssertionError(f"no session cookie in {response.headers.get_list('set-cookie')}")


def test_login_sets_a_hardened_cookie_and_me_answers(auth_server: ServerProcess) -> None:
    create_user(auth_server, "alice")
    with browser_client(auth_server) as client:
        response = client.post("/api/auth/login", json={"username": "Alice", "password": PASSWORD})
        assert response.status_code == 200, response.text
        user = response.json()
        assert user["username"] == "alice" and user["role"] == "user" and user["isAdmin"] is False
        assert user["limits"]["maxConcurrentJobs"] == 2 and user["limits"]["allowPaidModels"] is False
        cookie = session_cookie(response)
        assert cookie["httponly"] is True
        assert str(cookie["samesite"]).lower() == "lax"
        assert cookie["path"] == "/"
        assert cookie["secure"] in ("", False), (
            "plain-HTTP login must not set Secure (the cookie would be lost)"
        )
        assert len(str(cookie["value"])) >= 40
        me = client.get("/api/auth/me").json()
        assert me["username"] == "alice" and me["authEnabled"] is True
        assert me["usage"] == {"storageBytes": 0, "activeJobs": 0}

    # Behind an HTTPS proxy (uvicorn trusts X-Forwarded-Proto from 127.0.0.1): the cookie is Secure.
    with browser_client(auth_server) as client:
        response = client.post(
            "/api/auth/login",
            json={"username": "alice", "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https", "Origin": auth_server.url.replace("http:", "https:")},
        )
        assert response.status_code == 200, response.text
        assert session_cookie(response)["secure"] is True


def test_wrong_password_and_unknown_user_look_the_same(auth_server: ServerProcess) -> None:
    create_user(auth_server, "alice")
    with browser_client(auth_server) as client:
        wrong = client.post("/api/auth/login", json={"username": "alice", "password": "nope nope"})
        unknown = client.post("/api/auth/login", json={"username": "mallory", "password": "nope nope"})
    assert_error(wrong, 401, "invalid_credentials")
    assert_error(unknown, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert "set-cookie" not in wrong.headers


def test_logout_revokes_the_session_server_side(auth_server: ServerProcess) -> None:
    create_user(auth_server, "alice")
    client = login(auth_server, "alice")
    stolen = client.cookies["skyframe_session"]
    assert client.get("/api/uploads").status_code == 200
    out = client.post("/api/auth/logout")
    assert out.status_code == 204
    assert 'skyframe_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    # A copy of the old cookie (say, stolen earlier) no longer opens anything.
    with browser_client(auth_server, cookies={"skyframe_session": stolen}) as replay:
        assert_error(replay.get("/api/uploads"), 401, "unauthorized")
        assert_error(replay.get("/api/auth/me"), 401, "unauthorized")


def test_password_change_revokes_other_sessions(auth_server: ServerProcess) -> None:
    create_user(auth_server, "alice")
    laptop, phone = login(auth_server, "alice"), login(auth_server, "alice")
    wrong = laptop.post(
        "/api/auth/password", json={"currentPassword": "not it!", "newPassword": "n3w password"}
    )
    assert_error(wrong, 403, "wrong_password")
    weak = laptop.post("/api/auth/password", json={"currentPassword": PASSWORD, "newPassword": "short"})
    assert_error(weak, 422, "weak_password")
    assert phone.get("/api/auth/me").status_code == 200  # failed attempts change nothing

    changed = laptop.post(
        "/api/auth/password", json={"currentPassword": PASSWORD, "newPassword": "n3w password"}
    )
    assert changed.status_code == 200, changed.text
    assert laptop.get("/api/auth/me").status_code == 200  # the session that changed it stays
    assert_error(phone.get("/api/auth/me"), 401, "unauthorized")
    with browser_client(auth_server) as client:
        old = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        assert_error(old, 401, "invalid_credentials")
    login(auth_server, "alice", "n3w password")


def test_cross_origin_writes_with_the_cookie_are_refused(auth_server: ServerProcess) -> None:
    create_user(auth_server, "alice")
    alice = login(auth_server, "alice")
    body = {"filename": "a.mp4", "size": 1000}
    evil = alice.post("/api/uploads/init", json=body, headers={"Origin": "https://evil.example"})
    assert_error(evil, 403, "csrf_rejected")
    evil_referer = alice.post(
        "/api/uploads/init", json=body, headers={"Origin": "", "Referer": "https://evil.example/page"}
    )
    assert_error(evil_referer, 403, "csrf_rejected")
    null_origin = alice.post("/api/uploads/init", json=body, headers={"Origin": "null"})
    assert_error(null_origin, 403, "csrf_rejected")
    # Neither header with a cookie: not a browser we can vouch for, refused too.
    bare = httpx.post(
        f"{auth_server.url}/api/uploads/init",
        json=body,
        cookies={"skyframe_session": alice.cookies["skyframe_session"]},
    )
    assert_error(bare, 403, "csrf_rejected")
    assert alice.get("/api/uploads").json()["total"] == 0  # nothing got through

    same_referer = alice.post(
        "/api/uploads/init", json=body, headers={"Origin": "", "Referer": f"{auth_server.url}/"}
    )
    assert same_referer.status_code == 201, same_referer.text
    assert alice.post("/api/uploads/init", json=body).status_code == 201  # same origin
    # Reads are not state-changing: no Origin needed.
    assert httpx.get(f"{auth_server.url}/api/uploads", cookies=dict(alice.cookies)).status_code == 200
    # A cross-site logout is refused as well (no forced sign-out).
    assert_error(
        alice.post("/api/auth/logout", headers={"Origin": "https://evil.example"}), 403, "csrf_rejected"
    )
    # And a cross-site login (login CSRF) too.
    cross_login = httpx.post(
        f"{auth_server.url}/api/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert_error(cross_login, 403, "csrf_rejected")


def test_sessions_expire_when_idle(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(env={**AUTH_ENV, "SKYFRAME_SESSION_IDLE_HOURS": str(2 / 3600)})
    create_user(server, "alice")
    alice = login(server, "alice")
    assert alice.get("/api/auth/me").status_code == 200
    time.sleep(2.5)
    assert_error(alice.get("/api/auth/me"), 401, "unauthorized")


def test_sessions_end_at_their_absolute_lifetime(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(env={**AUTH_ENV, "SKYFRAME_SESSION_MAX_DAYS": str(2 / 86400)})
    create_user(server, "alice")
    cookie = login(server, "alice").cookies["skyframe_session"]
    # A raw header: the client's jar would drop the cookie itself at Max-Age; the server must too.
    headers = {"Cookie": f"skyframe_session={cookie}"}
    assert httpx.get(f"{server.url}/api/auth/me", headers=headers).status_code == 200
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # in constant use, still it ends
        assert httpx.get(f"{server.url}/api/auth/me", headers=headers).status_code in (200, 401)
        time.sleep(0.3)
    assert_error(httpx.get(f"{server.url}/api/auth/me", headers=headers), 401, "unauthorized")


def test_disabled_user_is_locked_out_at_once(auth_server: ServerProcess) -> None:
    from tests.auth.conftest import cli

    create_user(auth_server, "alice")
    alice = login(auth_server, "alice")
    token = alice.post("/api/tokens", json={"name": "script"}).json()["token"]
    cli(auth_server, "users", "disable", "alice")
    assert_error(alice.get("/api/auth/me"), 401, "unauthorized")
    assert_error(
        httpx.get(f"{auth_server.url}/api/uploads", headers={"Authorization": f"Bearer {token}"}),
        401,
        "invalid_token",
    )
    with browser_client(auth_server) as client:
        refused = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert_error(refused, 403, "account_disabled")
    cli(auth_server, "users", "enable", "alice")
    login(auth_server, "alice")


def test_first_run_setup_link_creates_the_admin_once(auth_server: ServerProcess) -> None:
    link, token = setup_link(auth_server)
    assert link.startswith(f"{auth_server.url}/setup?token=")
    log = auth_server.log_path.read_text()
    assert log.count(token) == 1, "the setup token is logged exactly once"
    with browser_client(auth_server) as client:
        assert client.get("/api/auth/status").json()["setupRequired"] is True
        bad = client.post(
            "/api/auth/setup", json={"token": "x" * 43, "username": "root", "password": PASSWORD}
        )
        assert_error(bad, 403, "invalid_setup_token")
        weak = client.post("/api/auth/setup", json={"token": token, "username": "root", "password": "short"})
        assert_error(weak, 422, "weak_password")  # a mistake does not spend the token
        made = client.post("/api/auth/setup", json={"token": token, "username": "Root", "password": PASSWORD})
        assert made.status_code == 201, made.text
        assert made.json()["username"] == "root" and made.json()["isAdmin"] is True
        again = client.post(
            "/api/auth/setup", json={"token": token, "username": "evil", "password": PASSWORD}
        )
        assert_error(again, 403, "invalid_setup_token")
        assert client.get("/api/auth/status").json()["setupRequired"] is False
    admin = login(auth_server, "root")
    assert admin.get("/api/auth/me").json()["role"] == "admin"

    # Restarting with an account: no new link.
    auth_server.stop()
    auth_server.start()
    assert len(setup_link(auth_server)) == 2
    assert auth_server.log_path.read_text().count("/setup?token=") == 1
