"""Server overhead for one clip: the same loaded bundle, in-process ``Recognizer.transcribe`` vs
``POST /v1/audio/transcriptions`` to ``nim4asr-edge serve`` on loopback, alternated in one process. Prints JSON.

    python bench/server_overhead.py                       # the default bundle, the first 10 s of jfk.wav, 7 runs
    python bench/server_overhead.py --bundle nim4asr_edge/models/tiny-random --runs 15

The HTTP figure includes the client (urllib, same process), multipart encoding and parsing, decoding the WAV bytes
in memory, the worker-thread hand-off and the JSON response; the recognition itself runs on one of the server's
pooled contexts over the same weights.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="bundle directory (default: the SDK's default bundle)")
    ap.add_argument("--audio", default=str(ROOT / "examples" / "audio" / "jfk.wav"))
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length cut from --audio")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    from nim4asr_edge import Recognizer, RecognizerOptions
    from nim4asr_edge.server import ServerConfig
    from nim4asr_edge.server.app import make_server

    x, rate = sf.read(args.audio, dtype="float32")
    clip = x[: int(args.seconds * rate)]
    buf = io.BytesIO()
    sf.write(buf, clip, rate, format="WAV", subtype="PCM_16")
    wav = buf.getvalue()
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"server_overhead_{os.getpid()}.wav"
    path.write_bytes(wav)
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode() + wav + f"\r\n--{boundary}--\r\n".encode()
    load = os.getloadavg()[0]

    rec = Recognizer(args.bundle, RecognizerOptions(threads=args.threads))
    server = make_server(rec, ServerConfig(host="127.0.0.1", port=0, contexts=1, queue=0), "warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("the server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/audio/transcriptions"

    def local() -> tuple[float, str]:
        t = time.perf_counter()
        text = rec.transcribe(str(path)).text
        return time.perf_counter() - t, text

    def http() -> tuple[float, str]:
        t = time.perf_counter()
        req = urllib.request.Request(url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=600) as r:
            text = json.loads(r.read())["text"]
        return time.perf_counter() - t, text

    try:
        local(), http()  # warm-up
        ours, theirs, same = [], [], True
        for i in range(args.runs):
            for fn, out in ((local, theirs), (http, ours)) if i % 2 == 0 else ((http, ours), (local, theirs)):
                s, text = fn()
                out.append((s, text))
        texts = {t for _, t in ours + theirs}
        same = len(texts) == 1
        a = statistics.median(s for s, _ in theirs)
        b = statistics.median(s for s, _ in ours)
        print(json.dumps({
            "bundle": rec.bundle.path.name, "clip_s": round(len(clip) / rate, 3), "runs": args.runs,
            "in_process_median_s": round(a, 4), "http_median_s": round(b, 4),
            "overhead_s": round(b - a, 4), "overhead_pct": round(100 * (b - a) / a, 2),
            "in_process_s": [round(s, 4) for s, _ in theirs], "http_s": [round(s, 4) for s, _ in ours],
            "same_text": same, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "load_average_start": round(load, 2), "load_average_end": round(os.getloadavg()[0], 2),
        }, indent=2))
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        rec.close()
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
