"""Reference PyTorch Conformer encoder of NIM4-ASR (FireRedASR-AED style).

Shape of the computation (``docs/FORMAT.md``):

* conv2d 4x subsampling stem: two ``Conv2d(kernel=3, stride=2)`` without padding (ReLU after each), then a Linear to
  ``d_model``; ``out_len = ((T - 1) // 2 - 1) // 2`` (7 input frames give the first encoder frame, 100 Hz -> 25 Hz);
* ``n_layers`` Conformer blocks, each ``x + 1/2 FF -> x + MHSA(RoPE) -> x + Conv -> x + 1/2 FF -> LayerNorm``.

Masks: a padding mask from the lengths, and optionally a dynamic-chunk mask (``chunk_mask``) for chunk training and
chunked inference.  In chunk mode the depthwise convolution is limited in the same way as attention (it sees no frame
right of the current chunk), so the outputs of a chunk never depend on later *encoder frames*.  The stem is not
chunked: encoder frame t reads feature frames 4t .. 4t+6, so encoder chunk c (frames cS .. cS+S-1) reads feature
frames 4cS .. 4cS+4S+2 -- its own 4S frames plus 3 frames (30 ms) of the next chunk.  The streaming step
(``forward_chunk`` methods, ``nim4asr.StreamingEncoderGraph``) takes that 4S+3-frame window and so equals the chunked
whole-utterance forward exactly; the price is 30 ms of look-ahead, not a different model (docs/FORMAT.md).

The module is written for ONNX export with a dynamic time axis: lengths are computed with torch ops, there is no
Python control flow on tensor values, and full-context mode (``chunk_size <= 0``, the offline graph) uses only
standard ops (Conv, MatMul, Softmax, LayerNorm, Where).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig

__all__ = [
    "ConformerEncoder",
    "ConformerBlock",
    "Conv2dSubsampling",
    "chunk_mask",
    "rotary_cos_sin",
    "rotary_cos_sin_at",
    "subsampled_lengths",
]


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Encoder frames for ``lengths`` input frames: ``((T - 1) // 2 - 1) // 2``, never negative."""
    out = torch.div(lengths - 1, 2, rounding_mode="floor")
    out = torch.div(out - 1, 2, rounding_mode="floor")
    return out.clamp(min=0)


def chunk_mask(
    size: int | torch.Tensor, chunk_size: int, left_chunks: int = -1, device: torch.device | None = None
) -> torch.Tensor:
    """``[size, size]`` bool mask, True where query frame i may attend to key frame j.

    Frame i sits in chunk ``i // chunk_size``; it sees every frame of its own chunk and of the ``left_chunks``
    chunks before it (all earlier chunks when ``left_chunks < 0``), never a later chunk.
    ``chunk_size <= 0`` means full context (all True).
    """
    idx = torch.arange(size, device=device)
    if chunk_size <= 0:
        return torch.ones(idx.shape[0], idx.shape[0], dtype=torch.bool, device=device)
    chunk = torch.div(idx, chunk_size, rounding_mode="floor")
    q = chunk.unsqueeze(1)
    k = chunk.unsqueeze(0)
    mask = k <= q
    if left_chunks >= 0:
        mask = mask & (k >= q - left_chunks)
    return mask


class Conv2dSubsampling(nn.Module):
    """4x time subsampling: Conv2d(1->C, 3, stride 2) ReLU Conv2d(C->C, 3, stride 2) ReLU, Linear(C*F'' -> d_model)."""

    def __init__(self, n_mels: int, channels: int, d_model: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=2)
        freq = ((n_mels - 1) // 2 - 1) // 2  # mel bins left after the two stride-2 convolutions
        if freq < 1:
            raise ValueError(f"n_mels={n_mels} is too small for the 4x conv2d subsampling stem (needs >= 7)")
        self.out = nn.Linear(channels * freq, d_model)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = features.unsqueeze(1)  # [B, 1, T, F]
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))  # [B, C, T', F'']
        b, c, t, f = x.shape
        x = x.transpose(1, 2).reshape(b, t, c * f)
        return self.out(x), subsampled_lengths(lengths)


class FeedForward(nn.Module):
    """LayerNorm, Linear(d -> ff), SiLU, Linear(ff -> d)."""

    def __init__(self, d_model: int, ff_dim: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.linear1 = nn.Linear(d_model, ff_dim)
        self.linear2 = nn.Linear(ff_dim, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(F.silu(self.linear1(self.norm(x))))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary_cos_sin(
    n_frames: int | torch.Tensor, head_dim: int, base: float, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables ``[T, head_dim]`` of rotary position embeddings (rotate-half layout, as in Llama/Qwen)."""
    return rotary_cos_sin_at(torch.arange(n_frames, device=device), head_dim, base, dtype)


def rotary_cos_sin_at(
    positions: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables ``[T, head_dim]`` at absolute integer ``positions`` [T] (the streaming step passes
    ``offset + arange(chunk)``; the same float32 arithmetic as the whole-utterance tables, so values are equal)."""
    device = positions.device
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    pos = positions.to(torch.float32)
    freqs = pos.unsqueeze(1) * inv_freq.unsqueeze(0)  # [T, head_dim / 2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class RotarySelfAttention(nn.Module):
    """Multi-head self-attention with rotary position embeddings on queries and keys."""

    def __init__(self, d_model: int, n_heads: int, rope_base: float, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.rope_base = rope_base
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """``attn_mask``: bool ``[B, T, T]``, True = may attend.  Every row must have at least one True."""
        q, k, v = self._qkv(x, cos, sin)
        return self._attend(q, k, v, attn_mask)

    def forward_chunk(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        key_cache: torch.Tensor,
        value_cache: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One streaming chunk ``x`` [B, T, d] against cached rotated keys / values ``[B, H, C, hd]`` of the ``C``
        frames before it.  ``attn_mask``: bool ``[B, T, C + T]`` over (cache, chunk) keys.  Returns
        ``(out [B, T, d], keys [B, H, C + T, hd], values [B, H, C + T, hd])``; the caller keeps the last ``C``."""
        q, k, v = self._qkv(x, cos, sin)
        k = torch.cat([key_cache, k], dim=2)
        v = torch.cat([value_cache, v], dim=2)
        return self._attend(q, k, v, attn_mask), k, v

    def _qkv(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries and keys rotated at their absolute positions, and values: each ``[B, H, T, hd]``."""
        b, t, _ = x.shape
        h = self.norm(x)
        q = self.q_proj(h).reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, T, hd]
        k = self.k_proj(h).reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        return q, k, v

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = q.shape
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        scores = scores.masked_fill(~attn_mask.unsqueeze(1), float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
        return self.out_proj(out)


class ConvModule(nn.Module):
    """LayerNorm, pointwise (Linear d -> 2d) + GLU, depthwise Conv1d, LayerNorm, SiLU, pointwise (Linear d -> d).

    Pointwise convolutions are Linear layers (same maths, MatMul in ONNX, so int8 dynamic quantisation covers them).
    Padding frames are zeroed before the depthwise convolution so they never leak into valid frames.
    """

    def __init__(self, d_model: int, kernel: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.pointwise_conv1 = nn.Linear(d_model, 2 * d_model)
        self.depthwise_conv = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.conv_norm = nn.LayerNorm(d_model, eps=eps)
        self.pointwise_conv2 = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor, chunk_size: int = -1, left_chunks: int = -1
    ) -> torch.Tensor:
        """``valid``: bool ``[B, T]``."""
        h = self._depthwise_input(x, valid)
        if chunk_size > 0:
            h = self._chunked_depthwise(h, chunk_size, left_chunks)
        else:
            h = self.depthwise_conv(h)
        return self._output(h)

    def forward_chunk(
        self, x: torch.Tensor, valid: torch.Tensor, conv_cache: torch.Tensor, left_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming chunk ``x`` [B, T, d]; ``conv_cache`` [B, D, r]: the depthwise input of the ``r =
        kernel // 2`` frames before the chunk (zeros before the stream start).  ``left_frames``: how many frames
        of left context the chunk may see (``left_chunks * chunk``; frames of the cache further back are zeroed,
        as ``_chunked_depthwise`` does).  Returns ``(out [B, T, d], new_cache [B, D, r])``."""
        conv = self.depthwise_conv
        r = conv.kernel_size[0] // 2
        h = self._depthwise_input(x, valid)  # [B, D, T]
        t = h.shape[2]
        seg = torch.cat([conv_cache, h], dim=2)  # [B, D, r + T]
        new_cache = seg[:, :, t:]
        if left_frames < r:
            keep = torch.arange(r + t, device=x.device) >= r - left_frames
            seg = seg * keep.to(seg.dtype)
        seg = F.pad(seg, (0, r))  # nothing to the right of the chunk
        out = F.conv1d(seg, conv.weight, conv.bias, groups=conv.weight.shape[0])  # [B, D, T]
        return self._output(out), new_cache

    def _depthwise_input(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Pointwise conv + GLU with padding frames zeroed, channels first: ``[B, D, T]``."""
        h = F.glu(self.pointwise_conv1(self.norm(x)), dim=-1)
        h = h.masked_fill(~valid.unsqueeze(-1), 0.0)
        return h.transpose(1, 2)

    def _output(self, h: torch.Tensor) -> torch.Tensor:
        """Depthwise output ``[B, D, T]`` -> LayerNorm, SiLU, pointwise: ``[B, T, d]``."""
        return self.pointwise_conv2(F.silu(self.conv_norm(h.transpose(1, 2))))

    def _chunked_depthwise(self, x: torch.Tensor, chunk_size: int, left_chunks: int) -> torch.Tensor:
        """Depthwise conv where frame t of chunk c sees no frame after chunk c and none before its left context."""
        conv = self.depthwise_conv
        r = conv.kernel_size[0] // 2
        b, d, t = x.shape
        n = (t + chunk_size - 1) // chunk_size
        x = F.pad(x, (r, n * chunk_size - t))
        seg = x.unfold(2, chunk_size + r, chunk_size)  # [B, D, n, r + chunk]: r frames of left context + the chunk
        if left_chunks >= 0 and left_chunks * chunk_size < r:
            keep = torch.arange(chunk_size + r, device=x.device) >= r - left_chunks * chunk_size
            seg = seg * keep.to(seg.dtype)
        seg = F.pad(seg, (0, r))  # nothing to the right of the chunk
        seg = seg.permute(0, 2, 1, 3).reshape(b * n, d, chunk_size + 2 * r)
        out = F.conv1d(seg, conv.weight, conv.bias, groups=d)  # [B * n, D, chunk]
        out = out.reshape(b, n, d, chunk_size).permute(0, 2, 1, 3).reshape(b, d, n * chunk_size)
        return out[:, :, :t]


class ConformerBlock(nn.Module):
    """Macaron Conformer block: x + FF/2, x + MHSA, x + Conv, x + FF/2, LayerNorm."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        eps = cfg.layer_norm_eps
        self.ff1 = FeedForward(cfg.d_model, cfg.ff_dim, eps)
        self.attn = RotarySelfAttention(cfg.d_model, cfg.n_heads, cfg.rope_base, eps)
        self.conv = ConvModule(cfg.d_model, cfg.conv_kernel, eps)
        self.ff2 = FeedForward(cfg.d_model, cfg.ff_dim, eps)
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=eps)

    def forward(
        self,
        x: torch.Tensor,
        valid: torch.Tensor,
        attn_mask: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        chunk_size: int = -1,
        left_chunks: int = -1,
    ) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(x, attn_mask, cos, sin)
        x = x + self.conv(x, valid, chunk_size, left_chunks)
        x = x + 0.5 * self.ff2(x)
        return self.final_norm(x)

    def forward_chunk(
        self,
        x: torch.Tensor,
        valid: torch.Tensor,
        attn_mask: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        key_cache: torch.Tensor,
        value_cache: torch.Tensor,
        conv_cache: torch.Tensor,
        left_frames: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One streaming chunk through the block (see ``RotarySelfAttention.forward_chunk`` and
        ``ConvModule.forward_chunk``).  Returns ``(x, keys, values, new_conv_cache)``; keys/values span the cache
        and the chunk."""
        x = x + 0.5 * self.ff1(x)
        a, keys, values = self.attn.forward_chunk(x, attn_mask, cos, sin, key_cache, value_cache)
        x = x + a
        c, new_conv_cache = self.conv.forward_chunk(x, valid, conv_cache, left_frames)
        x = x + c
        x = x + 0.5 * self.ff2(x)
        return self.final_norm(x), keys, values, new_conv_cache


class ConformerEncoder(nn.Module):
    """Conformer encoder: fbank ``[B, T, n_mels]`` -> ``[B, T', d_model]`` at 1/4 of the frame rate."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.d_model % cfg.n_heads or (cfg.d_model // cfg.n_heads) % 2:
            raise ValueError(f"d_model={cfg.d_model} must split into {cfg.n_heads} heads of even size")
        if cfg.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel={cfg.conv_kernel} must be odd")
        self.cfg = cfg
        self.subsampling = Conv2dSubsampling(cfg.n_mels, cfg.subsampling_channels, cfg.d_model)
        self.layers = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.n_layers))

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk_size: int = -1, left_chunks: int = -1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ``features`` [B, T, n_mels] with valid ``lengths`` [B] (int64).

        ``chunk_size`` (encoder frames, <= 0: full context) and ``left_chunks`` (< 0: unlimited) select the
        dynamic-chunk mask.  Returns ``(out [B, T', d_model], out_lengths [B])``; frames at or after
        ``out_lengths`` are zero.
        """
        x, out_lengths = self.subsampling(features, lengths)
        t = x.shape[1]
        frame = torch.arange(t, device=x.device)
        valid = frame.unsqueeze(0) < out_lengths.unsqueeze(1)  # [B, T']
        x = x * valid.unsqueeze(-1).to(x.dtype)
        # Key mask: valid keys inside the chunk window; the diagonal is always allowed so that padding rows
        # (discarded anyway) never produce NaN from an all-masked softmax.
        attn_mask = valid.unsqueeze(1)  # [B, 1, T'] keys
        if chunk_size > 0:
            attn_mask = attn_mask & chunk_mask(t, chunk_size, left_chunks, device=x.device).unsqueeze(0)
        eye = frame.unsqueeze(0) == frame.unsqueeze(1)
        attn_mask = attn_mask | eye.unsqueeze(0)  # [B, T', T']
        cos, sin = rotary_cos_sin(t, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base, x.device, x.dtype)
        for layer in self.layers:
            x = layer(x, valid, attn_mask, cos, sin, chunk_size, left_chunks)
        x = x * valid.unsqueeze(-1).to(x.dtype)
        return x, out_lengths
