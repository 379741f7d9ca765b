"""Our PyTorch re-implementation of Fun-ASR-Nano's audio path: FunASR's ``SenseVoiceEncoderSmall`` (SAN-M blocks)
and the ``Transformer`` adaptor (``funasr/models/llm_asr/adaptor.py``), with the official parameter names so the
released ``audio_encoder.*`` / ``audio_adaptor.*`` tensors load unchanged. Inference only (no dropout, no
streaming chunk path). ``tests/test_fun_asr_nano_parity.py`` compares it with the official modules.

:class:`NanoEncoderGraph` is what the bundle's ONNX encoder graph computes: features -> encoder -> adaptor -> the
first ``ceil(T_lfr / 8)`` adaptor frames (what the reference inserts into the prompt).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NanoAudioConfig", "NanoEncoderGraph", "SenseVoiceEncoderSmall", "TransformerAdaptor",
           "nano_token_lengths", "released_audio_config", "tiny_audio_config"]


@dataclass(frozen=True)
class NanoAudioConfig:
    """Shapes of the encoder (``audio_encoder_conf``) and adaptor (``audio_adaptor_conf``)."""

    input_size: int = 560  # LFR feature width (7 x 80)
    output_size: int = 512  # encoder width
    attention_heads: int = 4
    linear_units: int = 2048  # encoder FFN
    num_blocks: int = 50  # encoders0 (1) + encoders (num_blocks - 1)
    tp_blocks: int = 20
    kernel_size: int = 11  # FSMN depthwise kernel
    sanm_shfit: int = 0  # (sic, FunASR's spelling) extra left padding of the FSMN
    adaptor_downsample_rate: int = 1
    adaptor_ffn_dim: int = 2048
    llm_dim: int = 1024
    adaptor_layers: int = 2
    adaptor_heads: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


def released_audio_config() -> NanoAudioConfig:
    """Fun-ASR-Nano-2512's shapes."""
    return NanoAudioConfig()


def tiny_audio_config(llm_dim: int = 64) -> NanoAudioConfig:
    """The same architecture, small enough for the default tests."""
    return NanoAudioConfig(output_size=32, attention_heads=2, linear_units=64, num_blocks=3, tp_blocks=2,
                           adaptor_ffn_dim=64, llm_dim=llm_dim, adaptor_layers=2, adaptor_heads=8)


def nano_token_lengths(rows: torch.Tensor) -> torch.Tensor:
    """The reference's audio-token count for ``rows`` LFR rows (``ceil(rows / 8)``, computed its way)."""
    olens = 1 + torch.div(rows - 3 + 2, 2, rounding_mode="floor")
    olens = 1 + torch.div(olens - 3 + 2, 2, rounding_mode="floor")
    return torch.div(olens - 1, 2, rounding_mode="floor") + 1


class _LayerNorm(nn.LayerNorm):
    """FunASR's SenseVoice LayerNorm: computed in float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                            self.eps).type_as(x)


class _FeedForward(nn.Module):
    def __init__(self, idim: int, hidden: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden)
        self.w_2 = nn.Linear(hidden, idim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(torch.relu(self.w_1(x)))


def _masked_softmax_attend(q, k, v, mask):
    """softmax(q k^T) v with keys past ``mask`` [B, 1, T] excluded (their weights set to 0, as FunASR does)."""
    scores = torch.matmul(q, k.transpose(-2, -1))
    pad = mask.unsqueeze(1).eq(0)  # [B, 1, 1, T]
    attn = torch.softmax(scores.masked_fill(pad, -float("inf")), dim=-1).masked_fill(pad, 0.0)
    return torch.matmul(attn, v)


class _SanmAttention(nn.Module):
    """``MultiHeadedAttentionSANM``: fused q/k/v, global attention plus an FSMN memory on v."""

    def __init__(self, n_head: int, in_feat: int, n_feat: int, kernel_size: int, sanm_shfit: int = 0) -> None:
        super().__init__()
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_q_k_v = nn.Linear(in_feat, n_feat * 3)
        self.fsmn_block = nn.Conv1d(n_feat, n_feat, kernel_size, stride=1, padding=0, groups=n_feat, bias=False)
        left = (kernel_size - 1) // 2 + sanm_shfit
        self.pad = (left, kernel_size - 1 - left)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = torch.split(self.linear_q_k_v(x), self.h * self.d_k, dim=-1)
        q_h, k_h, v_h = (z.reshape(b, t, self.h, self.d_k).transpose(1, 2) for z in (q, k, v))
        m = mask.reshape(b, -1, 1)
        vm = v * m
        fsmn = self.fsmn_block(F.pad(vm.transpose(1, 2), self.pad)).transpose(1, 2)
        fsmn = (fsmn + vm) * m
        att = _masked_softmax_attend(q_h * self.d_k ** (-0.5), k_h, v_h, mask)
        att = att.transpose(1, 2).reshape(b, t, self.h * self.d_k)
        return self.linear_out(att) + fsmn


class _SanmLayer(nn.Module):
    """``EncoderLayerSANM`` (pre-LN); no attention residual when the input width differs (``encoders0``)."""

    def __init__(self, in_size: int, size: int, cfg: NanoAudioConfig) -> None:
        super().__init__()
        self.self_attn = _SanmAttention(cfg.attention_heads, in_size, size, cfg.kernel_size, cfg.sanm_shfit)
        self.feed_forward = _FeedForward(size, cfg.linear_units)
        self.norm1 = _LayerNorm(in_size)
        self.norm2 = _LayerNorm(size)
        self.residual = in_size == size

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        att = self.self_attn(self.norm1(x), mask)
        x = x + att if self.residual else att
        return x + self.feed_forward(self.norm2(x))


def sinusoid_encoding(t: int, depth: int, dtype=torch.float32) -> torch.Tensor:
    """FunASR's ``SinusoidalPositionEncoder`` at positions 1..t: [1, t, depth] = [sin | cos]."""
    positions = torch.arange(1, t + 1, dtype=dtype)
    increment = torch.log(torch.tensor([10000.0], dtype=dtype)) / (depth / 2 - 1)
    inv = torch.exp(torch.arange(depth // 2, dtype=dtype) * (-increment))
    scaled = positions[None, :, None] * inv[None, None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=2)


class SenseVoiceEncoderSmall(nn.Module):
    def __init__(self, cfg: NanoAudioConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoders0 = nn.ModuleList([_SanmLayer(cfg.input_size, cfg.output_size, cfg)])
        self.encoders = nn.ModuleList([_SanmLayer(cfg.output_size, cfg.output_size, cfg)
                                       for _ in range(cfg.num_blocks - 1)])
        self.tp_encoders = nn.ModuleList([_SanmLayer(cfg.output_size, cfg.output_size, cfg)
                                          for _ in range(cfg.tp_blocks)])
        self.after_norm = _LayerNorm(cfg.output_size)
        self.tp_norm = _LayerNorm(cfg.output_size)

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        t = xs.shape[1]
        mask = (torch.arange(t, device=xs.device)[None, :] < lengths[:, None]).to(xs.dtype)[:, None, :]
        xs = xs * self.cfg.output_size ** 0.5
        xs = xs + sinusoid_encoding(t, xs.shape[-1], xs.dtype)
        for layer in (*self.encoders0, *self.encoders):
            xs = layer(xs, mask)
        xs = self.after_norm(xs)
        for layer in self.tp_encoders:
            xs = layer(xs, mask)
        return self.tp_norm(xs)


class _AdaptorAttention(nn.Module):
    """FunASR's transformer ``MultiHeadedAttention`` (separate biased q/k/v/out)."""

    def __init__(self, n_head: int, n_feat: int) -> None:
        super().__init__()
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        q, k, v = (lin(x).view(b, -1, self.h, self.d_k).transpose(1, 2)
                   for lin in (self.linear_q, self.linear_k, self.linear_v))
        att = _masked_softmax_attend(q / math.sqrt(self.d_k), k, v, mask)
        return self.linear_out(att.transpose(1, 2).reshape(b, -1, self.h * self.d_k))


class _AdaptorLayer(nn.Module):
    """FunASR's transformer ``EncoderLayer`` (pre-LN, LayerNorm eps 1e-12, ReLU FFN of width size // 4)."""

    def __init__(self, size: int, heads: int) -> None:
        super().__init__()
        self.self_attn = _AdaptorAttention(heads, size)
        self.feed_forward = _FeedForward(size, size // 4)
        self.norm1 = nn.LayerNorm(size, eps=1e-12)
        self.norm2 = nn.LayerNorm(size, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), mask)
        return x + self.feed_forward(self.norm2(x))


class TransformerAdaptor(nn.Module):
    """``adaptor.Transformer``: stack ``k`` frames (zero-padded), Linear-ReLU-Linear to the LLM width, 2 layers."""

    def __init__(self, cfg: NanoAudioConfig) -> None:
        super().__init__()
        self.k = cfg.adaptor_downsample_rate
        self.linear1 = nn.Linear(cfg.output_size * self.k, cfg.adaptor_ffn_dim)
        self.linear2 = nn.Linear(cfg.adaptor_ffn_dim, cfg.llm_dim)
        self.blocks = nn.ModuleList([_AdaptorLayer(cfg.llm_dim, cfg.adaptor_heads)
                                     for _ in range(cfg.adaptor_layers)]) if cfg.adaptor_layers > 0 else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, d = x.shape
        chunks = (t - 1) // self.k + 1
        x = F.pad(x, (0, 0, 0, chunks * self.k - t)).reshape(b, chunks, d * self.k)
        x = self.linear2(torch.relu(self.linear1(x)))
        olens = torch.div(lengths - 1, self.k, rounding_mode="floor") + 1
        mask = (torch.arange(chunks, device=x.device)[None, :] < olens[:, None])[:, None, :]
        for block in self.blocks or ():
            x = block(x, mask)
        return x, olens


class NanoEncoderGraph(nn.Module):
    """features [B, T_lfr, 560], feature_lengths [B] -> audio_embeds [B, max N, llm_dim], audio_embed_lengths [B]
    with N = the reference's token count; rows past an item's N are not meaningful (the runtime slices them off)."""

    def __init__(self, cfg: NanoAudioConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio_encoder = SenseVoiceEncoderSmall(cfg)
        self.audio_adaptor = TransformerAdaptor(cfg)

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.audio_encoder(features, feature_lengths)
        embeds, _ = self.audio_adaptor(enc, feature_lengths)
        n = nano_token_lengths(feature_lengths)
        return embeds[:, : n.max()], n

    @classmethod
    def build(cls, cfg: NanoAudioConfig, seed: int = 0) -> "NanoEncoderGraph":
        """Random init (seeded): LayerNorms at 1/0, matrices N(0, 1/fan_in) so activations stay O(1)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(cfg)
            for name, p in model.named_parameters():
                if p.ndim >= 2:
                    nn.init.normal_(p, 0.0, 1.0 / math.sqrt(p.shape[1] * (p.shape[2] if p.ndim == 3 else 1)))
                elif name.endswith("bias"):
                    nn.init.normal_(p, 0.0, 0.02)
        return model.eval()
