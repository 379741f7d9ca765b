"""Heads on the Conformer output: the phoneme-CTC MLP and the frame-stacking adaptor into the LLM width."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PhonemeCTCHead", "Adaptor", "token_lengths"]


def token_lengths(enc_lengths: torch.Tensor, stack: int) -> torch.Tensor:
    """Audio tokens for ``enc_lengths`` encoder frames: ``ceil(enc_len / stack)``."""
    return torch.div(enc_lengths + (stack - 1), stack, rounding_mode="floor")


class PhonemeCTCHead(nn.Module):
    """3-layer MLP ``d_model -> hidden -> hidden -> n_phonemes`` (SiLU between), log-softmax; blank = class 0."""

    def __init__(self, d_model: int, hidden: int, n_phonemes: int):
        super().__init__()
        self.linear1 = nn.Linear(d_model, hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        self.linear3 = nn.Linear(hidden, n_phonemes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.linear1(x))
        x = F.silu(self.linear2(x))
        return torch.log_softmax(self.linear3(x), dim=-1)


class Adaptor(nn.Module):
    """Concatenate ``stack`` consecutive encoder frames, then ``Linear(stack*d -> hidden)``, SiLU,
    ``Linear(hidden -> llm_hidden)``.

    The encoder output is zero-padded at the end to a multiple of ``stack`` (the caller zeroes frames past each
    item's length, so a padded batch gives the same tokens as one item alone).
    """

    def __init__(self, d_model: int, stack: int, hidden: int, llm_hidden: int):
        super().__init__()
        if stack < 1:
            raise ValueError(f"stack={stack} must be >= 1")
        self.stack = stack
        self.linear1 = nn.Linear(stack * d_model, hidden)
        self.linear2 = nn.Linear(hidden, llm_hidden)

    def forward(self, x: torch.Tensor, enc_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` [B, T', d] -> (embeds [B, ceil(T'/stack), llm_hidden], token lengths [B])."""
        b, t, d = x.shape
        s = self.stack
        if s > 1:
            # Pad with s-1 zero frames and keep ceil(T'/s)*s of them: no Python arithmetic on the traced T'.
            x = torch.cat([x, x.new_zeros(b, s - 1, d)], dim=1)
            n_tokens = (t + s - 1) // s
            x = x[:, : n_tokens * s]
        x = x.reshape(b, -1, s * d)
        x = self.linear2(F.silu(self.linear1(x)))
        return x, token_lengths(enc_lengths, s)
