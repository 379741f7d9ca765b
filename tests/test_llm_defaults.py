"""The load-time choices of llama.cpp buffers: the CPU rule for repacked weights, mmap that follows it (one copy of
the weights), the fallback when repacking is refused, the resolved values a session reports, and the recognizer's
memory report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nim4asr_edge import _llama
from nim4asr_edge.errors import BundleError
from nim4asr_edge.llm import LLMSession
from nim4asr_edge.llm_options import LLMOptions, auto_extra_buffers, verify_options
from nim4asr_edge.models import HERE as SHIPPED

TINY = SHIPPED / "tiny-random"
GGUF = TINY / "llm.q8_0.gguf"

AVX2 = {"sse4_2", "avx", "avx2", "fma", "f16c"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}
AMX = AVX512 | {"amx_tile", "amx_int8", "amx_bf16"}


@pytest.mark.parametrize("flags,want", [
    (AMX, False),  # llama-cpp-python 0.3.36 segfaulted with repacked buffers on AMX
    (AVX512, False),  # measured: slower prefill, no faster decode, a second weight copy
    (AVX2, True),
    ({"asimd", "fphp", "asimddp"}, True),  # ARM: NEON repacked kernels
    (set(), True),  # unknown CPU (no /proc/cpuinfo): llama.cpp's own default
])
def test_repack_rule_per_cpu_class(flags, want):
    use, why = auto_extra_buffers(frozenset(flags))
    assert use is want
    assert why  # the reason is reported (bench JSON, logs)


def test_amx_wins_over_avx512_and_only_amx_flags_count():
    assert auto_extra_buffers({"amx_tile"})[0] is False
    assert auto_extra_buffers({"amx_int8", "avx2"})[0] is False
    assert "AMX" in auto_extra_buffers(AMX)[1]


def test_auto_options_follow_this_cpu(monkeypatch):
    flags = _llama.cpu_flags()
    assert isinstance(flags, frozenset)
    o = LLMOptions()
    assert o.use_mmap is None and o.extra_buffers is None
    assert o.resolved_extra_buffers() is auto_extra_buffers(flags)[0]
    # mmap follows the repacking choice: never a mapped file beside a repacked copy
    assert o.resolved_use_mmap() is (not o.resolved_extra_buffers())
    assert LLMOptions(extra_buffers=True).resolved_use_mmap() is False
    assert LLMOptions(extra_buffers=False).resolved_use_mmap() is True
    assert LLMOptions(extra_buffers=True, use_mmap=True).resolved_use_mmap() is True  # explicit wins
    assert LLMOptions(use_mmap=False).resolved_use_mmap(extra_buffers=False) is False
    monkeypatch.setattr(_llama, "cpu_flags", lambda: frozenset(AMX))
    assert LLMOptions().resolved_extra_buffers() is False and LLMOptions().resolved_use_mmap() is True
    monkeypatch.setattr(_llama, "cpu_flags", lambda: frozenset(AVX2))
    assert LLMOptions().resolved_extra_buffers() is True and LLMOptions().resolved_use_mmap() is False


@pytest.mark.parametrize("field", ["use_mmap", "extra_buffers"])
def test_tristate_options_are_verified(field):
    with pytest.raises(ValueError, match=f"{field}=.*None \\(auto\\), True or False"):
        verify_options(dataclasses.replace(LLMOptions(), **{field: "yes"}))


@pytest.mark.parametrize("extra,mmap,want_mmap", [
    (None, None, None), (True, None, False), (False, None, True), (True, True, True), (False, False, False)])
def test_session_reports_what_it_loaded(extra, mmap, want_mmap):
    o = LLMOptions(n_ctx=256, extra_buffers=extra, use_mmap=mmap)
    with LLMSession(GGUF, o) as s:
        assert s.uses_extra_buffers is o.resolved_extra_buffers()
        assert s.uses_mmap is (o.resolved_use_mmap() if want_mmap is None else want_mmap)
        gen = s.generate([1, 2, 3], None, [], max_new_tokens=4, stop_ids=())
        assert len(gen.tokens) == 4


def test_refused_auto_repacking_falls_back_to_plain_buffers(monkeypatch, caplog):
    real = _llama.LlamaModel
    calls = []

    def loader(path, **kw):
        calls.append(kw)
        if kw["extra_buffers"]:
            raise BundleError("llama.cpp could not load (injected)")
        return real(path, **kw)

    monkeypatch.setattr(_llama, "cpu_flags", lambda: frozenset(AVX2))  # auto resolves to repacking on
    monkeypatch.setattr(_llama, "LlamaModel", loader)
    with LLMSession(GGUF, LLMOptions(n_ctx=256)) as s:
        assert (s.uses_extra_buffers, s.uses_mmap) == (False, True)
    assert [c["extra_buffers"] for c in calls] == [True, False]
    assert [c["use_mmap"] for c in calls] == [False, True]  # mmap re-resolved for plain buffers
    assert "without them" in caplog.text
    calls.clear()
    with pytest.raises(BundleError, match="injected"):  # an explicit request is not overridden
        LLMSession(GGUF, LLMOptions(n_ctx=256, extra_buffers=True))
    assert len(calls) == 1


def test_greedy_loop_reads_logits_in_place_and_copies_requested_steps():
    with LLMSession(GGUF, LLMOptions(n_ctx=256, flash_attn=False, type_k="f32", type_v="f32")) as s:
        a = s.generate([1, 2, 3], None, [], max_new_tokens=6, stop_ids=(), return_logits=True)
        b = s.generate([1, 2, 3], None, [], max_new_tokens=6, stop_ids=())
        assert a.tokens == b.tokens
        assert a.logits.shape == (6, s.n_vocab)
        assert [int(x) for x in a.logits.argmax(1)] == a.tokens  # each step kept its own logits
        assert not np.shares_memory(a.logits[0], a.logits[1])
        s.clear()
        s.eval_tokens([1, 2, 3, *a.tokens[:3]], output_last=True)
        np.testing.assert_allclose(s.last_logits(), a.logits[3], rtol=1e-4, atol=1e-4)


def test_recognizer_reports_resident_memory_after_load():
    from nim4asr_edge import Recognizer, RecognizerOptions

    with Recognizer(TINY, RecognizerOptions(threads=1, verify="size")) as rec:
        m = rec.load_memory
        assert m.rss_bytes > 20e6 and m.peak_rss_bytes >= m.rss_bytes
        assert m.anon_bytes + m.file_bytes <= m.rss_bytes  # RssShmem is the rest
        assert m.anon_bytes > 0 and m.file_bytes > 0
        opts = rec.transcribe(np.zeros(16000, np.float32), sample_rate=16000).options
        assert opts["llm_mmap"] is rec.engine.llm.uses_mmap
        assert opts["llm_extra_buffers"] is rec.engine.llm.uses_extra_buffers
