"""Qwen3-ASR: the runtime family (frontend, token count, prompt, answer parser), the importer (a tiny random release
laid out as the hub's, and every kind of bad release), and the imported bundle offline, with forced language,
with first-pass hotwords and streaming. Parity with the official package: tests/test_qwen3_asr_parity.py."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from nim4asr_edge import OptionsError, Recognizer, RecognizerOptions, StreamOptions
from nim4asr_edge.encoder import MIN_FRAMES
from nim4asr_edge.errors import ExportError
from nim4asr_edge.families import Transcript, get_family
from nim4asr_edge.families.qwen3_asr import (
    LANGUAGES,
    Qwen3AsrLogMel,
    Qwen3AsrPrompt,
    audio_token_count,
    fix_repetitions,
    parse_asr_output,
)
from nim4asr_edge.frontend import FRONTENDS, WhisperLogMel, make_frontend

from .conftest import (
    checked_final,
    first_pass_phonemes,
    hub_cache,
    import_from_hub_cache,
    offline_segment_of,
    run_stream,
)

OPTS = RecognizerOptions(threads=1, max_tokens_per_second=3.0, min_new_tokens=6, tune_decode_threads=False)
# The reference's prompt ids around the audio (MODELS.md B5): system turn (empty context), user turn, audio start
PLAIN_BEFORE = [151644, 8948, 198, 151645, 198, 151644, 872, 198, 151669]
PLAIN_AFTER = [151670, 151645, 198, 151644, 77091, 198]


# -- runtime family, no model needed ----------------------------------------------------------------------------------


def test_audio_tokens_are_13_per_chunk_plus_the_tail():
    for frames in range(1, 2500):
        rest = frames % 100
        assert audio_token_count(frames) == 13 * (frames // 100) + math.ceil(rest / 8), frames


def test_audio_token_count_equals_the_graph_formula():
    torch = pytest.importorskip("torch", reason="the encoder re-implementation needs the export extra")
    from nim4asr_export.model.qwen3_asr_audio import audio_token_lengths

    frames = torch.arange(1, 3000)
    assert audio_token_lengths(frames).tolist() == [audio_token_count(int(t)) for t in frames]


def test_the_answer_parser():
    assert parse_asr_output("language English<asr_text> Hello world. ") == Transcript("Hello world.", "English")
    assert parse_asr_output("language chinese<asr_text>你好") == Transcript("你好", "Chinese")
    assert parse_asr_output("language None<asr_text>") == Transcript("", None)
    assert parse_asr_output("language None<asr_text> still text") == Transcript("still text", None)
    assert parse_asr_output("no tag at all") == Transcript("no tag at all", None)
    assert parse_asr_output("\nlanguage German\n<asr_text>Hallo") == Transcript("Hallo", "German")
    assert parse_asr_output("noise\nlanguage english<asr_text>x") == Transcript("x", "English")
    assert parse_asr_output("") == Transcript("", None)
    # a forced language: the answer is all text (the prompt already holds "language X<asr_text>")
    assert parse_asr_output("Hallo Welt", "German") == Transcript("Hallo Welt", "German")
    # runs repeated more than 20 times are kept once, as the reference's detect_and_fix_repetitions does
    assert fix_repetitions("a" * 21) == "a" and fix_repetitions("a" * 20) == "a" * 20
    assert fix_repetitions("x" + "ab" * 25 + "yz") == "xabyz"
    assert fix_repetitions("ha " * 20 + "end") == "ha end"  # a pattern: 20 repeats are enough
    assert fix_repetitions("ha " * 19 + "end") == "ha " * 19 + "end"
    assert parse_asr_output("language English<asr_text>" + "no " * 30).text == "no no"  # stripped: 29 + "no"


def test_the_prompt():
    prompt = Qwen3AsrPrompt()
    plain = prompt.render()
    assert plain.before == "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|audio_start|>"
    assert plain.after == "<|audio_end|><|im_end|>\n<|im_start|>assistant\n"
    hinted = prompt.render(["Ada Lovelace", " NIO House "])
    assert hinted.before == "<|im_start|>system\nAda Lovelace, NIO House<|im_end|>\n<|im_start|>user\n<|audio_start|>"
    assert prompt.render((), "French").after == plain.after + "language French<asr_text>"
    assert len(LANGUAGES) == 30 and prompt.stop == ("<|im_end|>", "<|endoftext|>")
    with pytest.raises(OptionsError, match="unknown forced language 'Klingon'.*Chinese, English"):
        prompt.render((), "Klingon")


def test_the_frontend_is_whisper_logmel_after_the_peak_normalisation(jfk):
    clip = jfk[: 3 * 16000]
    ours = Qwen3AsrLogMel()
    assert make_frontend(ours.to_manifest()) == ours and "qwen3_asr_logmel" in FRONTENDS
    feats = ours(clip)
    assert feats.values.shape == (len(clip) // 160, 128) and feats.n_valid == len(clip) // 160
    np.testing.assert_array_equal(feats.values, WhisperLogMel(num_mel_bins=128)(clip).values)
    loud = clip * (3.0 / np.abs(clip).max())  # peak 3: divided by its peak first
    np.testing.assert_allclose(ours(loud).values, WhisperLogMel(num_mel_bins=128)(loud / 3.0).values, atol=1e-5)
    assert ours.min_samples() == 160


# -- importer ---------------------------------------------------------------------------------------------------------

def _import(src: Path, out: Path, quant=("fp32", "f32")):
    from nim4asr_export.importers import ImportOptions, import_model

    return import_model("qwen3-asr", src, out, ImportOptions(quant=quant, check=False), progress=lambda m: None)


def _copy(release: Path, dst: Path) -> Path:
    shutil.copytree(release, dst)
    return dst


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "temporary work dir left"


def test_the_import_writes_a_qwen3_asr_bundle(qwen3_asr_bundle):
    manifest = json.loads((qwen3_asr_bundle / "manifest.json").read_text())
    assert manifest["family"] == "qwen3-asr"
    assert manifest["frontend"] == Qwen3AsrLogMel().to_manifest()
    assert manifest["encoder"]["files"] == {"fp32": "encoder.onnx", "int8": "encoder.int8.onnx"}
    assert manifest["encoder"]["token_rate_hz"] == 13.0 and manifest["encoder"]["llm_hidden"] == 64
    assert manifest["llm"]["files"] == {"f32": "llm.f32.gguf"} and manifest["llm"]["architecture"] == "qwen3"
    assert manifest["extra"]["checks"]["encoder_fp32"]["max_abs_diff"] < 1e-4
    assert manifest["extra"]["checks"]["encoder_int8"]["max_abs_diff"] < 0.1
    assert manifest["extra"]["qwen3_asr"]["languages"] == list(LANGUAGES)
    # the graph also runs 2-s attention windows (streaming partials), checked against PyTorch too
    assert manifest["encoder"]["streaming"] is None and manifest["encoder"]["stream_window_tokens"] == 26
    assert manifest["extra"]["checks"]["encoder_fp32"]["stream_window_max_abs_diff"] < 1e-4
    assert manifest["extra"]["checks"]["encoder_int8"]["stream_window_max_abs_diff"] < 0.1


def test_a_stream_window_that_is_not_shorter_than_the_offline_one_is_refused(qwen3_asr_release, tmp_path):
    from nim4asr_export.importers import ImportOptions, import_model

    out = tmp_path / "bundle"
    for seconds in (8, -1):
        with pytest.raises(ExportError, match=rf"stream window of {seconds} s: give whole seconds from 1 to 7"):
            import_model("qwen3-asr", qwen3_asr_release, out, ImportOptions(quant=("fp32", "f32"),
                                                                         stream_window_s=seconds), lambda m: None)
        _assert_nothing_written(out)


@pytest.mark.parametrize("damage, message", [
    ("other_family", r"config.json: model_type is 'fun_asr_nano'.*not a Qwen3-ASR release.*import fun-asr-nano"),
    ("no_config", r"config.json is missing"),
    ("no_weights", r"has no model.safetensors"),
    ("truncated", r"model.safetensors is truncated"),
    ("not_safetensors", r"model.safetensors is not a safetensors file"),
    ("no_merges", r"merges.txt is missing"),
    ("size_mismatch", r"tensor 'thinker.audio_tower.layers.0.fc1.weight' has shape \[64, 32\], config.json implies "
                      r"\[96, 32\]"),
    ("width_mismatch", r"audio_config.output_dim 64 differs from text_config.hidden_size 128"),
    ("stray_tensor", r"tensor 'speaker.embedding' is not part of a Qwen3-ASR thinker"),
    ("missing_tensor", r"tensor 'thinker.audio_tower.ln_post.weight' \(audio encoder\) is missing"),
])
def test_a_bad_release_is_one_clear_error_and_nothing_is_written(qwen3_asr_release, tmp_path, damage, message):
    from safetensors.torch import load_file, save_file

    src = _copy(qwen3_asr_release, tmp_path / "release")
    weights = src / "model.safetensors"
    if damage == "other_family":
        cfg = json.loads((src / "config.json").read_text())
        (src / "config.json").write_text(json.dumps({**cfg, "model_type": "fun_asr_nano"}))
        (src / "config.yaml").write_text("model: FunASRNano\n")
    elif damage == "no_config":
        (src / "config.json").unlink()
    elif damage == "no_weights":
        weights.unlink()
    elif damage == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "not_safetensors":
        weights.write_bytes(b"\xff" * 64)
    elif damage == "no_merges":
        (src / "merges.txt").unlink()
    elif damage == "size_mismatch":  # a config of another size than the weights
        cfg = json.loads((src / "config.json").read_text())
        cfg["thinker_config"]["audio_config"]["encoder_ffn_dim"] = 96
        (src / "config.json").write_text(json.dumps(cfg))
    elif damage == "width_mismatch":  # the encoder of one size beside the LLM of another
        cfg = json.loads((src / "config.json").read_text())
        cfg["thinker_config"]["text_config"]["hidden_size"] = 128
        (src / "config.json").write_text(json.dumps(cfg))
    elif damage in ("stray_tensor", "missing_tensor"):
        state = load_file(str(weights))
        if damage == "stray_tensor":
            state["speaker.embedding"] = state["thinker.audio_tower.ln_post.weight"].clone()
        else:
            del state["thinker.audio_tower.ln_post.weight"]
        save_file(state, str(weights))
    out = tmp_path / "bundle"
    with pytest.raises(ExportError, match=message):
        _import(src, out)
    _assert_nothing_written(out)


def test_sharded_weights_and_a_missing_shard(qwen3_asr_release, tmp_path):
    """The same weights in two shards with an index read as in one file; a shard missing is named."""
    from nim4asr_export.importers.qwen3_asr import read_release
    from safetensors.torch import load_file, save_file

    src = tmp_path / "sharded"
    shutil.copytree(qwen3_asr_release, src, ignore=shutil.ignore_patterns("model.safetensors"))
    state = load_file(str(qwen3_asr_release / "model.safetensors"))
    names = sorted(state)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({n: state[n] for n in part}, str(src / file))
        weight_map.update({n: file for n in part})
    (src / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    release = read_release(src)
    assert len({f for f, _, _ in release.tensors.values()}) == 2 and release.size == "custom"
    loaded = release.load(names)
    assert all(loaded[n].equal(state[n]) for n in names)
    (src / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ExportError, match="model-00002-of-00002.safetensors is missing"):
        _import(src, tmp_path / "bundle")
    _assert_nothing_written(tmp_path / "bundle")


def test_the_gguf_keeps_asr_text_in_decoded_text(qwen3_asr_bundle):
    from nim4asr_edge.llm import LLMSession

    with LLMSession(qwen3_asr_bundle / "llm.f32.gguf") as llm:
        ids = llm.tokenize("language English<asr_text>Hi")
        assert llm.token_id("<asr_text>") == 151704 and 151704 in ids
        assert llm.detokenize(ids) == "language English<asr_text>Hi"  # user-defined: rendered without special=True
        assert llm.detokenize([151669, 151670, 151676, 151645]) == ""  # control tokens are not text
        assert llm.token_id("<|audio_start|>") == 151669 and llm.token_id("<|audio_pad|>") == 151676


# -- the imported bundle through the engine ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rec(qwen3_asr_bundle):
    pytest.importorskip("espeakng_loader", reason="Qwen3-ASR's evidence is the G2P of its first pass (g2p extra)")
    with Recognizer(qwen3_asr_bundle, OPTS) as r:
        yield r


def test_offline_through_the_engine(rec, jfk):
    engine = rec.engine
    assert engine.family is get_family("qwen3-asr") and engine.streaming_mode == "blocks"
    # streaming partials: the 2-s-window graph's blocks
    assert (engine.blocks.frames, engine.blocks.tokens, engine.blocks.min_frames) == (200, 26, MIN_FRAMES)
    assert engine.decoder.prefix == PLAIN_BEFORE
    assert engine.llm.tokenize(engine.prompt.render().after) == PLAIN_AFTER
    clip = jfk[: 3 * 16000]
    out = engine.encode(clip)
    assert out.phoneme_logprobs is None and len(out.audio_embeds) == audio_token_count(len(clip) // 160) == 39
    result = rec.transcribe(clip, sample_rate=16000)
    (seg,) = result.segments
    assert seg.passes == 1 and seg.hints == () and seg.text == result.text
    assert result.options["family"] == "qwen3-asr" and result.options["guard_status"] == "no acoustic evidence"
    raw = rec.engine.llm.detokenize(list(seg.tokens)).strip()
    assert parse_asr_output(raw) == Transcript(seg.text, seg.language)
    assert len(seg.tokens) <= OPTS.min_new_tokens + 3 * OPTS.max_tokens_per_second


def test_int8_encoder_runs(qwen3_asr_bundle, jfk):
    pytest.importorskip("espeakng_loader", reason="g2p extra")
    with Recognizer(qwen3_asr_bundle, RecognizerOptions(threads=1, encoder_precision="int8", min_new_tokens=4,
                                                        tune_decode_threads=False)) as r:
        out = r.engine.encode(jfk[:16000])
        assert out.audio_embeds.shape == (13, 64) and np.isfinite(out.audio_embeds).all()


def test_forced_language(qwen3_asr_bundle, jfk):
    pytest.importorskip("espeakng_loader", reason="g2p extra")
    with Recognizer(qwen3_asr_bundle, RecognizerOptions(threads=1, language="German", min_new_tokens=4,
                                                        max_tokens_per_second=2.0, tune_decode_threads=False)) as r:
        after = r.engine.decoder.prompt.render((), "German").after
        assert r.engine.llm.tokenize(after)[: len(PLAIN_AFTER)] == PLAIN_AFTER
        assert after.endswith("language German<asr_text>")
        result = r.transcribe(jfk[:16000], sample_rate=16000)
    assert result.language == "German" == result.segments[0].language
    with pytest.raises(OptionsError, match="unknown forced language 'Klingon'"):
        Recognizer(qwen3_asr_bundle, RecognizerOptions(language="Klingon"))


def test_first_pass_hotwords_bring_a_second_pass_with_the_hit_as_context(qwen3_asr_bundle, rec, jfk,
                                                                          one_word_index):
    """No phoneme head: the first pass's transcript (through the G2P) is searched; a hotword found there goes into
    the system turn's context for a second pass. The random model's own words are made into the hotword."""
    from nim4asr_edge.hotwords import ENGLISH_INVENTORY

    clip = jfk[: 3 * 16000]
    heard, first_text = first_pass_phonemes(rec, clip)
    assert len(heard) >= 3, f"unusable first pass for this check: {first_text!r}"
    with one_word_index(heard, ENGLISH_INVENTORY) as index:
        with Recognizer(qwen3_asr_bundle, OPTS, hotwords=index) as hot:
            seg = hot.transcribe(clip, sample_rate=16000).segments[0]
            assert seg.passes == 2 and seg.hints == ("Zorblax",)
            before = hot.engine.prompt.render(seg.hints).before
            assert before.startswith("<|im_start|>system\nZorblax<|im_end|>")
            # the second pass equals a fresh decode with that context
            embeds = hot.engine.encode(clip).audio_embeds
            llm = hot.engine.llm
            parts = hot.engine.prompt.render(["Zorblax"])
            ref = llm.generate(llm.tokenize(before), embeds, llm.tokenize(parts.after),
                               max_new_tokens=len(seg.tokens), stop_ids=hot.engine.decoder.stop_ids)
            assert tuple(ref.tokens) == seg.tokens
            assert hot.transcribe(clip, sample_rate=16000, hints=["Zorblax"]).segments[0].passes == 1
            events = run_stream(hot, clip)
    assert [e.kind for e in events].count("final") >= 1



@pytest.fixture(scope="module")
def no_stream_window_bundle(qwen3_asr_bundle, tmp_path_factory) -> Path:
    """The bundle without a stream window (as imported with ``stream_window_s=0``): streams use the 8-s blocks."""
    out = tmp_path_factory.mktemp("qwen3-no-stream") / "bundle"
    shutil.copytree(qwen3_asr_bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["encoder"]["stream_window_tokens"] = None
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


FP32 = dataclasses.replace(OPTS, encoder_precision="fp32")  # int8's activation scales depend on the whole input


@pytest.mark.parametrize("graph", ["offline", "stream"])
@pytest.mark.parametrize("frames", [40, 99, 100, 199, 200, 250, 299, 300, 433, 799, 800, 801, 850, 899, 900, 1099])
def test_encoder_blocks_give_the_embeddings_of_the_whole_utterance(qwen3_asr_bundle, no_stream_window_bundle, jfk, graph,
                                                                   frames):
    """Attention within windows: a finished block's embeddings are final; the open block is encoded from the first
    uncommitted block on, which gives its part of the whole encoding, except when it is encoded alone and shorter
    than one convolution chunk (then it is encoded as a short utterance is: close to its part, not equal)."""
    pytest.importorskip("espeakng_loader", reason="Qwen3-ASR's evidence is the G2P of its first pass (g2p extra)")
    with Recognizer(no_stream_window_bundle if graph == "offline" else qwen3_asr_bundle, FP32) as rec:
        engine = rec.engine
        blocks, encoder = engine.blocks, engine.encoder
        assert (blocks.frames, blocks.tokens) == ((800, 104) if graph == "offline" else (200, 26))
        feats = engine.frontend(jfk).values[:frames]
        whole = encoder.run(feats, window=blocks.tokens).audio_embeds
        assert len(whole) == audio_token_count(frames)
        runs = []

        def encode(f: np.ndarray) -> np.ndarray:
            runs.append(len(f))
            return encoder.run(f, window=blocks.tokens).audio_embeds

        for committed in range(frames // blocks.frames + 1):
            start, done = committed * blocks.frames, committed * blocks.tokens
            n_open = (frames - start) % blocks.frames
            n_finished = frames - start - n_open
            for with_open in (True, False):
                runs.clear()
                finished, open_block = blocks.split(encode, feats, committed, open_block=with_open)
                assert len(finished) == n_finished // blocks.frames * blocks.tokens
                if len(finished):
                    np.testing.assert_allclose(finished, whole[done: done + len(finished)], atol=2e-5)
                encoded = n_finished + (n_open if with_open and n_open >= MIN_FRAMES else 0)
                assert runs == ([encoded] if encoded else [])
                if encoded == n_finished:
                    assert len(open_block) == 0
                    continue
                part = whole[done + len(finished):]
                assert open_block.shape == part.shape
                if committed and not n_finished and n_open < 100:  # alone, shorter than one chunk
                    rms = np.sqrt((part**2).mean())
                    assert np.abs(open_block - part).max() < 0.05 * rms
                else:
                    np.testing.assert_allclose(open_block, part, atol=2e-5)


def test_a_stream_window_the_graph_cannot_take_is_a_bundle_error(qwen3_asr_bundle, tmp_path):
    """A manifest asking for 2-s windows over a graph without the attention_window input (a graph from before it)."""
    import onnx

    from nim4asr_edge.errors import BundleError

    pytest.importorskip("espeakng_loader", reason="Qwen3-ASR's evidence is the G2P of its first pass (g2p extra)")
    out = tmp_path / "bundle"
    shutil.copytree(qwen3_asr_bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    graph = onnx.load(str(out / "encoder.onnx"))
    keep = [i for i in graph.graph.input if i.name != "attention_window"]
    del graph.graph.input[:]
    graph.graph.input.extend(keep)  # the initializer stays: a constant window, not an input
    onnx.save(graph, str(out / "encoder.onnx"))
    manifest["files"]["encoder.onnx"]["sha256"] = hashlib.sha256((out / "encoder.onnx").read_bytes()).hexdigest()
    manifest["files"]["encoder.onnx"]["size"] = (out / "encoder.onnx").stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="streams with 26-token attention windows but the encoder graph takes no "
                                          "attention_window"):
        Recognizer(out, FP32)


def test_blocks_streaming_gives_the_partials_of_re_encoding_everything(no_stream_window_bundle, jfk):
    """One 11-s utterance, a partial every 640 ms: with the first 8-s block committed to the KV cache and only the
    open block re-encoded, the partials are those of re-encoding the whole utterance each time."""
    from nim4asr_edge.vad import VadOptions

    pytest.importorskip("espeakng_loader", reason="Qwen3-ASR's evidence is the G2P of its first pass (g2p extra)")
    vad = VadOptions(min_silence_ms=3000)
    with Recognizer(no_stream_window_bundle, FP32) as rec:
        blocks = run_stream(rec, jfk, StreamOptions(vad=vad, skip_late_partials=False))
        whole = run_stream(rec, jfk, StreamOptions(vad=vad, skip_late_partials=False, use_streaming_graph=False))
        assert [e.kind for e in blocks].count("final") == 1
        assert max(e.end - e.start for e in blocks if e.kind == "partial") > 8.5  # past the first block
        assert [(e.kind, e.tokens) for e in blocks] == [(e.kind, e.tokens) for e in whole]
        final = checked_final(blocks)
        offline = offline_segment_of(rec, jfk, final)
    assert (final.text, final.tokens) == (offline.text, offline.tokens)


def test_streaming_partials_in_2_s_windows_and_a_final_equal_to_offline(rec, jfk):
    """Partials come from 2-s attention windows (blocks committed as they finish); the final is the offline decode,
    with the graph's own 8-s windows."""
    from nim4asr_edge.vad import VadOptions

    assert rec.engine.encoder.takes_window and rec.engine.blocks.tokens == 26
    events = run_stream(rec, jfk, StreamOptions(vad=VadOptions(min_silence_ms=3000), skip_late_partials=False))
    final = checked_final(events, min_partials=10)
    offline = offline_segment_of(rec, jfk, final)
    assert (final.text, final.tokens, final.passes) == (offline.text, offline.tokens, offline.passes)


def test_streaming_windowed_with_rollback_and_a_final_equal_to_offline(rec, jfk):
    events = run_stream(rec, jfk, StreamOptions(skip_late_partials=False, chunk_ms=2000))  # the reference's 2-s chunks
    final = checked_final(events, min_partials=2)
    offline = offline_segment_of(rec, jfk, final)
    assert (final.text, final.tokens, final.passes) == (offline.text, offline.tokens, offline.passes)


def test_cli_import_from_hub_reads_a_local_hub_cache(qwen3_asr_release, tmp_path):
    """``nim4asr-edge import qwen3-asr OUT --from-hub Qwen/Qwen3-ASR-0.6B`` against a hub cache holding the release
    (offline: never the network)."""
    pytest.importorskip("huggingface_hub", reason="--from-hub needs the `hub` extra")
    hub_cache(tmp_path / "cache", "Qwen/Qwen3-ASR-0.6B", source=qwen3_asr_release)
    out = tmp_path / "bundle"
    run = import_from_hub_cache(tmp_path / "cache", "qwen3-asr", "Qwen/Qwen3-ASR-0.6B", out, "--quant", "fp32,f32",
                                "--no-check")
    assert run.returncode == 0, run.stderr
    assert "[4/4] hashing files and writing manifest.json" in run.stderr
    assert json.loads((out / "manifest.json").read_text())["family"] == "qwen3-asr"


def test_cli_import_refuses_to_overwrite(qwen3_asr_bundle, qwen3_asr_release, capsys):
    from nim4asr_edge.cli import main

    assert main(["import", "qwen3-asr", str(qwen3_asr_release), str(qwen3_asr_bundle)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_info_names_the_streaming_blocks(qwen3_asr_bundle, no_stream_window_bundle, capsys):
    from nim4asr_edge.cli import main

    for bundle, seconds in ((qwen3_asr_bundle, 2), (no_stream_window_bundle, 8)):
        assert main(["info", str(bundle), "--no-verify"]) == 0
        assert f"streaming {seconds}-s encoder blocks: finished ones cached, the open one re-encoded" in \
            capsys.readouterr().out


def test_the_tokenizer_from_either_layout_of_the_release(qwen3_asr_release, qwen3_asr_tokenizer, tmp_path):
    """vocab.json + merges.txt + tokenizer_config.json, or a shipped tokenizer.json: the same GGUF tokenizer, with
    <asr_text> non-special (kept in decoded text) whatever the release says."""
    from nim4asr_export.importers.qwen3_asr import release_tokenizer_json

    (tmp_path / "a").mkdir()
    from_files = json.loads(release_tokenizer_json(qwen3_asr_release, tmp_path / "a").read_text(encoding="utf-8"))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    doc = json.loads(qwen3_asr_tokenizer.read_text(encoding="utf-8"))
    for a in doc["added_tokens"]:
        if a["content"] == "<asr_text>":
            a["special"] = True
    (shipped / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "b").mkdir()
    from_json = json.loads(release_tokenizer_json(shipped, tmp_path / "b").read_text(encoding="utf-8"))
    assert from_json["model"]["vocab"] == from_files["model"]["vocab"]
    assert from_json["added_tokens"] == from_files["added_tokens"]
    asr = {a["content"]: a for a in from_files["added_tokens"]}
    assert asr["<asr_text>"]["special"] is False and asr["<|audio_pad|>"]["special"] is True
    assert [a["id"] for a in from_files["added_tokens"]] == list(range(151643, 151705))
