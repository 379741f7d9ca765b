"""Hotword endpoints over the index given with ``serve --hotwords``: list, add, remove, search, import a list file,
per namespace. Edits hold every context of the pool (no recognition searches the index while it changes)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import HotwordError
from .errors import ApiError
from .pool import Busy
from .upload import read_form

if TYPE_CHECKING:
    from ..hotwords import HotwordIndex
    from .state import ServerState

__all__ = ["add_hotwords", "import_hotwords", "list_hotwords", "remove_hotwords", "search_hotwords"]

MAX_ENTRIES = 10_000  # entries per JSON request (a larger list goes through /v1/hotwords/import)
MAX_LIST_MB = 64.0  # largest imported list file


def _index(request: Request) -> tuple["ServerState", "HotwordIndex"]:
    state: ServerState = request.app.state.server
    index = state.recognizer.hotwords
    if index is None or not hasattr(index, "add"):
        raise ApiError(404, "this server has no hotword index (start it with serve --hotwords INDEX_DIR)")
    return state, index


def _namespace(value) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ApiError(400, "namespace must be a non-empty string of at most 200 characters", "namespace")
    return value


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer", name) from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be within [{low}, {high}]", name)
    return value


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


async def _edit(state: "ServerState", fn, *args):
    try:
        async with state.pool.exclusive():
            return await state.pool.to_thread(fn, *args)
    except Busy as exc:
        raise ApiError(429, f"the server is busy ({exc}); retry later", None,
                       {"Retry-After": str(state.config.retry_after_s)}) from None
    except HotwordError as exc:
        raise ApiError(400, str(exc)) from None


def _report(report) -> dict:
    return {"added": report.added, "updated": report.updated,
            "skipped": [dataclasses.asdict(s) for s in report.skipped]}


async def list_hotwords(request: Request) -> JSONResponse:
    state, index = _index(request)
    namespace = request.query_params.get("namespace")
    limit = _int(request, "limit", 1000, 1, 100_000)
    try:
        async with state.pool.slot():  # not while an edit holds every context
            entries = await state.pool.to_thread(index.list, namespace, limit)
    except Busy as exc:
        raise ApiError(429, f"the server is busy ({exc}); retry later", None,
                       {"Retry-After": str(state.config.retry_after_s)}) from None
    return JSONResponse({"object": "list", "data": [
        {"text": e.text, "weight": e.weight, "namespace": e.namespace, "phonemes": " ".join(e.phonemes)}
        for e in entries]})


async def add_hotwords(request: Request) -> JSONResponse:
    state, index = _index(request)
    body = await _json(request)
    namespace = _namespace(body.get("namespace", "default"))
    raw = body.get("entries")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ENTRIES:
        raise ApiError(400, f"entries must be a list of 1 to {MAX_ENTRIES} texts or {{\"text\", \"weight\"}} objects",
                       "entries")
    entries: list = []
    for e in raw:
        if isinstance(e, str):
            entries.append(e)
        elif isinstance(e, dict) and isinstance(e.get("text"), str) and \
                isinstance(e.get("weight", 1.0), (int, float)) and not isinstance(e.get("weight"), bool):
            entries.append((e["text"], float(e.get("weight", 1.0))))
        else:
            raise ApiError(400, "each entry must be a text or {\"text\": str, \"weight\": number}", "entries")
    report = await _edit(state, lambda: index.add(entries, namespace=namespace))
    return JSONResponse(_report(report))


async def import_hotwords(request: Request) -> JSONResponse:
    """A txt/csv list file (the format of ``hotwords build``) as the multipart ``file``."""
    state, index = _index(request)
    form = await read_form(request, int(MAX_LIST_MB * 1024 * 1024), MAX_LIST_MB)
    namespace = _namespace(form.fields.get("namespace", "default"))
    if not form.audio:
        raise ApiError(400, "the uploaded list is empty (0 bytes)", "file")
    csv = form.fields.get("format", "txt") == "csv"

    def add():
        fd, path = tempfile.mkstemp(suffix=".csv" if csv else ".txt", prefix="nim4asr-hotwords-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(form.audio)
            return index.add(path, namespace=namespace)
        finally:
            os.unlink(path)

    try:
        report = await _edit(state, add)
    except ApiError as exc:  # a list's errors may name the temporary file: never show it
        raise ApiError(exc.status, exc.message.replace(tempfile.gettempdir(), "<upload>"), exc.param,
                       exc.headers) from None
    return JSONResponse(_report(report))


async def remove_hotwords(request: Request) -> JSONResponse:
    state, index = _index(request)
    body = await _json(request)
    namespace = _namespace(body.get("namespace", "default"))
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or len(texts) > MAX_ENTRIES or \
            not all(isinstance(t, str) for t in texts):
        raise ApiError(400, f"texts must be a list of 1 to {MAX_ENTRIES} strings", "texts")
    report = await _edit(state, lambda: index.remove(texts, namespace=namespace))
    return JSONResponse({"removed": report.removed, "missing": list(report.missing)})


async def search_hotwords(request: Request) -> JSONResponse:
    """Phonemise ``q`` and search it as if it had been heard."""
    state, index = _index(request)
    query = request.query_params.get("q", "").strip()
    if not query or len(query) > 1000:
        raise ApiError(400, "q must be a text of 1 to 1000 characters", "q")
    top_k = _int(request, "top_k", 10, 1, 100)
    namespace = request.query_params.get("namespace")
    try:
        async with state.pool.slot():
            hits = await state.pool.to_thread(index.search_text, query, top_k, namespace)
    except Busy as exc:
        raise ApiError(429, f"the server is busy ({exc}); retry later", None,
                       {"Retry-After": str(state.config.retry_after_s)}) from None
    except HotwordError as exc:
        raise ApiError(400, str(exc), "q") from None
    return JSONResponse({"object": "list", "data": [dataclasses.asdict(h) for h in hits]})
