"""A local transcription server over one loaded bundle (``nim4asr-edge serve``; the ``server`` extra).

OpenAI-compatible ``POST /v1/audio/transcriptions``, ``GET /v1/models``, ``GET /health``, a WebSocket for live audio
(``/v1/audio/stream``) and ``GET /openapi.json``. Starlette and uvicorn are imported only when a server is built, so
``import nim4asr_edge`` never needs them. See ``docs/server.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ServerConfig, is_loopback

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..recognizer import Recognizer

__all__ = ["ServerConfig", "create_app", "is_loopback", "serve"]


def create_app(recognizer: "Recognizer", config: ServerConfig = ServerConfig()) -> "Starlette":
    """The ASGI application serving ``recognizer`` (the caller keeps ownership of it and closes it after)."""
    from .app import build_app

    return build_app(recognizer, config)


def serve(recognizer: "Recognizer", config: ServerConfig = ServerConfig()) -> None:
    """Serve until interrupted (SIGINT/SIGTERM); in-flight requests finish before it returns."""
    from .app import run_server

    run_server(recognizer, config)
