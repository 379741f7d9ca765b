"""Streaming encoder: the cache-carrying ONNX graph run by ``StreamingEncoderSession`` equals the PyTorch chunked
whole-utterance forward (``forward_audio(..., chunk_size, left_chunks)``) chunk by chunk; streams are independent;
state is bounded; bad input raises the SDK's errors.  Also ``EncoderSession.run(..., n_valid=...)``.

Fast (tiny seeded model); needs the `export` extra (torch, onnx).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the streaming encoder tests need the `export` extra (torch)")
onnx = pytest.importorskip("onnx", reason="the streaming encoder tests need the `export` extra (onnx)")

from nim4asr_edge.encoder import EncoderOptions, EncoderSession, audio_tokens, encoder_frames  # noqa: E402
from nim4asr_edge.errors import AudioError, BundleError, ExportError  # noqa: E402
from nim4asr_edge.streaming_encoder import StreamingEncoderSession  # noqa: E402
from nim4asr_export.config import tiny_config  # noqa: E402
from nim4asr_export.model import Nim4AsrModel  # noqa: E402
from nim4asr_export.onnx_export import (  # noqa: E402
    export_encoder_onnx,
    export_streaming_encoder_onnx,
    quantize_encoder_int8,
    streaming_manifest_entry,
)

CHUNK, LEFT = 16, 4  # encoder frames per chunk, chunks of left context (640 ms chunks, 4 cached)
FP32_TOL = 1e-4
# Lengths in feature frames: shorter than one encoder frame's input, inside the first chunk, exactly one window
# (67), one frame either side of chunk boundaries, past the 4-chunk cache (so it rolls), and a long stream.
LENGTHS = (7, 10, 50, 66, 67, 68, 130, 131, 132, 195, 387, 1001, 3000)
OPTS = EncoderOptions(intra_op_num_threads=1)


@pytest.fixture(scope="module")
def model():
    return Nim4AsrModel.build(tiny_config(vocab_size=300), seed=1234, with_llm=False)


@pytest.fixture(scope="module")
def stream_path(model, tmp_path_factory):
    return export_streaming_encoder_onnx(model, tmp_path_factory.mktemp("stream") / "encoder.stream.onnx")


@pytest.fixture(scope="module")
def session(stream_path):
    with StreamingEncoderSession(stream_path, OPTS) as s:
        yield s


def _features(n_frames: int, seed: int, n_mels: int = 80) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_frames, n_mels)).astype(np.float32)


def _chunked_ref(model, feats: np.ndarray, chunk: int = CHUNK, left: int = LEFT):
    with torch.no_grad():
        embeds, embed_lens, logprobs, phone_lens = model.forward_audio(
            torch.from_numpy(feats)[None], torch.tensor([feats.shape[0]]), chunk, left
        )
    return embeds[0, : int(embed_lens[0])].numpy(), logprobs[0, : int(phone_lens[0])].numpy()


def _stream_by_steps(session, feats: np.ndarray):
    """Full steps while a whole step's frames are there, then flush the rest: the per-step outputs."""
    state = session.new_state()
    outs, pos = [], 0
    while feats.shape[0] - pos >= state.frames_needed:
        n = state.frames_needed
        outs.append(session.step(state, feats[pos: pos + n]))
        pos += n
    outs.append(session.flush(state, feats[pos:]))
    return outs


@pytest.mark.parametrize("n_frames", LENGTHS)
def test_streaming_equals_chunked_forward(model, session, n_frames, record_property):
    feats = _features(n_frames, 100 + n_frames)
    ref_embeds, ref_logprobs = _chunked_ref(model, feats)
    outs = _stream_by_steps(session, feats)
    # Every full step emits exactly one chunk: 16 phoneme frames and 4 tokens, equal to that slice of the reference.
    for i, out in enumerate(outs[:-1]):
        assert out.phoneme_logprobs.shape == (CHUNK, session.n_phonemes)
        assert out.audio_embeds.shape == (CHUNK // 4, session.llm_hidden)
        assert out.n_frames == (67 if i == 0 else 64)
        np.testing.assert_allclose(out.phoneme_logprobs, ref_logprobs[i * CHUNK: (i + 1) * CHUNK], atol=FP32_TOL,
                                   rtol=0)
        np.testing.assert_allclose(out.audio_embeds, ref_embeds[i * 4: (i + 1) * 4], atol=FP32_TOL, rtol=0)
    embeds = np.concatenate([o.audio_embeds for o in outs])
    logprobs = np.concatenate([o.phoneme_logprobs for o in outs])
    assert logprobs.shape == ref_logprobs.shape == (encoder_frames(n_frames), session.n_phonemes)
    assert embeds.shape == ref_embeds.shape == (audio_tokens(encoder_frames(n_frames)), session.llm_hidden)
    d_emb = float(np.abs(embeds - ref_embeds).max(initial=0.0))
    d_lp = float(np.abs(logprobs - ref_logprobs).max(initial=0.0))
    record_property("max_abs_diff", {"audio_embeds": d_emb, "phoneme_logprobs": d_lp})
    assert d_emb <= FP32_TOL and d_lp <= FP32_TOL
    whole = session.run(feats)  # accept + flush on a fresh state: the same windows, the same numbers
    np.testing.assert_array_equal(whole.audio_embeds, embeds)
    np.testing.assert_array_equal(whole.phoneme_logprobs, logprobs)


def test_parity_discriminates_context(model, session):
    """The streaming result is the left_chunks=4 chunked forward, not full context nor a shorter left context."""
    feats = _features(1001, 7)
    got = session.run(feats).phoneme_logprobs
    assert np.abs(got - _chunked_ref(model, feats)[1]).max() <= FP32_TOL
    assert np.abs(got - _chunked_ref(model, feats, -1, -1)[1]).max() > 1e-3
    assert np.abs(got - _chunked_ref(model, feats, CHUNK, LEFT - 1)[1]).max() > 1e-3
    assert np.abs(got - _chunked_ref(model, feats, CHUNK, -1)[1]).max() > 1e-3


def test_first_chunk_reads_only_its_window(session):
    """Chunk 0 reads feature frames 0..66 (its 64 frames + 3 of look-ahead) and nothing later."""
    feats = _features(300, 8)
    base = session.run(feats)
    later = feats.copy()
    later[67:] += 5.0
    moved = session.run(later)
    np.testing.assert_array_equal(moved.phoneme_logprobs[:CHUNK], base.phoneme_logprobs[:CHUNK])
    assert np.abs(moved.phoneme_logprobs[CHUNK:] - base.phoneme_logprobs[CHUNK:]).max() > 1e-3
    look = feats.copy()
    look[66] += 5.0  # the last look-ahead frame does change chunk 0
    assert np.abs(session.run(look).phoneme_logprobs[:CHUNK] - base.phoneme_logprobs[:CHUNK]).max() > 1e-4


@pytest.mark.parametrize(("conv_kernel", "chunk", "left"), [(7, 8, 1), (11, 4, 1), (7, 16, 2)])
def test_other_geometries_equal_chunked_forward(conv_kernel, chunk, left, tmp_path):
    """Other chunk sizes / left contexts, including a depthwise kernel wider than the left context (the conv
    cache is then partly masked, as in the chunked forward)."""
    cfg = tiny_config(vocab_size=300)
    cfg = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, conv_kernel=conv_kernel))
    m = Nim4AsrModel.build(cfg, seed=5, with_llm=False)
    path = export_streaming_encoder_onnx(m, tmp_path / "s.onnx", chunk_frames=chunk, left_chunks=left)
    with StreamingEncoderSession(path, OPTS) as s:
        assert (s.chunk_encoder_frames, s.left_chunks, s.window_frames) == (chunk, left, 4 * chunk + 3)
        for n in (33, 4 * chunk * 5 + 3, 555):
            feats = _features(n, n)
            ref_e, ref_lp = _chunked_ref(m, feats, chunk, left)
            out = s.run(feats)
            assert out.phoneme_logprobs.shape == ref_lp.shape and out.audio_embeds.shape == ref_e.shape
            assert np.abs(out.phoneme_logprobs - ref_lp).max() <= FP32_TOL
            assert np.abs(out.audio_embeds - ref_e).max() <= FP32_TOL


def test_accept_with_any_sizes_equals_steps(session):
    feats = _features(777, 3)
    want = session.run(feats)
    state = session.new_state()
    sizes = [1, 2, 66, 64, 5, 130, 0, 300]
    parts, pos = [], 0
    for n in sizes:
        out = session.accept(state, feats[pos: pos + n])
        assert out.n_frames == n
        parts.append(out)
        pos += n
    parts.append(session.flush(state, feats[pos:]))
    np.testing.assert_array_equal(np.concatenate([p.audio_embeds for p in parts]), want.audio_embeds)
    np.testing.assert_array_equal(np.concatenate([p.phoneme_logprobs for p in parts]), want.phoneme_logprobs)
    assert state.finished and state.frames_in == 777


def test_interleaved_streams_share_one_session(session):
    a, b = _features(700, 21), _features(460, 22)
    alone_a, alone_b = session.run(a), session.run(b)
    sa, sb = session.new_state(), session.new_state()
    outs = {"a": [], "b": []}
    pos = {"a": 0, "b": 0}
    feats = {"a": a, "b": b}
    states = {"a": sa, "b": sb}
    for _ in range(20):  # alternate one step each while both have a full step of frames
        for k in ("a", "b"):
            st = states[k]
            if feats[k].shape[0] - pos[k] >= st.frames_needed:
                n = st.frames_needed
                outs[k].append(session.step(st, feats[k][pos[k]: pos[k] + n]))
                pos[k] += n
    for k in ("a", "b"):
        outs[k].append(session.flush(states[k], feats[k][pos[k]:]))
    for k, alone in (("a", alone_a), ("b", alone_b)):
        np.testing.assert_array_equal(np.concatenate([o.audio_embeds for o in outs[k]]), alone.audio_embeds)
        np.testing.assert_array_equal(np.concatenate([o.phoneme_logprobs for o in outs[k]]), alone.phoneme_logprobs)


def test_state_is_bounded_over_a_long_stream(session, record_property):
    state = session.new_state()
    feats = _features(67 + 64 * 59, 9)  # 60 chunks (38.4 s)
    sizes, times = set(), []
    out = session.step(state, feats[:67])
    first = state.nbytes
    pos = 67
    for _ in range(59):
        t0 = time.perf_counter()
        out = session.step(state, feats[pos: pos + 64])
        times.append(time.perf_counter() - t0)
        pos += 64
        sizes.add(state.nbytes)
        assert {k: v.shape for k, v in state._caches.items()} == session._cache_shapes
    assert sizes == {first}
    assert state.offset == 60 * CHUNK and state.frames_in == feats.shape[0]
    assert out.phoneme_logprobs.shape == (CHUNK, session.n_phonemes)
    per_chunk_ms = 1000 * float(np.median(times))
    print(f"\ntiny streaming step: {per_chunk_ms:.2f} ms per 640 ms chunk, state {first} bytes")
    record_property("tiny_step_ms", per_chunk_ms)


def test_bad_input_raises_sdk_errors(session, stream_path):
    state = session.new_state()
    with pytest.raises(AudioError, match="exactly state.frames_needed = 67"):
        session.step(state, _features(64, 0))
    session.step(state, _features(67, 0))
    with pytest.raises(AudioError, match="exactly state.frames_needed = 64"):
        session.step(state, _features(67, 0))
    bad = _features(64, 0)
    bad[10, 3] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        session.step(state, bad)
    bad[10, 3] = np.inf
    with pytest.raises(AudioError, match="NaN or infinity"):
        session.accept(state, bad)
    with pytest.raises(AudioError, match="float32"):
        session.step(state, _features(64, 0).astype(np.float64))
    with pytest.raises(AudioError, match="80"):
        session.step(state, _features(64, 0, n_mels=40))
    with pytest.raises(AudioError, match="NaN"):
        session.flush(state, bad)
    assert state.offset == CHUNK  # rejected input left the stream untouched
    session.step(state, _features(64, 1))
    session.flush(state)
    with pytest.raises(AudioError, match="flushed"):
        session.step(state, _features(64, 0))
    with pytest.raises(AudioError, match="flushed"):
        session.flush(state)
    with StreamingEncoderSession(stream_path, OPTS) as other, pytest.raises(ValueError, match="this session"):
        other.step(state, _features(67, 0))
    closed = StreamingEncoderSession(stream_path, OPTS)
    st = closed.new_state()
    closed.close()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        closed.step(st, _features(67, 0))
    # A tail too short for one encoder frame is not an error in a stream: it yields nothing.
    short = session.run(_features(6, 0))
    assert short.audio_embeds.shape == (0, session.llm_hidden) and short.phoneme_logprobs.shape == (0, 12)


def test_graphs_are_not_interchangeable(model, stream_path, tmp_path):
    offline = export_encoder_onnx(model, tmp_path / "encoder.onnx")
    with pytest.raises(BundleError, match="not a streaming encoder graph"):
        StreamingEncoderSession(offline)
    with pytest.raises(BundleError, match="does not match the nim4asr-bundle v1 contract"):
        EncoderSession(stream_path)


def test_export_rejects_bad_geometry(model, tmp_path):
    with pytest.raises(ExportError, match="multiple of the adaptor stack"):
        export_streaming_encoder_onnx(model, tmp_path / "a.onnx", chunk_frames=6)
    with pytest.raises(ExportError, match="left_chunks"):
        export_streaming_encoder_onnx(model, tmp_path / "b.onnx", left_chunks=0)


def test_graph_metadata_matches_manifest_entry(model, stream_path):
    props = {p.key: p.value for p in onnx.load(str(stream_path), load_external_data=False).metadata_props}
    entry = streaming_manifest_entry(model, CHUNK, LEFT, {"fp32": stream_path.name})
    assert entry["chunk_feature_frames"] == 64 and entry["chunk_ms"] == 640 and entry["cache_encoder_frames"] == 64
    assert props.pop("nim4asr.graph") == "encoder-streaming"
    assert props == {f"nim4asr.{k}": str(v) for k, v in entry.items() if k != "files"}


def test_int8_streaming_graph(model, stream_path, tmp_path, record_property):
    int8 = quantize_encoder_int8(stream_path, tmp_path / "encoder.stream.int8.onnx")
    feats = _features(1001, 77)
    ref_e, ref_lp = _chunked_ref(model, feats)
    with StreamingEncoderSession(int8, OPTS) as s8:
        out = s8.run(feats)
    assert out.audio_embeds.shape == ref_e.shape
    norms = np.linalg.norm(out.audio_embeds, axis=-1) * np.linalg.norm(ref_e, axis=-1)
    cos = (out.audio_embeds * ref_e).sum(-1) / norms
    dp = float(np.abs(out.phoneme_logprobs - ref_lp).max())
    record_property("int8", {"min_cosine": float(cos.min()), "max_logprob_diff": dp})
    # Same bounds as the offline int8 graph (tests/test_encoder_parity.py).
    assert cos.min() >= 0.999 and dp <= 0.02
    assert dp > 0  # it really is the quantised graph


# -- EncoderSession.run(n_valid=...) ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline(model, tmp_path_factory):
    path = export_encoder_onnx(model, tmp_path_factory.mktemp("offline") / "encoder.onnx")
    with EncoderSession(path, OPTS) as s:
        yield s


@pytest.mark.parametrize("n_valid", [7, 163, 1000])
def test_run_with_n_valid_equals_unpadded(offline, n_valid):
    feats = _features(n_valid, n_valid)
    alone = offline.run(feats)
    for pad in (np.zeros((3000 - n_valid, 80), np.float32), _features(3000 - n_valid, 1) * 4):
        out = offline.run(np.concatenate([feats, pad]), n_valid=n_valid)
        assert out.n_frames == n_valid
        assert out.audio_embeds.shape == alone.audio_embeds.shape
        assert out.phoneme_logprobs.shape == alone.phoneme_logprobs.shape
        np.testing.assert_allclose(out.audio_embeds, alone.audio_embeds, atol=1e-5, rtol=0)
        np.testing.assert_allclose(out.phoneme_logprobs, alone.phoneme_logprobs, atol=1e-5, rtol=0)
    full = offline.run(np.concatenate([feats, pad]))  # without n_valid the padding is encoded as speech
    assert full.audio_embeds.shape[0] > alone.audio_embeds.shape[0]


def test_run_rejects_bad_n_valid(offline):
    feats = _features(100, 0)
    for bad in (6, 101, -1):
        with pytest.raises(AudioError, match="n_valid"):
            offline.run(feats, n_valid=bad)
    with pytest.raises(AudioError, match="int"):
        offline.run(feats, n_valid=50.0)
    with pytest.raises(AudioError, match="int"):
        offline.run(feats, n_valid=True)
    padded = feats.copy()
    padded[90] = np.nan  # NaN in the padding would reach the graph: refused too
    with pytest.raises(AudioError, match="NaN"):
        offline.run(padded, n_valid=50)
    assert offline.run(feats, n_valid=np.int64(100)).phoneme_logprobs.shape[0] == encoder_frames(100)
