"""Checkpoint -> bundle -> text, proven against PyTorch on real audio."""

import json

import numpy as np
import pytest

from nim4asr_edge.bundle import Bundle
from nim4asr_edge.errors import OptionsError
from nim4asr_edge.llm import LLMOptions
from nim4asr_edge.recognizer import Recognizer, RecognizerOptions

pytest.importorskip("torch", reason="parity needs the export extra")

EXACT = RecognizerOptions(
    encoder_precision="fp32",
    llm_quant="f32",
    llm=LLMOptions(type_k="f32", type_v="f32", flash_attn=False),  # needed for ~1e-5 agreement with PyTorch
    max_tokens_per_second=6.0,
    min_new_tokens=24,
    hint_check=None,  # the reference is given every hint; the random model's evidence supports none
)


@pytest.fixture(scope="module")
def reference(tiny_checkpoint):
    from nim4asr_export.checkpoint import Checkpoint
    from nim4asr_export.parity import TorchReference

    return TorchReference(Checkpoint.open(tiny_checkpoint))


@pytest.fixture(scope="module")
def exact(tiny_bundle):
    with Recognizer(tiny_bundle, EXACT) as rec:
        yield rec


def test_bundle_round_trip(tiny_bundle, tiny_checkpoint):
    from nim4asr_export.checkpoint import Checkpoint

    b = Bundle.load(tiny_bundle)
    m = b.manifest
    ckpt = Checkpoint.open(tiny_checkpoint)
    assert m.source["checkpoint_sha256"] == ckpt.sha256()
    assert m.phonemes["inventory"] == ckpt.phonemes
    assert set(m.encoder["files"]) == {"fp32", "int8"} and m.encoder["default"] == "int8"
    assert set(m.llm["files"]) == {"q8_0", "f32"} and m.llm["default"] == "q8_0"
    assert m.prompt == ckpt.prompt
    assert m.frontend["cmvn"]["mean"] == pytest.approx(ckpt.cmvn["mean"])
    checks = m.extra["export_checks"]
    assert checks["encoder_fp32"]["audio_embeds_max_abs_diff"] <= 1e-4
    assert checks["encoder_int8"]["phoneme_argmax_agreement"] >= 0.9
    written = json.loads((tiny_bundle / "manifest.json").read_text())
    assert (written["format_version"], written["family"]) == (2, "nim4")


@pytest.mark.parametrize("seconds,hints", [(4.0, ()), (2.5, ("Ada Lovelace", "NIO House"))])
def test_runtime_tokens_equal_pytorch(exact, reference, jfk, seconds, hints):
    samples = jfk[: int(seconds * 16000)]
    result = exact.transcribe(samples, sample_rate=16000, hints=hints)
    (segment,) = result.segments
    budget = max(EXACT.min_new_tokens, int(seconds * EXACT.max_tokens_per_second))
    expected = reference.transcribe_tokens(samples, hints=hints, max_new_tokens=budget)
    assert len(expected) >= 20, "the reference stopped early; pick another seed for a meaningful check"
    assert list(segment.tokens) == expected
    assert segment.hints == hints
    assert result.text == exact.engine.llm.detokenize(expected).strip()


def test_encoder_outputs_match_pytorch_on_real_audio(exact, reference, jfk):
    feats = exact.engine.frontend(jfk).values
    got = exact.engine.encoder.run(feats)
    emb, lp = reference.encode(jfk)
    assert np.abs(got.audio_embeds - emb).max() <= 1e-4
    assert np.abs(got.phoneme_logprobs - lp).max() <= 1e-4


def test_quantised_bundle_agreement(tiny_bundle, exact, jfk):
    """int8 encoder + Q8_0 LLM, measured against the exact path: encoder agreement, and the share of steps where
    the quantised LLM picks the exact path's next token when fed the exact path's history (teacher forcing:
    free-running greedy sequences of a random model diverge for good after one flip)."""
    clip = jfk[:64000]
    feats = exact.engine.frontend(clip).values
    fp32 = exact.engine.encoder.run(feats)
    reference = exact.transcribe(clip, sample_rate=16000).segments[0].tokens
    with Recognizer(tiny_bundle, RecognizerOptions(max_tokens_per_second=6.0, min_new_tokens=24)) as quant:
        int8 = quant.engine.encoder.run(feats)
        agree = (int8.phoneme_logprobs.argmax(1) == fp32.phoneme_logprobs.argmax(1)).mean()
        cos = np.sum(int8.audio_embeds * fp32.audio_embeds, 1) / (
            np.linalg.norm(int8.audio_embeds, axis=1) * np.linalg.norm(fp32.audio_embeds, axis=1)
        )
        dec, llm = quant.engine.decoder, quant.engine.llm
        dec.set_speech(int8.audio_embeds)
        dec.evaluate()
        llm.eval_tokens(llm.tokenize(quant.engine.prompt.render_suffix()), output_last=True)
        hits = 0
        for token in reference:
            hits += int(np.argmax(llm.last_logits())) == token
            llm.eval_tokens([token], output_last=True)
        dec.reset()
    step_agreement = hits / len(reference)
    print(f"int8 phoneme argmax agreement {agree:.3f}, min cosine {cos.min():.4f}, "
          f"int8+q8_0 teacher-forced token agreement {step_agreement:.3f} over {len(reference)} steps")
    assert agree >= 0.95
    assert cos.min() >= 0.99
    assert step_agreement >= 0.75


def test_long_audio_is_segmented(tiny_bundle, jfk):
    long = np.concatenate([jfk] * 7)  # 77 s
    seen = []
    with Recognizer(tiny_bundle, RecognizerOptions(max_tokens_per_second=1.0, min_new_tokens=2)) as rec:
        result = rec.transcribe(long, sample_rate=16000, progress=lambda d, t: seen.append((d, t)))
    assert len(result.segments) >= 3
    assert all(s.end - s.start <= 30.0 for s in result.segments)
    assert all(a.end == b.start for a, b in zip(result.segments, result.segments[1:]))
    assert result.segments[-1].end == pytest.approx(77.0, abs=0.01)
    assert seen[-1] == (pytest.approx(77.0, abs=0.01), pytest.approx(77.0, abs=0.01))
    assert result.timings.encoder > 0 and result.timings.prefill > 0 and result.rtf > 0


def test_mismatched_encoder_and_llm_refused(tiny_bundle, tiny_checkpoint, tmp_path):
    """A GGUF from another export (other width) swapped into the bundle, manifest re-hashed: refused at load."""
    import shutil

    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from nim4asr_edge.errors import BundleError
    from nim4asr_edge.manifest import FileEntry, Manifest
    from nim4asr_export.checkpoint import Checkpoint
    from nim4asr_export.gguf_export import write_llm_gguf

    ckpt = Checkpoint.open(tiny_checkpoint)
    cfg = dict(ckpt.config.llm, hidden_size=32, head_dim=8)
    torch.manual_seed(0)
    other_llm = Qwen3ForCausalLM(Qwen3Config(**cfg))
    other = tmp_path / "other"
    shutil.copytree(tiny_bundle, other)
    write_llm_gguf(other_llm.state_dict(), cfg, ckpt.tokenizer_path, other / "llm.f32.gguf", "f32")
    m = Manifest.read(other)
    files = dict(m.files, **{"llm.f32.gguf": FileEntry.of(other / "llm.f32.gguf")})
    Manifest(**{**m.__dict__, "files": files}).write(other)
    with pytest.raises(BundleError, match="encoder emits 64-dim embeddings but the LLM expects 32"):
        Recognizer(other, EXACT)


def test_hints_that_cannot_go_into_the_prompt_are_refused(exact):
    """A hint holding a special token's text would end the prompt early, and too many hints would overflow the
    context: both are an OptionsError before any work, for files and for streams."""
    rec = exact
    silence = np.zeros(rec.sample_rate, dtype=np.float32)
    for hints in (["Ada <|im_end|>"], ["word"] * 400):
        with pytest.raises(OptionsError):
            rec.transcribe(silence, sample_rate=rec.sample_rate, hints=hints)
        with pytest.raises(OptionsError):
            rec.create_stream(hints=hints)
    assert rec.engine.hint_problem(["Ada Lovelace", "<im_end>"]) is None


def test_the_context_holds_the_longest_segment_with_the_most_hints(tiny_bundle):
    """The context is sized at load from the prompt as the model tokenizes it: a segment of max_segment_seconds
    with hints taking up to MAX_HINT_TOKENS and the whole token budget fits (every position used is counted)."""
    from nim4asr_edge.engine import MAX_HINT_TOKENS

    opts = RecognizerOptions(encoder_precision="fp32", llm_quant="f32", max_segment_seconds=10.0,
                             max_tokens_per_second=6.0, min_new_tokens=24, hint_check=None, tune_decode_threads=False)
    with Recognizer(tiny_bundle, opts) as rec:
        engine = rec.engine
        hints = []
        while engine.hint_problem(hints + [f"word{len(hints)}"]) is None:
            hints.append(f"word{len(hints)}")
        parts = engine.prompt.render(hints)
        hint_tokens = sum(len(engine.llm.tokenize(t)) for t in (parts.before, parts.after) if t) - sum(
            len(engine.llm.tokenize(t)) for t in (engine.prompt.render().before, engine.prompt.render().after) if t)
        assert MAX_HINT_TOKENS - 8 <= hint_tokens <= MAX_HINT_TOKENS
        engine.decoder.stop_ids = []  # the random model then generates its whole budget
        audio = np.random.default_rng(0).standard_normal(10 * rec.sample_rate).astype(np.float32) * 0.1
        res = rec.transcribe(audio, sample_rate=rec.sample_rate, hints=hints)
        t = res.timings
        assert t.generated_tokens == engine.token_budget(10.0) and len(res.segments) == 1
        assert t.prompt_tokens + t.generated_tokens <= engine.llm.n_ctx < t.prompt_tokens + t.generated_tokens + 256
