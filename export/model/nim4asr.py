"""The whole NIM4-ASR model (encoder, phoneme-CTC head, adaptor, Qwen3 LLM) and the exportable encoder graph."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .conformer import ConformerEncoder
from .heads import Adaptor, PhonemeCTCHead

__all__ = ["Nim4AsrModel", "EncoderGraph", "count_parameters", "ENCODER_INPUT_NAMES", "ENCODER_OUTPUT_NAMES"]

# docs/FORMAT.md, "Encoder ONNX graph (offline)": names and order are part of the bundle contract.
ENCODER_INPUT_NAMES = ("features", "feature_lengths")
ENCODER_OUTPUT_NAMES = ("audio_embeds", "audio_embed_lengths", "phoneme_logprobs", "phoneme_lengths")


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
