"""``POST /v1/audio/transcriptions`` (OpenAI-compatible), ``GET /v1/models`` and ``GET /health``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import AudioError, OptionsError
from ..formats import format_result
from ..prompt import check_language
from ..results import Result, Timings
from ..segmenter import split_points
from .errors import ApiError
from .pool import Busy
from .upload import decode_audio, read_form

if TYPE_CHECKING:
    from ..decoding import PromptedDecoder
    from .state import ServerState

__all__ = ["MAX_HINTS", "MODEL_ALIASES", "RESPONSE_FORMATS", "health", "list_models", "recognise", "transcriptions"]

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
MODEL_ALIASES = ("whisper-1",)  # names OpenAI clients send by default; they select the one served model
MAX_HINTS = 64  # most comma-separated hints a prompt may carry


def recognise(decoder: "PromptedDecoder", state: "ServerState", samples: np.ndarray, hints: Sequence[str],
              language: str | None) -> Result:
    """A whole upload on one pooled context, split into segments as ``Recognizer.iter_segments`` splits a file
    (runs on a worker thread)."""
    engine = state.recognizer.engine
    rate = engine.sample_rate
    t0 = time.perf_counter()
    timings = Timings()
    forced = decoder.language
    decoder.language = language if language is not None else forced
    try:
        segments = tuple(engine.segment(samples[a:b], a / rate, hints, timings, decoder=decoder)
                         for a, b in split_points(samples, rate, state.recognizer.options.max_segment_seconds))
    finally:
        decoder.language = forced
    timings.total = time.perf_counter() - t0
    text = " ".join(s.text for s in segments if s.text)
    return Result(text, segments, len(samples) / rate, timings, state.model_info)


def _hints(prompt: str) -> list[str]:
    parts = prompt.split(",")
    if len(parts) > MAX_HINTS:
        raise ApiError(400, f"the prompt holds {len(parts)} comma-separated hints; at most {MAX_HINTS} are allowed",
                       "prompt")
    return [h.strip() for h in parts if h.strip()]


def _field(fields: dict[str, str], name: str) -> str | None:
    """A text field's value; None when absent, 400 when present but empty (never silently taken as absent)."""
    value = fields.get(name)
    if value is not None and not value:
        raise ApiError(400, f"{name} is empty: leave the field out or give a value", name)
    return value


def _language(state: "ServerState", value: str | None) -> str | None:
    if value is None:
        return None
    try:
        check_language(state.recognizer.engine.prompt, value)
    except OptionsError as exc:
        raise ApiError(400, str(exc), "language") from None
    return value


def _check_model(state: "ServerState", value: str | None) -> None:
    if value is not None and value != state.model_id and value not in MODEL_ALIASES:
        raise ApiError(400, f"model {value[:80]!r} is not served here; this server serves {state.model_id!r} "
                            "(GET /v1/models)", "model")


def _verbose(result: Result) -> dict:
    withheld = [s.withheld for s in result.segments if s.withheld]
    return {
        "task": "transcribe",
        "language": result.language,
        "duration": result.duration,
        "text": result.text,
        "confidence": result.confidence,
        "withheld": " ".join(withheld),
        "segments": [{"id": i, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
                      "confidence": s.confidence, "withheld": s.withheld, "phonemes": s.phonemes,
                      "hints": list(s.hints), "language": s.language, "passes": s.passes}
                     for i, s in enumerate(result.segments)],
        "rtf": result.rtf,
    }


def _render(result: Result, fmt: str) -> Response:
    if fmt == "json":
        withheld = " ".join(s.withheld for s in result.segments if s.withheld)
        return JSONResponse({"text": result.text, "confidence": result.confidence, "withheld": withheld})
    if fmt == "verbose_json":
        return JSONResponse(_verbose(result))
    media = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}[fmt]
    return PlainTextResponse(format_result(result, "txt" if fmt == "text" else fmt), media_type=media)


async def transcriptions(request: Request) -> Response:
    state: ServerState = request.app.state.server
    config = state.config
    form = await read_form(request, config.max_upload_bytes, config.max_upload_mb)
    fields = form.fields
    fmt = _field(fields, "response_format") or "json"
    if fmt not in RESPONSE_FORMATS:
        raise ApiError(400, f"response_format {fmt[:40]!r} is not one of {', '.join(RESPONSE_FORMATS)}",
                       "response_format")
    _check_model(state, _field(fields, "model"))
    language = _language(state, _field(fields, "language"))
    hints = _hints(fields.get("prompt", ""))
    if (problem := state.hint_error(hints)) is not None:
        raise ApiError(400, f"the prompt is too long: {problem}", "prompt")
    # decoding and resampling a long file takes a while: off the event loop too
    samples = await run_in_threadpool(decode_audio, form.audio, state.recognizer.sample_rate, config.max_audio_s)
    try:
        result = await state.pool.run(recognise, state, samples, hints, language)
    except Busy as exc:
        raise ApiError(429, f"the server is busy ({exc}); retry later", None,
                       {"Retry-After": str(config.retry_after_s)}) from None
    except AudioError as exc:  # e.g. too short to give one feature frame
        raise ApiError(400, f"unusable audio: {exc}", "file") from None
    return _render(result, fmt)


async def list_models(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    return JSONResponse({"object": "list", "data": [
        {"id": state.model_id, "object": "model", "created": state.started, "owned_by": "nim4asr-edge",
         "family": state.model_info["family"], "guard_status": state.model_info["guard_status"],
         "aliases": list(MODEL_ALIASES)}]})


async def health(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    pool = state.pool
    return JSONResponse({"status": "ok", "model": state.model_id, "contexts": pool.contexts,
                         "busy": pool.in_flight, "waiting": pool.waiting, "queue": pool.queue})
