"""Server settings, checked once: a frozen dataclass whose ``__post_init__`` refuses unsafe or impossible values."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import OptionsError

__all__ = ["ServerConfig", "is_loopback"]

MIB = 1024 * 1024  # bytes


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"  # loopback by default; any other address needs `token`
    port: int = 8000  # 0: an ephemeral port (tests)
    token: str | None = None  # bearer token every request must carry (None: no authentication, loopback only)
    contexts: int = 1  # LLM contexts over the shared weights: recognitions (and live streams) running at once
    queue: int = 4  # requests waiting for a context; more get 429 with Retry-After
    max_upload_mb: float = 25.0  # largest uploaded file, MiB (413 beyond)
    max_audio_s: float = 600.0  # longest audio, seconds, per upload and per live stream (413 / close 1009 beyond)
    cors_origin: str | None = None  # an origin allowed to call from a browser (None: no CORS headers at all)
    retry_after_s: int = 2  # the Retry-After of a 429
    model_id: str = ""  # the name /v1/models reports ("" : the bundle directory's name)
    graceful_shutdown_s: int = 60  # most seconds in-flight work may take to finish at shutdown
    first_message_s: float = 10.0  # a live stream's client must send its start message within this time

    def __post_init__(self) -> None:
        if not self.host:
            raise OptionsError("host must not be empty")
        if not is_loopback(self.host) and not self.token:
            raise OptionsError(f"binding {self.host} (not a loopback address) needs a bearer token: pass --token "
                               "(or bind 127.0.0.1)")
        if self.token is not None and (len(self.token) < 8 or not self.token.isprintable() or " " in self.token):
            raise OptionsError("the token must be at least 8 printable characters without spaces")
        if not 0 <= self.port <= 65535:
            raise OptionsError(f"port must be within [0, 65535], got {self.port}")
        if self.contexts < 1 or self.queue < 0:
            raise OptionsError("contexts must be >= 1 and queue >= 0")
        if self.max_upload_mb <= 0 or self.max_audio_s <= 0:
            raise OptionsError("max_upload_mb and max_audio_s must be > 0")
        if self.retry_after_s < 1 or self.graceful_shutdown_s < 0 or self.first_message_s <= 0:
            raise OptionsError("retry_after_s must be >= 1, graceful_shutdown_s >= 0 and first_message_s > 0")
        if self.cors_origin is not None and (self.cors_origin == "" or self.cors_origin.endswith("/")):
            raise OptionsError("cors_origin must be an origin like 'http://localhost:5173' (no trailing '/'), or "
                               "'*'")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MIB)
