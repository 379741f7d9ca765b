"""Reference PyTorch modules of the NIM4-ASR architecture (see docs/FORMAT.md and shared DESIGN §1)."""

from .conformer import ConformerEncoder, chunk_mask, subsampled_lengths
from .heads import Adaptor, PhonemeCTCHead, token_lengths
from .nim4asr import (
    ENCODER_INPUT_NAMES,
    ENCODER_OUTPUT_NAMES,
    STREAM_INPUT_NAMES,
    STREAM_OUTPUT_NAMES,
    EncoderGraph,
    Nim4AsrModel,
    StreamingEncoderGraph,
    count_parameters,
)

__all__ = [
    "Adaptor",
    "ConformerEncoder",
    "ENCODER_INPUT_NAMES",
    "ENCODER_OUTPUT_NAMES",
    "EncoderGraph",
    "Nim4AsrModel",
    "PhonemeCTCHead",
    "STREAM_INPUT_NAMES",
    "STREAM_OUTPUT_NAMES",
    "StreamingEncoderGraph",
    "chunk_mask",
    "count_parameters",
    "subsampled_lengths",
    "token_lengths",
]
