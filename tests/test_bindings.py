"""The TypeScript client (bindings/typescript) against a real server on 127.0.0.1: compiled with tsc, its node test
suite run with ``node --test`` against four servers: a plain one, one with a hotword index, one with a bearer token
(the client sends it; without it, typed errors) and a busy one (one context, no queue: 429 with Retry-After, close
1013)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")
pytest.importorskip("uvicorn", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")
pytest.importorskip("multipart", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")

from nim4asr_edge import Recognizer, RecognizerOptions  # noqa: E402
from nim4asr_edge.models import HERE  # noqa: E402

from .conftest import JFK  # noqa: E402
from .test_server import TOKEN, Running  # noqa: E402

PACKAGE = Path(__file__).parents[1] / "bindings" / "typescript"
NODE, NPM = shutil.which("node"), shutil.which("npm")
pytestmark = pytest.mark.skipif(not (NODE and NPM), reason="the TypeScript client tests need node and npm on PATH")


@pytest.fixture(scope="module")
def built() -> Path:
    """The package's dependencies installed (once: npm ci needs the registry or its cache) and compiled."""
    if not (PACKAGE / "node_modules" / ".bin").is_dir():
        args = ["ci"] if (PACKAGE / "package-lock.json").exists() else ["install"]
        r = subprocess.run([NPM, *args, "--no-audit", "--no-fund"], cwd=PACKAGE, capture_output=True, text=True,
                           timeout=300)
        if r.returncode:
            pytest.skip(f"npm {args[0]} failed (offline?): {r.stderr[-500:]}")
    r = subprocess.run([NPM, "exec", "--offline", "--", "tsc", "-p", "."], cwd=PACKAGE, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return PACKAGE


def _hotword_recognizer():
    from nim4asr_edge import Bundle, HotwordIndex
    from nim4asr_edge.hotwords.g2p import BaseG2P

    inventory = Bundle.load(HERE / "tiny-random").phoneme_inventory

    class Letters(BaseG2P):  # a toy G2P: one inventory symbol per letter (as in test_server.py)
        name = "test:letters"

        def _convert(self, text):
            if not text.replace(" ", "").isalpha():
                raise ValueError("letters only")
            return [inventory[2 + ord(c) % 26] for c in text.lower() if c != " "]

    index = HotwordIndex.from_words(["Ada Lovelace", "Grace Hopper"], g2p=Letters(), inventory=inventory)
    return index, Recognizer(HERE / "tiny-random", RecognizerOptions(threads=1), hotwords=index)


# (the server's settings, what the node suite is told, a test that must have run, not been skipped)
SERVERS = {
    "plain": ({}, {}, "hotwords without an index are a 404"),
    "hotwords": ({}, {"NIM4ASR_HOTWORDS": "1"}, "hotwords: list, add, search, import, remove"),
    "token": ({"token": TOKEN}, {"NIM4ASR_TOKEN": TOKEN},
              "token auth: the client sends its token; without it or with a wrong one, typed errors"),
    "busy": ({"contexts": 1, "queue": 0}, {"NIM4ASR_BUSY": "1"},
             "a full server: 429 with Retry-After for a transcription, close 1013 for a stream"),
}


@pytest.mark.parametrize("kind", list(SERVERS))
def test_typescript_client_against_the_server(built, kind):
    settings, node_env, ran = SERVERS[kind]
    if kind == "hotwords":
        index, rec = _hotword_recognizer()
    else:
        index, rec = None, Recognizer(HERE / "tiny-random", RecognizerOptions(threads=1))
    try:
        server = Running(rec, max_upload_mb=1.0, max_audio_s=20.0, **settings)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NIM4ASR_")}
            env.update(NIM4ASR_URL=server.url, NIM4ASR_WAV=str(JFK), **node_env)
            r = subprocess.run([NODE, "--test", "--test-reporter=tap", "test/"], cwd=built, env=env,
                               capture_output=True, text=True, timeout=180)
        finally:
            server.stop()
    finally:
        rec.close()
        if index is not None:
            index.close()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert re.search(r"^# fail 0$", out, re.M) and re.search(r"^# pass [1-9]", out, re.M), out[-3000:]
    assert re.search(rf"^ok \d+ - {re.escape(ran)}$", out, re.M), out[-3000:]  # run, not skipped
