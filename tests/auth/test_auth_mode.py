"""Accounts off is for one person on this machine only: refused beyond loopback, guarded on it."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from skyframe.auth.mode import bind_problem, is_loopback
from skyframe.config import Settings
from tests.auth.conftest import REPO, assert_error
from tests.conftest import ServerProcess


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.com", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert (bind_problem(Settings(host=host, auth=False)) is None) is loopback
    assert bind_problem(Settings(host=host, auth=True)) is None


def test_serve_refuses_a_public_bind_with_auth_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k != "SKYFRAME_AUTH"}
    env["SKYFRAME_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "skyframe", "serve", "--host", "0.0.0.0", "--port", "9"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SKYFRAME_AUTH=on" in done.stderr and "0.0.0.0" in done.stderr


def test_single_user_mode_on_loopback(server: ServerProcess) -> None:
    """The default: no accounts, the local admin, but no cross-site writes and no foreign Host names."""
    with server.client() as client:
        me = client.get("/api/auth/me").json()
        assert me["authEnabled"] is False and me["isAdmin"] is True
        assert client.get("/api/auth/status").json() == {"authEnabled": False, "setupRequired": False}
        assert_error(
            client.post("/api/auth/login", json={"username": "a", "password": "b"}), 409, "auth_disabled"
        )
        assert_error(client.post("/api/tokens", json={"name": "x"}), 409, "auth_disabled")
        assert client.get("/api/uploads").status_code == 200
        assert client.get("/login", follow_redirects=False).headers["location"] == "/"
        body = {"filename": "a.mp4", "size": 1000}
        assert_error(
            client.post("/api/uploads/init", json=body, headers={"Origin": "https://evil.example"}),
            403,
            "csrf_rejected",
        )
        assert client.post("/api/uploads/init", json=body, headers={"Origin": server.url}).status_code == 201
        # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host name.
        assert_error(client.get("/api/uploads", headers={"Host": "evil.example:8000"}), 403, "bad_host")
        # A tunnel or proxy on this machine forwarding outside clients: refused without accounts.
        assert_error(
            client.get("/api/uploads", headers={"X-Forwarded-For": "203.0.113.9"}), 403, "auth_required"
        )
    assert httpx.get(f"{server.url}/api/health").status_code == 200
