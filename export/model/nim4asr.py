"""The whole NIM4-ASR model (encoder, phoneme-CTC head, adaptor, Qwen3 LLM) and the exportable encoder graph."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .conformer import ConformerEncoder, rotary_cos_sin_at
from .heads import Adaptor, PhonemeCTCHead

__all__ = [
    "Nim4AsrModel",
    "EncoderGraph",
    "StreamingEncoderGraph",
    "count_parameters",
    "ENCODER_INPUT_NAMES",
    "ENCODER_OUTPUT_NAMES",
    "STREAM_INPUT_NAMES",
    "STREAM_OUTPUT_NAMES",
    "STEM_STRIDE",
    "STEM_LOOKAHEAD",
]

# docs/FORMAT.md, "Encoder ONNX graph (offline)": names and order are part of the bundle contract.
ENCODER_INPUT_NAMES = ("features", "feature_lengths")
ENCODER_OUTPUT_NAMES = ("audio_embeds", "audio_embed_lengths", "phoneme_logprobs", "phoneme_lengths")
# docs/FORMAT.md, "Encoder ONNX graph (streaming)".
STREAM_INPUT_NAMES = ("features", "feature_lengths", "offset", "key_cache", "value_cache", "conv_cache")
STREAM_OUTPUT_NAMES = ENCODER_OUTPUT_NAMES + ("next_key_cache", "next_value_cache", "next_conv_cache")

STEM_STRIDE = 4  # feature frames per encoder frame (two stride-2 convolutions)
STEM_LOOKAHEAD = 3  # feature frames past its chunk that the last encoder frame of a chunk reads (kernel 7 - stride 4)


def _build_llm(cfg: ModelConfig) -> nn.Module:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    return Qwen3ForCausalLM(Qwen3Config(**cfg.llm))


class Nim4AsrModel(nn.Module):
    """NIM4-ASR: ``encoder`` (Conformer), ``ctc_head`` (phoneme MLP), ``adaptor`` (4-frame concat MLP), ``llm``
    (transformers ``Qwen3ForCausalLM``).  ``state_dict()`` names are ``encoder.*``, ``ctc_head.*``, ``adaptor.*``,
    ``llm.*`` as in ``docs/FORMAT.md``.
    """

    def __init__(self, cfg: ModelConfig, *, with_llm: bool = True):
        super().__init__()
        self.cfg = cfg
        e = cfg.encoder
        self.encoder = ConformerEncoder(e)
        self.ctc_head = PhonemeCTCHead(e.d_model, cfg.ctc_head.hidden, cfg.ctc_head.n_phonemes)
        self.adaptor = Adaptor(e.d_model, cfg.adaptor.stack, cfg.adaptor.hidden, cfg.llm_hidden)
        self.llm = _build_llm(cfg) if with_llm else None

    @classmethod
    def build(cls, cfg: ModelConfig, seed: int = 0, *, with_llm: bool = True) -> "Nim4AsrModel":
        """Deterministic random initialisation (same ``cfg`` and ``seed`` give the same weights), in eval mode.

        The global torch RNG state is restored afterwards.
        """
        cfg.validate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(cfg, with_llm=with_llm)
        return model.eval()

    def forward_audio(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk_size: int = -1, left_chunks: int = -1
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """fbank ``[B, T, n_mels]`` -> ``(audio_embeds [B, N, llm_hidden], audio_embed_lengths [B],
        phoneme_logprobs [B, T', n_phonemes], phoneme_lengths [B])`` (the order of the ONNX graph's outputs)."""
        enc, enc_lengths = self.encoder(features, lengths, chunk_size, left_chunks)
        logprobs = self.ctc_head(enc)
        embeds, embed_lengths = self.adaptor(enc, enc_lengths)
        return embeds, embed_lengths, logprobs, enc_lengths

    def encoder_graph(self) -> "EncoderGraph":
        return EncoderGraph(self)


class EncoderGraph(nn.Module):
    """What the offline encoder ONNX graph computes: encoder + CTC head + adaptor, full context.

    Shares (does not copy) the modules of ``model``; ``forward(features, feature_lengths)`` returns the four outputs
    in ``docs/FORMAT.md`` order.
    """

    def __init__(self, model: Nim4AsrModel):
        super().__init__()
        self.cfg = model.cfg
        self.encoder = model.encoder
        self.ctc_head = model.ctc_head
        self.adaptor = model.adaptor

    def forward(
        self, features: torch.Tensor, feature_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        enc, enc_lengths = self.encoder(features, feature_lengths)
        logprobs = self.ctc_head(enc)
        embeds, embed_lengths = self.adaptor(enc, enc_lengths)
        return embeds, embed_lengths, logprobs, enc_lengths


class StreamingEncoderGraph(nn.Module):
    """What the streaming encoder ONNX graph computes: one chunk of ``chunk`` encoder frames (``4 * chunk``
    feature frames) with per-layer caches of the ``left_chunks`` chunks before it.

    Equal, chunk by chunk, to ``Nim4AsrModel.forward_audio(features, lengths, chunk, left_chunks)`` on the whole
    utterance.  Shares (does not copy) the modules of ``model``.  ``forward`` takes and returns tensors in
    ``STREAM_INPUT_NAMES`` / ``STREAM_OUTPUT_NAMES`` order (docs/FORMAT.md, "Encoder ONNX graph (streaming)"):

    * ``features`` [1, 4*chunk + 3, n_mels]: feature frames ``4*offset .. 4*offset + 4*chunk + 2`` -- this chunk's
      frames and 3 frames of look-ahead (the stem's receptive field), zero-padded past ``feature_lengths``;
    * ``feature_lengths`` [1] int64: valid frames of that window (``4*chunk + 3`` except in the final chunk);
    * ``offset`` [1] int64: encoder frames before this chunk (a multiple of ``chunk``): RoPE positions continue
      from it, and ``min(offset, cache)`` of the cache slots (the last ones) are valid;
    * ``key_cache`` / ``value_cache`` [n_layers, 1, n_heads, cache, head_dim]: rotated keys and values of the
      ``cache = left_chunks * chunk`` encoder frames before the chunk, oldest first;
    * ``conv_cache`` [n_layers, 1, d_model, kernel // 2]: depthwise-convolution input of the frames before it
      (zeros at the start of a stream).
    """

    def __init__(self, model: Nim4AsrModel, chunk: int = 16, left_chunks: int = 4):
        super().__init__()
        e = model.cfg.encoder
        if chunk < 1 or chunk % model.cfg.adaptor.stack:
            raise ValueError(
                f"chunk={chunk} encoder frames must be a positive multiple of the adaptor stack "
                f"({model.cfg.adaptor.stack}) so that audio tokens never straddle chunks"
            )
        if left_chunks < 1:
            raise ValueError(f"left_chunks={left_chunks} must be >= 1 (a fixed-size cache of the chunks before)")
        self.cfg = model.cfg
        self.encoder = model.encoder
        self.ctc_head = model.ctc_head
        self.adaptor = model.adaptor
        self.chunk = chunk
        self.left_chunks = left_chunks
        self.cache_frames = chunk * left_chunks
        self.window_frames = STEM_STRIDE * chunk + STEM_LOOKAHEAD
        self.head_dim = e.d_model // e.n_heads

    def cache_shapes(self) -> dict[str, tuple[int, ...]]:
        e = self.cfg.encoder
        kv = (e.n_layers, 1, e.n_heads, self.cache_frames, self.head_dim)
        return {"key_cache": kv, "value_cache": kv, "conv_cache": (e.n_layers, 1, e.d_model, e.conv_kernel // 2)}

    def initial_inputs(self, features: torch.Tensor, n_valid: int) -> tuple[torch.Tensor, ...]:
        """Inputs of the first chunk of a stream: ``features`` [1, window, n_mels], zero offset and caches."""
        caches = [torch.zeros(s) for s in self.cache_shapes().values()]
        return (features, torch.tensor([n_valid], dtype=torch.int64), torch.zeros(1, dtype=torch.int64), *caches)

    def forward(
        self,
        features: torch.Tensor,
        feature_lengths: torch.Tensor,
        offset: torch.Tensor,
        key_cache: torch.Tensor,
        value_cache: torch.Tensor,
        conv_cache: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        enc = self.encoder
        t, c = self.chunk, self.cache_frames
        x, enc_lengths = enc.subsampling(features, feature_lengths)  # [1, t, d]: the window gives exactly t frames
        enc_lengths = enc_lengths.clamp(max=t)
        frame = torch.arange(t, device=x.device)
        valid = frame.unsqueeze(0) < enc_lengths.unsqueeze(1)  # [1, t]
        x = x * valid.unsqueeze(-1).to(x.dtype)
        # Keys: the cache slots holding frames at or after the stream start, then the chunk's valid frames; the
        # diagonal is always allowed, as in ConformerEncoder.forward (padding rows never see an empty row).
        n_cached = offset.clamp(max=c)
        slot = torch.arange(c, device=x.device)
        cache_valid = slot.unsqueeze(0) >= (c - n_cached).unsqueeze(1)  # [1, c]
        key_valid = torch.cat([cache_valid, valid], dim=1)  # [1, c + t]
        diag = frame.unsqueeze(0) == frame.unsqueeze(1)
        eye = torch.cat([torch.zeros(t, c, dtype=torch.bool, device=x.device), diag], dim=1)  # [t, c + t]
        attn_mask = key_valid.unsqueeze(1) | eye.unsqueeze(0)  # [1, t, c + t]
        cos, sin = rotary_cos_sin_at(offset[0] + frame, self.head_dim, enc.cfg.rope_base, x.dtype)
        new_k, new_v, new_conv = [], [], []
        for i, layer in enumerate(enc.layers):
            x, k, v, cc = layer.forward_chunk(
                x, valid, attn_mask, cos, sin, key_cache[i], value_cache[i], conv_cache[i], c
            )
            new_k.append(k[:, :, t:])
            new_v.append(v[:, :, t:])
            new_conv.append(cc)
        x = x * valid.unsqueeze(-1).to(x.dtype)
        logprobs = self.ctc_head(x)
        embeds, embed_lengths = self.adaptor(x, enc_lengths)
        return (
            embeds, embed_lengths, logprobs, enc_lengths,
            torch.stack(new_k), torch.stack(new_v), torch.stack(new_conv),
        )


def count_parameters(cfg: ModelConfig) -> dict[str, int]:
    """Parameter counts per part and in total, built on the meta device (nothing is allocated).

    Tied weights (Qwen3 ``tie_word_embeddings``) are counted once.
    """
    with torch.device("meta"):
        model = Nim4AsrModel(cfg)
    counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("encoder", "ctc_head", "adaptor", "llm")
    }
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
