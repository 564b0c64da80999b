"""Who is asking: built by the auth middleware, read by the routers through ``get_principal``."""

from __future__ import annotations

from dataclasses import dataclass

from skyframe.auth.limits import Limits


@dataclass(frozen=True)
class Principal:
    """``scope`` is the owner filter for queries: None lets an admin see everything.

    ``limits`` None means unlimited (admins, and the single-user mode with auth off). ``session_id`` is
    set when the request came with the session cookie, so a password change can keep this session only.
    """

    user_id: str
    is_admin: bool = False
    username: str | None = None
    limits: Limits | None = None
    session_id: str | None = None

    @property
    def scope(self) -> str | None:
        return None if self.is_admin else self.user_id
