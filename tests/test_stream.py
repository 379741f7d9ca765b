"""Streaming: VAD gating, partial/final/endpoint events, chunking, rates, concurrency and misuse."""

import threading
import time

import numpy as np
import pytest

from nim4asr_edge.errors import AudioError
from nim4asr_edge.recognizer import Recognizer, RecognizerOptions
from nim4asr_edge.stream import StreamError, StreamOptions


@pytest.fixture(scope="module")
def rec(tiny_bundle):
    with Recognizer(tiny_bundle, RecognizerOptions(threads=1, max_tokens_per_second=4.0, min_new_tokens=4)) as r:
        yield r


EVERY_CHUNK = StreamOptions(skip_late_partials=False)


def _run(rec, pieces, options=EVERY_CHUNK):
    """Feed (rate, samples) pieces, finish, and collect every event (a partial for every chunk, however late)."""
    with rec.create_stream(options) as stream:
        for rate, x in pieces:
            stream.accept_waveform(rate, x)
        stream.input_finished()
        return list(stream.events(timeout=120))


def _finals(events):
    return [(e.utterance, e.tokens) for e in events if e.kind == "final"]


@pytest.mark.parametrize("graph", [True, False], ids=["streaming-graph", "windowed"])
def test_speech_gives_partials_finals_and_endpoints(rec, jfk, graph):
    events = _run(rec, [(16000, jfk)], StreamOptions(use_streaming_graph=graph, skip_late_partials=False))
    kinds = [e.kind for e in events]
    assert kinds.count("final") == kinds.count("endpoint") >= 1
    assert kinds.count("partial") >= 3
    for e in events:
        if e.kind == "partial":
            assert e.text.startswith(e.stable)
        assert 0.0 <= e.start <= e.end <= 11.1
    # each final comes right before its endpoint, utterances in order
    finals = [i for i, k in enumerate(kinds) if k == "final"]
    assert all(kinds[i + 1] == "endpoint" for i in finals)
    assert [events[i].utterance for i in finals] == list(range(len(finals)))


@pytest.mark.parametrize("graph", [True, False], ids=["streaming-graph", "windowed"])
def test_final_equals_offline_decode_of_the_utterance(rec, jfk, graph):
    events = _run(rec, [(16000, jfk)], StreamOptions(use_streaming_graph=graph, skip_late_partials=False))
    final = next(e for e in events if e.kind == "final")
    start, end = int(round(final.start * 16000)), int(round(final.end * 16000))
    offline = rec.transcribe(jfk[start:end], sample_rate=16000)
    assert final.tokens == offline.segments[0].tokens


@pytest.mark.parametrize("max_error", [0.5, 50.0], ids=["withheld", "accepted"])
def test_a_guarded_final_agrees_with_the_offline_segment(tiny_bundle, jfk, max_error):
    """One engine: a streaming final carries the guard's confidence and withheld text exactly as offline."""
    from nim4asr_edge.guard import GuardOptions

    opts = RecognizerOptions(threads=1, max_tokens_per_second=4.0, min_new_tokens=4,
                             guard=GuardOptions(max_phoneme_error=max_error))
    with Recognizer(tiny_bundle, opts) as guarded:
        events = _run(guarded, [(16000, jfk)])
        final = next(e for e in events if e.kind == "final")
        start, end = int(round(final.start * 16000)), int(round(final.end * 16000))
        seg = guarded.transcribe(jfk[start:end], sample_rate=16000).segments[0]
    assert seg.confidence is not None and (seg.withheld != "") == (max_error < 1)
    assert (final.text, final.confidence, final.withheld) == (seg.text, seg.confidence, seg.withheld)


@pytest.mark.parametrize("graph", [True, False], ids=["streaming-graph", "windowed"])
def test_a_slow_decoder_skips_late_partials_but_not_the_final(rec, jfk, graph):
    """Audio queued while a partial decodes gets one partial for the newest audio, not one per chunk."""
    with rec.create_stream(StreamOptions(use_streaming_graph=graph)) as stream:
        decode = stream._decoder.decode

        def slow_decode(*a, **k):
            time.sleep(0.05)  # a model slower than the input
            return decode(*a, **k)

        stream._decoder.decode = slow_decode
        for i in range(0, len(jfk), 1600):  # 100 ms blocks, queued far faster than real time
            stream.accept_waveform(16000, jfk[i : i + 1600])
        stream.input_finished()
        events = list(stream.events(timeout=120))
    every_chunk = _run(rec, [(16000, jfk)], StreamOptions(use_streaming_graph=graph, skip_late_partials=False))
    partials = [e for e in events if e.kind == "partial"]
    assert len(partials) <= 3 < sum(e.kind == "partial" for e in every_chunk)
    assert _finals(events) == _finals(every_chunk)


@pytest.mark.parametrize("kind", ["silence", "white", "hum", "tone"])
def test_no_speech_no_events(rec, kind):
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 6) / 16000
    x = {
        "silence": np.zeros_like(t),
        "white": 0.2 * rng.standard_normal(len(t)),
        "hum": 0.3 * np.sin(2 * np.pi * 50 * t),
        "tone": 0.3 * np.sin(2 * np.pi * 1000 * t),
    }[kind].astype(np.float32)
    assert _run(rec, [(16000, x)]) == []


def test_chunk_sizes_do_not_change_the_result(rec, jfk):
    whole = _finals(_run(rec, [(16000, jfk)]))
    rng = np.random.default_rng(0)
    cuts = np.concatenate([np.arange(1, 200), np.cumsum(rng.integers(1, 9000, 60)) + 200])
    cuts = cuts[cuts < len(jfk)]
    pieces = [(16000, p) for p in np.split(jfk, cuts)]
    assert _finals(_run(rec, pieces)) == whole


def test_rates_change_mid_stream_and_int16(rec, jfk):
    import soxr

    half = len(jfk) // 2
    second = soxr.resample(jfk[half:], 16000, 8000)
    pcm = (np.stack([jfk[:half], jfk[:half]], axis=1) * 32767).astype(np.int16)  # int16 stereo
    events = _run(rec, [(16000, pcm), (8000, second.astype(np.float32))])
    assert any(e.kind == "final" for e in events)
    assert max(e.end for e in events) == pytest.approx(11.0, abs=0.1)


def test_bad_input_and_misuse(rec, jfk):
    with rec.create_stream() as stream:
        bad = jfk[:1000].copy()
        bad[5] = np.inf
        with pytest.raises(AudioError, match="NaN or infinite"):
            stream.accept_waveform(16000, bad)
        with pytest.raises(AudioError, match="sample rate"):
            stream.accept_waveform(0, jfk[:100])
        stream.accept_waveform(16000, jfk)  # still usable
        stream.input_finished()
        with pytest.raises(StreamError, match="after input_finished"):
            stream.accept_waveform(16000, jfk[:100])
        events = list(stream.events(timeout=120))
        assert any(e.kind == "final" for e in events)
        assert list(stream.events(timeout=1)) == []  # ended streams stay ended


def test_concurrent_streams_share_one_bundle(rec, jfk):
    solo_a = _finals(_run(rec, [(16000, jfk)]))
    solo_b = _finals(_run(rec, [(16000, jfk[::-1].copy())]))
    results = {}

    def work(name, x):
        results[name] = _finals(_run(rec, [(16000, x[i : i + 3200]) for i in range(0, len(x), 3200)]))

    threads = [threading.Thread(target=work, args=("a", jfk)), threading.Thread(target=work, args=("b", jfk[::-1].copy()))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results == {"a": solo_a, "b": solo_b}


def test_stream_options_validated():
    with pytest.raises(ValueError):
        StreamOptions(chunk_ms=10)


def test_kv_cache_discipline(rec, jfk):
    """Streaming graph: speech grows by one chunk's tokens per partial; suffix and hypothesis never stay cached."""
    assert rec.engine.streaming_encoder is not None
    with rec.create_stream() as stream:
        decoder = stream._decoder
        llm = decoder.llm
        seen = []
        original = decoder.decode

        def spy(*args, **kwargs):
            before = (decoder.n_speech, llm.n_past)
            hyp = original(*args, **kwargs)
            seen.append((before, (decoder.n_speech, llm.n_past)))
            return hyp

        decoder.decode = spy
        stream.accept_waveform(16000, jfk[: 16000 * 2])
        stream.input_finished()
        list(stream.events(timeout=120))
    assert seen
    for (speech, past), (speech_after, past_after) in seen:
        # the new speech goes in with the decode's prompt (one batch); after it, nothing but prefix + speech
        assert decoder.n_prefix <= past <= past_after == decoder.n_prefix + speech
        assert speech_after == speech
    partial_speech = [b[0] for b, _ in seen[:-1]]  # the last decode is the final's second pass
    assert all(b - a == 4 for a, b in zip(partial_speech, partial_speech[1:]))  # 4 audio tokens per 640 ms
    assert llm.n_past == decoder.n_prefix  # reset for the next utterance


def test_hotwords_found_in_the_ctc_hypothesis_become_hints(tiny_bundle, jfk, one_word_index):
    """A hotword whose pronunciation is in the model's phoneme hypothesis reaches the prompt. The tiny model's
    phonemes are random, so the hotword is made from them: a short slice gives a one-word hypothesis."""
    from nim4asr_edge.phonemes import ctc_greedy

    clip = jfk[int(0.3 * 16000) : int(1.3 * 16000)]
    opts = RecognizerOptions(threads=1, max_tokens_per_second=2.0)
    with Recognizer(tiny_bundle, opts) as plain:
        out = plain.engine.encoder.run(plain.engine.frontend(clip).values)
        inventory = plain.bundle.phoneme_inventory
        pron = [s for s in ctc_greedy(out.phoneme_logprobs, inventory).symbols if s != "|"]
    assert 3 <= len(pron) <= 64, f"unusable hypothesis for this check: {pron}"

    with one_word_index(pron, inventory) as index:
        with Recognizer(tiny_bundle, opts, hotwords=index) as rec:
            assert rec.transcribe(clip, sample_rate=16000).segments[0].hints == ("Zorblax",)
            assert rec.transcribe(np.zeros(16000, np.float32), sample_rate=16000).segments[0].hints == ()
            events = _run(rec, [(16000, jfk)])  # the streaming hint path runs on real hits too
    assert any(e.kind == "final" for e in events)
