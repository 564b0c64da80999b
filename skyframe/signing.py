"""Signed, expiring links to stored files, for services (Replicate) that fetch our inputs by URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from skyframe.config import Settings
from skyframe.errors import NotFound


def secret_key(settings: Settings) -> bytes:
    """The configured key, else one generated once and kept (mode 0600) in the data dir."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = Path(settings.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, storage_key: str, ttl_seconds: int, now: float | None = None) -> str:
    payload = _b64(json.dumps({"k": storage_key, "e": int((now or time.time()) + ttl_seconds)}).encode())
    mac = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}"


def verify(key: bytes, token: str, now: float | None = None) -> str:
    """The storage key a valid, unexpired token grants; anything else looks like a missing file."""
    try:
        payload, mac = token.split(".", 1)
        expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, expected):
            raise ValueError("bad signature")
        data = json.loads(_unb64(payload))
        if data["e"] < (now or time.time()):
            raise ValueError("expired")
        return str(data["k"])
    except (ValueError, KeyError, json.JSONDecodeError):
        raise NotFound("This link is invalid or has expired.", code="link_invalid") from None
