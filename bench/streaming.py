"""Streaming metrics as JSON: latency, rollback, streaming vs offline agreement, no-speech hallucinations, memory.

    python bench/streaming.py [--model BUNDLE] [--threads 2] [--minutes 60] [--noise-clips 100]

* partial latency: arrival of the newest block a partial covers -> partial event (real-time feed; when decoding
  falls behind, the stream skips partials for audio that newer audio covers: the partial interval grows instead);
* final latency: arrival of the block in which the endpoint was detected -> final event;
* rollback rate: share of partials whose previous partial text is not a prefix of theirs;
* streaming vs offline: word error rate of each utterance's streaming final against the offline transcript of
  the same audio (0 means identical) and, when --reference-text is given, WER of both against it;
* hallucinations: non-empty outputs over silence, white/pink/brown noise, mains hum and tones at several levels;
* memory: RSS sampled over a long simulated stream fed faster than real time (growth between 10 % and 100 %).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import threading
import time

import numpy as np
import psutil

from nim4asr_edge.audio import load_audio
from nim4asr_edge.recognizer import Recognizer, RecognizerOptions
from nim4asr_edge.stream import StreamOptions

RATE = 16000


def wer(ref: str, hyp: str) -> float:
    r, h = ref.lower().split(), hyp.lower().split()
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        prev, d[0] = d.copy(), i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return float(d[len(h)]) / max(1, len(r))


def feed(stream, samples: np.ndarray, realtime: bool, block_ms: int = 100) -> None:
    block = RATE * block_ms // 1000
    t0 = time.perf_counter()
    for i in range(0, len(samples), block):
        if realtime:
            delay = t0 + i / RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        stream.accept_waveform(RATE, samples[i : i + block])
    stream.input_finished()


def run_stream(rec, samples, realtime: bool, options=StreamOptions()) -> list:
    with rec.create_stream(options) as stream:
        producer = threading.Thread(target=feed, args=(stream, samples, realtime))
        producer.start()
        events = list(stream.events(timeout=600))
        producer.join()
    return events


def noise_clips(n: int, seconds: float = 4.0) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    clips = []
    kinds = ["silence", "white", "pink", "brown", "hum50", "hum60", "tone440", "tone1k", "dc+hiss"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        level = [0.003, 0.03, 0.1, 0.3][(i // len(kinds)) % 4]
        white = rng.standard_normal(len(t))
        if kind == "silence":
            x = np.zeros_like(t)
        elif kind == "white":
            x = white
        elif kind == "pink":
            spec = np.fft.rfft(white) / np.sqrt(np.maximum(np.arange(len(t) // 2 + 1), 1))
            x = np.fft.irfft(spec, len(t))
        elif kind == "brown":
            x = np.cumsum(white)
            x -= np.convolve(x, np.ones(801) / 801, mode="same")
        elif kind.startswith("hum"):
            f = float(kind[3:])
            x = sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3))
        elif kind.startswith("tone"):
            x = np.sin(2 * np.pi * (440.0 if kind == "tone440" else 1000.0) * t)
        else:
            x = 0.2 + 0.05 * white
        x = x / (np.abs(x).max() + 1e-9) * level
        clips.append((f"{kind}@{level}", x.astype(np.float32)))
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--audio", default="examples/audio/jfk.wav")
    ap.add_argument("--reference-text", help="known transcript of --audio, for WER")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the simulated long stream")
    ap.add_argument("--noise-clips", type=int, default=100)
    args = ap.parse_args()

    rec = Recognizer(args.model, RecognizerOptions(threads=args.threads))
    speech = load_audio(args.audio)
    out: dict = {"bundle": rec.bundle.manifest.name, "threads": args.threads,
                 "streaming_graph": rec.engine.streaming_encoder is not None}

    # latency and rollback at real speed
    t0 = time.perf_counter()
    events = run_stream(rec, speech, realtime=True)
    wall = time.perf_counter() - t0
    partials = [e for e in events if e.kind == "partial"]
    finals = [e for e in events if e.kind == "final"]
    lat = sorted(e.latency for e in partials)
    gaps = [b.end - a.end for a, b in zip(partials, partials[1:]) if a.utterance == b.utterance]
    rollbacks = sum(
        1 for a, b in zip(partials, partials[1:]) if a.utterance == b.utterance and not b.text.startswith(a.text)
    )
    out["realtime"] = {
        "audio_s": round(len(speech) / RATE, 2),
        "wall_s": round(wall, 2),
        "partials": len(partials),
        "partial_latency_ms": {"p50": round(1000 * statistics.median(lat), 1) if lat else None,
                               "p95": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1) if lat else None},
        "partial_interval_s_p50": round(statistics.median(gaps), 2) if gaps else None,
        "final_latency_ms": [round(1000 * e.latency, 1) for e in finals],
        "rollback_rate": round(rollbacks / max(1, len(partials) - 1), 3),
    }

    # streaming finals vs offline decode of the same utterances; RTF of the stream fed at full speed
    t0 = time.perf_counter()
    fast = run_stream(rec, speech, realtime=False)
    stream_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    every = run_stream(rec, speech, realtime=False, options=StreamOptions(skip_late_partials=False))
    every_s = time.perf_counter() - t0
    agree = []
    for e in (e for e in fast if e.kind == "final"):
        seg = speech[int(e.start * RATE) : int(e.end * RATE)]
        agree.append(wer(rec.transcribe(seg, sample_rate=RATE).text, e.text))
    t0 = time.perf_counter()
    offline = rec.transcribe(speech, sample_rate=RATE)
    out["streaming_vs_offline"] = {
        "stream_rtf": round(stream_s / (len(speech) / RATE), 3),
        "stream_rtf_partial_every_chunk": round(every_s / (len(speech) / RATE), 3),
        "partials_every_chunk": sum(e.kind == "partial" for e in every),
        "offline_rtf": round((time.perf_counter() - t0) / (len(speech) / RATE), 3),
        "final_vs_offline_same_audio_wer": agree,
    }
    if args.reference_text:
        stream_text = " ".join(e.text for e in fast if e.kind == "final")
        out["streaming_vs_offline"]["wer_streaming"] = wer(args.reference_text, stream_text)
        out["streaming_vs_offline"]["wer_offline"] = wer(args.reference_text, offline.text)

    # no speech: any non-empty output counts
    bad = []
    for name, clip in noise_clips(args.noise_clips):
        texts = [e.text for e in run_stream(rec, clip, realtime=False) if e.kind in ("partial", "final") and e.text]
        if texts:
            bad.append(name)
    out["no_speech"] = {"clips": args.noise_clips, "non_empty_outputs": len(bad), "which": bad[:20]}

    # memory over a long stream: speech + 2 s silence, repeated, fed at full speed
    proc = psutil.Process()
    unit = np.concatenate([speech, np.zeros(2 * RATE, np.float32)])
    total = int(args.minutes * 60 * RATE)
    samples_rss = []
    t0 = time.perf_counter()
    with rec.create_stream() as stream:
        consumer = threading.Thread(target=lambda: [None for _ in stream.events(timeout=600)])
        consumer.start()
        fed = 0
        while fed < total:
            stream.accept_waveform(RATE, unit)
            fed += len(unit)
            while stream._inbox.qsize() > 4:  # keep the queue short: measure the stream, not a backlog
                time.sleep(0.01)
            samples_rss.append((fed / RATE, proc.memory_info().rss))
        stream.input_finished()
        consumer.join()
    rss = [r for _, r in samples_rss]
    early = rss[max(0, len(rss) // 10 - 1)]
    out["long_stream"] = {
        "minutes": args.minutes,
        "wall_s": round(time.perf_counter() - t0, 1),
        "rss_mb_at_10pct": round(early / 1e6, 1),
        "rss_mb_at_end": round(rss[-1] / 1e6, 1),
        "growth_pct": round(100 * (rss[-1] - early) / early, 2),
    }
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
