"""The mobile prototype harness (examples/mobile): mobile bundles from the tiny test bundle, loaded by the runtime
like any bundle, and the device-profile runner's limits."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nim4asr_edge import (
    BundleError,
    Nim4AsrError,
    Recognizer,
    RecognizerOptions,
    load_audio,
)
from nim4asr_edge.bundle import Bundle
from nim4asr_edge.encoder import EncoderOptions, EncoderSession
from nim4asr_edge.manifest import FileEntry
from nim4asr_edge.models import HERE as SHIPPED

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from mobile import make_bundle, profiles, throttle

TINY = SHIPPED / "tiny-random"
JFK = ROOT / "examples" / "audio" / "jfk.wav"


@pytest.fixture(scope="module")
def mobile(tmp_path_factory) -> Bundle:
    return make_bundle.make_mobile_bundle(TINY, tmp_path_factory.mktemp("mobile") / "tiny-mobile")


def _same_quant_desktop(mobile: Bundle, out: Path, quant: str) -> Path:
    """The source bundle (ONNX encoder graphs) with the mobile bundle's GGUF of ``quant``: the desktop pipeline at
    the same quantisation."""
    src = Bundle.load(TINY)
    out.mkdir()
    names = [*src.manifest.encoder["files"].values(), *src.manifest.encoder["streaming"]["files"].values()]
    for n in names:
        shutil.copyfile(TINY / n, out / n)
    shutil.copyfile(mobile.llm_path(quant), out / f"llm.{quant}.gguf")
    llm = dict(src.manifest.llm, files={quant: f"llm.{quant}.gguf"}, default=quant)
    files = {n: FileEntry.of(out / n) for n in [*names, f"llm.{quant}.gguf"]}
    replace(src.manifest, llm=llm, files=files).write(out)
    return out


def test_mobile_bundle_holds_ort_graphs_ops_config_and_mobile_quants(mobile):
    m = mobile.manifest
    assert m.encoder["files"] == {"int8": "encoder.int8.ort"}
    assert m.encoder["streaming"]["files"] == {"int8": "encoder.stream.int8.ort"}
    # the tiny model's own quantisation (q8_0) is not a mobile one: the first listed is the default
    assert sorted(m.llm["files"]) == ["q4_0", "q4_1", "q4_k_m"] and m.llm["default"] == "q4_0"
    ops = (mobile.path / make_bundle.OPS_CONFIG).read_text()
    assert "ai.onnx;" in ops and "MatMul" in ops and make_bundle.OPS_CONFIG in m.files
    info = m.extra["mobile"]
    assert info["encoder"]["target_platform"] == "arm" and info["source_bundle"] == "tiny-random"
    # the tiny model's 64-wide rows cannot take K-quants: every fallback is reported, none hidden
    assert info["quantization"]["q4_k_m"]["fallback_tensors"]
    assert all(info["sizes"][n] == e.size for n, e in m.files.items())
    assert info["app_bytes"]["q4_0"] == sum(m.files[n].size for n in
                                            ("encoder.int8.ort", "encoder.stream.int8.ort", "llm.q4_0.gguf"))
    Bundle.load(mobile.path, verify="full")  # every size and sha256 checks out
    assert Bundle.load(TINY).encoder_path().suffix == ".onnx"  # the source bundle is untouched


def test_the_sources_own_quantisation_is_copied_and_made_the_default(tmp_path):
    """A source that ships a listed quantisation (the reference model's Q4_1) keeps its GGUF byte for byte, and the
    mobile bundle defaults to it: its LLM is then the desktop's."""
    m = make_bundle.make_mobile_bundle(TINY, tmp_path / "m", quants=("q4_0", "q8_0")).manifest
    assert m.llm["default"] == "q8_0" and m.extra["mobile"]["quantization"]["q8_0"]["copied_from_source"]
    assert (tmp_path / "m" / "llm.q8_0.gguf").read_bytes() == (TINY / "llm.q8_0.gguf").read_bytes()


def test_mobile_bundle_transcribes_like_the_desktop_pipeline_at_the_same_quantisation(mobile, tmp_path):
    """The ORT graph is converted for ARM: without x86's NCHWc convolution layout (onnxruntime's level "all" on
    x86) it computes exactly what the ONNX graph computes at level "extended"; so that desktop run and the mobile
    bundle give identical tokens and phonemes, offline and streaming."""
    desktop = _same_quant_desktop(mobile, tmp_path / "desktop", "q4_0")
    audio = load_audio(JFK, 16000)
    no_nchwc = EncoderOptions(intra_op_num_threads=1, graph_optimization_level="extended")
    results = []
    for path, enc in ((desktop, no_nchwc), (mobile.path, None)):
        opts = RecognizerOptions(threads=1, guard="off", llm_quant="q4_0", **({"encoder": enc} if enc else {}))
        with Recognizer(path, opts) as rec:
            res = rec.transcribe(audio, sample_rate=16000)
            with rec.create_stream() as stream:
                stream.accept_waveform(16000, audio)
                stream.input_finished()
                finals = [e.tokens for e in stream.events(timeout=120) if e.kind == "final"]
            results.append(([s.tokens for s in res.segments], [s.phonemes for s in res.segments], finals,
                            rec.engine.encoder.path.suffix))
    (d_tok, d_ph, d_fin, d_suf), (m_tok, m_ph, m_fin, m_suf) = results
    assert (d_suf, m_suf) == (".onnx", ".ort")
    assert m_ph == d_ph and m_tok == d_tok and any(m_tok)
    assert m_fin == d_fin and m_fin


def test_ort_graph_differs_from_x86_default_only_by_kernel_rounding(mobile):
    feats = Bundle.load(TINY).frontend()(load_audio(JFK, 16000))
    with EncoderSession(TINY / "encoder.int8.onnx", EncoderOptions(intra_op_num_threads=1)) as a, \
            EncoderSession(mobile.encoder_path(), EncoderOptions(intra_op_num_threads=1)) as b:
        x, y = a.run(feats), b.run(feats)
    scale = np.abs(x.audio_embeds).max()
    assert 0 < np.abs(x.audio_embeds - y.audio_embeds).max() < 0.02 * scale  # NCHWc vs plain Conv accumulation
    assert (x.phoneme_logprobs.argmax(-1) == y.phoneme_logprobs.argmax(-1)).mean() > 0.99


def test_dequantised_gguf_holds_the_quantised_weights_exactly(tmp_path):
    import gguf

    src = TINY / "llm.q8_0.gguf"
    dst = make_bundle.dequantize_gguf(src, tmp_path / "llm.f32.gguf")
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(dst)
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for ta, tb in zip(a.tensors, b.tensors):
        assert tb.tensor_type == gguf.GGMLQuantizationType.F32
        want = gguf.quants.dequantize(ta.data, ta.tensor_type).reshape(-1)
        np.testing.assert_array_equal(np.asarray(tb.data).reshape(-1), want)
    assert b.fields["tokenizer.ggml.tokens"].contents() == a.fields["tokenizer.ggml.tokens"].contents()
    assert make_bundle._gguf_type(dst) == "F32"


def test_a_bad_ort_graph_is_a_bundle_error_naming_the_format(tmp_path):
    bad = tmp_path / "encoder.int8.ort"
    bad.write_bytes(b"not an ort flatbuffer" * 10)
    with pytest.raises(BundleError, match="ORT-format encoder graph .* onnxruntime"):
        EncoderSession(bad)


_ALLOC = "import time; x = bytearray({mb} << 20); x[::4096] = b'x' * len(x[::4096]); time.sleep(0.5)"


def test_run_over_the_memory_budget_fails_with_a_clear_error():
    with pytest.raises(throttle.MemoryBudgetError, match=r"resident set \d+ MB > 150 MB"):
        throttle.run_limited([sys.executable, "-c", _ALLOC.format(mb=400)], budget_mb=150, timeout_s=60)
    ok = throttle.run_limited([sys.executable, "-c", _ALLOC.format(mb=50)], budget_mb=400, timeout_s=60)
    assert ok.returncode == 0 and 50 < ok.peak_rss_mb < 400 and ok.hwm_mb >= ok.peak_rss_mb - 1


@pytest.mark.parametrize("duty_cycle", [False, True])
def test_cpu_quota_slows_the_child(duty_cycle):
    spin = "import time\nt = time.time()\nwhile time.time() - t < 2.0: pass"
    run = throttle.run_limited([sys.executable, "-c", spin], budget_mb=500, cpu=throttle.CpuLimit(0.25, 1),
                               timeout_s=60, force_duty_cycle=duty_cycle)
    assert run.cpu_method in (("duty-cycle",) if duty_cycle else ("cgroup-v1", "cgroup-v2", "duty-cycle"))
    assert run.cpu_s < 0.25 * 2.0 * 1.6  # unthrottled it would use ~2 CPU-seconds


def test_profile_run_over_its_budget_fails(mobile):
    tight = replace(profiles.PROFILES["low"], name="tight", memory_mb=40)
    with pytest.raises(throttle.MemoryBudgetError, match="over the memory budget"):
        profiles.run_profile(tight, str(mobile.path), "q4_0", None, timeout_s=120)
    assert issubclass(throttle.MemoryBudgetError, Nim4AsrError)


@pytest.mark.slow
def test_low_profile_runs_the_pipeline_within_budget(mobile, tmp_path):
    result = profiles.run_profile(profiles.PROFILES["low"], str(mobile.path), "q4_0", None, timeout_s=300)
    assert result["memory"]["within_budget"] and result["streaming"]["finals"] >= 1
    assert result["offline"]["rtf"] > 0 and result["host_plan"]["threads"] == 2
    json.dumps(result)


def test_graph_external_data_stays_behind_and_one_quant_is_enough(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(TINY, src)
    (src / "encoder.onnx.data").write_bytes(b"\0" * 64)  # an fp32 graph's external weights, as big exports have
    m = Bundle.load(src).manifest
    replace(m, files={**m.files, "encoder.onnx.data": FileEntry.of(src / "encoder.onnx.data")}).write(src)
    out = make_bundle.make_mobile_bundle(src, tmp_path / "mobile", quants=("q8_0",))
    assert not (out.path / "encoder.onnx.data").exists() and "encoder.onnx.data" not in out.manifest.files
    info = out.manifest.extra["mobile"]["quantization"]["q8_0"]
    assert info["copied_from_source"] and out.manifest.llm["files"] == {"q8_0": "llm.q8_0.gguf"}


def test_a_graph_with_external_weights_converts_to_the_same_ort_graph(mobile, tmp_path):
    """Exports above 64 MiB keep their weights beside the graph (onnxruntime maps them): the converter gets both."""
    import onnx

    src = Bundle.load(TINY).encoder_path(None)
    ext = tmp_path / "onnx" / "encoder.int8.onnx"
    ext.parent.mkdir()
    onnx.save_model(onnx.load(str(src)), str(ext), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="encoder.int8.onnx.data", size_threshold=0)
    make_bundle.convert_to_ort({"encoder.int8": ext}, tmp_path)
    feats = np.random.default_rng(0).standard_normal((120, 80)).astype(np.float32)
    outs = [EncoderSession(p).run(feats) for p in (tmp_path / "encoder.int8.ort", mobile.path / "encoder.int8.ort")]
    np.testing.assert_array_equal(outs[0].audio_embeds, outs[1].audio_embeds)
    np.testing.assert_array_equal(outs[0].phoneme_logprobs, outs[1].phoneme_logprobs)
