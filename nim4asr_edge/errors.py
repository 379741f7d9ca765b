"""The SDK's exception types.

Every failure a user can cause raises one of these, with a message that says what was wrong and what to do.
The CLI prints ``str(error)`` on one line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "Nim4AsrError",
    "BundleError",
    "AudioError",
    "CheckpointError",
    "ExportError",
    "HotwordError",
    "DecodeError",
    "MissingDependencyError",
    "OptionsError",
    "StreamError",
    "BatchError",
]


class Nim4AsrError(Exception):
    """Base class of every error the SDK raises on purpose."""


class BundleError(Nim4AsrError):
    """A model bundle is missing, damaged, of an unknown version, or does not match its manifest."""


class AudioError(Nim4AsrError):
    """Audio could not be read or is unusable (empty, corrupt, non-finite, unsupported format)."""


class CheckpointError(Nim4AsrError):
    """A training checkpoint is incomplete or disagrees with its own config."""


class ExportError(Nim4AsrError):
    """Exporting a checkpoint to a bundle failed."""


class HotwordError(Nim4AsrError):
    """A hotword list, store or index is malformed or does not fit the bundle."""


class DecodeError(Nim4AsrError):
    """The LLM runtime (llama.cpp) refused a batch or failed while decoding."""


class StreamError(Nim4AsrError):
    """A stream was used wrongly (e.g. fed after input_finished) or its worker failed."""


class BatchError(Nim4AsrError):
    """A batch job cannot run: its output directory holds a different job, another process runs it, or its
    workers cannot start."""


class OptionsError(Nim4AsrError, ValueError):
    """Options contradict each other or the bundle (e.g. two different thread counts, a forced language the model
    cannot take, an evidence guard for a model without acoustic evidence)."""


class MissingDependencyError(Nim4AsrError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency, or raise with the pip command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"'{module}' is not installed; install it with: pip install 'nim4asr-edge[{extra}]'"
        ) from exc
