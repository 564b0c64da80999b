"""/api/tokens: API tokens for scripts (``Authorization: Bearer skf_...``), shown once, stored hashed."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import Field

from skyframe.api.auth import require_accounts
from skyframe.api.deps import PrincipalDep, ServicesDep
from skyframe.api.schemas import ApiModel
from skyframe.db.models import ApiToken

router = APIRouter(prefix="/api/tokens", tags=["tokens"])


class TokenCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)


class TokenOut(ApiModel):
    token_id: str
    user_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret itself: shown only in this response.")


class TokenList(ApiModel):
    tokens: list[TokenOut]


def to_out(row: ApiToken) -> TokenOut:
    return TokenOut(
        token_id=row.id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


@router.post("", status_code=201, response_model=TokenCreated)
def create_token(
    body: TokenCreate, response: Response, services: ServicesDep, principal: PrincipalDep
) -> TokenCreated:
    require_accounts(services.settings)
    row, token = services.auth.create_token(principal.user_id, body.name)
    response.headers["Cache-Control"] = "no-store"
    return TokenCreated(**to_out(row).model_dump(), token=token)


@router.get("", response_model=TokenList)
def list_tokens(services: ServicesDep, principal: PrincipalDep) -> TokenList:
    """Your tokens (an admin sees everyone's); never the secrets."""
    require_accounts(services.settings)
    return TokenList(tokens=[to_out(t) for t in services.auth.list_tokens(principal.scope)])


@router.delete("/{token_id}", status_code=204)
def revoke_token(token_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    require_accounts(services.settings)
    services.auth.delete_token(principal.scope, token_id)
    return Response(status_code=204)
