"""The ASGI application: routes, bearer-token check, CORS, the context pool's lifetime, and the uvicorn server."""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import logging
from typing import TYPE_CHECKING

from ..errors import require

require("starlette", "server")
require("uvicorn", "server")
require("multipart", "server")

from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.cors import CORSMiddleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route, WebSocketRoute  # noqa: E402

from .config import ServerConfig  # noqa: E402
from .errors import (ApiError, api_error_response, error_body, http_error_response,  # noqa: E402
                     internal_error_handler, websocket_only)
from .hotwords import hotwords, import_hotwords, remove_hotwords, search_hotwords  # noqa: E402
from .live import live_stream  # noqa: E402
from .openapi import openapi_document  # noqa: E402
from .pool import ContextPool  # noqa: E402
from .state import ServerState  # noqa: E402
from .transcriptions import health, list_models, transcriptions  # noqa: E402
from .web import PAGE_PATHS, page_routes  # noqa: E402

if TYPE_CHECKING:
    import uvicorn

    from ..recognizer import Recognizer

__all__ = ["BearerAuth", "OriginCheck", "build_app", "make_server", "run_server"]

log = logging.getLogger("nim4asr_edge.server")


class BearerAuth:
    """Every HTTP request and WebSocket must carry ``Authorization: Bearer <token>`` (compared in constant time); a
    WebSocket may carry it as the subprotocol ``bearer.<base64url(token)>`` instead (browsers cannot set headers on
    one). GET/HEAD of the ``public`` paths (the browser page, which holds no data) need none. CORS preflights
    (OPTIONS) are answered by the CORS layer outside this one."""

    def __init__(self, app, token: str, public: frozenset = frozenset()) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._subprotocol = b"bearer." + base64.urlsafe_b64encode(token.encode()).rstrip(b"=")
        self._public = public

    def _authorised(self, scope) -> bool:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"] in self._public:
            return True
        given = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                given = value
                break
        ok = hmac.compare_digest(given, self._expected)
        if scope["type"] == "websocket":
            for offered in scope.get("subprotocols", ()):
                ok |= hmac.compare_digest(offered.encode(), self._subprotocol)
        return ok

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refused before the handshake completes: the client sees HTTP 403
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong bearer token"})
            return
        response = JSONResponse(error_body(401, "missing or wrong bearer token (Authorization: Bearer <token>)"),
                                401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class OriginCheck:
    """Refuse what a browser sends from a page of another origin than ``--cors-origin``: WebSocket handshakes (CORS
    does not cover them) and POSTs (a multipart form is a CORS "simple request" that runs without a preflight).
    Clients that are not browsers send no Origin header and pass."""

    def __init__(self, app, allowed: str | None) -> None:
        self.app = app
        self.allowed = allowed

    def _foreign(self, scope) -> bool:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return False
        origin = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"origin"), None)
        return origin is not None and self.allowed != "*" and origin != self.allowed and \
            not _own_page(origin, scope)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._foreign(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "origin not allowed"})
            return
        message = "requests from this origin are not allowed (serve --cors-origin ORIGIN allows one)"
        await JSONResponse(error_body(403, message), 403)(scope, receive, send)


def _own_page(origin: str, scope) -> bool:
    """Whether ``origin`` is this server's own page (``http(s)://`` + the Host header), reached by an IP address or
    ``localhost``: a DNS name could be rebound to this machine by another site, whose Origin and Host would match."""
    host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
    if origin not in (f"http://{host}", f"https://{host}"):
        return False
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost"
    return True


def build_app(recognizer: "Recognizer", config: ServerConfig) -> Starlette:
    from .. import __version__

    engine = recognizer.engine
    name = recognizer.bundle.path.name
    state = ServerState(recognizer, config, config.model_id or name,
                        {"bundle": name, "family": engine.family.name, "guard_status": engine.guard_status})
    document = openapi_document(__version__, secured=bool(config.token), model_id=state.model_id,
                                languages=engine.prompt.languages)

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        state.pool = ContextPool(engine, config.contexts, config.queue)
        log.info("serving %s with %d LLM context(s), queue %d", state.model_id, config.contexts, config.queue)
        try:
            yield
        finally:
            pool, state.pool = state.pool, None
            pool.close()  # in-flight recognitions have finished: uvicorn waited for their requests

    middleware = []
    if config.cors_origin:
        middleware.append(Middleware(CORSMiddleware, allow_origins=[config.cors_origin], allow_methods=["GET", "POST"],
                                     allow_headers=["Authorization", "Content-Type"], max_age=600))
    middleware.append(Middleware(OriginCheck, allowed=config.cors_origin))
    if config.token:
        middleware.append(Middleware(BearerAuth, token=config.token, public=PAGE_PATHS))
    routes = [
        Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/v1/hotwords", hotwords, methods=["GET", "POST"]),
        Route("/v1/hotwords/remove", remove_hotwords, methods=["POST"]),
        Route("/v1/hotwords/import", import_hotwords, methods=["POST"]),
        Route("/v1/hotwords/search", search_hotwords, methods=["GET"]),
        WebSocketRoute("/v1/audio/stream", live_stream),
        Route("/v1/audio/stream", websocket_only, methods=["GET"]),  # plain HTTP there: 426, not 404
        *page_routes(),  # the browser page at / (docs/server.md)
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers={
        ApiError: api_error_response, HTTPException: http_error_response, Exception: internal_error_handler})
    app.state.server = state
    return app


def make_server(recognizer: "Recognizer", config: ServerConfig, log_level: str = "info") -> "uvicorn.Server":
    """A uvicorn server for the app (``run()`` blocks; ``should_exit = True`` stops it after in-flight work)."""
    import uvicorn

    app = build_app(recognizer, config)
    uv = uvicorn.Config(app, host=config.host, port=config.port, timeout_graceful_shutdown=config.graceful_shutdown_s,
                        log_level=log_level, access_log=False, ws_max_size=4 * 1024 * 1024, server_header=False,
                        lifespan="on")
    return uvicorn.Server(uv)


def run_server(recognizer: "Recognizer", config: ServerConfig) -> None:
    make_server(recognizer, config).run()
