"""Random secrets (session cookies, API tokens, setup links) and how they are stored: SHA-256 only.

These secrets carry 256 bits of entropy, so a fast hash is enough: nothing can be guessed back from it.
"""

from __future__ import annotations

import hashlib
import secrets

API_TOKEN_PREFIX = "skf_"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
