"""Fun-ASR-Nano: the numpy LFR frontend, the reference prompt and token count, the importer (a tiny random
directory laid out like the release, with the real Qwen vocabulary) with its refusals, and the imported bundle
offline, with hotwords and streaming. Comparisons with the official funasr package: test_fun_asr_nano_parity.py."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from nim4asr_edge.errors import AudioError, BundleError
from nim4asr_edge.families import get_family
from nim4asr_edge.families.fun_asr_nano import NanoPrompt, audio_token_count
from nim4asr_edge.frontend import make_frontend
from nim4asr_edge.lfr_fbank import LfrFbank, parse_kaldi_mvn

PLAIN_BEFORE = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n语音转写："
AFTER = "<|im_end|>\n<|im_start|>assistant\n"


# -- frontend -----------------------------------------------------------------------------------------------------

def _apply_lfr_reference(inputs: np.ndarray, m: int = 7, n: int = 6) -> np.ndarray:
    """funasr.frontends.wav_frontend.apply_lfr transcribed loop by loop (the stride trick spelled out)."""
    t = inputs.shape[0]
    rows = int(np.ceil(t / n))
    padded = np.vstack([np.repeat(inputs[:1], (m - 1) // 2, axis=0), inputs])
    t += (m - 1) // 2
    out = []
    for i in range(rows):
        if m <= t - i * n:
            out.append(padded[i * n: i * n + m].reshape(-1))
        else:  # the last rows: what is left, then copies of the last frame
            frame = padded[i * n:].reshape(-1)
            for _ in range(m - (t - i * n)):
                frame = np.hstack((frame, padded[-1]))
            out.append(frame)
    return np.vstack(out)


@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 36, 37, 100, 167])
def test_lfr_stacking_matches_the_reference_loop(t):
    fb = np.random.default_rng(t).standard_normal((t, 80))
    got = LfrFbank().stack(fb)
    assert got.shape == (math.ceil(t / 6), 560)
    np.testing.assert_array_equal(got, _apply_lfr_reference(fb))


def test_frontend_geometry_manifest_and_short_audio(jfk):
    fe = LfrFbank()
    assert (fe.n_mels, fe.frame_shift, fe.frame_len, fe.min_samples()) == (560, 960, 1360, 6160)
    feats = fe(jfk[:16000 * 10])
    assert feats.values.shape == (math.ceil((1 + (160000 - 400) // 160) / 6), 560) == (167, 560)
    assert feats.values.dtype == np.float32 and np.isfinite(feats.values).all()
    again = make_frontend(fe.to_manifest())
    assert again == fe and np.array_equal(again(jfk[:32000]).values, fe(jfk[:32000]).values)
    assert fe.to_manifest()["type"] == "lfr_fbank" and fe.to_manifest()["dither"] == 0.0
    with pytest.raises(AudioError, match="too short.*6160"):
        fe(np.zeros(6159, np.float32))
    with pytest.raises(BundleError, match="dither"):
        make_frontend({**fe.to_manifest(), "dither": 1.0})
    with pytest.raises(BundleError, match="cmvn_shift has 80 values, expected 560"):
        LfrFbank(cmvn_shift=(0.0,) * 80, cmvn_scale=(1.0,) * 80)


def test_numpy_fbank_matches_kaldi_native_fbank(jfk):
    """The fbank before stacking vs kaldi-native-fbank (the backend funasr itself uses without torchaudio)."""
    knf = pytest.importorskip("kaldi_native_fbank")
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hamming"
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = 80
    opts.energy_floor = 0.0
    x = jfk[: 16000 * 4]
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, (x * 32768).tolist())
    fb.input_finished()
    ref = np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])
    got = LfrFbank().log_mel(x)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 2e-3  # float32 (knf) vs float64 (ours) log energies of int16-scale audio


def test_kaldi_mvn_file():
    text = ("<Nnet>\n<Splice> 560 560\n[ 0 ]\n<AddShift> 3 3\n<LearnRateCoef> 0 [ -1.5 2 0.25 ]\n"
            "<Rescale> 3 3\n<LearnRateCoef> 0 [ 0.5 1 2 ]\n</Nnet>\n")
    assert parse_kaldi_mvn(text) == ([-1.5, 2.0, 0.25], [0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match="no <Rescale>"):
        parse_kaldi_mvn(text.split("<Rescale>")[0])


# -- prompt, token count, answers ---------------------------------------------------------------------------------

def test_prompt_forms_as_the_reference_builds_them():
    p = NanoPrompt()
    assert (p.render().before, p.render().after) == (PLAIN_BEFORE, AFTER)
    assert p.render((), "英文").before.endswith("user\n语音转写成英文：")
    assert p.render((), "Japanese").before.endswith("user\n语音转写成日文：")  # English alias of 日文
    hinted = p.render(["开放时间", "Ada Lovelace"]).before
    assert hinted.endswith("user\n请结合上下文信息，更加准确地完成语音转写任务。如果没有相关信息，我们会留空。\n\n\n"
                           "**上下文信息：**\n\n\n热词列表：[开放时间, Ada Lovelace]\n语音转写：")
    assert NanoPrompt(itn=False).render((), "中文").before.endswith("语音转写成中文，不进行文本规整：")
    assert NanoPrompt(do_think=False).render().after == AFTER + "<think>\n\n</think>\n\n"
    assert NanoPrompt(sys_prompt=False).render().before == "<|im_start|>user\n语音转写："
    assert NanoPrompt.from_dict(p.to_dict()) == p
    from nim4asr_edge import OptionsError

    with pytest.raises(OptionsError, match="unknown forced language 'Klingon'"):
        p.render((), "Klingon")


def test_audio_token_count_is_ceil_of_an_eighth():
    assert [audio_token_count(n) for n in range(1, 2000)] == [math.ceil(n / 8) for n in range(1, 2000)]
    assert audio_token_count(167) == 21  # 10 s


def test_answer_post_processing():
    family = get_family("fun-asr-nano")
    assert family.parse_output("开放时间/sil早上九点  至\n下午五点").text == "开放时间 早上九点 至 下午五点"
    assert family.parse_output(" /sil hello /sil ", "英文").language == "英文"


# -- importer -----------------------------------------------------------------------------------------------------

def _torch():
    return pytest.importorskip("torch", reason="the importer needs the `export` extra")


def test_imported_bundle_layout(nano_bundle):
    from nim4asr_edge.bundle import Bundle

    b = Bundle.load(nano_bundle)
    m = b.manifest
    assert m.family == "fun-asr-nano" and m.frontend["type"] == "lfr_fbank" and m.frontend["cmvn"] is None
    assert sorted(m.encoder["files"]) == ["fp32", "int8"] and m.llm["files"] == {"f32": "llm.f32.gguf"}
    assert m.encoder["token_rate_hz"] == pytest.approx(1000 / 480) and m.encoder["streaming"] is None
    assert m.extra["fun_asr_nano"]["prompt"]["stop"] == ["<|im_end|>"]
    checks = m.extra["export_checks"]
    assert checks["encoder_fp32"]["audio_embeds_max_abs_diff"] < 1e-4
    assert not list(nano_bundle.parent.glob(".bundle.*"))


def test_encoder_graph_emits_the_reference_token_count(nano_bundle, nano_release):
    """The graph returns only the first ceil(T_lfr / 8) adaptor frames, equal to our PyTorch module on the released
    (bf16) weights, for several lengths and in a padded batch."""
    from nim4asr_edge.encoder import EncoderSession
    from nim4asr_export.importers.fun_asr_nano import NanoRelease

    torch = _torch()
    release = NanoRelease(nano_release)
    graph = release.audio_graph(release.load_state())
    rng = np.random.default_rng(1)
    items = [rng.standard_normal((t, 560)).astype(np.float32) for t in (7, 8, 9, 64, 167, 301)]
    with EncoderSession(nano_bundle / "encoder.onnx", phonemes=False) as enc:
        outs = enc.run_batch(items)
        for f, out in zip(items, outs):
            with torch.no_grad():
                ref, n = graph(torch.from_numpy(f)[None], torch.tensor([len(f)]))
            assert out.audio_embeds.shape == (math.ceil(len(f) / 8), 64) and int(n[0]) == math.ceil(len(f) / 8)
            np.testing.assert_allclose(out.audio_embeds, ref[0].numpy(), atol=1e-4, rtol=0)
            np.testing.assert_allclose(enc.run(f).audio_embeds, out.audio_embeds, atol=1e-5, rtol=0)


def _copy_release(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _refused(release: Path, tmp_path: Path, match: str) -> None:
    from nim4asr_edge.errors import ExportError
    from nim4asr_export.importers import ImportOptions, import_model

    out = tmp_path / "out"
    with pytest.raises(ExportError, match=match):
        import_model("fun-asr-nano", release, out, ImportOptions(quant=("fp32", "f32"), check=False),
                     progress=lambda m: None)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_bad_releases_are_refused_by_name(nano_release, tmp_path):
    import yaml

    torch = _torch()
    rel = _copy_release(nano_release, tmp_path / "rel")
    cfg_path = rel / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())

    # another model's directory
    cfg_path.write_text(yaml.safe_dump({**cfg, "model": "SenseVoiceSmall"}))
    _refused(rel, tmp_path, "says model 'SenseVoiceSmall'.*another model")
    # a config that disagrees with the weights
    cfg_path.write_text(yaml.safe_dump({**cfg, "audio_encoder_conf": {**cfg["audio_encoder_conf"], "num_blocks": 4}}))
    _refused(rel, tmp_path, "lacks tensor 'audio_encoder.encoders.2.self_attn.linear_out.weight' .13 missing. that config.yaml implies")
    cfg_path.write_text(yaml.safe_dump({**cfg, "audio_encoder_conf": {**cfg["audio_encoder_conf"],
                                                                      "linear_units": 96}}))
    _refused(rel, tmp_path, r"tensor 'audio_encoder.encoders0.0.feed_forward.w_1.weight'.*shape \[64, 32\].*\[96, 32\]")
    # a CMVN file named but absent
    cfg_path.write_text(yaml.safe_dump({**cfg, "frontend_conf": {**cfg["frontend_conf"], "cmvn_file": "am.mvn"}}))
    _refused(rel, tmp_path, "am.mvn not found")
    cfg_path.write_text(yaml.safe_dump(cfg))
    # a missing tokenizer
    tok = rel / "Qwen3-0.6B" / "tokenizer.json"
    tok.rename(tok.with_suffix(".bak"))
    _refused(rel, tmp_path, "tokenizer.json not found")
    tok.with_suffix(".bak").rename(tok)
    # an LLM config that disagrees with the weights
    llm_cfg = rel / "Qwen3-0.6B" / "config.json"
    good = llm_cfg.read_text()
    llm_cfg.write_text(good.replace('"intermediate_size": 128', '"intermediate_size": 256'))
    _refused(rel, tmp_path, r"mlp.gate_proj.weight' has shape \[128, 64\], the config implies \[256, 64\]")
    llm_cfg.write_text(good)
    # a truncated model.pt
    data = (rel / "model.pt").read_bytes()
    (rel / "model.pt").write_bytes(data[: len(data) // 2])
    _refused(rel, tmp_path, "model.pt cannot be read .truncated")
    # unexpected and missing tensors
    state = torch.load(nano_release / "model.pt", weights_only=True)["state_dict"]
    torch.save({**state, "punc.weight": torch.zeros(2)}, rel / "model.pt")
    _refused(rel, tmp_path, "unexpected tensor 'punc.weight'")
    torch.save({**state, "audio_adaptor.blocks.0.extra": torch.zeros(2)}, rel / "model.pt")
    _refused(rel, tmp_path, "unexpected tensor 'audio_adaptor.blocks.0.extra'")
    torch.save({k: v for k, v in state.items() if not k.startswith("llm.")}, rel / "model.pt")
    _refused(rel, tmp_path, "not a Fun-ASR-Nano checkpoint")
    (rel / "config.yaml").unlink()
    _refused(rel, tmp_path, "config.yaml not found")


def test_cli_import_from_a_local_hub_cache(nano_release, tmp_path):
    """``--from-hub`` reads a directory laid out like the hub's cache (HF_HUB_OFFLINE: never the network)."""
    pytest.importorskip("huggingface_hub", reason="--from-hub needs the `hub` extra")
    repo = "FunAudioLLM/Fun-ASR-Nano-2512"
    hub_cache(tmp_path / "cache", repo, source=nano_release)
    out = tmp_path / "bundle"
    run = import_from_hub_cache(tmp_path / "cache", "fun-asr-nano", repo, out, "--quant", "fp32,f32", "--no-check")
    assert run.returncode == 0, run.stderr
    assert "[1/4] reading the Fun-ASR-Nano release" in run.stderr and "bundle written to" in run.stderr
    assert (out / "manifest.json").is_file() and (out / "encoder.onnx").is_file() and (out / "llm.f32.gguf").is_file()


# -- the imported bundle through the SDK --------------------------------------------------------------------------

from nim4asr_edge import Recognizer, RecognizerOptions  # noqa: E402

from .conftest import (  # noqa: E402
    checked_final,
    first_pass_phonemes,
    hub_cache,
    import_from_hub_cache,
    offline_segment_of,
    run_stream,
)

OPTS = RecognizerOptions(threads=2, max_tokens_per_second=3.0, min_new_tokens=6, tune_decode_threads=False,
                         encoder_precision="fp32", llm_quant="f32")


@pytest.fixture(scope="module")
def rec(nano_bundle):
    pytest.importorskip("espeakng_loader", reason="Nano's evidence is the G2P of its first pass (g2p extra)")
    with Recognizer(nano_bundle, OPTS) as r:
        yield r


def test_prompt_token_ids_equal_the_hf_tokenizer(rec, nano_release):
    """llama.cpp (the GGUF's tokenizer) tokenises every prompt form as the release's tokenizer.json does, the speech
    markers excluded as the reference excludes them (18 tokens before the speech in the plain prompt)."""
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(nano_release / "Qwen3-0.6B" / "tokenizer.json"))
    prompt = rec.engine.prompt
    assert len(rec.engine.decoder.prefix) == 18
    for hints, lang in (((), None), (("开放时间", "NIO House"), None), ((), "英文"), (("Zorblax",), "日文")):
        parts = prompt.render(hints, lang)
        for text in (parts.before, parts.after):
            assert rec.engine.llm.tokenize(text) == hf.encode(text, add_special_tokens=False).ids
    assert rec.engine.decoder.stop_ids == [151645]


def test_offline_transcription(rec, jfk):
    clip = jfk[: 5 * 16000]
    out = rec.engine.encode(clip)
    assert out.audio_embeds.shape == (math.ceil(math.ceil((1 + (len(clip) - 400) // 160) / 6) / 8), 64)
    result = rec.transcribe(clip, sample_rate=16000)
    (seg,) = result.segments
    assert result.options["family"] == "fun-asr-nano" and result.options["guard_status"] == "no acoustic evidence"
    assert seg.tokens and seg.passes == 1 and seg.confidence is None
    assert rec.transcribe(clip, sample_rate=16000).segments[0].tokens == seg.tokens  # deterministic (dither 0)
    with pytest.raises(AudioError, match="too short"):
        rec.transcribe(np.zeros(3000, np.float32), sample_rate=16000)


def test_hotwords_from_the_first_pass_bring_a_second_pass_with_the_hotword_prompt(nano_bundle, rec, jfk,
                                                                                 one_word_index):
    from nim4asr_edge.hotwords import ENGLISH_INVENTORY

    clip = jfk[: 5 * 16000]
    heard, first_text = first_pass_phonemes(rec, clip)
    if len(heard) < 3:
        pytest.skip(f"the random model's first pass has too few pronounceable words: {first_text!r}")
    with one_word_index(heard, ENGLISH_INVENTORY) as index:
        with Recognizer(nano_bundle, OPTS, hotwords=index) as hot:
            seg = hot.transcribe(clip, sample_rate=16000).segments[0]
            assert seg.passes == 2 and seg.hints == ("Zorblax",)
            # the second pass is the decode with the model's hotword prompt
            hinted = hot.transcribe(clip, sample_rate=16000, hints=["Zorblax"]).segments[0]
            assert hinted.passes == 1 and hinted.tokens == seg.tokens
            decoder = hot.engine.new_decoder()
            try:
                decoder.set_speech(hot.engine.encode(clip).audio_embeds)
                llm = decoder.llm
                parts = hot.engine.prompt.render(["Zorblax"])
                assert "热词列表：[Zorblax]" in parts.before
                ref = llm.generate(llm.tokenize(parts.before), hot.engine.encode(clip).audio_embeds,
                                   llm.tokenize(parts.after), max_new_tokens=len(seg.tokens),
                                   stop_ids=decoder.stop_ids)
                assert tuple(ref.tokens) == seg.tokens
            finally:
                decoder.llm.close()


def test_streaming_partials_and_a_final_equal_to_offline(rec, jfk):
    events = run_stream(rec, jfk)
    final = checked_final(events)
    offline = offline_segment_of(rec, jfk, final)
    assert (final.text, final.tokens, final.passes) == (offline.text, offline.tokens, offline.passes)
