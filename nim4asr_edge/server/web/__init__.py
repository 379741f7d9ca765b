"""The browser page ``nim4asr-edge serve`` answers at ``/``: transcribe a file, the microphone live, hotwords.

Plain HTML, CSS and JavaScript shipped as package data (no build step, nothing loaded from another origin). The page
and its files are the only paths the server answers without a bearer token: they hold no data, and every API call
the page makes carries the token the user types into it (a WebSocket carries it as the subprotocol
``bearer.<base64url(token)>``, see ``bindings/PROTOCOL.md``).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["PAGE_PATHS", "SUBPROTOCOL", "page_routes"]

HERE = Path(__file__).parent
SUBPROTOCOL = "nim4asr.v1"  # the WebSocket subprotocol the server selects when a client offers it
_FILES = {  # URL path -> (file beside this module, media type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/hotwords.js": ("hotwords.js", "text/javascript; charset=utf-8"),
    "/static/capture.js": ("capture.js", "text/javascript; charset=utf-8"),
}
PAGE_PATHS = frozenset(_FILES)  # answered to GET/HEAD without a token
# the page loads nothing from elsewhere and may not be framed by another site (clickjacking the token field)
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def page_routes() -> list[Route]:
    """GET routes for the page and its static files (read once, when the app is built)."""
    routes = []
    for path, (name, media_type) in _FILES.items():
        body = (HERE / name).read_bytes()

        async def endpoint(request: Request, body: bytes = body, media_type: str = media_type) -> Response:
            return Response(body, media_type=media_type, headers=_HEADERS)

        routes.append(Route(path, endpoint, methods=["GET"]))  # HEAD is answered for GET routes
    return routes
