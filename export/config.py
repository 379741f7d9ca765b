"""Model configuration of a NIM4-ASR checkpoint: one type from tiny test sizes up to the full 2.3 B shape.

Stored as ``config.json`` in a checkpoint directory (see ``docs/FORMAT.md``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nim4asr_edge.errors import CheckpointError

CHECKPOINT_FORMAT = "nim4asr-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class EncoderConfig:
    n_mels: int = 80  # input feature dimension
    d_model: int = 1280  # Conformer width
    n_layers: int = 16  # Conformer blocks
    n_heads: int = 20  # self-attention heads (d_model % n_heads == 0, head dim even for rotary)
    ff_dim: int = 5120  # hidden width of each macaron feed-forward module
    conv_kernel: int = 33  # depthwise convolution kernel (odd)
    subsampling_channels: int = 32  # channels of the conv2d 4x subsampling stem
    rope_base: float = 10000.0  # rotary position embedding base
    layer_norm_eps: float = 1e-5


@dataclass(frozen=True)
class CTCHeadConfig:
    hidden: int = 1024  # width of the two hidden layers of the 3-layer MLP
    n_phonemes: int = 72  # output classes including the blank at index 0


@dataclass(frozen=True)
class AdaptorConfig:
    stack: int = 4  # consecutive encoder frames concatenated into one audio token (25 Hz -> 6.25 Hz)
    hidden: int = 2048  # hidden width of the 2-layer MLP


def _qwen3_1_7b() -> dict[str, Any]:
    # Qwen3-1.7B shape (transformers Qwen3Config fields).
    return {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "hidden_act": "silu",
        "attention_bias": False,
    }


@dataclass(frozen=True)
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    ctc_head: CTCHeadConfig = field(default_factory=CTCHeadConfig)
    adaptor: AdaptorConfig = field(default_factory=AdaptorConfig)
    llm: dict[str, Any] = field(default_factory=_qwen3_1_7b)  # transformers Qwen3Config keyword arguments

    @property
    def llm_hidden(self) -> int:
        return int(self.llm["hidden_size"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "encoder": dataclasses.asdict(self.encoder),
            "ctc_head": dataclasses.asdict(self.ctc_head),
            "adaptor": dataclasses.asdict(self.adaptor),
            "llm": dict(self.llm),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        if data.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"config.json is not a {CHECKPOINT_FORMAT} config (format={data.get('format')!r})")
        if data.get("format_version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"checkpoint format_version {data.get('format_version')!r} is not supported "
                f"(this exporter reads version {CHECKPOINT_VERSION}); re-save it with a matching nim4asr-export"
            )
        try:
            return cls(
                encoder=EncoderConfig(**data["encoder"]),
                ctc_head=CTCHeadConfig(**data["ctc_head"]),
                adaptor=AdaptorConfig(**data["adaptor"]),
                llm=dict(data["llm"]),
            )
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"config.json is malformed: {exc}") from exc

    def validate(self) -> None:
        e = self.encoder
        if e.d_model % e.n_heads or (e.d_model // e.n_heads) % 2:
            raise CheckpointError(f"encoder d_model={e.d_model} must split into {e.n_heads} heads of even size")
        if e.conv_kernel % 2 == 0:
            raise CheckpointError(f"encoder conv_kernel={e.conv_kernel} must be odd")
        if self.ctc_head.n_phonemes < 2:
            raise CheckpointError("ctc_head.n_phonemes must count the blank plus at least one phoneme")
        if self.adaptor.stack < 1:
            raise CheckpointError("adaptor.stack must be >= 1")
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
            if key not in self.llm:
                raise CheckpointError(f"llm config lacks {key!r}")

    @staticmethod
    def load(path: str | Path) -> "ModelConfig":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CheckpointError(f"{path} not found: a checkpoint directory needs config.json") from exc
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
        cfg = ModelConfig.from_dict(data)
        cfg.validate()
        return cfg


def full_config(n_phonemes: int = 72) -> ModelConfig:
    """The full NIM4-ASR shape: ~600 M-parameter Conformer encoder + Qwen3-1.7B (2.3 B in all)."""
    return ModelConfig(ctc_head=CTCHeadConfig(hidden=1024, n_phonemes=n_phonemes))


def tiny_config(vocab_size: int, n_phonemes: int = 12) -> ModelConfig:
    """A few-hundred-kilobyte shape for parity tests (same code paths as the full one)."""
    return ModelConfig(
        encoder=EncoderConfig(d_model=64, n_layers=2, n_heads=4, ff_dim=128, conv_kernel=7, subsampling_channels=8),
        ctc_head=CTCHeadConfig(hidden=48, n_phonemes=n_phonemes),
        adaptor=AdaptorConfig(stack=4, hidden=96),
        llm={
            "vocab_size": vocab_size,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "tie_word_embeddings": True,
            "hidden_act": "silu",
            "attention_bias": False,
        },
    )
