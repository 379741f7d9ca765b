"""Write the LLM (a transformers ``Qwen3ForCausalLM`` state dict) and its tokenizer as a GGUF file for llama.cpp.

Table-driven like gguf-py's ``tensor_mapping.py``: every source tensor name is matched against
:data:`QWEN3_TENSOR_MAP`; a tensor with no mapping, a missing tensor or a shape that disagrees with the config is an
:class:`~nim4asr_edge.errors.ExportError`, never skipped. HF weights go in unchanged (no transpose, no Q/K
permutation for ``qwen3``); 1-D norms stay F32. Tensors are converted and written one at a time, so memory stays
at the size of the state dict plus one tensor.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nim4asr_edge.errors import CheckpointError, ExportError

from .tokenizers import SPECIAL_TOKENS, SourceTokenizer

__all__ = ["QWEN3_TENSOR_MAP", "GGUF_ARCH", "write_llm_gguf"]

log = logging.getLogger(__name__)

GGUF_ARCH = "qwen3"

# (transformers name template, GGUF name template, expected shape as config dimensions); {bid} = layer index.
# Shapes are in PyTorch order (out, in); gguf-py reverses them into ggml order.
QWEN3_TENSOR_MAP: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("model.embed_tokens.weight", "token_embd.weight", ("vocab", "hidden")),
    ("model.norm.weight", "output_norm.weight", ("hidden",)),
    ("lm_head.weight", "output.weight", ("vocab", "hidden")),
    ("model.layers.{bid}.input_layernorm.weight", "blk.{bid}.attn_norm.weight", ("hidden",)),
    ("model.layers.{bid}.self_attn.q_proj.weight", "blk.{bid}.attn_q.weight", ("q_dim", "hidden")),
    ("model.layers.{bid}.self_attn.k_proj.weight", "blk.{bid}.attn_k.weight", ("kv_dim", "hidden")),
    ("model.layers.{bid}.self_attn.v_proj.weight", "blk.{bid}.attn_v.weight", ("kv_dim", "hidden")),
    ("model.layers.{bid}.self_attn.o_proj.weight", "blk.{bid}.attn_output.weight", ("hidden", "q_dim")),
    ("model.layers.{bid}.self_attn.q_norm.weight", "blk.{bid}.attn_q_norm.weight", ("head_dim",)),
    ("model.layers.{bid}.self_attn.k_norm.weight", "blk.{bid}.attn_k_norm.weight", ("head_dim",)),
    ("model.layers.{bid}.post_attention_layernorm.weight", "blk.{bid}.ffn_norm.weight", ("hidden",)),
    ("model.layers.{bid}.mlp.gate_proj.weight", "blk.{bid}.ffn_gate.weight", ("ffn", "hidden")),
    ("model.layers.{bid}.mlp.up_proj.weight", "blk.{bid}.ffn_up.weight", ("ffn", "hidden")),
    ("model.layers.{bid}.mlp.down_proj.weight", "blk.{bid}.ffn_down.weight", ("hidden", "ffn")),
)
_COMPILED_MAP = tuple(
    (re.compile(re.escape(src).replace(r"\{bid\}", r"(\d+)") + r"\Z"), dst, shape)
    for src, dst, shape in QWEN3_TENSOR_MAP
)

# VocabEntry.kind -> GGUF token type (gguf.TokenType values)
_TOKEN_TYPES = {"normal": 1, "unknown": 2, "control": 3, "user_defined": 4, "unused": 5, "byte": 6}

# llama_ftype written as general.file_type
_FILE_TYPES = {"f32": 0, "f16": 1}


@dataclass(frozen=True)
class _Qwen3Shape:
    vocab: int
    hidden: int
    ffn: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context_length: int
    rms_eps: float
    rope_theta: float

    @property
    def dims(self) -> dict[str, int]:
        return {
            "vocab": self.vocab,
            "hidden": self.hidden,
            "ffn": self.ffn,
            "head_dim": self.head_dim,
            "q_dim": self.n_heads * self.head_dim,
            "kv_dim": self.n_kv_heads * self.head_dim,
        }


def _shape_from_config(cfg: dict[str, Any]) -> _Qwen3Shape:
    def need(key: str) -> Any:
        if key not in cfg or cfg[key] is None:
            raise ExportError(f"llm config lacks {key!r}, which the qwen3 GGUF needs")
        return cfg[key]

    if cfg.get("attention_bias"):
        raise ExportError("llm config has attention_bias=True; llama.cpp's qwen3 graph has no attention biases")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise ExportError(f"llm hidden_act={act!r}; llama.cpp's qwen3 graph uses silu")
    rope_params = cfg.get("rope_parameters") or {}
    rope_theta = cfg.get("rope_theta", rope_params.get("rope_theta"))
    if rope_theta is None:
        raise ExportError("llm config lacks rope_theta (a missing rope.freq_base makes llama.cpp silently wrong)")
    scaling = cfg.get("rope_scaling") or {}
    rope_type = scaling.get("rope_type", scaling.get("type")) or rope_params.get("rope_type", "default")
    if rope_type != "default":
        raise ExportError(f"llm rope scaling {rope_type!r} is not supported by this exporter")
    n_heads = int(need("num_attention_heads"))
    hidden = int(need("hidden_size"))
    head_dim = int(cfg.get("head_dim") or hidden // n_heads)
    return _Qwen3Shape(
        vocab=int(need("vocab_size")),
        hidden=hidden,
        ffn=int(need("intermediate_size")),
        n_layers=int(need("num_hidden_layers")),
        n_heads=n_heads,
        n_kv_heads=int(cfg.get("num_key_value_heads") or n_heads),
        head_dim=head_dim,
        context_length=int(need("max_position_embeddings")),
        rms_eps=float(need("rms_norm_eps")),
        rope_theta=float(rope_theta),
    )


def _plan_tensors(
    state: dict[str, Any], shape: _Qwen3Shape, tied: bool
) -> list[tuple[str, str, tuple[int, ...]]]:
    """(source name, GGUF name, expected torch shape) for every tensor to write, in a stable order."""
    dims = shape.dims
    planned: dict[str, tuple[str, tuple[int, ...]]] = {}
    for src in state:
        for rx, dst, shp in _COMPILED_MAP:
            m = rx.match(src)
            if m is None:
                continue
            bid = int(m.group(1)) if m.groups() else None
            if bid is not None and not 0 <= bid < shape.n_layers:
                raise ExportError(f"tensor {src!r}: layer {bid} is outside num_hidden_layers={shape.n_layers}")
            planned[src] = (dst.format(bid=bid), tuple(dims[d] for d in shp))
            break
        else:
            raise ExportError(f"tensor {src!r} has no qwen3 GGUF mapping (refusing to drop it silently)")

    if tied and "lm_head.weight" in planned:
        import torch

        if not torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"]):
            raise ExportError("tie_word_embeddings=True but lm_head.weight differs from model.embed_tokens.weight")
        del planned["lm_head.weight"]  # llama.cpp reuses token_embd.weight as the output matrix

    expected = [src for src, _, _ in QWEN3_TENSOR_MAP if "{bid}" not in src and (src != "lm_head.weight" or not tied)]
    for bid in range(shape.n_layers):
        expected += [src.format(bid=bid) for src, _, _ in QWEN3_TENSOR_MAP if "{bid}" in src]
    missing = [name for name in expected if name not in planned]
    if missing:
        raise ExportError(f"llm state dict lacks {len(missing)} tensor(s), first: {missing[0]!r}")

    out = []
    for src in expected:
        dst, shp = planned[src]
        got = tuple(state[src].shape)
        if got != shp:
            raise ExportError(f"tensor {src!r} has shape {list(got)}, the config implies {list(shp)}")
        out.append((src, dst, shp))
    return out


def _tokenizer_metadata(writer: Any, tok: SourceTokenizer, n_vocab: int) -> None:
    import gguf

    K = gguf.Keys.Tokenizer
    V = gguf.GGUFValueType
    entries = tok.vocab()
    if len(entries) > n_vocab:
        raise ExportError(f"tokenizer has {len(entries)} tokens but the LLM vocab_size is {n_vocab}")
    texts = [e.text for e in entries]
    types = [_TOKEN_TYPES[e.kind] for e in entries]
    scores = [e.score for e in entries]
    for i in range(len(entries), n_vocab):  # embedding rows past the tokenizer: padding, as convert_hf_to_gguf does
        texts.append(f"[PAD{i}]")
        types.append(_TOKEN_TYPES["unused"])
        scores.append(-1e9 if tok.kind == "sentencepiece" else 0.0)

    try:
        ids = {t: tok.token_id(t) for t in SPECIAL_TOKENS}
    except KeyError as exc:
        raise ExportError(f"tokenizer {tok.path} lacks special token {exc.args[0]!r}") from exc

    if tok.kind == "sentencepiece":
        writer.add_key_value(K.MODEL, "llama", V.STRING)
        writer.add_key_value(K.PRE, "default", V.STRING)
        writer.add_key_value(K.ADD_PREFIX, False, V.BOOL)  # trained without dummy prefix
        unk = [i for i, e in enumerate(entries) if e.kind == "unknown"]
        if unk:
            writer.add_key_value(K.UNK_ID, unk[0], V.UINT32)
    else:
        writer.add_key_value(K.MODEL, "gpt2", V.STRING)
        writer.add_key_value(K.PRE, "qwen2", V.STRING)
    writer.add_key_value(K.LIST, texts, V.ARRAY, V.STRING)
    writer.add_key_value(K.SCORES, scores, V.ARRAY, V.FLOAT32)
    writer.add_key_value(K.TOKEN_TYPE, types, V.ARRAY, V.INT32)
    if tok.kind == "bpe":
        writer.add_key_value(K.MERGES, tok.merges(), V.ARRAY, V.STRING)
    writer.add_key_value(K.BOS_ID, ids["<|endoftext|>"], V.UINT32)
    writer.add_key_value(K.EOS_ID, ids["<|im_end|>"], V.UINT32)
    writer.add_key_value(K.EOT_ID, ids["<|im_end|>"], V.UINT32)
    writer.add_key_value(K.PAD_ID, ids["<|endoftext|>"], V.UINT32)
    writer.add_key_value(K.ADD_BOS, False, V.BOOL)  # prompts are assembled explicitly; nothing added behind our back
    writer.add_key_value(K.ADD_EOS, False, V.BOOL)


def write_llm_gguf(
    llm_state_dict: dict[str, Any],
    llm_config: dict[str, Any],
    tokenizer_path: str | Path,
    out_path: str | Path,
    dtype: Literal["f32", "f16"] = "f16",
    *,
    name: str = "nim4asr-llm",
    chat_template: str | None = None,
) -> Path:
    """Write ``out_path`` (GGUF, architecture ``qwen3``) from a ``Qwen3ForCausalLM`` state dict and tokenizer file.

    ``dtype`` applies to 2-D weights; 1-D norms are always F32. Quantise afterwards with
    :func:`nim4asr_export.llama_quantize.quantize_gguf`. The file is written to a temporary name and renamed.
    """
    import gguf
    import torch

    if dtype not in _FILE_TYPES:
        raise ExportError(f"GGUF dtype {dtype!r} is not one of {sorted(_FILE_TYPES)} (quantise afterwards)")
    shape = _shape_from_config(llm_config)
    tied = bool(llm_config.get("tie_word_embeddings", False))
    plan = _plan_tensors(llm_state_dict, shape, tied)
    try:
        tok = SourceTokenizer.load(tokenizer_path)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(tmp, GGUF_ARCH)
    K = gguf.Keys
    V = gguf.GGUFValueType
    arch = GGUF_ARCH
    try:
        writer.add_key_value(K.General.NAME, name, V.STRING)
        writer.add_key_value(K.General.FILE_TYPE, _FILE_TYPES[dtype], V.UINT32)
        writer.add_key_value(K.General.QUANTIZATION_VERSION, gguf.GGML_QUANT_VERSION, V.UINT32)
        writer.add_key_value(K.LLM.CONTEXT_LENGTH.format(arch=arch), shape.context_length, V.UINT32)
        writer.add_key_value(K.LLM.EMBEDDING_LENGTH.format(arch=arch), shape.hidden, V.UINT32)
        writer.add_key_value(K.LLM.BLOCK_COUNT.format(arch=arch), shape.n_layers, V.UINT32)
        writer.add_key_value(K.LLM.FEED_FORWARD_LENGTH.format(arch=arch), shape.ffn, V.UINT32)
        writer.add_key_value(K.Attention.HEAD_COUNT.format(arch=arch), shape.n_heads, V.UINT32)
        writer.add_key_value(K.Attention.HEAD_COUNT_KV.format(arch=arch), shape.n_kv_heads, V.UINT32)
        writer.add_key_value(K.Attention.KEY_LENGTH.format(arch=arch), shape.head_dim, V.UINT32)
        writer.add_key_value(K.Attention.VALUE_LENGTH.format(arch=arch), shape.head_dim, V.UINT32)
        writer.add_key_value(K.Attention.LAYERNORM_RMS_EPS.format(arch=arch), shape.rms_eps, V.FLOAT32)
        writer.add_key_value(K.Rope.FREQ_BASE.format(arch=arch), shape.rope_theta, V.FLOAT32)
        _tokenizer_metadata(writer, tok, shape.vocab)
        if chat_template is not None:
            writer.add_key_value(K.Tokenizer.CHAT_TEMPLATE, chat_template, V.STRING)

        np_dtypes = []
        for src, dst, shp in plan:
            np_dtype = np.float16 if (dtype == "f16" and len(shp) >= 2) else np.float32
            np_dtypes.append(np_dtype)
            nbytes = math.prod(shp) * np.dtype(np_dtype).itemsize
            writer.add_tensor_info(dst, shp, np.dtype(np_dtype), nbytes)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for (src, dst, _), np_dtype in zip(plan, np_dtypes):
            t = llm_state_dict[src].detach()
            if not torch.is_floating_point(t):
                raise ExportError(f"tensor {src!r} has dtype {t.dtype}, expected a floating-point weight")
            arr = t.to(device="cpu", dtype=torch.float32).contiguous().numpy().astype(np_dtype, copy=False)
            if not np.isfinite(arr).all():
                raise ExportError(f"tensor {src!r} contains NaN or Inf (as {np.dtype(np_dtype).name})")
            writer.write_tensor_data(arr)
            del arr, t
        writer.close()
        tmp.replace(out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    log.info("wrote %s (%s, %d tensors)", out, dtype, len(plan))
    return out
