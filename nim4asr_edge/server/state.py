"""What the request handlers share while the server runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from ..stream import StreamOptions
from .config import ServerConfig

if TYPE_CHECKING:
    from ..recognizer import Recognizer
    from .pool import ContextPool

__all__ = ["ServerState"]

@dataclass
class ServerState:
    """The recognizer, its context pool (set while the app runs) and the settings."""

    recognizer: "Recognizer"
    config: ServerConfig
    model_id: str  # what /v1/models reports and `model` may name
    model_info: dict  # bundle name (never its path), family, guard status
    stream_options: StreamOptions = field(default_factory=StreamOptions)
    started: int = field(default_factory=lambda: int(time.time()))  # Unix time, /v1/models' `created`
    pool: "ContextPool | None" = None

    def hint_error(self, hints: Sequence[str]) -> str | None:
        """Why ``hints`` cannot go into the prompt, or None when they can (the engine's one rule)."""
        return self.recognizer.engine.hint_problem(hints)
