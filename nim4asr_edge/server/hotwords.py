"""Hotword endpoints over the index given with ``serve --hotwords``: list, add, remove, search, import a list file,
per namespace. Edits hold every context of the pool (no recognition searches the index while it changes)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from ..errors import HotwordError
from .errors import ApiError
from .pool import Busy
from .upload import read_form

if TYPE_CHECKING:
    from ..hotwords import HotwordIndex
    from .state import ServerState

__all__ = ["LIST_FORMATS", "MAX_JSON_MB", "add_hotwords", "hotwords", "import_hotwords", "list_hotwords",
           "remove_hotwords", "search_hotwords"]

MAX_ENTRIES = 10_000  # entries per JSON request (a larger list goes through /v1/hotwords/import)
MAX_LIST_MB = 64.0  # largest imported list file
MAX_JSON_MB = 8.0  # largest JSON body (413 beyond)
LIST_FORMATS = ("txt", "csv")


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
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "send a JSON body (Content-Type: application/json; it was "
                            f"{ctype.split(';')[0] or 'missing'})")
    limit, data = int(MAX_JSON_MB * 1024 * 1024), bytearray()
    try:
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise ApiError(413, f"the JSON body is larger than the server's limit of {MAX_JSON_MB:g} MiB")
        body = json.loads(data)
    except ValueError:  # not JSON, or not UTF-8
        raise ApiError(400, "the body must be a JSON object") from None
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before the body was complete") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


async def _edit(state: "ServerState", fn, *args, param: str | None = None):
    try:
        async with state.pool.exclusive():
            return await state.pool.to_thread(fn, *args)
    except Busy as exc:
        raise ApiError(429, f"the server is busy ({exc}); retry later", None,
                       {"Retry-After": str(state.config.retry_after_s)}) from None
    except HotwordError as exc:
        raise ApiError(400, str(exc), param) from None


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
    report = await _edit(state, lambda: index.add(entries, namespace=namespace), param="entries")
    return JSONResponse(_report(report))


async def import_hotwords(request: Request) -> JSONResponse:
    """A txt/csv list file (the format of ``hotwords build``) as the multipart ``file``."""
    state, index = _index(request)
    form = await read_form(request, int(MAX_LIST_MB * 1024 * 1024), MAX_LIST_MB)
    namespace = _namespace(form.fields.get("namespace", "default"))
    if not form.audio:
        raise ApiError(400, "the uploaded list is empty (0 bytes)", "file")
    fmt = form.fields.get("format", "txt")
    if fmt not in LIST_FORMATS:
        raise ApiError(400, f"format must be one of {', '.join(LIST_FORMATS)}", "format")
    csv = fmt == "csv"

    def add():
        fd, path = tempfile.mkstemp(suffix=".csv" if csv else ".txt", prefix="nim4asr-hotwords-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(form.audio)
            try:
                return index.add(path, namespace=namespace)
            except HotwordError as exc:  # its message names the temporary file: never show it
                message = str(exc).replace(path, "the uploaded list").replace(os.path.basename(path), "the list")
                raise HotwordError(message) from None
        finally:
            os.unlink(path)

    report = await _edit(state, add, param="file")
    return JSONResponse(_report(report))


async def hotwords(request: Request) -> JSONResponse:
    """``/v1/hotwords``: GET lists, POST adds (one route, so a wrong method's 405 names both)."""
    return await (list_hotwords if request.method in ("GET", "HEAD") else add_hotwords)(request)


async def remove_hotwords(request: Request) -> JSONResponse:
    state, index = _index(request)
    body = await _json(request)
    namespace = _namespace(body.get("namespace", "default"))
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or len(texts) > MAX_ENTRIES or \
            not all(isinstance(t, str) for t in texts):
        raise ApiError(400, f"texts must be a list of 1 to {MAX_ENTRIES} strings", "texts")
    report = await _edit(state, lambda: index.remove(texts, namespace=namespace), param="texts")
    return JSONResponse({"removed": report.removed, "missing": list(report.missing)})


async def search_hotwords(request: Request) -> JSONResponse:
    """Phonemise ``q`` and search it as if it had been heard."""
    state, index = _index(request)
    query = request.query_params.get("q", "")
    if not query.strip() or len(query) > 1000:
        raise ApiError(400, "q must be a text of 1 to 1000 characters, not all blank", "q")
    query = query.strip()
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
