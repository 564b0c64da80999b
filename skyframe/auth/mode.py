"""Whether the service may run with accounts off: only when nothing beyond this machine can reach it."""

from __future__ import annotations

import ipaddress

from skyframe.config import Settings

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_problem(settings: Settings) -> str | None:
    """Why ``skyframe serve`` must refuse to start with these settings, or None when it may start."""
    if settings.auth or is_loopback(settings.host):
        return None
    return (
        f"Refusing to listen on {settings.host}:{settings.port} with accounts off: anyone who can reach "
        "that address would get full access to every clip and job. Set SKYFRAME_AUTH=on (then create the "
        "admin with the setup link printed at start, or `skyframe users create NAME --admin`), or bind to "
        "127.0.0.1 for single-user use on this machine."
    )
