"""Fixtures for the browser tests: a real ``skyframe serve`` subprocess and Debian's Chromium.

The server runs with a fresh data directory and without Replicate credentials, so the Replicate models
are listed as unavailable. Every page fails its test on a console error or an uncaught page error,
except messages a test explicitly expects (``console.allow(pattern)``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VIDEO_DIR = REPO.parent / "shared" / "testdata" / "video"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("SKYFRAME_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebServer:
    """``python -m skyframe serve`` on a free port, in its own process group."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "web-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        env = {k: v for k, v in os.environ.items() if "REPLICATE" not in k}
        env.update(
            SKYFRAME_DATA_DIR=str(data_dir),
            SKYFRAME_MIN_FREE_DISK="0",
            PYTHONUNBUFFERED="1",
        )
        self.env = env

    def start(self, timeout: float = 90) -> WebServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "skyframe", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"skyframe serve exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"skyframe serve did not become healthy:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


class ConsoleWatch:
    """Collects console errors and page errors; ``check()`` fails on any not explicitly allowed."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def check(self) -> None:
        bad = self.unexpected()
        assert not bad, "console errors:\n" + "\n".join(bad)


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = WebServer(tmp_path_factory.mktemp("web") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def page(browser, web_server: WebServer, console: ConsoleWatch) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(
        base_url=web_server.url, viewport={"width": 1440, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on(
        "console",
        lambda msg: (
            console.errors.append(f"console.{msg.type}: {msg.text} ({msg.location.get('url', '')})")
            if msg.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda exc: console.errors.append(f"pageerror: {exc}"))
    yield page
    context.close()
    console.check()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
