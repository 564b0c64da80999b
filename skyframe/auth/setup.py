"""The first-run setup link: printed once at start while no account exists."""

from __future__ import annotations

import logging

from skyframe.auth.mode import is_loopback
from skyframe.services import Services

log = logging.getLogger("skyframe.auth.setup")


def setup_base_url(services: Services) -> str:
    settings = services.settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.host
    if not is_loopback(host) and host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # a wildcard bind: the operator substitutes this machine's address
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def announce_setup_link(services: Services) -> str | None:
    """Issue a fresh one-time setup token and log its link at WARNING (the only secret ever logged).

    Without logging configured, Python's last-resort handler writes WARNING records to stderr.
    """
    token = services.auth.issue_setup_token()
    if token is None:
        return None
    link = f"{setup_base_url(services)}/setup?token={token}"
    hours = services.settings.setup_token_hours
    log.warning(
        "No accounts exist yet. Open this link to create the admin account (valid once, for %g h; "
        "a restart prints a new one): %s   (or run: skyframe users create NAME --admin)",
        hours,
        link,
    )
    return link
