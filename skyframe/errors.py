"""Domain errors. Services raise these; the API layer maps each kind to an HTTP status."""

from __future__ import annotations

from typing import Any


class SkyframeError(Exception):
    """Base class: ``code`` is a stable machine-readable token, ``message`` is for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class NotFound(SkyframeError):
    code = "not_found"


class Conflict(SkyframeError):
    """The resource is in the wrong state for the request."""

    code = "conflict"


class TooLarge(SkyframeError):
    code = "too_large"


class UnsupportedType(SkyframeError):
    code = "unsupported_type"


class BadRange(SkyframeError):
    code = "bad_range"


class Invalid(SkyframeError):
    """Well-formed request whose content cannot be processed (bad options, not a video...)."""

    code = "invalid"


class InsufficientStorage(SkyframeError):
    code = "insufficient_storage"


class Unauthorized(SkyframeError):
    code = "unauthorized"


class Forbidden(SkyframeError):
    code = "forbidden"


class RateLimited(SkyframeError):
    code = "rate_limited"
