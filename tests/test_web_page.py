"""The browser page `nim4asr-edge serve` answers at `/`, on a real server over loopback that requires a token.

The HTTP side (the page needs no token and opens nothing else; the WebSocket token as a subprotocol; the page's own
origin passes the Origin check, a foreign or DNS-rebound one does not) runs everywhere. The page itself runs in
headless Chromium through Playwright: a file's transcript, the microphone (Chromium's fake capture device playing a
WAV) with partials then a final, and hotwords added, searched and removed. Those tests need Debian's Chromium
(``apt-get install -y chromium``; Playwright's own browser download is never used) and skip without it.

``NIM4ASR_WEB_SCREENSHOT=docs/images/web-page.png python -m pytest -q tests/test_web_page.py -k screenshot`` writes
the screenshot docs/server.md shows (the default bundle transcribing jfk.wav: its guard withholds the text).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import soundfile as sf

pytest.importorskip("starlette", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")
pytest.importorskip("multipart", reason="the server needs the server extra (starlette, uvicorn, python-multipart)")

from nim4asr_edge import HotwordIndex, Recognizer, RecognizerOptions  # noqa: E402
from nim4asr_edge.models import HERE  # noqa: E402

from .conftest import JFK  # noqa: E402
from .test_server import TOKEN, Running, jfk_bytes, request, transcribe  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WAIT_MS = 30_000  # the longest wait for anything on the page


@pytest.fixture(scope="module")
def rec():
    index = HotwordIndex.from_words(["Ada Lovelace", "Grace Hopper"], "espeak-ng:en-us",
                                    inventory=_inventory())
    with index, Recognizer(HERE / "tiny-random", RecognizerOptions(threads=1), hotwords=index) as r:
        yield r


def _inventory():
    from nim4asr_edge import Bundle

    return Bundle.load(HERE / "tiny-random").phoneme_inventory


@pytest.fixture(scope="module")
def server(rec):
    s = Running(rec, token=TOKEN)
    yield s
    s.stop()


def _bearer_subprotocol(token: str) -> str:
    return "bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


# -- HTTP: the page is no bypass ---------------------------------------------------------------------------------
def test_page_needs_no_token_and_opens_nothing_else(server):
    status, headers, body = request(f"{server.url}/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"/static/app.js" in body
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "http" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    for name in ("app.js", "hotwords.js", "capture.js", "app.css"):
        status, headers, _ = request(f"{server.url}/static/{name}")
        assert status == 200 and headers["content-type"].startswith(("text/javascript", "text/css")), name
    for path in ("/v1/models", "/health", "/static/missing.js", "/static/../v1/models", "/static//health",
                 "/v1/hotwords", "/index.html"):
        assert request(f"{server.url}{path}")[0] == 401, path
    assert request(f"{server.url}/", b"x", {"Content-Type": "text/plain"})[0] == 401  # only GET/HEAD are open
    assert request(f"{server.url}/", method="HEAD")[0] == 200


def test_websocket_token_as_subprotocol(server, jfk):
    client = pytest.importorskip("websockets.sync.client")
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    url = f"ws://127.0.0.1:{server.port}/v1/audio/stream"
    pcm = (jfk[:48000] * 32767).astype("<i2").tobytes()
    with client.connect(url, subprotocols=["nim4asr.v1", _bearer_subprotocol(TOKEN)], open_timeout=30) as ws:
        assert ws.subprotocol == "nim4asr.v1"  # never the token echoed back
        ws.send(json.dumps({"sample_rate": 16000}))
        ws.send(pcm)
        ws.send(json.dumps({"type": "end"}))
        kinds = []
        try:
            while True:
                kinds.append(json.loads(ws.recv(timeout=60))["kind"])
        except ConnectionClosed:
            pass
    assert ws.close_code == 1000 and "final" in kinds, (ws.close_code, kinds)
    for offered in (["nim4asr.v1", _bearer_subprotocol("wrong-token-1234")], ["nim4asr.v1", f"bearer.{TOKEN}"],
                    ["nim4asr.v1"], [_bearer_subprotocol(TOKEN) + "x"]):
        with pytest.raises(InvalidStatus) as refused:
            client.connect(url, subprotocols=offered, open_timeout=30).close()
        assert refused.value.response.status_code == 403, offered


def test_own_page_origin_passes_foreign_and_rebound_do_not(server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    own = {**auth, "Origin": server.url}  # what the page served here sends
    assert transcribe(server.url, jfk_bytes(), own)[0] == 200
    localhost = {**auth, "Host": f"localhost:{server.port}", "Origin": f"http://localhost:{server.port}"}
    assert transcribe(server.url, jfk_bytes(), localhost)[0] == 200
    rebound = {**auth, "Host": f"evil.example:{server.port}", "Origin": f"http://evil.example:{server.port}"}
    other_port = {**auth, "Origin": f"http://127.0.0.1:{server.port + 1}"}
    for headers in (rebound, other_port, {**auth, "Origin": "null"}):
        assert transcribe(server.url, jfk_bytes(), headers)[0] == 403, headers


# -- the page in Chromium ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):  # .ci/run installs it: a skip there would hide the browser tests
            pytest.fail("Chromium is not installed (apt-get install -y chromium)")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the dev extra's playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={JFK}"])
        yield b
        b.close()


class Page:
    """One browser tab on the page; fails the test on a script error or a Content-Security-Policy violation."""

    def __init__(self, browser, url: str, init_script: str | None = None) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        if init_script:
            self.page.add_init_script(init_script)
        self.page.set_default_timeout(WAIT_MS)
        self.problems: list[str] = []
        self.page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        self.page.on("console", lambda msg: self.problems.append(msg.text)
                     if msg.type == "error" and "Content Security Policy" in msg.text else None)
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready=true]")

    def use_token(self, token: str) -> None:
        self.page.fill("#token", token)
        self.page.click("#token-form button")

    def close(self) -> None:
        self.context.close()
        assert not self.problems, self.problems


@pytest.fixture()
def tab(browser, server):
    t = Page(browser, server.url)
    yield t
    t.close()


def test_page_asks_for_the_token(tab):
    page = tab.page
    page.wait_for_selector("#server-status[data-state=error]")
    assert page.text_content("#server-status") == "token needed"
    assert "needed" in page.get_attribute("#token-form", "class")
    tab.use_token("wrong-token-1234")
    page.set_input_files("#file-input", str(JFK))
    page.wait_for_selector("#file-status[data-kind=error]")
    assert "needs a token" in page.text_content("#file-status")
    page.click("#mic-start")  # the live stream carries the (wrong) token too: the handshake is refused
    page.wait_for_selector("#mic-status[data-kind=error]")
    assert "refused" in page.text_content("#mic-status") and page.is_enabled("#mic-start")
    tab.use_token(TOKEN)
    page.wait_for_selector("#server-status[data-state=ok]")
    assert page.text_content("#server-status").startswith("tiny-random · nim4 · guard off")


def test_file_transcript(tab, rec):
    expected = rec.transcribe(str(JFK)).text
    page = tab.page
    tab.use_token(TOKEN)
    page.wait_for_selector("#server-status[data-state=ok]")
    page.set_input_files("#file-input", str(JFK))
    page.wait_for_selector("#file-status[data-kind=ok]")
    assert page.eval_on_selector("#file-text", "e => e.textContent") == expected
    assert page.is_hidden("#file-withheld")
    assert page.locator("#file-segments li").count() == 1
    assert "0:00.0–0:11.0" in page.text_content("#file-segments li .time")
    assert "11.0 s" in page.text_content("#file-meta")
    # dropped on the drop zone instead of picked: the first 4 s, under another name
    clip = io.BytesIO()
    sf.write(clip, sf.read(JFK)[0][: 4 * 16000], 16000, format="WAV", subtype="PCM_16")
    dropped = page.evaluate_handle("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "dropped.wav", {type: "audio/wav"}));
        return data;
    }""", base64.b64encode(clip.getvalue()).decode())
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    page.wait_for_selector("#file-status[data-kind=ok]:has-text('dropped.wav')")
    assert page.eval_on_selector("#file-text", "e => e.textContent") == \
        rec.transcribe(sf.read(JFK)[0][: 4 * 16000], sample_rate=16000).text
    assert "4.0 s" in page.text_content("#file-meta")


# a web view without AudioWorklet: the page falls back to a ScriptProcessor
NO_WORKLET = "Object.defineProperty(BaseAudioContext.prototype, 'audioWorklet', {get: () => undefined})"


@pytest.mark.parametrize("capture", ["worklet", "script-processor"])
def test_microphone_partials_then_final(browser, server, capture):
    tab = Page(browser, server.url, NO_WORKLET if capture == "script-processor" else None)
    page = tab.page
    assert page.evaluate("() => !!new AudioContext().audioWorklet") == (capture == "worklet")
    tab.use_token(TOKEN)
    page.wait_for_selector("#server-status[data-state=ok]")
    page.click("#mic-start")
    page.wait_for_selector("#mic-status:has-text('Listening')")
    rate = int(page.text_content("#mic-status").split("(")[1].split(" Hz")[0])
    assert rate == page.evaluate("new AudioContext().sampleRate")  # the rate the page declared is its capture rate
    page.wait_for_function("() => Number(document.getElementById('live').dataset.partials) >= 2")
    page.click("#mic-stop")
    page.wait_for_selector("#mic-status[data-kind=ok]")  # the server closed with 1000 after the last event
    assert int(page.get_attribute("#live", "data-finals")) >= 1
    assert page.text_content("#mic-status") == "Stream finished."
    finals = page.locator("#live-finals li")
    assert finals.count() >= 1 and finals.first.text_content().strip()
    assert page.text_content("#live-partial") == ""  # the final replaced the running hypothesis
    tab.close()


def test_hotwords_add_search_remove(tab, server):
    page = tab.page
    tab.use_token(TOKEN)
    page.wait_for_selector("#hw-list td.text:has-text('Ada Lovelace')")
    assert sorted(page.locator("#hw-list td.text").all_text_contents()) == ["Ada Lovelace", "Grace Hopper"]
    page.fill("#hw-namespace", "alice")
    page.click("#hw-refresh")
    page.wait_for_selector("#hw-list td.empty")
    page.fill("#hw-text", "Nikola Tesla")
    page.fill("#hw-weight", "2.5")
    page.click("#hw-add button")
    page.wait_for_selector("#hw-list td.text:has-text('Nikola Tesla')")
    assert page.text_content("#hw-list td.num") == "2.5"
    assert "ɪ" in page.text_content("#hw-list td.ph")  # eSpeak NG's phonemes, shown as stored
    listed = json.loads(request(f"{server.url}/v1/hotwords?namespace=alice",
                                headers={"Authorization": f"Bearer {TOKEN}"})[2])["data"]
    assert [(e["text"], e["weight"]) for e in listed] == [("Nikola Tesla", 2.5)]
    page.fill("#hw-query", "nikola tesla")
    page.click("#hw-search button")
    page.wait_for_selector("#hw-hits li")
    assert page.text_content("#hw-hits li span") == "Nikola Tesla"
    assert "exact" in page.text_content("#hw-hits li span:last-child")
    page.click("#hw-list button[title='remove “Nikola Tesla”']")
    page.wait_for_selector("#hw-list td.empty")
    assert "Removed" in page.text_content("#hw-status")
    listed = json.loads(request(f"{server.url}/v1/hotwords?namespace=alice",
                                headers={"Authorization": f"Bearer {TOKEN}"})[2])["data"]
    assert listed == []


@pytest.fixture(scope="module")
def default_server():
    from nim4asr_edge import Bundle

    inventory = Bundle.load(HERE / "nim4asr-ref-en").phoneme_inventory
    index = HotwordIndex.from_words(["Ada Lovelace", "Grace Hopper", ("NIO House", 2.0)], "espeak-ng:en-us",
                                    inventory=inventory)
    with index, Recognizer(HERE / "nim4asr-ref-en", RecognizerOptions(threads=2), hotwords=index) as r:
        s = Running(r, token=TOKEN)
        yield s
        s.stop()


def test_default_bundle_withheld_state_and_screenshot(browser, default_server):
    """The shipped default model cannot recognise real speech: its guard withholds jfk.wav, and the page says so."""
    tab = Page(browser, default_server.url)
    page = tab.page
    page.set_viewport_size({"width": 1280, "height": 900})
    tab.use_token(TOKEN)
    page.wait_for_selector("#server-status[data-state=ok]")
    page.set_input_files("#file-input", str(JFK))
    page.wait_for_selector("#file-result:not([hidden])")
    assert page.eval_on_selector("#file-text", "e => e.textContent") == ""
    assert page.is_visible("#file-withheld")
    assert "Withheld by the evidence guard (confidence 0." in page.text_content("#file-withheld")
    assert page.text_content("#file-withheld q").strip()
    assert "withheld" in page.text_content("#file-status")
    out = os.environ.get("NIM4ASR_WEB_SCREENSHOT")
    if out:  # the rest of the page in use too: a hotword search, a few seconds of the (fake) microphone
        page.fill("#hw-query", "Grace Hoper")
        page.click("#hw-search button")
        page.wait_for_selector("#hw-hits li")
        page.click("#mic-start")
        page.wait_for_function("() => Number(document.getElementById('live').dataset.partials) >= 3")
        page.click("#mic-stop")
        page.wait_for_selector("#mic-status[data-kind=ok]")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=out, full_page=True)
    tab.close()
