"""nim4asr-edge: offline NIM4-ASR-class speech recognition."""

from .errors import AudioError, BundleError, DecodeError, HotwordError, Nim4AsrError

__version__ = "0.1.0"

__all__ = ["AudioError", "BundleError", "DecodeError", "HotwordError", "Nim4AsrError", "__version__"]
