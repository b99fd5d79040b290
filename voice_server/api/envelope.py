"""The API's envelope: `{"success": true, ...}` answers and `{"success": false, "error"}` refusals.

Every refusal is an `ApiError` raised anywhere below a route and turned into JSON in one place
(`voice_server.api.operations`). The status says what kind: 400 a body that is not JSON, 401 no
valid API key, 404 nothing of that id *for this caller* (another user's document included), 409 a
conflict with what is stored, 422 input that fails validation, with the failing fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse


class FieldProblem(BaseModel):
    field: str
    message: str


class ApiError(Exception):
    """A refusal: HTTP `status`, a stable `code` for programs, a `message` for people."""

    def __init__(
        self, status: int, code: str, message: str, details: list[FieldProblem] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} with this id")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422, "validation_error", f"{field}: {message}", [FieldProblem(field=field, message=message)]
    )


def invalid_input(error: ValidationError, where: str) -> ApiError:
    """A 422 listing each failing field as `where.path.to.field` (`body.…` or `query.…`)."""
    problems = [
        FieldProblem(
            field=".".join([where, *(str(part) for part in problem["loc"])]),
            message=problem["msg"],
        )
        for problem in error.errors(include_url=False)
    ]
    return ApiError(422, "validation_error", "the request is not valid", problems)


def success(status: int = 200, **fields: Any) -> JSONResponse:
    return JSONResponse({"success": True, **fields}, status_code=status)


def failure(error: ApiError) -> JSONResponse:
    body = {
        "success": False,
        "error": {
            "code": error.code,
            "message": error.message,
            "details": [problem.model_dump() for problem in error.details],
        },
    }
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(body, status_code=error.status, headers=headers)
