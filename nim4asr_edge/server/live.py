"""``/v1/audio/stream``: live audio over a WebSocket, the Python stream API's events back as JSON.

Protocol: the client's first message is text, ``{"sample_rate": 16000, "format": "pcm16" | "f32", "hints": [...]}``
(optional ``"skip_late_partials": false``: a partial for every 640 ms of audio however late, for audio sent faster
than real time; the default true decodes one partial for the newest audio when decoding falls behind);
then binary frames of little-endian samples (mono; a whole number of samples per frame); then the text message
``{"type": "end"}``. The server sends every :class:`~nim4asr_edge.stream.StreamEvent` as a JSON text message and
closes with 1000 after the last. A wrong first message closes with 1003 (not text) or 1007 (bad JSON or fields), a
frame of the wrong size or kind with 1003/1007, audio beyond the server's limit with 1009, a full server with 1013.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import TYPE_CHECKING

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..errors import Nim4AsrError
from .pool import Busy
from .web import SUBPROTOCOL

if TYPE_CHECKING:
    from ..stream import Stream
    from .state import ServerState

__all__ = ["live_stream"]

log = logging.getLogger("nim4asr_edge.server")

FORMATS = {"pcm16": np.dtype("<i2"), "f32": np.dtype("<f4")}
MIN_RATE, MAX_RATE = 1000, 384000  # Hz
MAX_HINTS = 64
UNSUPPORTED, INVALID, TOO_BIG, INTERNAL, TRY_LATER = 1003, 1007, 1009, 1011, 1013  # RFC 6455 close codes


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close reason must fit 123 bytes


def parse_start(message: dict) -> tuple[int, np.dtype, list[str], bool]:
    """The start message's sample rate, sample type, hints and ``skip_late_partials`` (``Refused`` when
    malformed)."""
    text = message.get("text")
    if text is None:
        raise Refused(UNSUPPORTED, "the first message must be text: JSON with sample_rate and format")
    try:
        start = json.loads(text)
    except ValueError:
        raise Refused(INVALID, "the first message is not JSON") from None
    if not isinstance(start, dict):
        raise Refused(INVALID, "the first message must be a JSON object")
    rate = start.get("sample_rate")
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise Refused(INVALID, f"sample_rate must be an integer within [{MIN_RATE}, {MAX_RATE}]")
    fmt = start.get("format", "pcm16")
    if fmt not in FORMATS:
        raise Refused(INVALID, "format must be 'pcm16' or 'f32'")
    hints = start.get("hints", [])
    if not isinstance(hints, list) or len(hints) > MAX_HINTS or not all(isinstance(h, str) for h in hints):
        raise Refused(INVALID, f"hints must be a list of at most {MAX_HINTS} strings")
    skip = start.get("skip_late_partials", True)
    if not isinstance(skip, bool):
        raise Refused(INVALID, "skip_late_partials must be true or false")
    unknown = set(start) - {"sample_rate", "format", "hints", "skip_late_partials"}
    if unknown:
        raise Refused(INVALID, f"unknown field(s) in the first message: {', '.join(sorted(unknown))[:60]}")
    return rate, FORMATS[fmt], [h.strip() for h in hints if h.strip()], skip


def parse_frame(data: bytes, dtype: np.dtype) -> np.ndarray:
    if len(data) % dtype.itemsize:
        raise Refused(INVALID, f"a {len(data)}-byte frame is not a whole number of {dtype.itemsize}-byte samples")
    samples = np.frombuffer(data, dtype)
    if dtype.kind == "f" and not np.isfinite(samples).all():
        raise Refused(INVALID, "a frame holds NaN or infinite samples")
    return samples


def _event_json(ev) -> str:
    d = dataclasses.asdict(ev)
    d["tokens"] = list(ev.tokens)
    return json.dumps(d, ensure_ascii=False)


async def _feed(ws: WebSocket, stream: "Stream", rate: int, dtype: np.dtype, max_samples: float) -> None:
    """Client audio into the stream until ``{"type": "end"}`` (``Refused`` on a bad message)."""
    fed = 0
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("bytes") is not None:
            samples = parse_frame(message["bytes"], dtype)
            fed += len(samples)
            if fed > max_samples:
                raise Refused(TOO_BIG, f"the stream is longer than the server's limit of {max_samples / rate:g} s")
            if len(samples):
                stream.accept_waveform(rate, samples)
            continue
        try:
            end = json.loads(message.get("text") or "")
        except ValueError:
            end = None
        if end != {"type": "end"}:
            raise Refused(INVALID, 'text messages after the first must be {"type": "end"}')
        stream.input_finished()
        return


async def _forward(ws: WebSocket, stream: "Stream", state: "ServerState") -> None:
    """The stream's events to the client, in order, until the stream ends."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    done = object()

    def pump() -> None:  # on a pool worker thread: events() blocks
        try:
            for ev in stream.events():
                loop.call_soon_threadsafe(events.put_nowait, ev)
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop
            loop.call_soon_threadsafe(events.put_nowait, exc)
        loop.call_soon_threadsafe(events.put_nowait, done)

    pumping = asyncio.ensure_future(state.pool.to_thread(pump))
    try:
        while (item := await events.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            await ws.send_text(_event_json(item))
    finally:
        stream.input_finished()
        await pumping


async def live_stream(ws: WebSocket) -> None:
    state: ServerState = ws.app.state.server
    # a client that offers subprotocols (a browser carrying its token as one) gets ours, never the token back
    await ws.accept(SUBPROTOCOL if SUBPROTOCOL in ws.scope.get("subprotocols", ()) else None)
    stream = None
    try:
        async with state.pool.slot():
            try:
                first = await asyncio.wait_for(ws.receive(), state.config.first_message_s)
            except asyncio.TimeoutError:
                raise Refused(INVALID, f"no start message within {state.config.first_message_s:g} s") from None
            if first["type"] == "websocket.disconnect":
                return
            rate, dtype, hints, skip = parse_start(first)
            if (problem := state.hint_error(hints)) is not None:
                raise Refused(INVALID, problem)
            options = dataclasses.replace(state.stream_options, skip_late_partials=skip)
            stream = await state.pool.to_thread(state.recognizer.create_stream, options, hints)
            feeding = asyncio.ensure_future(_feed(ws, stream, rate, dtype, state.config.max_audio_s * rate))
            forwarding = asyncio.ensure_future(_forward(ws, stream, state))
            try:
                await feeding
            except BaseException:
                forwarding.cancel()
                raise
            await forwarding
        await _close(ws, 1000, "")
    except Busy:
        await _close(ws, TRY_LATER, "the server is busy; retry later")
    except Refused as exc:
        await _close(ws, exc.code, exc.reason)
    except WebSocketDisconnect:
        pass
    except Nim4AsrError as exc:
        log.warning("live stream failed: %s", exc)
        await _close(ws, INTERNAL, "recognition failed")
    except Exception:  # a bug: its traceback in the server log, the client told only that recognition failed
        log.exception("live stream failed")
        await _close(ws, INTERNAL, "recognition failed")
    finally:
        if stream is not None:
            await asyncio.get_running_loop().run_in_executor(None, stream.close)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state != WebSocketState.DISCONNECTED and ws.client_state != WebSocketState.DISCONNECTED:
        try:
            await ws.close(code, reason)
        except (RuntimeError, WebSocketDisconnect):  # the connection went meanwhile
            pass
