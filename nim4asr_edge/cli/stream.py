"""``nim4asr-edge stream FILE [--realtime]``: run a file through the streaming recognizer, showing live events."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from ..formats import Withheld
from ..results import Segment
from ..stream import StreamEvent, StreamOptions
from .transcribe import add_guard_arguments, withheld_style


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="stream a file through the live recognizer (partials, finals)")
    p.add_argument("file", help="audio file")
    add_stream_arguments(p)
    p.add_argument("--realtime", action="store_true", help="feed the file at real speed (as a microphone would)")
    p.add_argument("--feed-ms", type=int, default=100, help="size of each fed block in ms (default 100)")
    p.set_defaults(func=run)


def add_stream_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", help="model bundle directory (default: the bundle shipped with the SDK)")
    p.add_argument("-t", "--threads", type=int, default=0, help="CPU threads (default: up to 8 cores)")
    p.add_argument("--hint", action="append", default=[], help="a contextual hint (repeatable)")
    p.add_argument("--silence-ms", type=int, default=600, help="trailing silence that ends an utterance")
    p.add_argument("-f", "--format", choices=("txt", "jsonl"), default="txt",
                   help="txt: live partials and timed finals; jsonl: every event as one JSON line (default: txt)")
    p.add_argument("--json", dest="format", action="store_const", const="jsonl", help="the same as --format jsonl")
    add_guard_arguments(p)


def make_stream(args: argparse.Namespace, live: bool):
    """The recognizer and a stream; ``live`` input (real time) skips partials that decoding fell behind on, while a
    file fed at full speed gets a partial for every chunk."""
    from ..options import RecognizerOptions
    from ..recognizer import Recognizer
    from ..vad import VadOptions

    rec = Recognizer(args.model, RecognizerOptions(threads=args.threads, guard="auto" if args.guard == "on" else "off"))
    options = StreamOptions(vad=VadOptions(min_silence_ms=args.silence_ms), skip_late_partials=live)
    return rec, rec.create_stream(options, hints=args.hint)


def show_events(stream, args: argparse.Namespace) -> None:
    """Print events as they come: partials overwrite one terminal line, finals are kept (an empty final says why)."""
    as_json = args.format == "jsonl"
    style = withheld_style(args)
    live = sys.stdout.isatty() and not as_json
    for ev in stream.events():
        if as_json:
            print(json.dumps(_event_dict(ev), ensure_ascii=False), flush=True)
        elif ev.kind == "partial" and live:
            sys.stdout.write("\r\033[K" + ev.text[-200:])
            sys.stdout.flush()
        elif ev.kind == "final":
            prefix = "\r\033[K" if live else ""
            print(f"{prefix}[{ev.start:7.2f} - {ev.end:7.2f}] {_final_text(ev, style)}", flush=True)


def _final_text(ev: StreamEvent, style: Withheld) -> str:
    if ev.text:
        return ev.text
    if ev.withheld:
        seg = Segment(ev.start, ev.end, "", ev.tokens, "", confidence=ev.confidence, withheld=ev.withheld)
        return style.render(seg)
    return "[no speech recognised]"


def _event_dict(ev: StreamEvent) -> dict:
    return {"kind": ev.kind, "text": ev.text, "stable": ev.stable, "utterance": ev.utterance,
            "start": round(ev.start, 3), "end": round(ev.end, 3), "latency_ms": round(ev.latency * 1000, 1),
            "confidence": ev.confidence, "withheld": ev.withheld, "language": ev.language}


def run(args: argparse.Namespace) -> int:
    from ..audio import load_audio

    samples = load_audio(args.file, 16000)
    rec, stream = make_stream(args, live=args.realtime)
    block = max(1, int(16000 * args.feed_ms / 1000))

    def produce() -> None:
        t0 = time.perf_counter()
        for i in range(0, len(samples), block):
            if args.realtime:
                delay = t0 + i / 16000 - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            stream.accept_waveform(16000, samples[i : i + block])
        stream.input_finished()

    producer = threading.Thread(target=produce, daemon=True)
    with rec, stream:
        producer.start()
        show_events(stream, args)
        producer.join()
    return 0
