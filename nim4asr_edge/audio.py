"""Audio input: files (wav/flac/ogg/mp3 through libsndfile) or arrays -> mono float32 at the model's rate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from .errors import AudioError

__all__ = ["AudioInput", "load_audio", "prepare_samples", "resample", "to_float_mono"]

AudioInput = Union[str, os.PathLike, np.ndarray]

MAX_SECONDS = 4 * 3600  # refuse longer inputs instead of exhausting memory; split such files first


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality (soxr VHQ) resampling of a mono float32 signal."""
    if from_rate == to_rate:
        return samples
    import soxr

    return soxr.resample(samples, from_rate, to_rate, quality="VHQ").astype(np.float32, copy=False)


def to_float_mono(samples: np.ndarray, sample_rate: int, allow_empty: bool = False) -> np.ndarray:
    """Validate a signal and return it as mono float32 (no resampling).

    Accepts float arrays in [-1, 1] or integer PCM (int16/int32, scaled by their range); shape [n] or
    [n, channels] (channels are averaged).
    """
    a = np.asarray(samples)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"sample rate must be a positive integer, got {sample_rate!r}")
    if a.dtype.kind == "i":
        a = a.astype(np.float32) / float(-np.iinfo(a.dtype).min)
    elif a.dtype.kind == "u":
        half = (int(np.iinfo(a.dtype).max) + 1) / 2
        a = (a.astype(np.float32) - half) / half
    elif a.dtype.kind == "f":
        a = a.astype(np.float32, copy=False)
    else:
        raise AudioError(f"audio samples must be float or integer PCM, got dtype {a.dtype}")
    if a.ndim == 2:
        if a.shape[1] > 8:
            raise AudioError(
                f"audio of shape {a.shape} has {a.shape[1]} channels; pass [frames, channels] (e.g. samples.T)"
            )
        a = a.mean(axis=1)
    elif a.ndim != 1:
        raise AudioError(f"audio must be 1-D (mono) or 2-D (frames x channels), got shape {a.shape}")
    if a.size == 0 and not allow_empty:
        raise AudioError("audio is empty (0 samples)")
    if a.size > MAX_SECONDS * sample_rate:
        raise AudioError(f"audio is longer than {MAX_SECONDS // 3600} hours; split it into parts first")
    if not np.isfinite(a).all():
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise AudioError(f"audio contains {bad} NaN or infinite samples; clean the signal before recognition")
    return np.ascontiguousarray(a)


def prepare_samples(samples: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Validate an in-memory signal (see :func:`to_float_mono`) and return mono float32 at ``target_rate``."""
    return np.ascontiguousarray(resample(to_float_mono(samples, sample_rate), int(sample_rate), target_rate))


def load_audio(source: AudioInput, target_rate: int = 16000, sample_rate: int | None = None) -> np.ndarray:
    """Read a file path or take an array (with ``sample_rate``) and return mono float32 at ``target_rate``."""
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise AudioError("an audio array needs its sample_rate (e.g. transcribe(samples, sample_rate=16000))")
        return prepare_samples(source, sample_rate, target_rate)
    if not isinstance(source, (str, os.PathLike)):
        raise AudioError(f"audio must be a file path or a numpy array, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            if f.frames > MAX_SECONDS * f.samplerate:
                raise AudioError(f"{path} is longer than {MAX_SECONDS // 3600} hours; split it into parts first")
            data = f.read(dtype="float32", always_2d=True)
            rate = f.samplerate
    except sf.LibsndfileError as exc:
        raise AudioError(
            f"cannot decode {path}: {exc}. Supported: WAV, FLAC, OGG/Vorbis/Opus, MP3; convert other formats first"
        ) from exc
    except RuntimeError as exc:  # older soundfile raises RuntimeError
        raise AudioError(f"cannot decode {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"audio file has no samples: {path}")
    try:
        return prepare_samples(data, rate, target_rate)
    except AudioError as exc:
        raise AudioError(f"{path}: {exc}") from exc
