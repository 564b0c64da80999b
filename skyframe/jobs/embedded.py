"""The worker that ``skyframe serve`` runs beside the API, as a child process with the same settings."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

from skyframe.config import Settings

log = logging.getLogger(__name__)


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``SKYFRAME_*`` variables, so a child process sees exactly what the parent uses."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        key = "REPLICATE_API_TOKEN" if name == "replicate_api_token" else f"SKYFRAME_{name.upper()}"
        env[key] = str(value)
    return env


class EmbeddedWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **settings_env(self.settings)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "skyframe", "worker", "--parent-pid", str(os.getpid())], env=env
        )
        log.info("embedded worker started (pid %d)", self.proc.pid)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
