"""Per-user limits, resolved once per request and handed to the services that enforce them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one account may use. ``None`` means unlimited."""

    max_concurrent_jobs: int | None = None
    max_storage_bytes: int | None = None
    allow_paid_models: bool = True


UNLIMITED = Limits()
