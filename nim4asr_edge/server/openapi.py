"""The OpenAPI 3 document of the server (``GET /openapi.json``), written by hand.

It states every limit the handlers check (field lengths, ranges, list sizes, the served model's id and languages) and
every status an operation can answer, so that a request the document calls valid is accepted and one it calls
invalid gets a 4xx (``tests/test_server_fuzz.py`` fuzzes the server against it).
"""

from __future__ import annotations

from typing import Sequence

from ..engine import MAX_HINT_TOKENS
from .hotwords import MAX_JSON_MB
from .transcriptions import MAX_HINTS, MODEL_ALIASES, RESPONSE_FORMATS
from .upload import MAX_FIELD_CHARS

__all__ = ["openapi_document"]

_NUMBER_OR_NULL = {"type": "number", "nullable": True}
_WHEN = {400: "a malformed request or field", 401: "missing or wrong bearer token", 403: "a foreign Origin",
         404: "no hotword index on this server (serve --hotwords)", 413: "over the size or duration limit",
         415: "not the media type the operation takes", 426: "not a WebSocket handshake",
         429: "every context busy and the queue full; retry after Retry-After seconds"}
_NAMESPACE = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S", "default": "default",
              "description": "a non-empty, not blank name of at most 200 characters"}
_IMPORT = {"type": "object", "required": ["added", "updated", "skipped"], "additionalProperties": False,
           "properties": {
               "added": {"type": "integer", "minimum": 0}, "updated": {"type": "integer", "minimum": 0},
               "skipped": {"type": "array", "items": {
                   "type": "object", "required": ["line", "text", "reason"], "properties": {
                       "line": {"type": "integer"}, "text": {"type": "string"}, "reason": {"type": "string"}}}}}}


def _errors(secured: bool, *statuses: int) -> dict:
    """Error responses of an operation (401 added on a server with a token)."""
    out = {}
    for status in sorted(set(statuses) | ({401} if secured else set())):
        out[str(status)] = {"description": _WHEN[status],
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if status == 429:
            out[str(status)]["headers"] = {"Retry-After": {"required": True, "schema": {"type": "integer",
                                                                                         "minimum": 1}}}
    return out


def _query(name: str, schema: dict, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict, media: str = "application/json") -> dict:
    return {"required": True, "content": {media: {"schema": schema}}}


def _obj(required: Sequence[str], **properties: dict) -> dict:
    """A response object: every field present, no other field."""
    return {"type": "object", "required": list(required), "additionalProperties": False, "properties": properties}


def _schemas(model_id: str) -> dict:
    segment = _obj(
        ("id", "start", "end", "text", "tokens", "confidence", "withheld", "phonemes", "hints", "language", "passes"),
        id={"type": "integer"}, start={"type": "number"}, end={"type": "number"}, text={"type": "string"},
        tokens={"type": "array", "items": {"type": "integer"}},
        confidence={**_NUMBER_OR_NULL, "description": "agreement with the acoustic evidence (null: no guard)"},
        withheld={"type": "string", "description": "text the evidence guard withheld (then text is empty)"},
        phonemes={"type": "string"}, hints={"type": "array", "items": {"type": "string"}},
        language={"type": "string", "nullable": True}, passes={"type": "integer", "minimum": 1})
    string = {"type": "string"}
    return {
        "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {"error": {
            "type": "object", "required": ["message", "type"], "additionalProperties": False, "properties": {
                "message": string, "type": string, "param": string}}}},
        "Transcription": _obj(("text", "confidence", "withheld"), text=string, confidence=_NUMBER_OR_NULL,
                              withheld=string),
        "VerboseTranscription": _obj(
            ("task", "language", "duration", "text", "confidence", "withheld", "rtf", "segments"),
            task={"type": "string", "enum": ["transcribe"]}, language={"type": "string", "nullable": True},
            duration={"type": "number", "minimum": 0}, text=string, confidence=_NUMBER_OR_NULL, withheld=string,
            rtf={"type": "number", "minimum": 0}, segments={"type": "array", "items": segment}),
        "StreamEvent": _obj(
            ("kind", "text", "stable", "utterance", "start", "end", "latency", "tokens", "confidence", "withheld",
             "language", "passes"),
            kind={"type": "string", "enum": ["partial", "final", "endpoint"]}, text=string, stable=string,
            utterance={"type": "integer"}, start={"type": "number"}, end={"type": "number"},
            latency={"type": "number"}, tokens={"type": "array", "items": {"type": "integer"}},
            confidence=_NUMBER_OR_NULL, withheld=string, language={"type": "string", "nullable": True},
            passes={"type": "integer"}),
        "Model": _obj(("id", "object", "created", "owned_by", "family", "guard_status", "aliases"),
                      id={"type": "string", "enum": [model_id]}, object={"type": "string", "enum": ["model"]},
                      created={"type": "integer"}, owned_by=string, family=string, guard_status=string,
                      aliases={"type": "array", "items": string}),
        "Hotword": _obj(("text", "weight", "namespace", "phonemes"), text=string, weight={"type": "number"},
                        namespace=string, phonemes={**string, "description": "space-separated phoneme symbols"}),
        "HotwordHit": _obj(("text", "score", "start", "end", "method", "phonemes", "weight", "namespace", "id"),
                           text=string, score={"type": "number"}, start={"type": "integer"},
                           end={"type": "integer"}, method={"type": "string", "enum": ["exact", "approx"]},
                           phonemes={"type": "array", "items": string}, weight={"type": "number"},
                           namespace=string, id={"type": "integer"}),
    }


def _transcription(secured: bool, model_id: str, languages: Sequence[str]) -> dict:
    text = {"type": "string", "maxLength": MAX_FIELD_CHARS}
    fields: dict = {
        "file": {"type": "string", "format": "binary", "description": "WAV, FLAC, OGG/Vorbis/Opus or MP3 bytes"},
        "model": {"type": "string", "enum": [model_id, *MODEL_ALIASES],
                  "description": "the served model's id, or an alias OpenAI clients send"}}
    if languages:  # a model that cannot be forced to a language refuses the field (400)
        fields["language"] = {"type": "string", "enum": list(languages), "description": "force the output language"}
    return {"post": {
        "summary": "Transcribe an audio file (OpenAI-compatible)",
        "description": "Text fields may not be empty; `language` is listed only when the model can be forced to one.",
        "requestBody": _body({"type": "object", "required": ["file"], "properties": {
            **fields,
            "prompt": {**text, "pattern": f"^[^,]*(,[^,]*){{0,{MAX_HINTS - 1}}}$",
                       "description": f"contextual hints, comma-separated, at most {MAX_HINTS} (taking at most "
                                      f"{MAX_HINT_TOKENS} LLM tokens)", "example": "Ada Lovelace, NIO House"},
            "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"}}},
            "multipart/form-data"),
        "responses": {
            "200": {"description": "the transcript", "content": {
                "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Transcription"},
                                                          {"$ref": "#/components/schemas/VerboseTranscription"}]}},
                "text/plain": {"schema": {"type": "string"}},
                "application/x-subrip": {"schema": {"type": "string"}},
                "text/vtt": {"schema": {"type": "string"}}}},
            **_errors(secured, 400, 403, 413, 415, 429)}}}


def _hotwords(secured: bool) -> dict:
    entry = {"oneOf": [{"type": "string"}, {"type": "object", "required": ["text"], "properties": {
        "text": {"type": "string"}, "weight": {"type": "number", "default": 1.0}}}]}
    listing = _obj(("object", "data"), object={"type": "string", "enum": ["list"]},
                   data={"type": "array", "items": {"$ref": "#/components/schemas/Hotword"}})
    hits = _obj(("object", "data"), object={"type": "string", "enum": ["list"]},
                data={"type": "array", "items": {"$ref": "#/components/schemas/HotwordHit"}})
    edit = (400, 403, 404, 413, 415, 429)
    return {
        "/v1/hotwords": {
            "get": {"summary": "List hotwords",
                    "parameters": [_query("namespace", {"type": "string"}),
                                   _query("limit", {"type": "integer", "minimum": 1, "maximum": 100_000,
                                                    "default": 1000})],
                    "responses": {"200": _json(listing, "entries"), **_errors(secured, 400, 404, 429)}},
            "post": {"summary": "Add hotwords", "requestBody": _body({
                "type": "object", "required": ["entries"], "properties": {
                    "namespace": _NAMESPACE,
                    "entries": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": entry,
                                "example": ["Ada Lovelace", {"text": "NIO House", "weight": 2.5}]}}}),
                "responses": {"200": _json(_IMPORT, "the import report"), **_errors(secured, *edit)}}},
        "/v1/hotwords/remove": {"post": {
            "summary": "Remove hotwords by text", "requestBody": _body({
                "type": "object", "required": ["texts"], "properties": {
                    "namespace": _NAMESPACE,
                    "texts": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": {"type": "string"},
                              "example": ["Ada Lovelace"]}}}),
            "responses": {"200": _json(_obj(("removed", "missing"), removed={"type": "integer", "minimum": 0},
                                            missing={"type": "array", "items": {"type": "string"}}),
                                       "what was removed"),
                          **_errors(secured, *edit)}}},
        "/v1/hotwords/import": {"post": {
            "summary": "Import a txt/csv hotword list (the format of `hotwords build`)",
            "requestBody": _body({"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary", "description": "a UTF-8 list file, one entry a line"},
                "namespace": _NAMESPACE,
                "format": {"type": "string", "enum": ["txt", "csv"], "default": "txt"}}}, "multipart/form-data"),
            "responses": {"200": _json(_IMPORT, "the import report"), **_errors(secured, *edit)}}},
        "/v1/hotwords/search": {"get": {
            "summary": "Phonemise a text and search it as if heard",
            "parameters": [_query("q", {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": r"\S",
                                        "example": "Ada Lovelace"}, required=True),
                           _query("namespace", {"type": "string"}),
                           _query("top_k", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10})],
            "responses": {"200": _json(hits, "hits, best first"), **_errors(secured, 400, 404, 429)}}},
    }


def openapi_document(version: str, secured: bool, model_id: str = "model", languages: Sequence[str] = ()) -> dict:
    """The document for a server serving ``model_id`` (forced ``languages``), with a bearer token if ``secured``."""
    doc: dict = {
        "openapi": "3.0.3",
        "info": {"title": "nim4asr-edge server", "version": version,
                 "description": "Offline LLM speech recognition: OpenAI-compatible transcriptions, live streaming "
                                "over a WebSocket (/v1/audio/stream, see docs/server.md). JSON bodies are at most "
                                f"{MAX_JSON_MB:g} MiB."},
        "paths": {
            "/v1/audio/transcriptions": _transcription(secured, model_id, languages),
            "/v1/models": {"get": {"summary": "The served model", "responses": {
                "200": _json(_obj(("object", "data"), object={"type": "string", "enum": ["list"]},
                                  data={"type": "array", "minItems": 1, "maxItems": 1,
                                        "items": {"$ref": "#/components/schemas/Model"}}),
                             "a list holding the one served model"),
                **_errors(secured)}}},
            "/health": {"get": {"summary": "Liveness and load", "responses": {
                "200": _json(_obj(("status", "model", "contexts", "busy", "waiting", "queue"),
                                  status={"type": "string", "enum": ["ok"]}, model={"type": "string"},
                                  contexts={"type": "integer", "minimum": 1}, busy={"type": "integer", "minimum": 0},
                                  waiting={"type": "integer", "minimum": 0}, queue={"type": "integer", "minimum": 0}),
                             "serving"),
                **_errors(secured)}}},
            "/v1/audio/stream": {"get": {
                "summary": "Live recognition over a WebSocket (upgrade)",
                "description": 'First message (text): {"sample_rate": int, "format": "pcm16"|"f32", "hints": '
                               '[str], "skip_late_partials": bool}; then binary frames of little-endian mono '
                               'samples; then {"type": "end"}. The server sends StreamEvent objects as JSON and '
                               "closes with 1000; 1003/1007 for a bad message, 1009 beyond the audio limit, 1011 "
                               "when recognition fails, 1013 when busy. A plain HTTP GET is refused with 426.",
                "responses": {"101": {"description": "switching protocols"}, **_errors(secured, 403, 426)}}},
            **_hotwords(secured),
            "/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": _json({"type": "object", "required": ["openapi", "info", "paths"]}, "OpenAPI 3 document"),
                **_errors(secured)}}},
        },
        "components": {"schemas": _schemas(model_id)},
    }
    if secured:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
