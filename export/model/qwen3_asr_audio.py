"""Qwen3-ASR's audio encoder (AuT), re-implemented for ONNX export: batched, traceable, and equal to the official
``Qwen3ASRAudioEncoder`` as its official inference runs it (flash-attention-2 / vLLM).

What the reference computes for one utterance of ``T`` feature frames (``modeling_qwen3_asr.py``):

1. the log-Mel ``[n_mels, T]`` is cut into chunks of ``2 * n_window`` (100) frames; with at least one whole chunk
   the last, partial chunk is zero-padded to 100 frames (``pad_sequence``), with none the single chunk is not padded;
2. each chunk goes through three ``Conv2d(k3, s2, p1)`` + GELU over (frequency, time) on its own, then
   ``conv_out`` (no bias) over (channel x frequency): 100 frames -> 13 tokens;
3. a sinusoid position embedding restarting at 0 in every chunk is added, and the valid tokens of all chunks are
   concatenated (``13 * (T // 100) + ceil((T % 100) / 8)``);
4. pre-LN Transformer layers attend within windows of ``13 * (n_window_infer // 100)`` (104) tokens -- the
   ``cu_seqlens`` that flash-attention-2 and vLLM use; the plain transformers path (sdpa / eager) passes no mask and
   attends over the whole clip, which is the same only up to 104 tokens (8 s);
5. ``ln_post``, ``proj1`` + GELU, ``proj2`` to the LLM width.

Here a batch is ``[B, T, n_mels]`` with valid lengths; every item is cut into the same number of chunks (frames
past an item's length are zeroed, and a single short chunk is emulated by zeroing each convolution's output past
its valid length, which is what the convolution's own zero padding gives), and attention runs on windows of
``[B * windows, 104, d_model]`` with the padding keys masked. Parameter names are the reference's (the release's
``thinker.audio_tower.*`` with the prefix removed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AudioEncoderConfig", "Qwen3AsrAudioEncoder", "audio_token_lengths", "conv_lengths"]

_NEG = -1e9  # additive mask for padding keys (finite: a row of padding stays finite, and is dropped anyway)


@dataclass(frozen=True)
class AudioEncoderConfig:
    """``thinker_config.audio_config`` of a release's config.json (the fields the encoder uses)."""

    d_model: int
    encoder_layers: int
    encoder_attention_heads: int
    encoder_ffn_dim: int
    output_dim: int
    num_mel_bins: int = 128
    downsample_hidden_size: int = 480
    n_window: int = 50
    n_window_infer: int = 800
    max_source_positions: int = 1500
    activation_function: str = "gelu"
    scale_embedding: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AudioEncoderConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: data[k] for k in known if k in data})

    @property
    def chunk_frames(self) -> int:
        return 2 * self.n_window

    @property
    def chunk_tokens(self) -> int:
        return int(conv_lengths(torch.tensor(self.chunk_frames)))

    @property
    def window_tokens(self) -> int:
        return self.chunk_tokens * (self.n_window_infer // self.chunk_frames)

    def check(self) -> None:
        if self.d_model % self.encoder_attention_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of {self.encoder_attention_heads} heads")
        if self.activation_function != "gelu":
            raise ValueError(f"activation_function {self.activation_function!r}: only 'gelu' is implemented")
        if self.scale_embedding:
            raise ValueError("scale_embedding=True is not implemented (the released models have False)")
        if self.n_window_infer < self.chunk_frames or self.n_window_infer % self.chunk_frames:
            raise ValueError(f"n_window_infer {self.n_window_infer} must be a multiple of 2 * n_window")


def conv_lengths(frames: torch.Tensor) -> torch.Tensor:
    """Output length of the three stride-2 convolutions (kernel 3, padding 1) for ``frames`` input frames."""
    n = frames
    for _ in range(3):
        n = (n - 1) // 2 + 1
    return n


def audio_token_lengths(frames: torch.Tensor, chunk: int = 100) -> torch.Tensor:
    """Audio tokens for ``frames`` feature frames (the reference's ``_get_feat_extract_output_lengths``)."""
    rest = frames % chunk
    return torch.where(rest > 0, conv_lengths(rest), torch.zeros_like(rest)) + (frames // chunk) * conv_lengths(
        torch.tensor(chunk))


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """The reference's ``SinusoidsPositionEmbedding`` table, [length, channels] (sin half, then cos half)."""
    log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2).float())
    scaled_time = torch.arange(length)[:, np.newaxis] * inv_timescales[np.newaxis, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class AudioAttention(nn.Module):
    def __init__(self, cfg: AudioEncoderConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.encoder_attention_heads
        self.head_dim = d // self.n_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """``x`` [W, L, d] (W windows of L tokens), ``key_bias`` [W, 1, 1, L] (0 or -1e9)."""
        w, n, d = x.shape
        q = self.q_proj(x).reshape(w, n, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).reshape(w, n, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).reshape(w, n, self.n_heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scaling + key_bias
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(w, n, d)
        return self.out_proj(out)


class AudioEncoderLayer(nn.Module):
    def __init__(self, cfg: AudioEncoderConfig):
        super().__init__()
        d = cfg.d_model
        self.self_attn = AudioAttention(cfg)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.encoder_ffn_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), key_bias)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class Qwen3AsrAudioEncoder(nn.Module):
    """``forward(features [B, T, n_mels], feature_lengths [B]) -> (audio_embeds [B, N, output_dim],
    audio_embed_lengths [B])``; ``N`` is padded (to whole attention windows), the lengths say what is valid."""

    def __init__(self, cfg: AudioEncoderConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        h = cfg.downsample_hidden_size
        self.conv2d1 = nn.Conv2d(1, h, 3, 2, padding=1)
        self.conv2d2 = nn.Conv2d(h, h, 3, 2, padding=1)
        self.conv2d3 = nn.Conv2d(h, h, 3, 2, padding=1)
        freq = (((cfg.num_mel_bins + 1) // 2 + 1) // 2 + 1) // 2
        self.conv_out = nn.Linear(h * freq, cfg.d_model, bias=False)
        self.layers = nn.ModuleList([AudioEncoderLayer(cfg) for _ in range(cfg.encoder_layers)])
        self.ln_post = nn.LayerNorm(cfg.d_model)
        self.proj1 = nn.Linear(cfg.d_model, cfg.d_model)
        self.proj2 = nn.Linear(cfg.d_model, cfg.output_dim)
        self.register_buffer("chunk_pe", sinusoids(cfg.max_source_positions, cfg.d_model)[: cfg.chunk_tokens],
                             persistent=False)

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor,
                attention_window: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``attention_window``: any tensor whose length is the attention window in tokens (default: the config's
        ``window_tokens``); a length rather than a value, so the exported graph's window follows it."""
        cfg = self.cfg
        chunk, per_chunk = cfg.chunk_frames, cfg.chunk_tokens
        window = cfg.window_tokens if attention_window is None else attention_window.shape[0]
        b, t, m = features.shape
        lengths = feature_lengths.to(torch.int64)

        # 1. zero the frames past each length, pad time to whole chunks: [B * chunks, 1, n_mels, chunk]
        frame = torch.arange(t, device=features.device)
        x = features * (frame[None, :] < lengths[:, None]).to(features.dtype)[:, :, None]
        n_chunks = (t + chunk - 1) // chunk
        x = torch.cat([x, x.new_zeros(b, chunk - 1, m)], dim=1)[:, : n_chunks * chunk]
        x = x.reshape(b * n_chunks, chunk, m).transpose(1, 2).unsqueeze(1)

        # 2. the convolutions; a chunk of an utterance shorter than one chunk is not padded in the reference, so
        # each layer's output past its valid length is zeroed there (= the convolution's own zero padding)
        short = torch.where(lengths < chunk, lengths, torch.full_like(lengths, chunk))
        valid = short[:, None].expand(b, n_chunks).reshape(-1)
        for conv in (self.conv2d1, self.conv2d2, self.conv2d3):
            x = F.gelu(conv(x))
            valid = (valid - 1) // 2 + 1
            pos = torch.arange(x.shape[3], device=x.device)
            x = x * (pos[None, :] < valid[:, None]).to(x.dtype)[:, None, None, :]
        n, c, f, tt = x.shape
        x = self.conv_out(x.permute(0, 3, 1, 2).reshape(n, tt, c * f))  # [B * chunks, per_chunk, d]
        x = x + self.chunk_pe[None, :, :].to(x.dtype)

        # 3. tokens of all chunks in order; pad to whole windows: [B * windows, window, d]
        n_tokens = audio_token_lengths(lengths, chunk)
        x = x.reshape(b, n_chunks * per_chunk, cfg.d_model)
        total = n_chunks * per_chunk
        n_windows = (total + window - 1) // window
        x = torch.cat([x, x.new_zeros(b, window - 1, cfg.d_model)], dim=1)[:, : n_windows * window]
        x = x.reshape(b * n_windows, window, cfg.d_model)
        token = torch.arange(window, device=x.device)[None, None, :] + (
            torch.arange(n_windows, device=x.device) * window)[None, :, None]  # [1, windows, window]
        keep = token < n_tokens[:, None, None]  # [B, windows, window]
        key_bias = (~keep).to(x.dtype).reshape(b * n_windows, 1, 1, window) * _NEG

        # 4. windowed Transformer layers, 5. projection to the LLM width
        for layer in self.layers:
            x = layer(x, key_bias)
        x = x.reshape(b, n_windows * window, cfg.d_model)
        return self.proj2(F.gelu(self.proj1(self.ln_post(x)))), n_tokens  # last axis static in the graph

    def load_release_state(self, state: Mapping[str, torch.Tensor], prefix: str = "thinker.audio_tower.") -> None:
        """Load the release's ``thinker.audio_tower.*`` tensors (strict: every tensor, every shape)."""
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        missing, unexpected = self.load_state_dict(own, strict=False)
        if missing or unexpected:
            raise KeyError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def token_rate_hz(cfg: AudioEncoderConfig) -> float:
    """Audio tokens per second of whole chunks (13 per 100 frames of 10 ms: 13 Hz)."""
    return cfg.chunk_tokens / (cfg.chunk_frames * 0.01)

