"""Errors as problem+json (RFC 9457): `type`, `title`, `status`, `detail`, `code`.

`signoff.errors` carry their HTTP `status` and a stable `code`; the handlers here turn
them, request-validation errors and unknown routes into the same shape, so a client can
raise the matching error class from `code` alone.
"""

from __future__ import annotations

import http
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from signoff import errors, models

_DECISION = TypeAdapter(models.Decision)
MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://signoff.dev/problems/"


class Problem(Exception):
    """An HTTP error raised by a route; rendered as problem+json."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}
        self.extra = extra


def body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": TYPE_BASE + code,
        "title": http.HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        body(status, code, detail, **extra),
        status_code=status,
        headers=headers,
        media_type=MEDIA_TYPE,
    )


def from_error(exc: errors.SignoffError) -> tuple[int, dict[str, Any]]:
    """The status and problem body of a library error."""
    status = exc.status if 400 <= exc.status < 600 else 500
    extra: dict[str, Any] = {}
    if exc.run_id is not None:
        extra["run_id"] = exc.run_id
    if exc.key is not None:
        extra["key"] = exc.key
    decision = getattr(exc, "decision", None)
    if isinstance(decision, models.Decision):
        extra["decision"] = _DECISION.dump_python(decision, mode="json")
    current_digest = getattr(exc, "current_digest", None)
    if current_digest is not None:
        extra["current_digest"] = current_digest
    return status, body(status, exc.code, str(exc), **extra)


def _validation_detail(exc: RequestValidationError) -> tuple[int, str, str, list[Any]]:
    errs = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errs):
        return 400, "malformed_json", "the request body is not valid JSON", []
    parts = []
    for e in errs[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg')}")
    plain = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")}
        for e in errs[:20]
    ]
    return 422, "validation_error", "; ".join(parts) or "invalid request", plain


def install(app: FastAPI) -> None:
    """Register the handlers that render every error as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return response(exc.status, exc.code, exc.detail, exc.headers, **exc.extra)

    async def on_signoff(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.SignoffError)
        status, content = from_error(exc)
        return JSONResponse(content, status_code=status, media_type=MEDIA_TYPE)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        status, code, detail, errs = _validation_detail(exc)
        extra: dict[str, Any] = {"errors": errs} if errs else {}
        return response(status, code, detail, None, **extra)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = (
            exc.detail if isinstance(exc.detail, str) else http.HTTPStatus(exc.status_code).phrase
        )
        return response(exc.status_code, code, detail, dict(exc.headers or {}))

    async def on_timeout(request: Request, exc: Exception) -> Response:
        return response(409, "timeout", str(exc) or "timed out")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(errors.SignoffError, on_signoff)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(TimeoutError, on_timeout)
