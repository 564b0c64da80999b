"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from skyframe.auth.principal import Principal
from skyframe.db.models import LOCAL_OWNER
from skyframe.errors import Unauthorized
from skyframe.services import Services

__all__ = ["Principal", "PrincipalDep", "ServicesDep", "get_principal", "get_services"]


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_principal(request: Request) -> Principal:
    """Set by ``AuthMiddleware``. Only with accounts off does an anonymous request act as the local admin;
    with accounts on, a route reached without a principal fails closed."""
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    if request.app.state.services.settings.auth:
        raise Unauthorized("Log in first.", code="unauthorized")
    return Principal(LOCAL_OWNER, is_admin=True)


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
