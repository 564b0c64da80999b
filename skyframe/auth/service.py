"""Accounts, sessions, API tokens and the first-run setup link: the rules, independent of HTTP.

Every secret (session cookie, API token, setup token) is stored as its SHA-256 only, so reading the
database opens nothing. Login attempts live in the database, not in memory, so every process that serves
the API shares one count.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from skyframe.auth.limits import Limits
from skyframe.auth.passwords import (
    check_password,
    check_username,
    hash_password,
    normalize_username,
    verify_password,
)
from skyframe.auth.principal import Principal
from skyframe.auth.tokens import API_TOKEN_PREFIX, digest, new_api_token, new_secret
from skyframe.config import Settings
from skyframe.db.models import (
    ApiToken,
    AuthSession,
    Job,
    JobStatus,
    LoginAttempt,
    Role,
    SetupToken,
    Upload,
    UploadStatus,
    User,
    new_id,
    utcnow,
)
from skyframe.db.session import Database
from skyframe.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited, Unauthorized

log = logging.getLogger(__name__)

# last_seen / last_used are written at most this often, so authenticated reads rarely write.
TOUCH_INTERVAL = timedelta(seconds=60)
_UNSET: Any = object()


@dataclass(frozen=True)
class Usage:
    storage_bytes: int
    active_jobs: int


class AuthService:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    # -- users -------------------------------------------------------------------------------------

    def user_count(self) -> int:
        with self.db.session() as session:
            return session.scalar(select(func.count()).select_from(User)) or 0

    def create_user(self, username: str, password: str, *, admin: bool = False) -> User:
        name = check_username(username)
        password_hash = hash_password(password)
        with self.db.session() as session:
            return self._insert_user(session, name, password_hash, admin=admin)

    def list_users(self) -> list[User]:
        with self.db.session() as session:
            return list(session.scalars(select(User).order_by(User.created_at, User.username)))

    def get_user(self, user_id: str) -> User:
        with self.db.session() as session:
            user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"No user with id {user_id!r}.", code="user_not_found")
        return user

    def find_user(self, username: str) -> User:
        name = normalize_username(username)
        with self.db.session() as session:
            user = session.scalar(select(User).where(User.username == name))
        if user is None:
            raise NotFound(f"No user named {name!r}.", code="user_not_found")
        return user

    def set_password(self, username: str, password: str) -> User:
        """Operator reset: every session of the user ends (API tokens stay; revoke them separately)."""
        user = self.find_user(username)
        password_hash = hash_password(password)
        with self.db.session() as session:
            row = session.get(User, user.id)
            assert row is not None
            row.password_hash, row.password_changed_at = password_hash, utcnow()
            self._revoke_sessions(session, user.id)
        return row

    def set_disabled(self, username: str, disabled: bool = True) -> User:
        """A disabled user cannot log in, and their sessions and tokens stop working at once."""
        user = self.find_user(username)
        with self.db.session() as session:
            row = session.get(User, user.id)
            assert row is not None
            row.disabled = disabled
            if disabled:
                self._revoke_sessions(session, user.id)
        return row

    def set_limits(
        self,
        username: str,
        *,
        max_concurrent_jobs: int | None = _UNSET,
        max_storage_bytes: int | None = _UNSET,
        allow_paid_models: bool | None = _UNSET,
    ) -> User:
        """``None`` puts a limit back on the ``SKYFRAME_USER_*`` default; unset arguments keep theirs."""
        user = self.find_user(username)
        with self.db.session() as session:
            row = session.get(User, user.id)
            assert row is not None
            if max_concurrent_jobs is not _UNSET:
                row.max_concurrent_jobs = max_concurrent_jobs
            if max_storage_bytes is not _UNSET:
                row.max_storage_bytes = max_storage_bytes
            if allow_paid_models is not _UNSET:
                row.allow_paid_models = allow_paid_models
        return row

    def limits_for(self, user: User) -> Limits | None:
        """Admins run the machine and pay the bills: no limits. Users: their columns, else the defaults."""
        if user.role == Role.admin:
            return None
        s = self.settings
        return Limits(
            max_concurrent_jobs=_first(user.max_concurrent_jobs, s.user_max_concurrent_jobs),
            max_storage_bytes=_first(user.max_storage_bytes, s.user_max_storage_bytes),
            allow_paid_models=_first(user.allow_paid_models, s.user_allow_paid_models),
        )

    def principal_for(self, user: User, session_id: str | None = None) -> Principal:
        return Principal(
            user_id=user.id,
            is_admin=user.role == Role.admin,
            username=user.username,
            limits=self.limits_for(user),
            session_id=session_id,
        )

    def usage(self, user_id: str) -> Usage:
        with self.db.session() as session:
            storage = session.scalar(
                select(func.coalesce(func.sum(Upload.size), 0)).where(
                    Upload.owner_id == user_id, Upload.status != UploadStatus.failed
                )
            )
            active = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.owner_id == user_id, Job.status.in_((JobStatus.pending, JobStatus.running)))
            )
        return Usage(storage_bytes=int(storage or 0), active_jobs=int(active or 0))

    # -- login, sessions ---------------------------------------------------------------------------

    def login(self, username: str, password: str, ip: str, user_agent: str | None = None) -> tuple[User, str]:
        """Check the password and open a session; returns the user and the cookie value.

        Over the limit the answer is 429 whatever the password, until the window has passed: an attacker
        learns nothing from a locked-out guess, and the owner is told when to try again.
        """
        name = normalize_username(username)[:64]
        attempt_id = self._begin_attempt(name, ip)
        with self.db.session() as session:
            user = session.scalar(select(User).where(User.username == name))
        ok, new_hash = verify_password(password, user.password_hash if user else None)
        if not ok or user is None:
            raise Unauthorized("Wrong username or password.", code="invalid_credentials")
        self._forget_attempt(attempt_id)
        if user.disabled:
            raise Forbidden("This account is disabled. Ask the administrator.", code="account_disabled")
        now = utcnow()
        with self.db.session() as session:
            row = session.get(User, user.id)
            assert row is not None
            row.last_login_at = now
            if new_hash:
                row.password_hash = new_hash
            token = self._open_session(session, row, ip, user_agent)
            # Housekeeping: sessions past either expiry are dead anyway.
            session.execute(
                delete(AuthSession).where(
                    or_(
                        AuthSession.expires_at <= now,
                        AuthSession.last_seen_at <= now - self._idle,
                    )
                )
            )
        return row, token

    def resolve_session(self, token: str) -> Principal | None:
        """The principal behind a session cookie, or None when it is unknown, expired or revoked."""
        if not token or len(token) > 128:
            return None
        session_id = digest(token)
        now = utcnow()
        with self.db.session() as session:
            row = session.get(AuthSession, session_id)
            if row is None:
                return None
            if row.expires_at <= now or row.last_seen_at + self._idle <= now:
                session.delete(row)
                return None
            user = session.get(User, row.user_id)
            if user is None or user.disabled:
                return None
            if now - row.last_seen_at >= min(TOUCH_INTERVAL, self._idle / 4):
                row.last_seen_at = now
            return self.principal_for(user, session_id=session_id)

    def logout(self, token: str | None) -> None:
        if not token:
            return
        with self.db.session() as session:
            session.execute(delete(AuthSession).where(AuthSession.id == digest(token)))

    def change_password(self, principal: Principal, current: str, new: str, ip: str) -> User:
        """Own password change: needs the current one (rate-limited like a login), ends other sessions."""
        user = self.get_user(principal.user_id)
        attempt_id = self._begin_attempt(user.username, ip)
        ok, _ = verify_password(current, user.password_hash)
        if not ok:
            raise Forbidden("The current password is wrong.", code="wrong_password")
        self._forget_attempt(attempt_id)
        password_hash = hash_password(new)
        with self.db.session() as session:
            row = session.get(User, user.id)
            assert row is not None
            row.password_hash, row.password_changed_at = password_hash, utcnow()
            self._revoke_sessions(session, user.id, keep=principal.session_id)
        return row

    # -- API tokens --------------------------------------------------------------------------------

    def create_token(self, user_id: str, name: str) -> tuple[ApiToken, str]:
        """A new bearer token; the plaintext is returned here once and never stored."""
        label = " ".join(name.split())
        if not 1 <= len(label) <= 100:
            raise Invalid("A token name is 1-100 characters.", code="invalid_token_name")
        token = new_api_token()
        row = ApiToken(
            id=new_id("tok"),
            user_id=user_id,
            name=label,
            token_hash=digest(token),
            prefix=token[: len(API_TOKEN_PREFIX) + 4],
        )
        with self.db.session() as session:
            if session.get(User, user_id) is None:
                raise NotFound(f"No user with id {user_id!r}.", code="user_not_found")
            session.add(row)
        return row, token

    def list_tokens(self, scope: str | None) -> list[ApiToken]:
        with self.db.session() as session:
            query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)
            if scope is not None:
                query = query.where(ApiToken.user_id == scope)
            return list(session.scalars(query))

    def delete_token(self, scope: str | None, token_id: str) -> None:
        with self.db.session() as session:
            row = session.get(ApiToken, token_id)
            if row is None or (scope is not None and row.user_id != scope):
                raise NotFound(f"No API token with id {token_id!r}.", code="token_not_found")
            session.delete(row)

    def resolve_token(self, token: str) -> Principal | None:
        if not token.startswith(API_TOKEN_PREFIX) or len(token) > 128:
            return None
        now = utcnow()
        with self.db.session() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
            if row is None:
                return None
            user = session.get(User, row.user_id)
            if user is None or user.disabled:
                return None
            if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL:
                row.last_used_at = now
            return self.principal_for(user)

    # -- first-run setup ---------------------------------------------------------------------------

    def issue_setup_token(self) -> str | None:
        """A fresh one-time setup token while no account exists (older ones stop working), else None."""
        now = utcnow()
        with self.db.session() as session:
            session.execute(delete(SetupToken))
            if session.scalar(select(func.count()).select_from(User)):
                return None
            token = new_secret()
            session.add(
                SetupToken(
                    token_hash=digest(token),
                    created_at=now,
                    expires_at=now + timedelta(hours=self.settings.setup_token_hours),
                )
            )
        return token

    def complete_setup(self, token: str, username: str, password: str) -> User:
        """Create the first admin with the setup token. The token is spent only when this succeeds."""
        name = check_username(username)
        check_password(password)
        password_hash = hash_password(password)
        with self.db.session() as session:
            # Delete first: of two concurrent requests with the same token, exactly one deletes a row.
            spent = session.execute(
                delete(SetupToken).where(
                    SetupToken.token_hash == digest(token[:128]), SetupToken.expires_at > utcnow()
                )
            )
            if spent.rowcount != 1:  # type: ignore[attr-defined]
                raise Forbidden(
                    "This setup link is invalid, expired or already used. Restart the service to print "
                    "a new one, or run `skyframe users create NAME --admin`.",
                    code="invalid_setup_token",
                )
            if session.scalar(select(func.count()).select_from(User)):
                raise Conflict("An account already exists; log in instead.", code="setup_done")
            return self._insert_user(session, name, password_hash, admin=True)

    # -- helpers -----------------------------------------------------------------------------------

    @property
    def _idle(self) -> timedelta:
        return timedelta(hours=self.settings.session_idle_hours)

    def _insert_user(self, session: Session, name: str, password_hash: str, *, admin: bool) -> User:
        if session.scalar(select(User.id).where(User.username == name)):
            raise Conflict(f"The username {name!r} is taken.", code="username_taken")
        user = User(
            id=new_id("usr"),
            username=name,
            password_hash=password_hash,
            role=Role.admin if admin else Role.user,
            disabled=False,
        )
        session.add(user)
        # Once any account exists the setup link has no purpose left.
        session.execute(delete(SetupToken))
        return user

    def _open_session(self, session: Session, user: User, ip: str, user_agent: str | None) -> str:
        token = new_secret()
        now = utcnow()
        session.add(
            AuthSession(
                id=digest(token),
                user_id=user.id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(days=self.settings.session_max_days),
                ip=ip[:64],
                user_agent=(user_agent or "")[:256] or None,
            )
        )
        return token

    def _revoke_sessions(self, session: Session, user_id: str, keep: str | None = None) -> None:
        query = delete(AuthSession).where(AuthSession.user_id == user_id)
        if keep:
            query = query.where(AuthSession.id != keep)
        session.execute(query)

    def _begin_attempt(self, username: str, ip: str) -> int:
        """Record an attempt *before* checking the password, so parallel guesses count each other.

        A refused attempt (429) is not kept: the lockout ends one window after the last real failure,
        however often the client knocks meanwhile. A successful attempt is forgotten afterwards.
        """
        now = utcnow()
        since = now - timedelta(seconds=self.settings.login_window_seconds)
        ip = ip[:64]
        with self.db.session() as session:
            attempt = LoginAttempt(username=username, ip=ip, at=now)
            session.add(attempt)
            session.flush()  # on SQLite this takes the write lock: counting below sees every peer
            retry_after = 0.0
            for column, value, limit in (
                (LoginAttempt.username, username, self.settings.login_max_failures),
                (LoginAttempt.ip, ip, self.settings.login_max_failures_per_ip),
            ):
                where = (column == value, LoginAttempt.at >= since, LoginAttempt.id != attempt.id)
                earlier = session.scalar(select(func.count()).select_from(LoginAttempt).where(*where))
                if (earlier or 0) >= limit:
                    oldest = session.scalar(select(func.min(LoginAttempt.at)).where(*where))
                    retry_after = max(retry_after, _seconds_until(oldest, self.settings.login_window_seconds))
            if retry_after:
                raise RateLimited(
                    "Too many failed logins. Wait a minute before trying again.",
                    code="too_many_attempts",
                    retryAfter=math.ceil(retry_after),
                )
            session.execute(
                delete(LoginAttempt).where(
                    LoginAttempt.at < now - timedelta(seconds=10 * self.settings.login_window_seconds)
                )
            )
            return attempt.id

    def _forget_attempt(self, attempt_id: int) -> None:
        with self.db.session() as session:
            session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))


def _first(value: Any, default: Any) -> Any:
    return default if value is None else value


def _seconds_until(oldest: datetime | None, window: int) -> float:
    if oldest is None:
        return 1.0
    return max(1.0, (oldest + timedelta(seconds=window) - utcnow()).total_seconds())
