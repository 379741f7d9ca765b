"""Whisper tiny.en in PyTorch, built from the CTranslate2 weights (no transformers, no ctranslate2).

* :func:`log_mel` is Whisper's log-Mel front end in numpy (openai/whisper ``audio.py``: 25 ms Hann window,
  10 ms hop, 80 Slaney mel bins, log10, clamp to max-8, (x+4)/4).
* :class:`WhisperEncoder` / :class:`WhisperDecoder` are the two halves; :func:`load_whisper` fills them from
  ``model.bin`` with :mod:`ct2_reader`.
* :func:`greedy_decode` is a small greedy decoder (no timestamps, suppress lists from the CT2 config), used as
  the peer system in evaluation and as the proof that the reader is right.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .ct2_reader import read_ct2

SAMPLE_RATE = 16000  # Hz
N_FFT = 400  # samples, 25 ms
HOP = 160  # samples, 10 ms -> 100 frames/s
N_MELS = 80
CHUNK_FRAMES = 3000  # 30 s of features, the encoder's trained input length
ENC_FRAMES_MAX = 1500  # encoder output positions (50 Hz)


def _mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) with Slaney scale and Slaney norm (what Whisper ships)."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        f_sp = 200.0 / 3
        mels = f / f_sp
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = np.log(6.4) / 27.0
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        f_sp = 200.0 / 3
        freqs = f_sp * m
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = np.log(6.4) / 27.0
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)

    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    weights = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, None]
    return weights.astype(np.float32)


_MEL = _mel_filters()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def _vtlp_matrix(alpha: float, n_bins: int = N_FFT // 2 + 1, f_hi_ratio: float = 0.8) -> np.ndarray:
    """Linear-interpolation matrix [n_bins, n_bins] warping the frequency axis by ``alpha`` (VTLP, Jaitly & Hinton
    2013): f' = alpha f below a boundary, then a straight line to Nyquist -> Nyquist."""
    nyq = n_bins - 1.0
    bound = f_hi_ratio * nyq * min(alpha, 1.0) / alpha
    f = np.arange(n_bins, dtype=np.float64)
    warped = np.where(f <= bound, alpha * f, nyq - (nyq - alpha * bound) / (nyq - bound) * (nyq - f))
    src = np.interp(f, warped, f)  # which input bin lands on each output bin
    lo = np.clip(np.floor(src).astype(int), 0, n_bins - 1)
    hi = np.clip(lo + 1, 0, n_bins - 1)
    frac = src - lo
    m = np.zeros((n_bins, n_bins), np.float32)
    m[np.arange(n_bins), lo] += 1 - frac
    m[np.arange(n_bins), hi] += frac
    return m


def log_mel(audio: np.ndarray, pad_to_frames: int | None = None, warp: float | None = None) -> np.ndarray:
    """Whisper log-Mel of 16 kHz mono float audio -> [frames, 80] float32, frames = len(audio) // 160.

    ``pad_to_frames``: append zero samples first so the result has at least that many frames (Whisper pads
    the audio with 30 s of zeros before the STFT, so the clamp-to-max-8 sees the padding too).
    ``warp``: VTLP factor (training augmentation only; None = the runtime frontend, ``nim4asr_edge.frontend``).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if pad_to_frames is not None and len(audio) < pad_to_frames * HOP:
        audio = np.concatenate([audio, np.zeros(pad_to_frames * HOP - len(audio), np.float32)])
    n_frames = len(audio) // HOP
    if n_frames == 0:
        return np.zeros((0, N_MELS), np.float32)
    padded = np.pad(audio, (N_FFT // 2, N_FFT // 2), mode="reflect")
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    frames = padded[idx] * _WINDOW
    spec = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    if warp is not None and warp != 1.0:
        spec = spec @ _vtlp_matrix(warp).T
    mel = spec.astype(np.float32) @ _MEL.T
    logm = np.log10(np.maximum(mel, 1e-10))
    logm = np.maximum(logm, logm.max() - 8.0)
    return ((logm + 4.0) / 4.0).astype(np.float32)


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def forward(self, x, kv=None, mask=None, causal=False):
        b, t, d = x.shape
        src = x if kv is None else kv
        h = self.heads
        q = self.q(x).view(b, t, h, -1).transpose(1, 2)
        k = self.k(src).view(b, src.shape[1], h, -1).transpose(1, 2)
        v = self.v(src).view(b, src.shape[1], h, -1).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, cross: bool):
        super().__init__()
        self.attn_ln = nn.LayerNorm(d)
        self.attn = _Attention(d, heads)
        self.cross_ln = nn.LayerNorm(d) if cross else None
        self.cross = _Attention(d, heads) if cross else None
        self.mlp_ln = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, xa=None, mask=None, causal=False):
        x = x + self.attn(self.attn_ln(x), mask=mask, causal=causal)
        if self.cross is not None:
            x = x + self.cross(self.cross_ln(x), kv=xa)
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    """features [B, T, 80] (T <= 3000) -> hidden [B, ceil(T/2), 384]; positions sliced to the length."""

    def __init__(self, n_mels=80, d=384, heads=6, layers=4, n_ctx=ENC_FRAMES_MAX):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("pos", torch.zeros(n_ctx, d))
        self.blocks = nn.ModuleList(_Block(d, heads, cross=False) for _ in range(layers))
        self.ln_post = nn.LayerNorm(d)

    def forward(self, features: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = F.gelu(self.conv1(features.transpose(1, 2)))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.pos[: x.shape[1]].to(x.dtype)
        mask = None
        if key_mask is not None:  # [B, T'] True = valid; masks keys only
            mask = key_mask[:, None, None, :]
        for blk in self.blocks:
            x = blk(x, mask=mask)
        return self.ln_post(x)


class WhisperDecoder(nn.Module):
    def __init__(self, vocab=51864, d=384, heads=6, layers=4, n_ctx=448):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.register_buffer("pos", torch.zeros(n_ctx, d))
        self.blocks = nn.ModuleList(_Block(d, heads, cross=True) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor, xa: torch.Tensor) -> torch.Tensor:
        x = self.tok(tokens) + self.pos[: tokens.shape[1]]
        for blk in self.blocks:
            x = blk(x, xa=xa, causal=True)
        return self.ln(x) @ self.tok.weight.T


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.astype(np.float32)))


def _load_attn_self(att: _Attention, v: dict, p: str):
    w, b = v[p + "linear_0/weight"], v[p + "linear_0/bias"]
    d = w.shape[1]
    att.q.weight.data, att.k.weight.data, att.v.weight.data = _t(w[:d]), _t(w[d:2 * d]), _t(w[2 * d:])
    att.q.bias.data, att.v.bias.data = _t(b[:d]), _t(b[2 * d:])
    if np.abs(b[d:2 * d].astype(np.float32)).max() != 0:
        raise ValueError(f"{p}: non-zero key bias; Whisper keys have none")
    att.out.weight.data, att.out.bias.data = _t(v[p + "linear_1/weight"]), _t(v[p + "linear_1/bias"])


def _load_ln(ln: nn.LayerNorm, v: dict, p: str):
    ln.weight.data, ln.bias.data = _t(v[p + "gamma"]), _t(v[p + "beta"])


def _load_ffn(mlp: nn.Sequential, v: dict, p: str):
    mlp[0].weight.data, mlp[0].bias.data = _t(v[p + "linear_0/weight"]), _t(v[p + "linear_0/bias"])
    mlp[2].weight.data, mlp[2].bias.data = _t(v[p + "linear_1/weight"]), _t(v[p + "linear_1/bias"])


@dataclass
class Whisper:
    encoder: WhisperEncoder
    decoder: WhisperDecoder
    config: dict  # CT2 config.json (suppress ids)
    tokenizer: object  # tokenizers.Tokenizer
    used: int  # number of CT2 variables consumed (all must be)


def load_whisper(model_dir: str | Path) -> Whisper:
    """Build encoder+decoder from a CTranslate2 Whisper tiny directory; every weight variable is consumed."""
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    ct2 = read_ct2(model_dir / "model.bin")
    if ct2.spec_name != "WhisperSpec":
        raise ValueError(f"expected WhisperSpec, got {ct2.spec_name}")
    v = ct2.variables
    n_enc = len({m.group(1) for k in v if (m := re.match(r"encoder/layer_(\d+)/", k))})
    n_dec = len({m.group(1) for k in v if (m := re.match(r"decoder/layer_(\d+)/", k))})
    d = v["encoder/conv1/weight"].shape[0]
    heads = int(v["encoder/num_heads"])
    used = set()

    class _Track(dict):
        def __getitem__(self, k):
            used.add(k)
            return v[k]

    tv = _Track()
    enc = WhisperEncoder(n_mels=v["encoder/conv1/weight"].shape[1], d=d, heads=heads, layers=n_enc,
                         n_ctx=v["encoder/position_encodings/encodings"].shape[0])
    enc.conv1.weight.data, enc.conv1.bias.data = _t(tv["encoder/conv1/weight"]), _t(tv["encoder/conv1/bias"])
    enc.conv2.weight.data, enc.conv2.bias.data = _t(tv["encoder/conv2/weight"]), _t(tv["encoder/conv2/bias"])
    enc.pos.copy_(_t(tv["encoder/position_encodings/encodings"]))
    for i, blk in enumerate(enc.blocks):
        p = f"encoder/layer_{i}/"
        _load_ln(blk.attn_ln, tv, p + "self_attention/layer_norm/")
        _load_attn_self(blk.attn, tv, p + "self_attention/")
        _load_ln(blk.mlp_ln, tv, p + "ffn/layer_norm/")
        _load_ffn(blk.mlp, tv, p + "ffn/")
    _load_ln(enc.ln_post, tv, "encoder/layer_norm/")

    dec = WhisperDecoder(vocab=v["decoder/embeddings/weight"].shape[0], d=d, heads=int(v["decoder/num_heads"]),
                         layers=n_dec, n_ctx=v["decoder/position_encodings/encodings"].shape[0])
    dec.tok.weight.data = _t(tv["decoder/embeddings/weight"])
    dec.pos.copy_(_t(tv["decoder/position_encodings/encodings"]))
    for i, blk in enumerate(dec.blocks):
        p = f"decoder/layer_{i}/"
        _load_ln(blk.attn_ln, tv, p + "self_attention/layer_norm/")
        _load_attn_self(blk.attn, tv, p + "self_attention/")
        _load_ln(blk.cross_ln, tv, p + "attention/layer_norm/")
        w, b = tv[p + "attention/linear_1/weight"], tv[p + "attention/linear_1/bias"]
        blk.cross.q.weight.data, blk.cross.q.bias.data = _t(tv[p + "attention/linear_0/weight"]), _t(tv[p + "attention/linear_0/bias"])
        blk.cross.k.weight.data, blk.cross.v.weight.data, blk.cross.v.bias.data = _t(w[:d]), _t(w[d:]), _t(b[d:])
        if np.abs(b[:d].astype(np.float32)).max() != 0:
            raise ValueError(f"{p}: non-zero cross-attention key bias")
        blk.cross.out.weight.data, blk.cross.out.bias.data = _t(tv[p + "attention/linear_2/weight"]), _t(tv[p + "attention/linear_2/bias"])
        _load_ln(blk.mlp_ln, tv, p + "ffn/layer_norm/")
        _load_ffn(blk.mlp, tv, p + "ffn/")
    _load_ln(dec.ln, tv, "decoder/layer_norm/")
    # flags we rely on: pre-norm, GELU (ct2 ActivationType 3 = GELU), no embedding scaling, no alibi
    flags = {"decoder/pre_norm": 1, "decoder/activation": 3, "decoder/scale_embeddings": 0, "decoder/alibi": 0}
    for k, want in flags.items():
        if int(tv[k]) != want:
            raise ValueError(f"{k}={int(v[k])}, this module assumes {want}")
    meta = {k for k in v if k.endswith(("num_heads", "alignment_heads", "alignment_layer", "start_from_zero_embedding"))}
    used |= meta | set(ct2.aliases)
    missing = set(v) - used
    if missing:
        raise ValueError(f"CT2 variables not mapped: {sorted(missing)}")
    enc.eval()
    dec.eval()
    for p_ in list(enc.parameters()) + list(dec.parameters()):
        p_.requires_grad_(False)
    cfg = json.loads((model_dir / "config.json").read_text())
    return Whisper(enc, dec, cfg, Tokenizer.from_file(str(model_dir / "tokenizer.json")), len(used))


def encode(enc: WhisperEncoder, audio: np.ndarray, mode: str = "pad30") -> torch.Tensor:
    """Encode one clip -> [T_enc, 384] covering the audio (50 Hz).

    mode "pad30": features of the audio padded to 30 s (as Whisper was trained), keep frames covering the audio.
    mode "true": features of the audio only, positions sliced to its length.
    """
    n = len(audio) // HOP
    keep = (n + 1) // 2
    if mode == "pad30":
        if n > CHUNK_FRAMES:
            raise ValueError("clip longer than 30 s")
        feats = log_mel(audio, pad_to_frames=CHUNK_FRAMES)[:CHUNK_FRAMES]
    elif mode == "true":
        feats = log_mel(audio)
    else:
        raise ValueError(mode)
    with torch.no_grad():
        h = enc(torch.from_numpy(feats)[None])[0]
    return h[:keep] if mode == "pad30" else h


SOT, EOT, NO_TIMESTAMPS = 50257, 50256, 50362


def greedy_decode(w: Whisper, xa: torch.Tensor, max_tokens: int = 200) -> str:
    """Greedy text from encoder states xa [T, 384] (no timestamps; suppress lists from config.json)."""
    suppress = torch.tensor(sorted(set(w.config.get("suppress_ids", [])) | set(range(50257, 51864)) - {EOT}))
    begin = torch.tensor(w.config.get("suppress_ids_begin", [220, EOT]))
    toks = [SOT, NO_TIMESTAMPS]
    out: list[int] = []
    with torch.no_grad():
        for i in range(max_tokens):
            logits = w.decoder(torch.tensor([toks]), xa[None])[0, -1]
            logits[suppress] = -float("inf")
            if i == 0:
                logits[begin] = -float("inf")
            t = int(logits.argmax())
            if t == EOT:
                break
            out.append(t)
            toks.append(t)
    return w.tokenizer.decode(out).strip()
