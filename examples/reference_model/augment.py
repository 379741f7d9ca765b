"""Waveform augmentation (16 kHz float32), every draw from the caller's ``rng``.

speed (resampling: tempo and pitch together), reverberation (synthetic exponentially decaying impulse
responses), telephone band (300-3400 Hz, 8 kHz round trip, optional mu-law 8-bit codec), level, additive noise
(white / pink / brown / hum / tonal "music" / babble built from other TTS clips) at SNR ~ N(10, 5) dB, Beta(1, 3)
seconds of silence padding. Vocal-tract-length perturbation is a frequency warp applied in the log-mel
(``features.log_mel(warp=...)``).
"""
from __future__ import annotations

import numpy as np
import soxr
from scipy.signal import butter, fftconvolve, sosfilt

SR = 16000


def speed(a: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch moves with it)."""
    return soxr.resample(a, SR * factor, SR).astype(np.float32)


def synthetic_rir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    n = int(SR * min(1.2, rt60 * 1.2))
    t = np.arange(n) / SR
    decay = np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    rir = rng.standard_normal(n) * decay
    early = int(SR * rng.uniform(0.002, 0.02))
    rir[:early] = 0
    rir[0] = 1.0 / max(0.15, rng.uniform(0.2, 1.0))  # direct path
    # air absorption: low-pass the tail
    sos = butter(2, rng.uniform(3000, 7500), btype="low", fs=SR, output="sos")
    rir[1:] = sosfilt(sos, rir[1:])
    return (rir / np.sqrt((rir ** 2).sum())).astype(np.float32)


def reverb(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rir = synthetic_rir(rng, rng.uniform(0.15, 0.9))
    y = fftconvolve(a, rir)[: len(a) + SR // 4]
    return y.astype(np.float32)


def telephone(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sos = butter(4, [rng.uniform(250, 400), rng.uniform(3000, 3500)], btype="band", fs=SR, output="sos")
    y = sosfilt(sos, a).astype(np.float32)
    y8 = soxr.resample(y, SR, 8000)
    if rng.random() < 0.5:  # G.711 mu-law, 8 bit
        peak = np.abs(y8).max() + 1e-9
        x = y8 / peak
        mu = 255.0
        c = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
        c = np.round(c * 127) / 127
        y8 = np.sign(c) * (np.expm1(np.abs(c) * np.log1p(mu)) / mu) * peak
    return soxr.resample(y8.astype(np.float32), 8000, SR).astype(np.float32)


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec = spec / f ** (exponent / 2)
    y = np.fft.irfft(spec, n)
    return (y / (y.std() + 1e-9)).astype(np.float32)


def make_noise(rng: np.random.Generator, n: int, babble_bank: list[np.ndarray]) -> tuple[np.ndarray, str]:
    kind = ["white", "pink", "brown", "hum", "music", "babble", "babble"][int(rng.integers(7))]
    if kind == "babble" and not babble_bank:
        kind = "pink"
    if kind == "white":
        y = rng.standard_normal(n).astype(np.float32)
    elif kind == "pink":
        y = _colored(rng, n, 1.0)
    elif kind == "brown":
        y = _colored(rng, n, 2.0)
    elif kind == "hum":
        t = np.arange(n) / SR
        f0 = rng.choice([50.0, 60.0, 100.0, 120.0])
        y = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 8))
        y = y + 0.1 * _colored(rng, n, 1.0)
    elif kind == "music":
        t = np.arange(n) / SR
        y = np.zeros(n)
        pos = 0
        while pos < n:
            dur = int(SR * rng.uniform(0.15, 0.6))
            seg = slice(pos, min(n, pos + dur))
            for _ in range(int(rng.integers(1, 4))):
                f = 110.0 * 2 ** (rng.integers(0, 36) / 12)
                env = np.exp(-3 * (t[seg] - t[pos]) / (dur / SR))
                y[seg] += np.sin(2 * np.pi * f * t[seg]) * env + 0.3 * np.sin(4 * np.pi * f * t[seg]) * env
            pos += dur
    else:  # babble: 3-6 overlapping talkers
        y = np.zeros(n)
        for _ in range(int(rng.integers(3, 7))):
            src = babble_bank[int(rng.integers(len(babble_bank)))]
            if len(src) < n:
                src = np.tile(src, n // len(src) + 1)
            off = int(rng.integers(0, len(src) - n + 1))
            s = src[off:off + n]
            y += s / (s.std() + 1e-9)
    y = np.asarray(y, dtype=np.float32)
    return y / (y.std() + 1e-9), kind


def add_noise(a: np.ndarray, rng: np.random.Generator, snr_db: float, babble_bank) -> tuple[np.ndarray, str]:
    noise, kind = make_noise(rng, len(a), babble_bank)
    p_sig = float((a ** 2).mean()) + 1e-12
    noise = noise * np.sqrt(p_sig / 10 ** (snr_db / 10))
    return (a + noise).astype(np.float32), kind


def pad_silence(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    before = int(SR * rng.beta(1, 3))
    after = int(SR * rng.beta(1, 3) * 0.5)
    return np.concatenate([np.zeros(before, np.float32), a, np.zeros(after, np.float32)])


def set_level(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    peak = np.abs(a).max() + 1e-9
    return (a / peak * 10 ** (rng.uniform(-25, -1) / 20)).astype(np.float32)
