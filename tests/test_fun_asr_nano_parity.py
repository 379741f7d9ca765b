"""Fun-ASR-Nano against the official reference code (PyPI ``funasr`` 1.4.16, the `parity` extra) on random weights:
the tiny configuration here, the released shapes under ``-m slow``.

What is compared, on the same directory laid out like the release (``nano_release``) and its imported bundle:

* frontend: our numpy ``lfr_fbank`` vs funasr's ``WavFrontend`` (dither 0);
* encoder + adaptor: the bundle's ONNX graph (fp32) vs funasr's ``SenseVoiceEncoderSmall`` + ``Transformer``
  adaptor with the released weights, sliced as ``FunASRNano`` slices them, within 1e-4;
* prompt token ids (plain, hotwords, language) vs ``FunASRNano.data_load_speech``, incl. the audio-token count;
* tokenizer ids of mixed Chinese / English / unicode strings: llama.cpp (GGUF) vs transformers' tokenizer;
* GGUF (F32) logits vs the transformers Qwen3 the reference builds, on the reference's own prompt embeddings,
  within 1e-3;
* end to end: our runtime's greedy tokens == ``FunASRNano.inference``'s generation on the same audio.

funasr needs torchaudio only optionally: without it (torchaudio has no CPU build for torch 2.13) its fbank falls
back to kaldi-native-fbank, which is what runs here. The reference LLM is built with exact rotary frequencies
(``llm_dtype: fp32``); the release config's ``bf16`` rounds them (measured in :func:`test_bf16_rotary_drift`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.parity

torch = pytest.importorskip("torch", reason="needs the export extra")
pytest.importorskip("funasr", reason="the official reference: pip install nim4asr-edge[parity] "
                                              "(funasr==1.4.16)")
pytest.importorskip("espeakng_loader", reason="the bundle's evidence needs the g2p extra")

import funasr.models.llm_asr.adaptor  # noqa: E402,F401  (registers the Transformer adaptor)
import funasr.models.sense_voice.model  # noqa: E402,F401  (registers SenseVoiceEncoderSmall)
import yaml  # noqa: E402
from funasr.frontends.wav_frontend import WavFrontend  # noqa: E402
from funasr.models.fun_asr_nano.model import FunASRNano  # noqa: E402

from nim4asr_edge import Recognizer, RecognizerOptions  # noqa: E402
from nim4asr_edge.llm_options import LLMOptions  # noqa: E402
from nim4asr_edge.lfr_fbank import LfrFbank  # noqa: E402

# An F32 KV cache and no flash attention (llama.cpp's CPU flash attention computes in F16): the defaults move these
# random-model logits (|max| ~80) by up to ~0.07, which is llama.cpp's arithmetic, not the conversion.
OPTS = RecognizerOptions(threads=2, tune_decode_threads=False, encoder_precision="fp32", llm_quant="f32",
                         llm=LLMOptions(type_k="f32", type_v="f32", flash_attn=False))
MAX_NEW = 24


def official_frontend(conf: dict) -> WavFrontend:
    return WavFrontend(**{**conf, "dither": 0.0})


def official_model(release, llm_dtype: str = "fp32") -> tuple[FunASRNano, dict]:
    """``FunASRNano`` built from the release's config.yaml (as AutoModel does), the weights of model.pt loaded."""
    cfg = yaml.safe_load((release / "config.yaml").read_text())
    frontend = official_frontend(cfg["frontend_conf"])
    kwargs = {k: v for k, v in cfg.items() if k not in ("model", "frontend", "frontend_conf")}
    kwargs["llm_conf"] = {**cfg["llm_conf"], "init_param_path": str(release / "Qwen3-0.6B"), "llm_dtype": llm_dtype}
    model = FunASRNano(input_size=frontend.output_size(), **kwargs)
    state = torch.load(release / "model.pt", weights_only=True)["state_dict"]
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    assert not unexpected and all(k.startswith(("ctc", "llm.lm_head")) for k in missing), (missing, unexpected)
    model.eval()
    cfg["frontend_obj"] = frontend
    return model, cfg


def official_tokenizer(release):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(release / "Qwen3-0.6B"))


@pytest.fixture(scope="module")
def reference(nano_release):
    model, cfg = official_model(nano_release)
    return model, cfg, official_tokenizer(nano_release)


@pytest.fixture(scope="module")
def rec(nano_bundle):
    with Recognizer(nano_bundle, OPTS) as r:
        yield r


def _clip(jfk, seconds: float) -> np.ndarray:
    return np.ascontiguousarray(jfk[: int(seconds * 16000)])


@pytest.mark.parametrize("seconds", [0.385, 0.4, 1.0, 2.345, 7.0, 11.0])
def test_frontend_features(reference, jfk, seconds):
    _, cfg, _ = reference
    x = _clip(jfk, seconds)
    ref, ref_len = cfg["frontend_obj"](torch.from_numpy(x)[None], torch.tensor([len(x)]))
    got = LfrFbank()(x)
    assert got.values.shape == tuple(ref[0].shape) and int(ref_len[0]) == got.n_valid
    # kaldi-native-fbank computes in float32, ours in float64 (log energies ~10)
    assert np.abs(got.values - ref[0].numpy()).max() < 1e-3  # measured 2.7e-4


def test_cmvn_from_a_released_am_mvn(nano_release, tmp_path, jfk):
    """A release whose config names a CMVN file (Paraformer-style ``am.mvn``; the Nano release has none): the
    importer reads it into the manifest and the runtime applies it as WavFrontend does."""
    import shutil

    from nim4asr_edge.frontend import make_frontend
    from nim4asr_export.importers.fun_asr_nano import NanoRelease

    rel = tmp_path / "rel"
    shutil.copytree(nano_release, rel)
    rng = np.random.default_rng(0)
    shift, scale = -rng.uniform(5, 15, 560), rng.uniform(0.1, 0.5, 560)
    fmt = lambda v: " ".join(f"{x:.6f}" for x in v)  # noqa: E731
    (rel / "am.mvn").write_text(f"<Nnet>\n<Splice> 560 560\n[ 0 ]\n<AddShift> 560 560\n<LearnRateCoef> 0 [ "
                                f"{fmt(shift)} ]\n<Rescale> 560 560\n<LearnRateCoef> 0 [ {fmt(scale)} ]\n</Nnet>\n")
    cfg = yaml.safe_load((rel / "config.yaml").read_text())
    cfg["frontend_conf"]["cmvn_file"] = "am.mvn"
    (rel / "config.yaml").write_text(yaml.safe_dump(cfg))
    ours = make_frontend(NanoRelease(rel).frontend.to_manifest())
    ref_fe = official_frontend({**cfg["frontend_conf"], "cmvn_file": str(rel / "am.mvn")})
    x = _clip(jfk, 3.0)
    ref, _ = ref_fe(torch.from_numpy(x)[None], torch.tensor([len(x)]))
    assert np.abs(ours(x).values - ref[0].numpy()).max() < 1e-3


@pytest.mark.parametrize("rows", [7, 9, 64, 167, 300])
def test_encoder_and_adaptor_onnx_vs_official(reference, nano_bundle, rows):
    from nim4asr_edge.encoder import EncoderSession

    model, _, _ = reference
    feats = np.random.default_rng(rows).standard_normal((rows, 560)).astype(np.float32)
    with torch.no_grad():
        enc, enc_lens = model.encode(torch.from_numpy(feats.copy())[None], torch.tensor([rows]))
        out, _ = model.audio_adaptor(enc, enc_lens)
    n = _reference_token_count(model, rows)
    ref = out[0, :n].numpy()
    with EncoderSession(nano_bundle / "encoder.onnx", phonemes=False) as s:
        got = s.run(feats).audio_embeds
    assert got.shape == ref.shape == (math.ceil(rows / 8), 64)
    assert np.abs(got - ref).max() < 1e-4
    with EncoderSession(nano_bundle / "encoder.int8.onnx", phonemes=False) as s:
        q = s.run(feats).audio_embeds
    assert q.shape == ref.shape and np.corrcoef(q.ravel(), ref.ravel())[0, 1] > 0.99


def _reference_token_count(model: FunASRNano, rows: int) -> int:
    """``fake_token_len`` as data_load_speech computes it for ``rows`` LFR rows."""
    assert model.use_low_frame_rate
    olens = 1 + (rows - 3 + 2 * 1) // 2
    olens = 1 + (olens - 3 + 2 * 1) // 2
    return (olens - 1) // 2 + 1


def _reference_prompt(model, cfg, tokenizer, audio, hotwords=(), language=None):
    """(source ids with the speech span, fbank_beg, fake_token_len) exactly as the reference builds them."""
    prompt = model.get_prompt(list(hotwords), language, True)
    data = model.generate_chatml(prompt, torch.from_numpy(audio))
    contents = model.data_template(data)
    out = model.data_load_speech(contents, tokenizer, cfg["frontend_obj"], dataset_conf=cfg.get("dataset_conf", {}))
    return out["source_ids"][0].tolist(), int(out["fbank_beg"][0, 0]), int(out["fake_token_len"][0, 0])


@pytest.mark.parametrize("hotwords,language", [((), None), (("开放时间", "NIO House"), None), ((), "英文"),
                                                (("Zorblax",), "日文")])
def test_prompt_token_ids(reference, rec, jfk, hotwords, language):
    model, cfg, tok = reference
    audio = _clip(jfk, 3.3)
    ids, beg, n = _reference_prompt(model, cfg, tok, audio, hotwords, language)
    parts = rec.engine.prompt.render(hotwords, language)
    before, after = rec.engine.llm.tokenize(parts.before), rec.engine.llm.tokenize(parts.after)
    n_ours = len(rec.engine.encode(audio).audio_embeds)
    assert (beg, n) == (len(before), n_ours)
    assert ids == before + [0] * n + after  # the speech span is n placeholder ids in the reference


MIXED = [
    "你好，世界！今天是2026年12月6日。",
    "Hello World, it's a test: don't stop — 3.14159 and 1,000,000!",
    "蔚来ES8的续航里程是多少？NIO House在北京朝阳区。",
    "こんにちは世界、カタカナとひらがな。안녕하세요 한국어",
    "emoji 😀🎉👍🏽 🇫🇷 👨‍👩‍👧 café naïve résumé Straße",
    "  leading spaces\tand tabs\n\nnew lines  ",
    "<|im_start|>user\n语音转写成英文：<|im_end|>\n<|im_start|>assistant\n",
    "ŁÓDŹ Ελληνικά русский текст العربية हिन्दी",
]


def test_tokenizer_ids_on_mixed_text(reference, rec):
    _, _, tok = reference
    for text in MIXED:
        assert rec.engine.llm.tokenize(text) == tok.encode(text, add_special_tokens=False), text
        ids = tok.encode(text, add_special_tokens=False)
        assert rec.engine.llm.detokenize(ids, special=True) == tok.decode(ids, skip_special_tokens=False), text


def _reference_generation(model, cfg, tok, audio, hotwords=(), language=None, max_new=MAX_NEW):
    """FunASRNano.inference on ``audio``: (generated ids, the inputs_embeds it generated from, its text)."""
    seen = {}
    generate = model.llm.generate

    def spy(*args, **kwargs):
        seen["embeds"] = kwargs["inputs_embeds"].detach().clone()
        seen["ids"] = generate(*args, **kwargs)
        return seen["ids"]

    model.llm.generate = spy
    try:
        res, _ = model.inference(data_in=[torch.from_numpy(audio)], tokenizer=tok, frontend=cfg["frontend_obj"],
                                 device="cpu", max_length=max_new, hotwords=list(hotwords), language=language,
                                 dataset_conf=cfg.get("dataset_conf", {}))
    finally:
        del model.llm.generate
    return seen["ids"][0].tolist(), seen["embeds"], res[0]["text"]


def _gguf_logits(rec, embeds, *token_runs) -> list:
    """The GGUF's logits after the reference's prompt embeddings, then after each run of teacher-forced tokens,
    on a context of its own."""
    llm = rec.engine.new_decoder().llm
    try:
        llm.clear()
        llm.eval_embeds(embeds[0].numpy().astype(np.float32), output_last=True)
        out = [llm.last_logits()]
        for ids in token_runs:
            llm.eval_tokens(ids, output_last=True)
            out.append(llm.last_logits())
        return out
    finally:
        llm.close()


def test_gguf_logits_vs_transformers(reference, rec, jfk):
    """The GGUF (F32) on the reference's own prompt embeddings (text + speech) gives the logits of the reference's
    transformers Qwen3 within 1e-3, at the first step and after 8 teacher-forced tokens."""
    model, cfg, tok = reference
    audio = _clip(jfk, 4.0)
    ids, embeds, _ = _reference_generation(model, cfg, tok, audio, max_new=8)
    first, later = _gguf_logits(rec, embeds, ids[:7])
    with torch.no_grad():
        tokens = model.llm.get_input_embeddings()(torch.tensor([ids[:7]]))
        ref = model.llm(inputs_embeds=torch.cat([embeds, tokens], dim=1)).logits[0]
    n = embeds.shape[1]
    errs = (float(np.abs(first - ref[n - 1].numpy()).max()), float(np.abs(later - ref[-1].numpy()).max()))
    print(f"GGUF F32 vs transformers logits: max abs diff {errs[0]:.3g} (first step), {errs[1]:.3g} (after 7 "
          f"tokens); |logits| up to {float(ref.abs().max()):.3g}")
    assert max(errs) < 1e-3


@pytest.mark.parametrize("seconds,hotwords,language", [(3.0, (), None), (6.5, (), None), (4.0, ("Ada Lovelace",), None),
                                                        (5.0, (), "英文")])
def test_end_to_end_greedy_tokens(reference, rec, jfk, seconds, hotwords, language):
    """Our runtime (numpy frontend -> ONNX fp32 -> GGUF F32, the engine's prompt) generates exactly the reference's
    greedy tokens on the same audio."""
    model, cfg, tok = reference
    audio = _clip(jfk, seconds)
    ref_ids, _, ref_text = _reference_generation(model, cfg, tok, audio, hotwords, language)
    engine = rec.engine
    embeds = engine.encode(audio).audio_embeds
    decoder = engine.new_decoder()
    try:
        llm = decoder.llm
        parts = engine.prompt.render(hotwords, language)
        got = llm.generate(llm.tokenize(parts.before), embeds, llm.tokenize(parts.after), max_new_tokens=MAX_NEW,
                           stop_ids=decoder.stop_ids)
    finally:
        decoder.llm.close()
    assert list(got.tokens) + ([got.stop_id] if got.stopped else []) == ref_ids
    text = engine.family.parse_output(got.text).text
    assert text == ref_text.strip()


def test_bf16_rotary_drift(nano_release, reference, jfk):
    """FunASR with the release's ``llm_dtype: bf16`` rounds the rotary inverse frequencies to bf16 even when it then
    generates in fp32; the GGUF computes them exactly. Record how far that reference moves (not a parity check)."""
    model, cfg, tok = reference
    bf16, _ = official_model(nano_release, llm_dtype="bf16")
    bf16.llm.to(torch.float32)
    audio = _clip(jfk, 4.0)
    ids, embeds, _ = _reference_generation(model, cfg, tok, audio)
    ids_bf16, _, _ = _reference_generation(bf16, cfg, tok, audio)
    with torch.no_grad():
        exact = model.llm(inputs_embeds=embeds).logits[0, -1]
        rounded = bf16.llm(inputs_embeds=embeds).logits[0, -1]
    drift = float((exact - rounded).abs().max())
    same = sum(a == b for a, b in zip(ids, ids_bf16))
    print(f"bf16-rope reference: first-step logits differ by up to {drift:.3g}; {same}/{len(ids)} greedy ids agree")
    assert drift > 0  # the rounding is real: parity must be against exact rotary frequencies


# -- the released shapes (random weights): python -m pytest -m "slow and parity" tests/test_fun_asr_nano_parity.py --

@pytest.fixture(scope="module")
def full_release(qwen_tokenizer_json, tmp_path_factory):
    from nim4asr_export.importers.fun_asr_nano import released_llm_config, write_random_release
    from nim4asr_export.model.sensevoice import released_audio_config

    return write_random_release(tmp_path_factory.mktemp("nano-full") / "Fun-ASR-Nano-2512", qwen_tokenizer_json,
                                audio=released_audio_config(), llm_config=released_llm_config(), seed=0)


@pytest.fixture(scope="module")
def full_bundle(full_release, tmp_path_factory):
    from nim4asr_export.importers import ImportOptions, import_model

    out = tmp_path_factory.mktemp("nano-full-bundle") / "bundle"
    import_model("fun-asr-nano", full_release, out, ImportOptions(quant=("fp32", "f32")), progress=print)
    return out


@pytest.mark.slow
def test_released_shapes_end_to_end(full_release, full_bundle, jfk):
    """Released shapes: ONNX encoder + adaptor vs the official modules (1e-4), GGUF F32 first-step logits vs the
    reference's transformers Qwen3 (1e-3), and identical greedy tokens from our runtime and FunASRNano.inference."""
    from nim4asr_edge.encoder import EncoderSession

    model, cfg = official_model(full_release)
    tok = official_tokenizer(full_release)
    feats = np.random.default_rng(0).standard_normal((167, 560)).astype(np.float32)
    with torch.no_grad():
        enc, lens = model.encode(torch.from_numpy(feats.copy())[None], torch.tensor([167]))
        ref = model.audio_adaptor(enc, lens)[0][0, :21].numpy()
    with EncoderSession(full_bundle / "encoder.onnx", phonemes=False) as s:
        got = s.run(feats).audio_embeds
    err = float(np.abs(got - ref).max())
    print(f"released shapes: encoder+adaptor max abs diff {err:.3g} (|max| {np.abs(ref).max():.3g})")
    assert err < 1e-4
    with Recognizer(full_bundle, OPTS) as r:
        audio = _clip(jfk, 5.0)
        ref_ids, embeds, _ = _reference_generation(model, cfg, tok, audio, max_new=16)
        (first,) = _gguf_logits(r, embeds)
        with torch.no_grad():
            logits = model.llm(inputs_embeds=embeds).logits[0, -1].numpy()
        print(f"released shapes: first-step logits max abs diff {np.abs(first - logits).max():.3g}")
        assert np.abs(first - logits).max() < 1e-3
        engine = r.engine
        decoder = engine.new_decoder()
        try:
            parts = engine.prompt.render()
            got = decoder.llm.generate(decoder.llm.tokenize(parts.before), engine.encode(audio).audio_embeds,
                                       decoder.llm.tokenize(parts.after), max_new_tokens=16,
                                       stop_ids=decoder.stop_ids)
        finally:
            decoder.llm.close()
    assert list(got.tokens) + ([got.stop_id] if got.stopped else []) == ref_ids
