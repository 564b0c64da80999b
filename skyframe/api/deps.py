"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from skyframe.db.models import LOCAL_OWNER
from skyframe.services import Services


@dataclass(frozen=True)
class Principal:
    """Who is asking. ``scope`` is the owner filter for queries: None lets an admin see everything."""

    user_id: str
    is_admin: bool = False

    @property
    def scope(self) -> str | None:
        return None if self.is_admin else self.user_id


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_principal(request: Request) -> Principal:
    return getattr(request.state, "principal", None) or Principal(LOCAL_OWNER, is_admin=True)


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
