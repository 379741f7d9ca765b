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

__all__ = ["MAX_HINT_TOKENS", "ServerState"]

# LLM tokens a request's hints may add to the prompt: the recognizer sizes its contexts with 512 positions for the
# prompt and every hint (the caller's and the hotwords found), so a longer hint list would not fit beside the audio
MAX_HINT_TOKENS = 256


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
        """Why ``hints`` cannot go into the prompt (they take more than :data:`MAX_HINT_TOKENS` LLM tokens), or
        None when they fit."""
        if not hints:
            return None
        engine = self.recognizer.engine

        def tokens(hints: Sequence[str]) -> int:  # the prompt's tokens around the speech, as the decoder reads them
            parts = engine.prompt.render(hints)
            return sum(len(engine.llm.tokenize(text)) for text in (parts.before, parts.after) if text)

        added = tokens(hints) - tokens(())
        if added <= MAX_HINT_TOKENS:
            return None
        return f"the hints take {added} LLM tokens; at most {MAX_HINT_TOKENS} fit in the prompt"
