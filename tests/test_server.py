"""The local transcription server (`nim4asr-edge serve`), on a real uvicorn server over loopback with the tiny
bundle: every endpoint, bad uploads, auth, the queue's 429, and live streaming over a WebSocket."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("starlette", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")
pytest.importorskip("uvicorn", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")
pytest.importorskip("multipart", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")

from nim4asr_edge import Recognizer, RecognizerOptions  # noqa: E402
from nim4asr_edge.cli import main  # noqa: E402
from nim4asr_edge.models import HERE  # noqa: E402
from nim4asr_edge.server import ServerConfig  # noqa: E402
from nim4asr_edge.server.app import make_server  # noqa: E402

from .conftest import JFK  # noqa: E402

TOKEN = "s3cret-token-for-tests"
TIMEOUT = 30  # seconds, for any one request


@pytest.fixture(scope="module")
def rec():
    with Recognizer(HERE / "tiny-random", RecognizerOptions(threads=1)) as r:
        yield r


class Running:
    """A uvicorn server on 127.0.0.1 and an ephemeral port, run on a thread."""

    def __init__(self, rec, **settings) -> None:
        self.server = make_server(rec, ServerConfig(host="127.0.0.1", port=0, **settings), "warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the server did not stop"


@pytest.fixture(scope="module")
def server(rec):
    s = Running(rec, max_upload_mb=1.0, max_audio_s=20.0)
    yield s
    s.stop()


def request(url, data=None, headers=None, method=None):
    """(status, headers, body bytes) of one request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def multipart(fields: dict, file: bytes | None, filename="audio.wav") -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    if file is not None:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(file + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def transcribe(base, file: bytes | None, headers=None, **fields):
    body, h = multipart(fields, file)
    return request(f"{base}/v1/audio/transcriptions", body, {**h, **(headers or {})})


def post_raw(base, body: bytes, headers: dict, path: str = "/v1/audio/transcriptions"):
    """(status, body) of a POST whose body the server may refuse before reading it all (the client's send may then
    fail with a broken pipe; the response is read anyway)."""
    import socket

    port = int(base.rsplit(":", 1)[1])
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": len(body), "Connection": "close"}.items())
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def jfk_bytes() -> bytes:
    return JFK.read_bytes()


def wav_bytes(seconds: float, rate=16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * rate), np.int16), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def assert_error(status, body, want_status, *words):
    assert status == want_status, body
    err = json.loads(body)["error"]
    assert set(err) >= {"message", "type"}
    for w in words:
        assert w in err["message"], err["message"]
    text = body.decode()  # no path, no stack trace
    assert not any(w in text for w in (str(HERE.parents[1]), "/tmp", "/root", ".py", "Traceback")), text


def test_health_models_openapi(server):
    status, _, body = request(f"{server.url}/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = request(f"{server.url}/v1/models")
    assert status == 200 and json.loads(body)["data"][0]["id"] == "tiny-random"
    status, _, body = request(f"{server.url}/openapi.json")
    doc = json.loads(body)
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {"/v1/audio/transcriptions", "/v1/models", "/health", "/v1/audio/stream"} <= set(doc["paths"])
    status, _, body = request(f"{server.url}/no/such/path")
    assert_error(status, body, 404)


def test_transcription_formats_match_in_process(server, rec):
    expected = rec.transcribe(str(JFK)).text
    status, headers, body = transcribe(server.url, jfk_bytes(), model="tiny-random")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["text"] == expected
    status, _, body = transcribe(server.url, jfk_bytes(), response_format="verbose_json", model="whisper-1")
    verbose = json.loads(body)
    assert verbose["text"] == expected and verbose["duration"] == pytest.approx(11.0)
    assert verbose["segments"][0]["start"] == 0.0 and {"confidence", "withheld"} <= set(verbose["segments"][0])
    status, _, body = transcribe(server.url, jfk_bytes(), response_format="text")
    assert status == 200 and body.decode().strip() == expected.strip()
    status, _, body = transcribe(server.url, jfk_bytes(), response_format="srt")
    assert status == 200 and body.decode().startswith("1\n00:00:00,000 --> 00:00:11,000\n")
    status, _, body = transcribe(server.url, jfk_bytes(), response_format="vtt")
    assert status == 200 and body.decode().startswith("WEBVTT\n\n00:00:00.000 --> 00:00:11.000\n")


def test_prompt_hints_reach_the_llm(server):
    status, _, body = transcribe(server.url, jfk_bytes(), response_format="verbose_json", prompt="Ada Lovelace, ")
    assert status == 200
    assert json.loads(body)["segments"][0]["hints"] in ([], ["Ada Lovelace"])  # hint_check may leave it out


@pytest.mark.parametrize("case", ["empty", "truncated", "header_only", "not_audio", "too_big", "too_long",
                                  "too_short", "no_file", "bad_format", "bad_model", "bad_language"])
def test_bad_uploads_get_4xx_and_the_server_keeps_serving(server, case):
    wav = jfk_bytes()
    args = {
        "empty": (b"", {}, 400, ["empty"]),
        "truncated": (wav[: len(wav) // 3], {}, 400, ["truncated"]),
        "header_only": (wav[:30], {}, 400, ["cannot decode"]),
        "not_audio": (b"%PDF-1.4 this is not audio at all" * 20, {}, 400, ["cannot decode"]),
        "too_big": (np.random.default_rng(0).bytes(int(1.2 * 1024 * 1024)), {}, 413, ["1 MiB"]),
        "too_long": (wav_bytes(25.0, 8000), {}, 413, ["20 s"]),
        "too_short": (wav_bytes(0.002), {}, 400, ["too short"]),
        "no_file": (None, {"model": "tiny-random"}, 400, ["'file'"]),
        "bad_format": (wav, {"response_format": "docx"}, 400, ["response_format"]),
        "bad_model": (wav, {"model": "gpt-9"}, 400, ["not served"]),
        "bad_language": (wav, {"language": "Klingon"}, 400, ["language"]),
    }[case]
    file, fields, want, words = args
    if case == "too_big":
        status, body = post_raw(server.url, *multipart(fields, file))
    else:
        status, _, body = transcribe(server.url, file, **fields)
    assert_error(status, body, want, *words)
    status, _, body = request(f"{server.url}/health")
    assert status == 200


def test_client_gone_mid_upload_is_not_a_server_error(server, caplog):
    import socket

    body, headers = multipart({}, jfk_bytes())
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": len(body)}.items())
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body[:5000])
    status, _, body = transcribe(server.url, jfk_bytes())
    assert status == 200
    time.sleep(0.2)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def test_not_multipart_is_415(server):
    status, _, body = request(f"{server.url}/v1/audio/transcriptions", b"{}", {"Content-Type": "application/json"})
    assert_error(status, body, 415, "multipart/form-data")


def test_token_and_cors(rec):
    s = Running(rec, token=TOKEN, cors_origin="http://localhost:5173")
    try:
        for headers in ({}, {"Authorization": "Bearer wrong-token-123"}, {"Authorization": TOKEN}):
            status, h, body = request(f"{s.url}/health", headers=headers)
            assert_error(status, body, 401, "bearer token")
            assert h["WWW-Authenticate"] == "Bearer"
        status, _, body = transcribe(s.url, jfk_bytes())
        assert status == 401
        status, h, _ = request(f"{s.url}/health", headers={"Authorization": f"Bearer {TOKEN}",
                                                             "Origin": "http://localhost:5173"})
        assert status == 200 and h["access-control-allow-origin"] == "http://localhost:5173"
        status, h, _ = request(f"{s.url}/v1/audio/transcriptions", method="OPTIONS", headers={
            "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization"})
        assert status == 200 and h["access-control-allow-origin"] == "http://localhost:5173"
        ws = pytest.importorskip("websockets.sync.client")
        from websockets.exceptions import InvalidStatus

        with pytest.raises(InvalidStatus):
            ws.connect(f"ws://127.0.0.1:{s.port}/v1/audio/stream", open_timeout=TIMEOUT).close()
    finally:
        s.stop()


def test_cors_is_off_by_default_and_foreign_pages_are_refused(server):
    status, h, _ = request(f"{server.url}/health", headers={"Origin": "http://evil.example"})
    assert status == 200 and "access-control-allow-origin" not in h
    status, _, body = transcribe(server.url, jfk_bytes(), headers={"Origin": "http://evil.example"})
    assert_error(status, body, 403, "origin")
    ws = pytest.importorskip("websockets.sync.client")
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        ws.connect(f"ws://127.0.0.1:{server.port}/v1/audio/stream", open_timeout=TIMEOUT,
                   origin="http://evil.example").close()


def test_full_pool_and_queue_give_429_with_retry_after(rec, monkeypatch):
    release = threading.Event()
    entered = threading.Event()
    segment = rec.engine.segment

    def slow_segment(*args, **kwargs):
        entered.set()
        assert release.wait(TIMEOUT)
        return segment(*args, **kwargs)

    monkeypatch.setattr(rec.engine, "segment", slow_segment)
    s = Running(rec, contexts=1, queue=0)
    first: list = []
    try:
        t = threading.Thread(target=lambda: first.append(transcribe(s.url, jfk_bytes())))
        t.start()
        assert entered.wait(TIMEOUT), "the first request never started recognising"
        status, headers, body = transcribe(s.url, jfk_bytes())
        assert_error(status, body, 429, "busy")
        assert int(headers["Retry-After"]) >= 1
        _, code, reason = _stream(s.port, json.dumps({"sample_rate": 16000}), [], end=False)
        assert code == 1013 and "busy" in reason  # a live stream needs a context too
        release.set()
        t.join(TIMEOUT)
        assert first and first[0][0] == 200
    finally:
        release.set()
        s.stop()


@pytest.mark.parametrize("contexts,queue", [(1, 3), (2, 2)])
def test_concurrent_requests_wait_in_the_queue(rec, contexts, queue):
    expected = rec.transcribe(str(JFK)).text
    s = Running(rec, contexts=contexts, queue=queue)
    results: list = []
    try:
        threads = [threading.Thread(target=lambda: results.append(transcribe(s.url, jfk_bytes())))
                   for _ in range(contexts + queue)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert len(results) == contexts + queue
        assert all(r[0] == 200 and json.loads(r[2])["text"] == expected for r in results), [r[0] for r in results]
        health = json.loads(request(f"{s.url}/health")[2])
        assert health["busy"] == 0 and health["waiting"] == 0
    finally:
        s.stop()


def test_graceful_shutdown_finishes_in_flight_request(rec, monkeypatch):
    entered = threading.Event()
    segment = rec.engine.segment

    def slow_segment(*args, **kwargs):
        entered.set()
        time.sleep(0.5)
        return segment(*args, **kwargs)

    monkeypatch.setattr(rec.engine, "segment", slow_segment)
    s = Running(rec)
    got: list = []
    t = threading.Thread(target=lambda: got.append(transcribe(s.url, jfk_bytes())))
    t.start()
    assert entered.wait(TIMEOUT)
    s.stop()  # asked to exit while the request is being recognised
    t.join(TIMEOUT)
    assert got and got[0][0] == 200 and json.loads(got[0][2])["text"]


# -- live streaming ----------------------------------------------------------------------------------------------
def _stream(port, start, frames, end=True, headers=None):
    """(events, close code, close reason) of one WebSocket session."""
    client = pytest.importorskip("websockets.sync.client")
    from websockets.exceptions import ConnectionClosed

    events = []
    with client.connect(f"ws://127.0.0.1:{port}/v1/audio/stream", open_timeout=TIMEOUT,
                        additional_headers=headers) as ws:
        try:
            ws.send(start)
            for f in frames:
                ws.send(f)
            if end:
                ws.send(json.dumps({"type": "end"}))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                events.append(json.loads(ws.recv(timeout=TIMEOUT)))
        except ConnectionClosed:
            pass
        ws.close()
        return events, ws.close_code, ws.close_reason


def test_websocket_streams_jfk_partials_final_endpoint(server, jfk):
    pcm = (np.clip(jfk, -1, 1) * 32767).astype("<i2")
    frames = [pcm[i : i + 1600].tobytes() for i in range(0, len(pcm), 1600)]  # 100 ms each
    # sent faster than real time: a partial for every 640 ms of audio all the same
    start = json.dumps({"sample_rate": 16000, "format": "pcm16", "hints": ["Ada Lovelace"],
                        "skip_late_partials": False})
    events, code, _ = _stream(server.port, start, frames)
    kinds = [e["kind"] for e in events]
    assert code == 1000
    assert "partial" in kinds and "final" in kinds and kinds[-1] == "endpoint", kinds
    final = next(e for e in events if e["kind"] == "final")
    assert {"text", "stable", "confidence", "withheld", "start", "end", "tokens"} <= set(final)


def test_websocket_float32_at_another_rate(server, jfk):
    import soxr

    x = soxr.resample(jfk, 16000, 8000).astype("<f4")
    frames = [x[i : i + 800].tobytes() for i in range(0, len(x), 800)]
    events, code, _ = _stream(server.port, json.dumps({"sample_rate": 8000, "format": "f32"}), frames)
    assert code == 1000 and any(e["kind"] == "final" for e in events)


@pytest.mark.parametrize("start,frames,want,words", [
    (b"\x00\x01", [], 1003, "first message must be text"),
    ("not json", [], 1007, "not JSON"),
    (json.dumps({"sample_rate": 16000, "format": "mp3"}), [], 1007, "format"),
    (json.dumps({"sample_rate": -5, "format": "pcm16"}), [], 1007, "sample_rate"),
    (json.dumps({"sample_rate": 16000, "rate": 1}), [], 1007, "unknown field"),
    (json.dumps({"sample_rate": 16000, "format": "pcm16"}), [b"\x00\x01\x02"], 1007, "whole number"),
    (json.dumps({"sample_rate": 16000, "format": "f32"}), [np.array([np.nan], "<f4").tobytes()], 1007, "NaN"),
    (json.dumps({"sample_rate": 16000, "format": "f32"}), [np.array([0, np.inf], "<f4").tobytes()], 1007, "infinite"),
    (json.dumps({"sample_rate": 16000, "hints": ["Ada Lovelace " * 40] * 3}), [], 1007, "LLM tokens"),
    (json.dumps({"sample_rate": 16000, "format": "pcm16"}), [b"\x00\x00" * 8000] * 21 * 2, 1009, "limit of 20 s"),
    (json.dumps({"sample_rate": 16000, "format": "pcm16"}), ["hello"], 1007, "end"),
])
def test_websocket_bad_messages_close_with_reason(server, start, frames, want, words):
    events, code, reason = _stream(server.port, start, frames, end=False)
    assert code == want and words in reason, (code, reason)
    assert request(f"{server.url}/health")[0] == 200


def test_websocket_with_token(rec, jfk):
    s = Running(rec, token=TOKEN)
    try:
        pcm = (jfk[:32000] * 32767).astype("<i2").tobytes()
        events, code, _ = _stream(s.port, json.dumps({"sample_rate": 16000}), [pcm],
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        assert code == 1000
    finally:
        s.stop()


def test_shutdown_with_an_open_stream(rec, jfk):
    client = pytest.importorskip("websockets.sync.client")
    from websockets.exceptions import ConnectionClosed

    s = Running(rec)
    with client.connect(f"ws://127.0.0.1:{s.port}/v1/audio/stream", open_timeout=TIMEOUT) as ws:
        ws.send(json.dumps({"sample_rate": 16000, "format": "f32"}))
        for i in range(0, 3 * 16000, 1600):
            ws.send(jfk[i : i + 1600].astype("<f4").tobytes())
        t0 = time.monotonic()
        s.stop()  # the client never sent its end message
        assert time.monotonic() - t0 < 20
        with pytest.raises(ConnectionClosed):
            for _ in range(100):
                ws.recv(timeout=TIMEOUT)
        assert ws.close_code in (1000, 1001, 1012)


# -- command line ------------------------------------------------------------------------------------------------
def test_cli_refuses_non_loopback_without_token(capsys):
    assert main(["serve", str(HERE / "tiny-random"), "--host", "0.0.0.0"]) == 2
    assert "needs a bearer token" in capsys.readouterr().err
    assert main(["serve", "--host", "192.168.1.7", "--port", "0"]) == 2


def test_config_checks():
    from nim4asr_edge import OptionsError
    from nim4asr_edge.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    ServerConfig(host="0.0.0.0", token=TOKEN)
    for bad in (dict(host="::"), dict(contexts=0), dict(queue=-1), dict(token="short"), dict(max_audio_s=0)):
        with pytest.raises(OptionsError):
            ServerConfig(**bad)


# -- hotword endpoints -------------------------------------------------------------------------------------------
@pytest.fixture()
def hotword_server():
    from nim4asr_edge import Bundle, HotwordIndex
    from nim4asr_edge.hotwords.g2p import BaseG2P

    inventory = Bundle.load(HERE / "tiny-random").phoneme_inventory

    class Letters(BaseG2P):  # a toy G2P: one inventory symbol per letter
        name = "test:letters"

        def _convert(self, text):
            if not text.replace(" ", "").isalpha():
                raise ValueError("letters only")
            return [inventory[2 + ord(c) % 26] for c in text.lower() if c != " "]  # past "<blank>" and "|"

    index = HotwordIndex.from_words(["Ada Lovelace", "Grace Hopper"], g2p=Letters(), inventory=inventory)
    with index, Recognizer(HERE / "tiny-random", RecognizerOptions(threads=1), hotwords=index) as r:
        s = Running(r)
        yield s
        s.stop()


def _post_json(url, payload):
    return request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def test_hotword_endpoints(hotword_server):
    base = f"{hotword_server.url}/v1/hotwords"
    status, _, body = request(base)
    assert status == 200 and {e["text"] for e in json.loads(body)["data"]} == {"Ada Lovelace", "Grace Hopper"}
    status, _, body = _post_json(base, {"namespace": "alice", "entries": ["Zorblax", {"text": "Kim", "weight": 2},
                                                                          "R2-D2"]})
    report = json.loads(body)
    assert status == 200 and report["added"] == 2 and report["skipped"][0]["text"] == "R2-D2"
    status, _, body = request(f"{base}?namespace=alice")
    assert {(e["text"], e["weight"]) for e in json.loads(body)["data"]} == {("Zorblax", 1.0), ("Kim", 2.0)}
    status, _, body = request(f"{base}/search?q=zorblax&namespace=alice")
    hits = json.loads(body)["data"]
    assert status == 200 and hits[0]["text"] == "Zorblax" and hits[0]["method"] == "exact"
    body, headers = multipart({"namespace": "bob"}, b"Nikola Tesla,2.5\n# a comment\nMarie Curie\n", "names.txt")
    status, _, body = request(f"{base}/import", body, headers)
    assert status == 200 and json.loads(body)["added"] == 2, body
    status, _, body = _post_json(f"{base}/remove", {"namespace": "alice", "texts": ["Kim", "Nobody"]})
    assert status == 200 and json.loads(body) == {"removed": 1, "missing": ["Nobody"]}
    status, _, body = request(f"{base}?namespace=alice")
    assert [e["text"] for e in json.loads(body)["data"]] == ["Zorblax"]
    for bad in ({"entries": []}, {"entries": [3]}, {"namespace": "", "entries": ["x"]},
                {"namespace": " ", "entries": ["x"]}):
        assert_error(*_post_json(base, bad)[::2], 400)
    assert_error(*request(f"{base}/search")[::2], 400, "q")
    status, _, body = transcribe(hotword_server.url, jfk_bytes())  # recognition still works after the edits
    assert status == 200


def test_hotword_endpoints_without_index(server):
    status, _, body = request(f"{server.url}/v1/hotwords")
    assert_error(status, body, 404, "--hotwords")
