"""Feature frontends, numpy only: the one implementation both the runtime and the exporter use.

A bundle's manifest declares its frontend (``frontend.type``); :func:`make_frontend` builds it.

* ``kaldi_fbank``: Kaldi-compatible log-Mel filterbank (NIM4 / FireRedASR style), with global CMVN.
* ``whisper_logmel``: Whisper's log-Mel spectrogram (for bundles built on a Whisper encoder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np

from .errors import AudioError, BundleError

__all__ = ["FRONTENDS", "Features", "Frontend", "KaldiFbank", "WhisperLogMel", "make_frontend"]

_FLOAT_EPS = float(np.finfo(np.float32).eps)  # Kaldi's log floor


@dataclass(frozen=True)
class Features:
    values: np.ndarray  # [frames, n_mels] float32, normalised as the encoder expects
    n_valid: int  # frames that cover real audio (the rest, if any, is padding the model was trained with)


@runtime_checkable
class Frontend(Protocol):
    """What every feature frontend provides: the runtime (offline, streaming) sees frontends only through this."""

    sample_rate: int

    @property
    def frame_shift(self) -> int:
        """Samples between the starts of two feature frames."""

    @property
    def frame_len(self) -> int:
        """Samples one feature frame reads."""

    @property
    def n_mels(self) -> int:
        """Feature dimension."""

    def min_samples(self) -> int:
        """The fewest samples that give one feature frame (shorter audio raises ``AudioError``)."""

    def __call__(self, samples: np.ndarray) -> Features:
        """Features of mono float32 samples at ``sample_rate``."""


def _frames(samples: np.ndarray, frame_len: int, shift: int) -> np.ndarray:
    """[n_frames, frame_len] view of the signal (Kaldi snip_edges=True: only whole frames)."""
    n = 1 + (len(samples) - frame_len) // shift
    return np.lib.stride_tricks.as_strided(
        samples, shape=(n, frame_len), strides=(samples.strides[0] * shift, samples.strides[0]), writeable=False
    )


def _kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Kaldi's triangular banks, linear in Kaldi mel (1127 ln(1 + f/700)); [n_mels, n_fft//2 + 1]."""

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    nyquist = sample_rate / 2.0
    if high_hz <= 0.0:
        high_hz += nyquist
    mel_low, mel_high = mel(low_hz), mel(high_hz)
    delta = (mel_high - mel_low) / (n_mels + 1)
    bin_mel = mel(np.arange(n_fft // 2) * sample_rate / n_fft)  # Kaldi ignores the Nyquist bin
    banks = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float64)
    for m in range(n_mels):
        left, centre, right = mel_low + m * delta, mel_low + (m + 1) * delta, mel_low + (m + 2) * delta
        up = (bin_mel - left) / (centre - left)
        down = (right - bin_mel) / (right - centre)
        banks[m, : n_fft // 2] = np.maximum(0.0, np.minimum(up, down))
    return banks


@dataclass(frozen=True)
class KaldiFbank:
    """Kaldi ``compute-fbank-feats`` equivalent (dither 0, snip_edges, povey window), then global CMVN."""

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    preemphasis: float = 0.97
    low_freq: float = 20.0
    high_freq: float = 0.0  # <= 0: offset from Nyquist
    input_scale: float = 32768.0  # features are computed on int16-range samples, as Kaldi does
    cmvn_mean: tuple[float, ...] | None = None
    cmvn_istd: tuple[float, ...] | None = None
    window: str = "povey"  # Kaldi's window type: "povey" (NIM4) | "hamming" (FunASR) | "hanning"
    _banks: np.ndarray = field(init=False, repr=False, compare=False)
    _window: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = self.frame_len
        cos = np.cos(2.0 * np.pi * np.arange(n) / (n - 1))
        windows = {"povey": (0.5 - 0.5 * cos) ** 0.85, "hamming": 0.54 - 0.46 * cos, "hanning": 0.5 - 0.5 * cos}
        if self.window not in windows:
            raise BundleError(f"fbank window {self.window!r} is not one of {', '.join(windows)}")
        object.__setattr__(self, "_window", windows[self.window])
        if self.cmvn_mean is not None and len(self.cmvn_mean) != self.num_mel_bins:
            raise BundleError(f"CMVN mean has {len(self.cmvn_mean)} values, expected {self.num_mel_bins}")
        if self.cmvn_istd is not None and len(self.cmvn_istd) != self.num_mel_bins:
            raise BundleError(f"CMVN istd has {len(self.cmvn_istd)} values, expected {self.num_mel_bins}")
        banks = _kaldi_mel_banks(self.num_mel_bins, self.n_fft, self.sample_rate, self.low_freq, self.high_freq)
        object.__setattr__(self, "_banks", banks)

    @property
    def frame_len(self) -> int:
        return int(round(self.sample_rate * self.frame_length_ms / 1000.0))

    @property
    def frame_shift(self) -> int:
        return int(round(self.sample_rate * self.frame_shift_ms / 1000.0))

    @property
    def n_fft(self) -> int:
        return 1 << (self.frame_len - 1).bit_length()

    @property
    def n_mels(self) -> int:
        return self.num_mel_bins

    def min_samples(self) -> int:
        return self.frame_len

    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """Un-normalised log-Mel energies, [frames, n_mels] float64."""
        x = np.asarray(samples, dtype=np.float64) * self.input_scale
        if len(x) < self.frame_len:
            raise AudioError(f"audio too short: {len(x)} samples, need at least {self.frame_len}")
        frames = _frames(x, self.frame_len, self.frame_shift).copy()
        frames -= frames.mean(axis=1, keepdims=True)  # remove DC per frame
        frames[:, 1:] -= self.preemphasis * frames[:, :-1].copy()
        frames[:, 0] -= self.preemphasis * frames[:, 0]
        spectrum = np.fft.rfft(frames * self._window, n=self.n_fft, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        return np.log(np.maximum(power @ self._banks.T, _FLOAT_EPS))

    def __call__(self, samples: np.ndarray) -> Features:
        feats = self.log_mel(samples)
        if self.cmvn_mean is not None:
            feats = (feats - np.asarray(self.cmvn_mean)) * np.asarray(self.cmvn_istd)
        return Features(feats.astype(np.float32), len(feats))

    def to_manifest(self) -> dict[str, Any]:
        return {
            "type": "kaldi_fbank",
            "sample_rate": self.sample_rate,
            "num_mel_bins": self.num_mel_bins,
            "frame_length_ms": self.frame_length_ms,
            "frame_shift_ms": self.frame_shift_ms,
            "preemphasis": self.preemphasis,
            "low_freq": self.low_freq,
            "high_freq": self.high_freq,
            "input_scale": self.input_scale,
            "cmvn": None if self.cmvn_mean is None else {"mean": list(self.cmvn_mean), "istd": list(self.cmvn_istd)},
            **({} if self.window == "povey" else {"window": self.window}),  # povey manifests stay as they were
        }


def _slaney_mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) with Slaney scale and norm, as Whisper uses; [n_mels, n_fft//2+1]."""
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


@dataclass(frozen=True)
class WhisperLogMel:
    """Whisper's log-Mel spectrogram (n_fft 400, hop 160, Hann, Slaney mel, log10, 8-decade floor, (x+4)/4)."""

    sample_rate: int = 16000
    num_mel_bins: int = 80
    n_fft: int = 400
    hop_length: int = 160
    pad_to_seconds: float = 0.0  # > 0: zero-pad audio to this length first (Whisper's 30 s), n_valid marks real frames
    _filters: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_filters", _slaney_mel_filters(self.sample_rate, self.n_fft, self.num_mel_bins))

    @property
    def n_mels(self) -> int:
        return self.num_mel_bins

    @property
    def frame_shift(self) -> int:
        return self.hop_length

    @property
    def frame_len(self) -> int:
        return self.n_fft

    def min_samples(self) -> int:
        return self.hop_length

    def __call__(self, samples: np.ndarray) -> Features:
        x = np.asarray(samples, dtype=np.float32)
        n_valid = len(x) // self.hop_length
        target = int(round(self.pad_to_seconds * self.sample_rate))
        if target > len(x):
            x = np.pad(x, (0, target - len(x)))
        if n_valid < 1:
            raise AudioError(f"audio too short: {len(samples)} samples, need at least {self.hop_length}")
        half = self.n_fft // 2
        padded = np.pad(x.astype(np.float64), (half, half), mode="reflect")
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(self.n_fft) / self.n_fft)  # periodic Hann
        frames = _frames(padded, self.n_fft, self.hop_length)[:-1]  # Whisper drops the last STFT frame
        spectrum = np.fft.rfft(frames * window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        log_spec = np.log10(np.maximum(power @ self._filters.T, 1e-10))
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return Features(((log_spec + 4.0) / 4.0).astype(np.float32), min(n_valid, len(log_spec)))

    def to_manifest(self) -> dict[str, Any]:
        return {
            "type": "whisper_logmel",
            "sample_rate": self.sample_rate,
            "num_mel_bins": self.num_mel_bins,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "pad_to_seconds": self.pad_to_seconds,
        }


def _kaldi_fbank(params: dict[str, Any]) -> KaldiFbank:
    cmvn = params.pop("cmvn", None)
    if cmvn is not None:
        params["cmvn_mean"] = tuple(float(v) for v in cmvn["mean"])
        params["cmvn_istd"] = tuple(float(v) for v in cmvn["istd"])
    return KaldiFbank(**params)


# manifest ``frontend.type`` -> builder from the section's other keys; a model family may add its own
FRONTENDS: dict[str, Callable[[dict[str, Any]], Frontend]] = {
    "kaldi_fbank": _kaldi_fbank,
    "whisper_logmel": lambda params: WhisperLogMel(**params),
}


def make_frontend(spec: Mapping[str, Any]) -> Frontend:
    """Build the frontend a manifest's ``frontend`` section declares."""
    kind = spec.get("type")
    build = FRONTENDS.get(kind)
    if build is None:
        raise BundleError(f"unknown frontend type {kind!r}: this runtime knows {', '.join(map(repr, FRONTENDS))}; "
                          "upgrade nim4asr-edge")
    try:
        return build({k: v for k, v in spec.items() if k != "type"})
    except (TypeError, KeyError) as exc:
        raise BundleError(f"frontend section of the manifest is malformed ({kind}): {exc}") from exc
