"""The OpenAPI 3 document of the server (``GET /openapi.json``), written by hand."""

from __future__ import annotations

from .transcriptions import RESPONSE_FORMATS

__all__ = ["openapi_document"]

_ERROR = {"description": "refused", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_IMPORT = {"type": "object", "properties": {
    "added": {"type": "integer"}, "updated": {"type": "integer"},
    "skipped": {"type": "array", "items": {"type": "object", "properties": {
        "line": {"type": "integer"}, "text": {"type": "string"}, "reason": {"type": "string"}}}}}}


def _query(name: str, kind: str = "string", required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": {"type": kind}}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(version: str, secured: bool) -> dict:
    segment = {"type": "object", "properties": {
        "id": {"type": "integer"}, "start": {"type": "number"}, "end": {"type": "number"},
        "text": {"type": "string"}, "tokens": {"type": "array", "items": {"type": "integer"}},
        "confidence": {"type": "number", "nullable": True,
                       "description": "agreement with the acoustic evidence (null: no evidence guard)"},
        "withheld": {"type": "string", "description": "text the evidence guard withheld (then text is empty)"},
        "phonemes": {"type": "string"}, "hints": {"type": "array", "items": {"type": "string"}},
        "language": {"type": "string", "nullable": True}, "passes": {"type": "integer"}}}
    doc: dict = {
        "openapi": "3.0.3",
        "info": {"title": "nim4asr-edge server", "version": version,
                 "description": "Offline LLM speech recognition: OpenAI-compatible transcriptions, live streaming "
                                "over a WebSocket (/v1/audio/stream, see docs/server.md)."},
        "paths": {
            "/v1/audio/transcriptions": {"post": {
                "summary": "Transcribe an audio file",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary",
                                 "description": "WAV, FLAC, OGG/Vorbis/Opus or MP3"},
                        "model": {"type": "string", "description": "the served model's id, or whisper-1"},
                        "language": {"type": "string", "description": "a language the model can be forced to"},
                        "prompt": {"type": "string", "description": "extra contextual hints, comma-separated"},
                        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
                    }}}}},
                "responses": {
                    "200": {"description": "the transcript", "content": {
                        "application/json": {"schema": {"oneOf": [
                            {"$ref": "#/components/schemas/Transcription"},
                            {"$ref": "#/components/schemas/VerboseTranscription"}]}},
                        "text/plain": {"schema": {"type": "string"}},
                        "application/x-subrip": {"schema": {"type": "string"}},
                        "text/vtt": {"schema": {"type": "string"}}}},
                    "400": _ERROR, "401": _ERROR, "413": _ERROR, "415": _ERROR,
                    "429": {**_ERROR, "headers": {"Retry-After": {"schema": {"type": "integer"}}}}}}},
            "/v1/models": {"get": {"summary": "The served model", "responses": {
                "200": _json({"type": "object"}, "a list holding the one served model"), "401": _ERROR}}},
            "/health": {"get": {"summary": "Liveness and load", "responses": {
                "200": _json({"type": "object", "properties": {
                    "status": {"type": "string"}, "contexts": {"type": "integer"}, "busy": {"type": "integer"},
                    "waiting": {"type": "integer"}, "queue": {"type": "integer"}}}, "serving"),
                "401": _ERROR}}},
            "/v1/audio/stream": {"get": {
                "summary": "Live recognition over a WebSocket (upgrade)",
                "description": 'First message (text): {"sample_rate": int, "format": "pcm16"|"f32", "hints": '
                               '[str]}; then binary frames of little-endian mono samples; then {"type": "end"}. '
                               "The server sends StreamEvent objects as JSON and closes with 1000; 1003/1007 for "
                               "a bad message, 1009 beyond the audio limit, 1013 when busy.",
                "responses": {"101": {"description": "switching protocols"}, "401": _ERROR}}},
            "/v1/hotwords": {
                "get": {"summary": "List hotwords", "parameters": [_query("namespace"), _query("limit", "integer")],
                        "responses": {"200": _json({"type": "object"}, "entries"), "404": _ERROR}},
                "post": {"summary": "Add hotwords", "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["entries"], "properties": {
                        "namespace": {"type": "string", "default": "default"},
                        "entries": {"type": "array", "items": {"oneOf": [{"type": "string"}, {
                            "type": "object", "properties": {"text": {"type": "string"},
                                                             "weight": {"type": "number"}}}]}}}}}}},
                         "responses": {"200": _json(_IMPORT, "the import report"), "400": _ERROR, "404": _ERROR,
                                       "429": _ERROR}}},
            "/v1/hotwords/remove": {"post": {
                "summary": "Remove hotwords by text", "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"type": "object", "required": ["texts"], "properties": {
                        "namespace": {"type": "string", "default": "default"},
                        "texts": {"type": "array", "items": {"type": "string"}}}}}}},
                "responses": {"200": _json({"type": "object", "properties": {
                    "removed": {"type": "integer"}, "missing": {"type": "array", "items": {"type": "string"}}}},
                    "what was removed"), "400": _ERROR, "404": _ERROR, "429": _ERROR}}},
            "/v1/hotwords/import": {"post": {
                "summary": "Import a txt/csv hotword list (the format of `hotwords build`)",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary"}, "namespace": {"type": "string"},
                        "format": {"type": "string", "enum": ["txt", "csv"]}}}}}},
                "responses": {"200": _json(_IMPORT, "the import report"), "400": _ERROR, "404": _ERROR,
                              "413": _ERROR, "429": _ERROR}}},
            "/v1/hotwords/search": {"get": {
                "summary": "Phonemise a text and search it as if heard",
                "parameters": [_query("q", required=True), _query("namespace"), _query("top_k", "integer")],
                "responses": {"200": _json({"type": "object"}, "hits, best first"), "400": _ERROR, "404": _ERROR,
                              "429": _ERROR}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": _json({"type": "object"}, "OpenAPI 3 document")}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["message", "type"], "properties": {
                    "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": "string"}}}}},
            "Transcription": {"type": "object", "properties": {
                "text": {"type": "string"}, "confidence": {"type": "number", "nullable": True},
                "withheld": {"type": "string"}}},
            "VerboseTranscription": {"type": "object", "properties": {
                "task": {"type": "string"}, "language": {"type": "string", "nullable": True},
                "duration": {"type": "number"}, "text": {"type": "string"},
                "confidence": {"type": "number", "nullable": True}, "withheld": {"type": "string"},
                "rtf": {"type": "number"}, "segments": {"type": "array", "items": segment}}},
            "StreamEvent": {"type": "object", "properties": {
                "kind": {"type": "string", "enum": ["partial", "final", "endpoint"]}, "text": {"type": "string"},
                "stable": {"type": "string"}, "utterance": {"type": "integer"}, "start": {"type": "number"},
                "end": {"type": "number"}, "latency": {"type": "number"},
                "tokens": {"type": "array", "items": {"type": "integer"}},
                "confidence": {"type": "number", "nullable": True}, "withheld": {"type": "string"},
                "language": {"type": "string", "nullable": True}, "passes": {"type": "integer"}}},
        }},
    }
    if secured:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
