"""The one error shape of the API ({"error": {code, message, details}}) and the exception the edge raises for it."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import JSONResponse

from bazkhord.service.schemas import ErrorBody, ErrorDetail, ErrorResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[ErrorDetail] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(code=code, message=message, details=details or [])
        self.headers = headers


def error_response(status: int, body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=ErrorResponse(error=body).model_dump(), headers=headers)


def error_bytes(code: str, message: str) -> bytes:
    """The error body as bytes, for answers sent by ASGI middleware before any route runs."""
    return ErrorResponse(error=ErrorBody(code=code, message=message)).model_dump_json().encode()
