"""The trainable glue (phoneme-CTC head, adaptor) and the frozen SmolLM2-135M-Instruct around it."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# the NIM4-ASR prompt (nim4asr_edge/prompt.py NIM4_PROMPT), ChatML as SmolLM2-Instruct uses
PROMPT_PREFIX = ("<|im_start|>system\nYou are a Multilingual Speech Recognition Model.<|im_end|>\n"
                 "<|im_start|>user\nTranscribe the speech into text ")
PROMPT_SUFFIX = ". Contextual hints: {context}.<|im_end|>\n<|im_start|>assistant\n"
CONTEXT_SEP = ", "
STOP = "<|im_end|>"


@dataclass(frozen=True)
class GlueConfig:
    enc_dim: int = 384  # Whisper tiny encoder width
    n_phonemes: int = 64  # CTC classes incl. blank (0)
    ctc_hidden: int = 512  # CTC MLP width
    stack: int = 8  # encoder frames concatenated per audio token (50 Hz -> 6.25 tokens/s, 160 ms as in NIM4)
    adaptor_hidden: int = 1024
    llm_hidden: int = 576  # SmolLM2-135M width
    dropout: float = 0.1
    # What the adaptor reads: "encoder" (the encoder's hidden states) or "posteriors" (the CTC head's phoneme
    # posteriors: the head hears real voices where an adaptor on the hidden states does not; README, fourth session)
    adaptor_input: str = "encoder"

    @property
    def adaptor_in(self) -> int:
        return self.n_phonemes if self.adaptor_input == "posteriors" else self.enc_dim

    def to_dict(self) -> dict:
        return asdict(self)


class CTCHead(nn.Module):
    """3-layer MLP -> phoneme logits (blank = 0)."""

    def __init__(self, c: GlueConfig):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(c.enc_dim), nn.Linear(c.enc_dim, c.ctc_hidden), nn.GELU(), nn.Dropout(c.dropout),
            nn.Linear(c.ctc_hidden, c.ctc_hidden), nn.GELU(), nn.Dropout(c.dropout),
            nn.Linear(c.ctc_hidden, c.n_phonemes))

    def forward(self, h):
        return self.net(h)


class Adaptor(nn.Module):
    """Concatenate ``stack`` consecutive frames (zero-padded to a multiple), 2-layer MLP into the LLM width."""

    def __init__(self, c: GlueConfig):
        super().__init__()
        self.stack = c.stack
        self.norm = nn.LayerNorm(c.adaptor_in * c.stack)
        self.fc1 = nn.Linear(c.adaptor_in * c.stack, c.adaptor_hidden)
        self.fc2 = nn.Linear(c.adaptor_hidden, c.llm_hidden)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, h):  # h [B, T, D] (frames past each item's length must already be zero)
        b, t, d = h.shape
        pad = (-t) % self.stack
        if pad:
            h = F.pad(h, (0, 0, 0, pad))
        x = h.reshape(b, (t + pad) // self.stack, d * self.stack)
        return self.fc2(self.drop(F.gelu(self.fc1(self.norm(x)))))


class Glue(nn.Module):
    def __init__(self, c: GlueConfig):
        super().__init__()
        self.config = c
        self.ctc_head = CTCHead(c)
        self.adaptor = Adaptor(c)

    def embed(self, h: torch.Tensor, ctc_logits: torch.Tensor | None, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Audio embeddings from the encoder output ``h`` [B, T, D] (zero past each item's frames) and the CTC
        head's logits on it; ``valid`` [B, T] marks real frames (posteriors past them are zeroed, like ``h``)."""
        if self.config.adaptor_input == "posteriors":
            p = F.softmax(ctc_logits, dim=-1)
            return self.adaptor(p if valid is None else p * valid[..., None].to(p.dtype))
        return self.adaptor(h)


def tokens_for(enc_frames: int, stack: int = 8) -> int:
    return math.ceil(enc_frames / stack)


def load_llm(gguf_path: Path):
    """SmolLM2-135M-Instruct from its GGUF (dequantised to fp32 by transformers), frozen, eval mode."""
    import logging

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    llm = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    llm.eval()
    for p in llm.parameters():
        p.requires_grad_(False)
    return tok, llm


def save_glue(glue: Glue, path: Path, extra: dict | None = None):
    torch.save({"config": glue.config.to_dict(), "state": glue.state_dict(), **(extra or {})}, path)


def load_glue(path: Path) -> tuple[Glue, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    g = Glue(GlueConfig(**{"adaptor_input": "encoder", **ck["config"]}))
    g.load_state_dict(ck["state"])
    g.eval()
    return g, ck
