"""Writing results as txt, json, srt or vtt."""

from __future__ import annotations

import json

from .results import Result

__all__ = ["FORMATS", "format_result"]

FORMATS = ("txt", "json", "srt", "vtt")


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_result(result: Result, fmt: str) -> str:
    """The result rendered in one of :data:`FORMATS`."""
    if fmt == "txt":
        return result.text + "\n"
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    cues = [s for s in result.segments if s.text]
    if fmt == "srt":
        return "".join(
            f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text}\n\n" for i, s in enumerate(cues, 1)
        )
    if fmt == "vtt":
        body = "".join(f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text}\n\n" for s in cues)
        return "WEBVTT\n\n" + body
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
