"""nim4asr-edge: offline NIM4-ASR-class speech recognition (ONNX audio encoder + llama.cpp LLM)."""

from .audio import load_audio
from .bundle import Bundle
from .errors import AudioError, BundleError, CheckpointError, DecodeError, ExportError, HotwordError, Nim4AsrError
from .recognizer import Recognizer, RecognizerOptions
from .results import Result, Segment

__version__ = "0.1.0"

__all__ = [
    "Recognizer",
    "RecognizerOptions",
    "Result",
    "Segment",
    "Bundle",
    "load_audio",
    "Nim4AsrError",
    "AudioError",
    "BundleError",
    "CheckpointError",
    "DecodeError",
    "ExportError",
    "HotwordError",
    "__version__",
]
