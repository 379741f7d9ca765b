"""What one batch worker does, wherever it runs (a local process or a Ray actor): hold one loaded Recognizer and
turn an audio file into its rendered outputs and JSONL record. Workers never write files; the driver does."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import Nim4AsrError
from ..formats import Withheld, format_result
from ..options import RecognizerOptions

__all__ = ["OUTPUT_FORMATS", "Event", "FileWorker", "WorkerSpec"]

OUTPUT_FORMATS = ("txt", "json", "srt", "vtt")  # per-file formats (the job's JSONL is always written)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to load its recognizer and render results (picklable)."""

    bundle: str | None  # bundle directory; None: the SDK's default bundle
    options: RecognizerOptions = RecognizerOptions()
    hotwords: str | None = None  # a hotword index directory or list file
    hints: tuple[str, ...] = ()  # contextual hints for every file
    formats: tuple[str, ...] = ("txt", "json")
    withheld: Withheld = field(default_factory=Withheld)


class FileWorker:
    """One loaded recognizer; :meth:`run` transcribes one file into a payload for the driver."""

    def __init__(self, spec: WorkerSpec) -> None:
        from ..recognizer import Recognizer

        self.spec = spec
        from ..hotwords import open_hotwords

        self.recognizer = Recognizer(spec.bundle, spec.options, open_hotwords(spec.hotwords))

    def describe(self) -> dict[str, Any]:
        """Where this worker runs (host and pid) and with how many threads."""
        engine = self.recognizer.engine
        return {"host": os.uname().nodename, "pid": os.getpid(), "threads": self.spec.options.effective_threads,
                "decode_threads": engine.llm.options.n_threads}

    def run(self, source: str, name: str) -> dict[str, Any]:
        """``{"ok": True, "outputs": {fmt: text}, "record": JSONL line, "duration": s}``, or ``{"ok": False,
        "error": "AudioError: ..."}`` when the SDK refuses the file (corrupt, empty, unsupported)."""
        try:
            result = self.recognizer.transcribe(source, hints=self.spec.hints)
        except Nim4AsrError as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        outputs = {fmt: format_result(result, fmt, self.spec.withheld) for fmt in self.spec.formats}
        record = {"name": name, "file": source, "text": result.text, "duration": result.duration,
                  "confidence": result.confidence, "language": result.language,
                  "segments": [{"start": s.start, "end": s.end, "text": s.text, "withheld": s.withheld,
                                "confidence": s.confidence} for s in result.segments]}
        return {"ok": True, "outputs": outputs, "record": json.dumps(record, ensure_ascii=False),
                "duration": result.duration, "seconds": result.timings.total}

    def close(self) -> None:
        self.recognizer.close()


@dataclass(frozen=True)
class Event:
    """What a pool reports about one task: the worker's payload, or why the attempt was lost."""

    task: Any  # the ledger Task
    payload: dict[str, Any] | None = None  # FileWorker.run's answer
    lost: str | None = None  # the worker died or raised unexpectedly: the file is retried
