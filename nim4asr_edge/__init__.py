"""nim4asr-edge: offline LLM-ASR (ONNX audio encoder + llama.cpp LLM) with hotwords, streaming and an evidence guard.

The hotword classes need no optional dependency to import; building an index from text needs the ``g2p`` extra.
"""

from .audio import load_audio
from .bundle import Bundle
from .errors import (
    AudioError,
    BatchError,
    BundleError,
    CheckpointError,
    DecodeError,
    ExportError,
    HotwordError,
    MissingDependencyError,
    Nim4AsrError,
    OptionsError,
    StreamError,
)
from .families import ModelFamily, register_family
from .hotwords import HotwordHit, HotwordIndex, SearchOptions
from .options import RecognizerOptions
from .process_memory import ProcessMemory
from .recognizer import Recognizer
from .results import Result, Segment
from .stream import Stream, StreamEvent, StreamOptions
from .vad import VadOptions

__version__ = "0.1.0"

__all__ = [
    "ProcessMemory",
    "Recognizer",
    "RecognizerOptions",
    "Result",
    "Segment",
    "Stream",
    "StreamOptions",
    "StreamEvent",
    "VadOptions",
    "HotwordIndex",
    "HotwordHit",
    "SearchOptions",
    "Bundle",
    "ModelFamily",
    "register_family",
    "load_audio",
    "Nim4AsrError",
    "AudioError",
    "BatchError",
    "BundleError",
    "CheckpointError",
    "DecodeError",
    "ExportError",
    "HotwordError",
    "MissingDependencyError",
    "OptionsError",
    "StreamError",
    "__version__",
]
