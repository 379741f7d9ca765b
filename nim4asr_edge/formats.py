"""Writing results as txt, json, jsonl, srt or vtt, with withheld segments shown, not silently dropped."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .results import Result, Segment

__all__ = ["FORMATS", "Withheld", "format_result", "segment_line"]

FORMATS = ("txt", "json", "jsonl", "srt", "vtt")


@dataclass(frozen=True)
class Withheld:
    """How a segment the evidence guard withheld appears in txt, srt and vtt (json and jsonl carry every field)."""

    show_text: bool = False  # print the withheld text itself, marked
    placeholder: str = "[withheld: low confidence {confidence:.2f}]"  # shown instead ("" hides the segment)

    def render(self, seg: Segment) -> str:
        """The text to show for ``seg``: its text, or what stands for withheld text ("" when there is none)."""
        if seg.text or not seg.withheld:
            return seg.text
        confidence = seg.confidence if seg.confidence is not None else 0.0
        if self.show_text:
            return f"[withheld {confidence:.2f}] {seg.withheld}"
        return self.placeholder.format(confidence=confidence)


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def segment_line(seg: Segment) -> str:
    """One segment as a JSON line (the ``jsonl`` format)."""
    return json.dumps(dataclasses.asdict(seg), ensure_ascii=False)


def format_result(result: Result, fmt: str, withheld: Withheld = Withheld()) -> str:
    """The result rendered in one of :data:`FORMATS`."""
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "jsonl":
        return "".join(segment_line(s) + "\n" for s in result.segments)
    cues = [(s, text) for s in result.segments if (text := withheld.render(s))]
    if fmt == "txt":
        return " ".join(text for _, text in cues) + "\n"
    if fmt == "srt":
        return "".join(
            f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{text}\n\n"
            for i, (s, text) in enumerate(cues, 1)
        )
    if fmt == "vtt":
        body = "".join(f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{text}\n\n" for s, text in cues)
        return "WEBVTT\n\n" + body
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
