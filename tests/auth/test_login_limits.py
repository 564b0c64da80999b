"""Guessing passwords: per account and per client address, the 6th failure within the window is 429."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.auth.conftest import AUTH_ENV, PASSWORD, assert_error, browser_client, create_user
from tests.conftest import ServerProcess


def attempt(server: ServerProcess, username: str, password: str, ip: str | None = None):  # type: ignore[no-untyped-def]
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 (a local proxy): one test can act as many clients.
    headers = {"X-Forwarded-For": ip} if ip else {}
    with browser_client(server) as client:
        return client.post(
            "/api/auth/login", json={"username": username, "password": password}, headers=headers
        )


def test_sixth_wrong_password_in_a_minute_is_refused_even_if_correct(auth_server: ServerProcess) -> None:
    create_user(auth_server, "alice")
    create_user(auth_server, "bob")
    # Five failures, from five addresses: the per-account count does not care where they come from.
    for i in range(5):
        assert_error(
            attempt(auth_server, "alice", f"guess-{i}", ip=f"203.0.113.{i + 1}"), 401, "invalid_credentials"
        )
    locked = attempt(auth_server, "alice", PASSWORD)
    error = assert_error(locked, 429, "too_many_attempts")
    assert 0 < int(locked.headers["retry-after"]) <= 60 and error["retryAfter"] == int(
        locked.headers["retry-after"]
    )
    assert_error(attempt(auth_server, "ALICE", PASSWORD), 429, "too_many_attempts")  # same account
    # Another account from the same address is unaffected.
    assert attempt(auth_server, "bob", PASSWORD).status_code == 200


def test_per_address_limit_and_the_window_passing(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(
        env={**AUTH_ENV, "SKYFRAME_LOGIN_MAX_FAILURES_PER_IP": "4", "SKYFRAME_LOGIN_WINDOW_SECONDS": "6"}
    )
    create_user(server, "alice")
    for name in ("u1", "u2", "u3", "u4"):  # credential stuffing: one address, many accounts
        assert_error(attempt(server, name, "guess-guess", ip="198.51.100.7"), 401, "invalid_credentials")
    refused = attempt(server, "alice", PASSWORD, ip="198.51.100.7")
    assert_error(refused, 429, "too_many_attempts")
    assert attempt(server, "alice", PASSWORD, ip="198.51.100.8").status_code == 200  # other address
    # Knocking while locked out does not extend the lockout; after the window, the right password works.
    time.sleep(int(refused.headers["retry-after"]) + 0.5)
    assert attempt(server, "alice", PASSWORD, ip="198.51.100.7").status_code == 200
