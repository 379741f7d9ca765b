"""Parity of the Qwen3-ASR import with the official ``qwen-asr`` package (0.0.6, transformers 4.57.6) on random
weights: frontend, audio-token count, encoder outputs (fp32 ONNX within 1e-4), tokenizer ids, prompt ids (plain,
with context, with a forced language), GGUF logits (F32 within 1e-3) and end-to-end greedy tokens.

The reference model is loaded from the same release directory the importer reads, with ``from_pretrained(dtype=
float32)`` and then cast to fp32 (a release whose nested configs name bf16 stays bf16 otherwise). Its transformers backend
attends over the whole clip in the audio encoder (sdpa/eager pass no mask), while its official inference (flash-
attention-2, vLLM) attends within 104-token (8 s) windows; the two agree up to 8 s. Clips up to 8 s are compared
with the reference as is; longer ones with the reference's own block mask over its ``cu_seqlens`` passed to its
layers (what flash-attention-2 computes), which is what our graph implements. The graph's 2-s attention window
(streaming partials) is compared with the reference run with ``n_window_infer`` 200.

The default run uses a tiny configuration; ``-m slow`` adds both released shapes (0.6B, 1.7B).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.parity

QWEN_ASR_VERSION = "0.0.6"
TRANSFORMERS_VERSION = "4.57.6"


def _reference_package():
    """The official package, or a skip saying why it cannot be used."""
    try:
        import qwen_asr  # noqa: F401
        from qwen_asr import Qwen3ASRModel  # noqa: F401
    except ModuleNotFoundError as exc:
        pytest.skip(f"the official qwen-asr package is not installed ({exc.name} missing): pip install "
                    f"qwen-asr=={QWEN_ASR_VERSION} with transformers=={TRANSFORMERS_VERSION} (see docs/qwen3-asr.md)")
    except Exception as exc:  # noqa: BLE001 -- an incompatible transformers fails at class definition
        import transformers

        pytest.skip(f"qwen-asr is installed but cannot be imported with transformers {transformers.__version__} "
                    f"(it pins {TRANSFORMERS_VERSION}): {type(exc).__name__}: {exc}")
    from qwen_asr.inference import utils

    return utils


@pytest.fixture(scope="module")
def utils():
    return _reference_package()


def _load_reference(release: Path):
    import torch
    from qwen_asr import Qwen3ASRModel

    ref = Qwen3ASRModel.from_pretrained(str(release), dtype=torch.float32, max_new_tokens=64)
    ref.model.float().eval()  # dtype=float32 leaves nested configs that name bf16 in bf16 (MODELS.md E)
    ref.dtype = torch.float32
    return ref


@pytest.fixture(scope="module")
def ref(utils, qwen3_asr_release):
    return _load_reference(qwen3_asr_release)


@contextlib.contextmanager
def windowed_attention(ref_model):
    """The reference encoder's layers get its own block mask over ``cu_seqlens`` (what flash-attention-2 and vLLM
    compute); its transformers path passes none."""
    tower = ref_model.thinker.audio_tower
    saved = [layer.forward for layer in tower.layers]

    def masked(forward):
        def run(hidden_states, cu_seqlens, attention_mask=None, **kwargs):
            mask = tower._prepare_attention_mask(hidden_states, cu_seqlens)
            return forward(hidden_states, cu_seqlens, attention_mask=mask, **kwargs)

        return run

    for layer in tower.layers:
        layer.forward = masked(layer.forward)
    try:
        yield
    finally:
        for layer, forward in zip(tower.layers, saved):
            layer.forward = forward


def _ref_inputs(ref, utils, audio, context="", language=None):
    """What the reference's transcribe() feeds its model: normalised audio, prompt text, processor output."""
    wav = utils.normalize_audio_input((audio, 16000))
    prompt = ref._build_text_prompt(context=context, force_language=language)
    return ref.processor(text=[prompt], audio=[wav], return_tensors="pt", padding=True)


def _ref_audio_features(ref, inputs):
    import torch

    with torch.no_grad():
        return ref.model.thinker.get_audio_features(
            inputs["input_features"], feature_attention_mask=inputs["feature_attention_mask"]).numpy()


def _ref_generate(ref, inputs, max_new_tokens):
    import torch

    with torch.no_grad():
        out = ref.model.generate(**inputs, max_new_tokens=max_new_tokens)
    new = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    text = ref.processor.batch_decode([new], skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
    return new, text


CLIPS = {"0.4s": (0.0, 0.4), "3s": (0.0, 3.0), "8s": (1.0, 9.0), "11s": (0.0, 11.0)}


def _clip(jfk, name):
    a, b = CLIPS[name]
    return jfk[int(a * 16000): int(b * 16000)]


# -- frontend, token count --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["0.4s", "3s", "11s"])
@pytest.mark.parametrize("gain", [1.0, 3.0])
def test_frontend_matches_the_reference_processor(ref, utils, jfk, name, gain):
    from nim4asr_edge.families.qwen3_asr import Qwen3AsrLogMel

    audio = _clip(jfk, name) * gain
    inputs = _ref_inputs(ref, utils, audio)
    want = inputs["input_features"][0].numpy().T
    n = int(inputs["feature_attention_mask"].sum())
    got = Qwen3AsrLogMel()(audio)
    assert got.values.shape == want.shape and got.n_valid == n == len(audio) // 160
    assert float(np.abs(got.values - want).max()) < 1e-4


def test_audio_token_count_matches_the_reference(utils):
    import torch
    from qwen_asr.core.transformers_backend.processing_qwen3_asr import (
        _get_feat_extract_output_lengths,
    )

    from nim4asr_edge.families.qwen3_asr import audio_token_count

    frames = torch.arange(1, 4000)
    assert _get_feat_extract_output_lengths(frames).tolist() == [audio_token_count(int(t)) for t in frames]


# -- encoder ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["0.4s", "3s", "8s", "11s"])
def test_encoder_fp32_matches_the_reference(ref, utils, qwen3_asr_bundle, jfk, name):
    from nim4asr_edge.encoder import EncoderSession

    inputs = _ref_inputs(ref, utils, _clip(jfk, name))
    feats = inputs["input_features"][0].numpy().T.copy()
    with windowed_attention(ref.model):
        want = _ref_audio_features(ref, inputs)
    plain = _ref_audio_features(ref, inputs)
    with EncoderSession(qwen3_asr_bundle / "encoder.onnx", phonemes=False) as enc:
        got = enc.run(feats).audio_embeds
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) < 1e-4
    if len(want) <= 104:  # up to 8 s the reference's own (unmasked) path is the same
        assert float(np.abs(got - plain).max()) < 1e-4
    else:  # beyond, its unmasked transformers path differs from its official windowed inference
        assert float(np.abs(plain - want).max()) > 1e-4


@pytest.mark.parametrize("name", ["3s", "11s"])
def test_encoder_stream_window_matches_the_reference_with_that_window(ref, utils, qwen3_asr_bundle, jfk, name):
    """The graph's 2-s attention window (streaming partials) is the reference's encoder with ``n_window_infer`` 200
    (its windowed attention over ``cu_seqlens``)."""
    from nim4asr_edge.encoder import EncoderSession

    inputs = _ref_inputs(ref, utils, _clip(jfk, name))
    feats = inputs["input_features"][0].numpy().T.copy()
    tower = ref.model.thinker.audio_tower
    saved = tower.n_window_infer
    tower.n_window_infer = 200
    try:
        with windowed_attention(ref.model):
            want = _ref_audio_features(ref, inputs)
    finally:
        tower.n_window_infer = saved
    with EncoderSession(qwen3_asr_bundle / "encoder.onnx", phonemes=False) as enc:
        got = enc.run(feats, window=26).audio_embeds
        offline = enc.run(feats).audio_embeds
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) < 1e-4
    assert float(np.abs(offline - want).max()) > 1e-4  # a 2-s window is not the offline 8 s


# -- tokenizer and prompt ---------------------------------------------------------------------------------------------

TEXTS = [
    "Hello world.", " leading space", "Ada Lovelace, NIO House", "language English<asr_text>Hello there",
    "你好，世界。语音识别", "Grüße aus Köln — 12345 and 3.14", "tabs\tand\nnewlines\n\n", "emoji 🎉👍🏽 ok",
    "<|im_start|>system\n<|im_end|>", "it's, we'll, they're", "こんにちは 안녕하세요 مرحبا",
]


@pytest.fixture(scope="module")
def llm(qwen3_asr_bundle):
    from nim4asr_edge.llm import LLMSession

    with LLMSession(qwen3_asr_bundle / "llm.f32.gguf") as session:
        yield session


def test_tokenizer_ids_match_the_reference(ref, llm):
    tok = ref.processor.tokenizer
    for text in TEXTS:
        assert llm.tokenize(text) == tok.encode(text, add_special_tokens=False), text
        ids = tok.encode(text, add_special_tokens=False)
        assert llm.detokenize(ids, special=True) == tok.decode(ids, skip_special_tokens=False), text


PROMPTS = {"plain": ((), None), "context": (("Ada Lovelace", "NIO House"), None), "language": ((), "German"),
           "both": (("Zorblax",), "English")}


@pytest.mark.parametrize("kind", list(PROMPTS))
def test_prompt_ids_match_the_reference(ref, utils, llm, jfk, kind):
    from nim4asr_edge.families.qwen3_asr import Qwen3AsrPrompt, audio_token_count

    hints, language = PROMPTS[kind]
    prompt = Qwen3AsrPrompt()
    audio = _clip(jfk, "3s")
    inputs = _ref_inputs(ref, utils, audio, prompt.context(hints), language)
    parts = prompt.render(hints, language)
    ours = llm.tokenize(parts.before) + [151676] * audio_token_count(len(audio) // 160) + llm.tokenize(parts.after)
    assert ours == inputs["input_ids"][0].tolist()


# -- LLM --------------------------------------------------------------------------------------------------------------


def test_gguf_f32_logits_match_the_reference(ref, utils, llm, jfk):
    """The reference's audio features go into both LLMs: llama.cpp's F32 logits along the reference's greedy path."""
    import torch

    from nim4asr_edge.families.qwen3_asr import Qwen3AsrPrompt

    inputs = _ref_inputs(ref, utils, _clip(jfk, "3s"))
    embeds = _ref_audio_features(ref, inputs)
    steps = 8
    with torch.no_grad():
        out = ref.model.thinker.generate(**inputs, max_new_tokens=steps, eos_token_id=[151645, 151643],
                                         return_dict_in_generate=True, output_logits=True, do_sample=False)
    ref_tokens = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    ref_logits = torch.stack(out.logits)[:, 0].numpy()
    parts = Qwen3AsrPrompt().render()
    llm.clear()
    llm.eval_tokens(llm.tokenize(parts.before))
    llm.eval_embeds(embeds)
    llm.eval_tokens(llm.tokenize(parts.after), output_last=True)
    diffs = []
    for i, token in enumerate(ref_tokens):  # teacher-forced: every step sees the reference's tokens
        diffs.append(float(np.abs(llm.last_logits() - ref_logits[i]).max()))
        llm.eval_tokens([token], output_last=True)
    assert max(diffs) < 1e-3, diffs


@pytest.mark.parametrize("kind", list(PROMPTS))
@pytest.mark.parametrize("name", ["3s", "11s"])
def test_end_to_end_greedy_tokens_match_the_reference(ref, utils, qwen3_asr_bundle, jfk, kind, name):
    """The same audio through our whole runtime (numpy frontend, ONNX fp32 encoder, llama.cpp F32) and through the
    reference's transcribe path (processor, model.generate, batch_decode, parse_asr_output)."""
    pytest.importorskip("espeakng_loader", reason="the family's evidence needs the g2p extra")
    from nim4asr_edge import Recognizer, RecognizerOptions
    from nim4asr_edge.families.qwen3_asr import Qwen3AsrPrompt

    hints, language = PROMPTS[kind]
    audio = _clip(jfk, name)
    options = RecognizerOptions(threads=2, encoder_precision="fp32", llm_quant="f32", language=language,
                                max_tokens_per_second=4.0, min_new_tokens=8, tune_decode_threads=False)
    with Recognizer(qwen3_asr_bundle, options) as rec:
        result = rec.transcribe(audio, sample_rate=16000, hints=list(hints))
        budget = rec.engine.token_budget(len(audio) / 16000)
    (seg,) = result.segments
    inputs = _ref_inputs(ref, utils, audio, Qwen3AsrPrompt().context(hints), language)
    with windowed_attention(ref.model) if name == "11s" else contextlib.nullcontext():
        tokens, text = _ref_generate(ref, inputs, budget)
    assert list(seg.tokens) == tokens
    want_language, want_text = utils.parse_asr_output(text, user_language=language)
    assert (seg.text, seg.language or "") == (want_text, want_language)


# -- both released shapes (slow) --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("size", ["0.6B", "1.7B"])
def test_released_shapes(utils, qwen3_asr_tokenizer, tmp_path_factory, jfk, size):
    """Random weights in a released shape: import (fp32 encoder, F32 GGUF), then encoder outputs, first-step logits
    and 6 greedy tokens against the reference on a 3-s clip."""
    from nim4asr_export.importers import ImportOptions, import_model
    from nim4asr_export.importers.qwen3_asr import write_random_release

    from nim4asr_edge import Recognizer, RecognizerOptions
    from nim4asr_edge.encoder import EncoderSession

    root = tmp_path_factory.mktemp(f"qwen3-asr-{size}")
    try:
        release = write_random_release(root / "release", size, qwen3_asr_tokenizer, seed=1, shards=2)
        bundle = root / "bundle"
        manifest = import_model("qwen3-asr", release, bundle, ImportOptions(quant=("fp32", "f32")),
                                progress=lambda m: None)
        assert manifest.source["size"] == size
        assert manifest.extra["checks"]["encoder_fp32"]["max_abs_diff"] < 1e-4
        reference = _load_reference(release)
        audio = _clip(jfk, "3s")
        inputs = _ref_inputs(reference, utils, audio)
        want = _ref_audio_features(reference, inputs)
        with EncoderSession(bundle / "encoder.onnx", phonemes=False) as enc:
            got = enc.run(inputs["input_features"][0].numpy().T.copy()).audio_embeds
        assert float(np.abs(got - want).max()) < 1e-4
        options = RecognizerOptions(threads=2, encoder_precision="fp32", llm_quant="f32", min_new_tokens=6,
                                    max_tokens_per_second=2.0, tune_decode_threads=False)
        with Recognizer(bundle, options, hotwords=None) as rec:
            seg = rec.transcribe(audio, sample_rate=16000).segments[0]
        tokens, _ = _ref_generate(reference, inputs, 6)
        assert list(seg.tokens) == tokens
    finally:
        shutil.rmtree(root, ignore_errors=True)
