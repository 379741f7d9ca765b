"""Error bodies: ``{"error": {"message", "type"}}`` as the OpenAI API writes them; never a path or a stack trace."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["ApiError", "api_error_response", "error_body", "internal_error_handler", "websocket_only"]

log = logging.getLogger("nim4asr_edge.server")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          405: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
          422: "invalid_request_error", 426: "invalid_request_error", 429: "rate_limit_error", 503: "server_error"}


class ApiError(Exception):
    """A request the server refuses, with the HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, param: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = headers or {}


def error_body(status: int, message: str, param: str | None = None) -> dict:
    err = {"message": message, "type": _TYPES.get(status, "server_error" if status >= 500 else
                                                  "invalid_request_error")}
    if param is not None:
        err["param"] = param
    return {"error": err}


async def api_error_response(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.status, exc.message, exc.param), exc.status, headers=exc.headers)


async def http_error_response(request: Request, exc) -> JSONResponse:
    """Starlette's own HTTP errors (404 unknown path, 405 wrong method) in the same shape."""
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    return JSONResponse(error_body(exc.status_code, detail), exc.status_code, headers=getattr(exc, "headers", None))


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback here, and a generic message for the client."""
    log.error("internal error serving %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body(500, "internal server error (the server log has the details)"), 500)


async def websocket_only(request: Request) -> JSONResponse:
    """A plain HTTP request to a WebSocket endpoint: 426 Upgrade Required (not a 404 for a path that exists)."""
    raise ApiError(426, f"{request.url.path} is a WebSocket endpoint: open it with a WebSocket handshake "
                        "(Upgrade: websocket)", None, {"Upgrade": "websocket"})
