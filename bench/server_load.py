"""Load test of ``nim4asr-edge serve`` on loopback: concurrent live WebSocket streams paced in real time, then many
transcription requests at bounded concurrency with the server's RSS sampled. Prints JSON.

    python bench/server_load.py --out bench/results/server_load_ref_en.json  # default bundle: 8 streams, 1000 requests
    python bench/server_load.py --bundle nim4asr_edge/models/tiny-random --streams 3 --requests 50 --speed 4

The server runs in its own process (``python -m nim4asr_edge serve``, 127.0.0.1, a free port), so its RSS and CPU
time are its own; the clients run here, on asyncio (streams) and threads (requests).

Streams: each of ``--streams`` clients opens ``/v1/audio/stream`` at the same time and sends the clip as pcm16 in
100-ms frames, frame k (the audio up to (k + 1) x 100 ms) at t0 + (k + 1) x 100 ms / speed, as a microphone would
deliver it, then ``{"type": "end"}``.
*Partial latency*: for a partial whose ``end`` is t seconds of stream time, the wall-clock time from the moment the
client finished sending the frame holding the audio at t (the first frame whose audio reaches t) to the moment the
client received the partial. It counts queueing, encoding and LLM decoding, not the 640-ms partial cadence.
*Final latency*: the same for each final (its ``end``); *close latency*: from sending ``{"type": "end"}`` to the
server's close. A stream fails unless it closes with 1000 after at least one final.

Requests: ``--requests`` POSTs of the first ``--request-seconds`` of the clip (WAV) by ``--concurrency`` client
threads, after ``--warmup`` that are not counted; each must answer 200. Stops at ``--max-seconds`` (then the run
is reported as incomplete). The server's RSS is sampled every 0.25 s; growth is from the first sample after the
warm-up to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).parents[1]
FRAME_MS = 100


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100, linear interpolation), None for no values."""
    return round(float(np.percentile(values, q)), 4) if values else None


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50_s": percentile(values, 50), "p95_s": percentile(values, 95),
            "max_s": round(max(values), 4) if values else None}


# -- the server ----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: str | None, contexts: int, queue: int, threads: int, log_path: Path,
                 timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """``nim4asr-edge serve`` in a child process on 127.0.0.1; returns it and its base URL once /health answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "nim4asr_edge", "serve", *([bundle] if bundle else []), "--host", "127.0.0.1",
           "--port", str(port), "--contexts", str(contexts), "--queue", str(queue), "--threads", str(threads)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit(f"the server did not answer /health within {timeout:g} s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()  # SIGTERM: graceful shutdown
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Sampler:
    """RSS (bytes) and CPU seconds of one process, sampled on a thread."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (perf_counter, rss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.proc.memory_info().rss))
            self._stop.wait(self.interval)

    def cpu_seconds(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), self.proc.memory_info().rss))


# -- live streams --------------------------------------------------------------------------------------------------
async def one_stream(url: str, pcm: np.ndarray, rate: int, speed: float, start_at: float, timeout: float,
                     skip_late_partials: bool = True) -> dict:
    """One paced stream; its latencies, events and close code (see the module docstring)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    step = rate * FRAME_MS // 1000
    frames = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    reach = np.cumsum([len(f) for f in frames])  # samples sent once frame k is out
    sent_at: list[float] = []
    events: list[tuple[float, dict]] = []
    out: dict = {"failed": None}
    ws_url = url.replace("http://", "ws://") + "/v1/audio/stream"
    try:
        async with connect(ws_url, max_size=None, open_timeout=timeout, close_timeout=timeout) as ws:
            await ws.send(json.dumps({"sample_rate": rate, "format": "pcm16",
                                      "skip_late_partials": skip_late_partials}))

            async def send() -> float:
                loop = asyncio.get_running_loop()
                for k, f in enumerate(frames):
                    due = start_at + (k + 1) * FRAME_MS / 1000 / speed
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    await ws.send(f.tobytes())
                    sent_at.append(time.perf_counter())
                await ws.send(json.dumps({"type": "end"}))
                return time.perf_counter()

            async def receive() -> None:
                try:
                    async for message in ws:
                        events.append((time.perf_counter(), json.loads(message)))
                except ConnectionClosed:
                    pass

            receiving = asyncio.ensure_future(receive())
            ended = await send()
            await asyncio.wait_for(receiving, timeout)
            out["close_latency_s"] = round(time.perf_counter() - ended, 4)
            out["close_code"] = ws.close_code
    except Exception as exc:  # noqa: BLE001 - a failed stream is a result, reported with its reason
        out["failed"] = f"{type(exc).__name__}: {exc}"[:300]

    def latency(received: float, end_s: float) -> float | None:
        k = int(np.searchsorted(reach, int(round(end_s * rate)) - 1, side="right"))  # first frame reaching end_s
        k = min(k, len(frames) - 1)
        return received - sent_at[k] if k < len(sent_at) else None

    partial = [lat for t, e in events if e["kind"] == "partial" and (lat := latency(t, e["end"])) is not None]
    final = [lat for t, e in events if e["kind"] == "final" and (lat := latency(t, e["end"])) is not None]
    finals = [e for _, e in events if e["kind"] == "final"]
    if out["failed"] is None and (out.get("close_code") != 1000 or not finals):
        out["failed"] = f"closed with {out.get('close_code')} after {len(finals)} final(s)"
    out.update(partials=len(partial), finals=len(finals), partial_latency=summary(partial),
               final_latency=summary(final), text=" ".join(e["text"] for e in finals)[:200])
    out["_partial"], out["_final"] = partial, final
    return out


async def run_streams(url: str, samples: np.ndarray, rate: int, n: int, speed: float = 1.0, timeout: float = 120.0,
                      skip_late_partials: bool = True) -> list[dict]:
    """``n`` concurrent paced streams of ``samples`` (mono float32 at ``rate``), started together (the server's
    default ``skip_late_partials``: when decoding falls behind, one partial for the newest audio)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    start_at = asyncio.get_running_loop().time() + 0.5  # every stream connected before the first frame is due
    return list(await asyncio.gather(*(one_stream(url, pcm, rate, speed, start_at, timeout, skip_late_partials)
                                       for _ in range(n))))


# -- requests ------------------------------------------------------------------------------------------------------
def multipart(wav: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode() + wav + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def run_requests(url: str, wav: bytes, n: int, concurrency: int, max_seconds: float,
                 on_done=None) -> dict:
    """``n`` transcription requests of ``wav`` by ``concurrency`` threads, stopping at ``max_seconds``; latencies
    of the 200s and the count of every status (0: no response)."""
    body, ctype = multipart(wav)
    lock = threading.Lock()
    issued = [0]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        while True:
            with lock:
                if issued[0] >= n or time.monotonic() > deadline:
                    return
                issued[0] += 1
            req = urllib.request.Request(f"{url}/v1/audio/transcriptions", body, {"Content-Type": ctype})
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    json.loads(r.read())
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
                errors.append(e.read()[:200].decode("utf-8", "replace"))
            except OSError as e:
                status = 0
                errors.append(str(e)[:200])
            took = time.perf_counter() - t
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(took)
            if on_done is not None:
                on_done()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = sum(statuses.values())
    return {"requested": n, "done": done, "complete": done == n, "seconds": round(time.perf_counter() - t0, 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "failed": done - statuses.get(200, 0),
            "latency": summary(latencies), "errors": errors[:5]}


# -- the benchmark -------------------------------------------------------------------------------------------------
def streams_part(args, samples: np.ndarray, rate: int, log_path: Path) -> dict:
    proc, url = start_server(args.bundle, args.streams, 0, args.threads, log_path)
    try:
        with Sampler(proc.pid) as sampler:
            cpu0, t0, load0 = sampler.cpu_seconds(), time.perf_counter(), os.getloadavg()
            results = asyncio.run(run_streams(url, samples, rate, args.streams, args.speed))
            cpu1, t1, load1 = sampler.cpu_seconds(), time.perf_counter(), os.getloadavg()
    finally:
        stop_server(proc)
    audio_s = args.streams * len(samples) / rate
    partial = [x for r in results for x in r.pop("_partial")]
    final = [x for r in results for x in r.pop("_final")]
    cpu_per_audio_s = (cpu1 - cpu0) / audio_s
    return {
        "streams": args.streams, "clip_s": round(len(samples) / rate, 3), "speed": args.speed,
        "server_contexts": args.streams,
        "failed_streams": sum(r["failed"] is not None for r in results),
        "partial_latency_all": summary(partial), "final_latency_all": summary(final),
        "partial_p95_target_s": 0.5,
        "partial_p95_target_met_every_stream": all((r["partial_latency"]["p95_s"] or 1e9) <= 0.5 for r in results),
        "server_cpu_s": round(cpu1 - cpu0, 2), "wall_s": round(t1 - t0, 2),
        "server_cpu_s_per_audio_s": round(cpu_per_audio_s, 3),
        "cores_needed_for_real_time": round(cpu_per_audio_s * args.streams * args.speed, 2),
        "load_average_1m_start_end": [round(load0[0], 2), round(load1[0], 2)],
        "per_stream": results,
    }


def requests_part(args, samples: np.ndarray, rate: int, log_path: Path) -> dict:
    buf = io.BytesIO()
    sf.write(buf, samples[: int(args.request_seconds * rate)], rate, format="WAV", subtype="PCM_16")
    wav = buf.getvalue()
    proc, url = start_server(args.bundle, args.contexts, args.concurrency, args.threads, log_path)
    try:
        with Sampler(proc.pid) as sampler:
            warm = run_requests(url, wav, args.warmup, args.concurrency, args.max_seconds)
            mark = time.perf_counter()
            load0 = os.getloadavg()
            result = run_requests(url, wav, args.requests, args.concurrency, args.max_seconds)
            load1 = os.getloadavg()
    finally:
        stop_server(proc)
    after = [rss for t, rss in sampler.samples if t >= mark]
    base, end = after[0], after[-1]
    return {
        "clip_s": args.request_seconds, "concurrency": args.concurrency, "server_contexts": args.contexts,
        "server_queue": args.concurrency, "warmup": {"requests": args.warmup, "failed": warm["failed"]}, **result,
        "throughput_per_s": round(result["done"] / result["seconds"], 2) if result["seconds"] else None,
        "rss_mb": {"after_warmup": round(base / 2**20, 1), "end": round(end / 2**20, 1),
                   "max": round(max(after) / 2**20, 1), "samples": len(after)},
        "rss_growth_pct": round(100 * (end - base) / base, 2), "rss_growth_target_pct": 5.0,
        "load_average_1m_start_end": [round(load0[0], 2), round(load1[0], 2)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="bundle directory (default: the SDK's default bundle)")
    ap.add_argument("--audio", default=str(ROOT / "examples" / "audio" / "jfk.wav"))
    ap.add_argument("--streams", type=int, default=8, help="concurrent live streams (0: skip)")
    ap.add_argument("--speed", type=float, default=1.0, help="stream pacing: 1 = real time")
    ap.add_argument("--requests", type=int, default=1000, help="transcription requests (0: skip)")
    ap.add_argument("--warmup", type=int, default=20, help="requests before the counted ones")
    ap.add_argument("--request-seconds", type=float, default=2.0, help="length of the uploaded clip")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads (also the server's --queue)")
    ap.add_argument("--contexts", type=int, default=2, help="the server's --contexts for the requests")
    ap.add_argument("--threads", type=int, default=0, help="the server's --threads (0: its default)")
    ap.add_argument("--max-seconds", type=float, default=1800, help="time bound of the request loop")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()

    samples, rate = sf.read(args.audio, dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    report: dict = {
        "bundle": args.bundle or "default", "audio": Path(args.audio).name,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "latency_definition": "partial/final: from sending the frame that holds the audio at the event's end to "
                              "receiving the event; close: from sending {type: end} to the server's close",
    }
    if args.streams:
        report["live_streams"] = streams_part(args, samples, int(rate), logs / f"server_load_{os.getpid()}_a.log")
    if args.requests:
        report["requests"] = requests_part(args, samples, int(rate), logs / f"server_load_{os.getpid()}_b.log")
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
