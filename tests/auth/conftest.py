"""Fixtures for the accounts tests: real ``skyframe serve`` processes with SKYFRAME_AUTH=on.

The embedded worker is off, so jobs stay ``pending``: the concurrency limits and the access matrix do not
depend on the enhancement engine.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess

REPO = Path(__file__).resolve().parents[2]
AUTH_ENV = {"SKYFRAME_AUTH": "on", "SKYFRAME_EMBEDDED_WORKER": "false"}
SETUP_LINK = re.compile(r"(http://\S+/setup\?token=([A-Za-z0-9_-]+))")
PASSWORD = "correct horse battery"


def cli(server: ServerProcess, *args: str, input: str | None = None, check: bool = True) -> str:
    """``python -m skyframe ARGS`` against the server's data directory; returns stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "skyframe", *args],
        env=server.env,
        cwd=REPO,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, f"skyframe {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def create_user(server: ServerProcess, name: str, *, admin: bool = False, password: str = PASSWORD) -> str:
    out = cli(server, "users", "create", name, "--password", password, *(["--admin"] if admin else []))
    return re.search(r"\((usr_[0-9a-f]+)\)", out)[1]  # type: ignore[index]


def setup_link(server: ServerProcess, timeout: float = 10) -> tuple[str, str]:
    """The one-time setup link the server logged at start: (link, token)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = SETUP_LINK.findall(server.log_path.read_text(errors="replace"))
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no setup link in the log:\n{server.log_path.read_text()[-3000:]}")


def browser_client(server: ServerProcess, **kwargs: object) -> httpx.Client:
    """A client that behaves like the page: same-origin Origin header on every request."""
    return server.client(headers={"Origin": server.url}, **kwargs)


def login(server: ServerProcess, name: str, password: str = PASSWORD) -> httpx.Client:
    client = browser_client(server)
    response = client.post("/api/auth/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return client


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    body = response.json()
    assert body["error"]["code"] == code, body
    assert len(body["error"]["message"]) > 10
    return body["error"]


@pytest.fixture
def auth_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(env=AUTH_ENV)


@pytest.fixture
def users(auth_server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    """admin, alice and bob, each logged in with their own session."""
    create_user(auth_server, "admin", admin=True)
    create_user(auth_server, "alice")
    create_user(auth_server, "bob")
    clients = {name: login(auth_server, name) for name in ("admin", "alice", "bob")}
    yield clients
    for client in clients.values():
        client.close()
