"""A small run of bench/server_load.py's load against a real server on loopback with the tiny bundle: concurrent live
streams and a burst of transcription requests all succeed (no failed stream, no status but 200). No timing is
asserted: the figures come from the bench script (docs/server.md)."""

from __future__ import annotations

import asyncio
import importlib.util
import io
from pathlib import Path

import pytest
import soundfile as sf

pytest.importorskip("starlette", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")
pytest.importorskip("uvicorn", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")
pytest.importorskip("multipart", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")
pytest.importorskip("websockets", reason="the live streams need websockets")

from nim4asr_edge import Recognizer, RecognizerOptions  # noqa: E402
from nim4asr_edge.models import HERE  # noqa: E402

from .test_server import Running, request  # noqa: E402

BENCH = Path(__file__).parents[1] / "bench" / "server_load.py"


@pytest.fixture(scope="module")
def load():
    spec = importlib.util.spec_from_file_location("server_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rec():
    with Recognizer(HERE / "tiny-random", RecognizerOptions(threads=1)) as r:
        yield r


def test_three_streams_then_fifty_requests(load, rec, jfk):
    s = Running(rec, contexts=3, queue=0)  # every stream holds a context while it is open
    try:
        # a partial for every 640 ms of audio however busy the machine (skip_late_partials off): 6 per stream
        streams = asyncio.run(load.run_streams(s.url, jfk[: 4 * 16000], 16000, 3, speed=4.0, timeout=60,
                                               skip_late_partials=False))
    finally:
        s.stop()
    assert [r["failed"] for r in streams] == [None] * 3, streams
    assert all(r["close_code"] == 1000 and r["finals"] >= 1 and r["partials"] >= 3 for r in streams), streams
    assert all(r["partial_latency"]["n"] == r["partials"] for r in streams)  # every partial was placed in time

    buf = io.BytesIO()
    sf.write(buf, jfk[: 2 * 16000], 16000, format="WAV", subtype="PCM_16")
    s = Running(rec, contexts=2, queue=4)
    try:
        out = load.run_requests(s.url, buf.getvalue(), 50, 4, max_seconds=60)
        health = request(f"{s.url}/health")
    finally:
        s.stop()
    assert out["done"] == 50 and out["statuses"] == {"200": 50} and out["failed"] == 0, out
    assert out["latency"]["n"] == 50
    assert health[0] == 200
