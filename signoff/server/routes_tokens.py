"""API tokens (admin scope): create (the secret is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from signoff import errors
from signoff.server import auth, deps, problems, schemas

router = APIRouter(tags=["tokens"])
Admin = Annotated[auth.Principal, Depends(auth.require("admin"))]


@router.post(
    "/tokens", status_code=201, response_model=schemas.TokenCreated, operation_id="create_token"
)
async def create_token(
    body: schemas.CreateToken, request: Request, who: Admin
) -> schemas.TokenCreated:
    token, secret = await deps.engine(request).access.create_token(
        body.name, list(body.scopes), by=who.name
    )
    return schemas.TokenCreated(token=schemas.TokenOut.model_validate(token), secret=secret)


@router.get("/tokens", response_model=list[schemas.TokenOut], operation_id="list_tokens")
async def list_tokens(request: Request, who: Admin) -> list[schemas.TokenOut]:
    tokens = await deps.engine(request).access.list_tokens()
    return [schemas.TokenOut.model_validate(t) for t in tokens]


@router.delete("/tokens/{token_id}", response_model=schemas.TokenOut, operation_id="revoke_token")
async def revoke_token(
    token_id: Annotated[str, Path(max_length=100)], request: Request, who: Admin
) -> schemas.TokenOut:
    """Revoke a token at once; revoking again is harmless."""
    try:
        token = await deps.engine(request).access.revoke_token(token_id, by=who.name)
    except errors.InvalidArgument as exc:
        raise problems.Problem(404, "token_not_found", str(exc)) from None
    return schemas.TokenOut.model_validate(token)
