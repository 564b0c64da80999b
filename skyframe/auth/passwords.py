"""Argon2id password hashing (pwdlib) and the rules for usernames and passwords."""

from __future__ import annotations

import re
from functools import lru_cache

from pwdlib import PasswordHash

from skyframe.errors import Invalid

MIN_PASSWORD = 8
# Argon2 handles long inputs fine; the cap only stops megabyte "passwords" from costing CPU time.
MAX_PASSWORD = 1024
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


@lru_cache
def _dummy_hash() -> str:
    return _hasher().hash("skyframe-dummy-password")


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """(ok, new hash if the parameters should be upgraded). ``None`` costs the same time as a real check,
    so response timing does not tell whether an account exists."""
    if len(password) > MAX_PASSWORD:
        return False, None
    if password_hash is None:
        _hasher().verify(password, _dummy_hash())
        return False, None
    return _hasher().verify_and_update(password, password_hash)


def normalize_username(username: str) -> str:
    return username.strip().lower()


def check_username(username: str) -> str:
    name = normalize_username(username)
    if not _USERNAME.fullmatch(name):
        raise Invalid(
            "A username is 1-64 characters (letters, digits, '.', '_', '-'), starting with a letter or "
            "digit.",
            code="invalid_username",
        )
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"A password needs at least {MIN_PASSWORD} characters.", code="weak_password")
    if len(password) > MAX_PASSWORD:
        raise Invalid(f"A password has at most {MAX_PASSWORD} characters.", code="invalid_password")
