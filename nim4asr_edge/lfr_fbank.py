"""FunASR's ``WavFrontend`` in numpy: Kaldi fbank with a Hamming window, low-frame-rate (LFR) stacking, optional
CMVN. The frontend of Fun-ASR-Nano (manifest ``frontend.type`` = ``lfr_fbank``).

Per 16 kHz mono signal in [-1, 1]:

1. scale by 32768 (``upsacle_samples``), 25 ms frames every 10 ms with ``snip_edges`` (T = 1 + (N - 400) // 160),
   DC removal, pre-emphasis 0.97, symmetric Hamming window, 512-point power spectrum, 80 Kaldi-mel bins
   20 Hz..Nyquist, natural log floored at float32 eps; dither 0 (FunASR's default of 1.0 adds random noise: the
   importer records 0 so that recognition is deterministic);
2. LFR m=7, n=6: T_lfr = ceil(T / 6) rows; the fbank is padded with (m - 1) // 2 = 3 copies of its first frame in
   front and copies of its last frame behind; row i = padded frames 6i .. 6i + 6 concatenated (7 x 80 = 560);
3. CMVN where the release ships one (``am.mvn``: ``(x + shift) * scale`` on the 560 stacked values); the
   Fun-ASR-Nano release has none.

``tests/test_fun_asr_nano_parity.py`` compares it with the official ``funasr`` ``WavFrontend``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .encoder import MIN_FRAMES
from .errors import AudioError, BundleError
from .frontend import Features, KaldiFbank

__all__ = ["LfrFbank", "lfr_rows", "parse_kaldi_mvn"]

FRONTEND_TYPE = "lfr_fbank"


def lfr_rows(n_frames: int, lfr_n: int = 6) -> int:
    """LFR rows for ``n_frames`` fbank frames: ``ceil(n / lfr_n)``."""
    return -(-n_frames // lfr_n)


@dataclass(frozen=True)
class LfrFbank:
    """Kaldi fbank (Hamming window) + LFR stacking + optional CMVN, as FunASR's ``WavFrontend``."""

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    window: str = "hamming"  # "hamming" (FunASR's default) | "povey" | "hanning"
    preemphasis: float = 0.97
    low_freq: float = 20.0
    high_freq: float = 0.0  # <= 0: offset from Nyquist
    input_scale: float = 32768.0  # FunASR scales [-1, 1] samples to the int16 range (upsacle_samples)
    lfr_m: int = 7  # fbank frames stacked per row
    lfr_n: int = 6  # fbank frames between rows (60 ms)
    cmvn_shift: tuple[float, ...] | None = None  # added to each stacked row (am.mvn <AddShift>), or None
    cmvn_scale: tuple[float, ...] | None = None  # then multiplied (am.mvn <Rescale>)
    _fbank: KaldiFbank = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.lfr_m < 1 or self.lfr_n < 1:
            raise BundleError(f"lfr_fbank needs lfr_m, lfr_n >= 1, got {self.lfr_m}, {self.lfr_n}")
        if (self.cmvn_shift is None) != (self.cmvn_scale is None):
            raise BundleError("lfr_fbank CMVN needs both shift and scale")
        for name in ("cmvn_shift", "cmvn_scale"):
            values = getattr(self, name)
            if values is not None and len(values) != self.n_mels:
                raise BundleError(f"lfr_fbank {name} has {len(values)} values, expected {self.n_mels} "
                                  f"({self.lfr_m} x {self.num_mel_bins})")
        fbank = KaldiFbank(self.sample_rate, self.num_mel_bins, self.frame_length_ms, self.frame_shift_ms,
                           self.preemphasis, self.low_freq, self.high_freq, self.input_scale, window=self.window)
        object.__setattr__(self, "_fbank", fbank)  # the fbank before stacking; BundleError for a bad window

    # -- geometry ------------------------------------------------------------------------------------------------
    @property
    def frame_len_fbank(self) -> int:
        """Samples of one fbank frame (400)."""
        return self._fbank.frame_len

    @property
    def frame_shift_fbank(self) -> int:
        """Samples between fbank frames (160)."""
        return self._fbank.frame_shift

    @property
    def frame_shift(self) -> int:
        """Samples between LFR rows (960 = 60 ms)."""
        return self.frame_shift_fbank * self.lfr_n

    @property
    def frame_len(self) -> int:
        """Samples an LFR row reads (its 7 fbank frames)."""
        return self.frame_len_fbank + (self.lfr_m - 1) * self.frame_shift_fbank

    @property
    def n_mels(self) -> int:
        """Feature dimension: the stacked row (560)."""
        return self.num_mel_bins * self.lfr_m

    def min_samples(self) -> int:
        """The fewest samples the encoder accepts: ``MIN_FRAMES`` (7) LFR rows, i.e. 37 fbank frames (0.385 s).
        FunASR itself also encodes shorter audio; here it is too short (``AudioError``), as for every family."""
        return self.frame_len_fbank + (MIN_FRAMES - 1) * self.lfr_n * self.frame_shift_fbank

    # -- features ------------------------------------------------------------------------------------------------
    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """The fbank before stacking: [T, num_mel_bins] float64."""
        x = np.asarray(samples, dtype=np.float64) * self.input_scale
        if x.ndim != 1:
            raise AudioError(f"the frontend takes mono samples [n], got shape {x.shape}")
        if len(x) < self.min_samples():
            raise AudioError(f"audio too short: {len(x)} samples, need at least {self.min_samples()} "
                             f"({self.min_samples() / self.sample_rate:.3f} s: {MIN_FRAMES} feature rows)")
        return self._fbank.log_mel(samples)

    def stack(self, fbank: np.ndarray) -> np.ndarray:
        """LFR stacking of [T, bins] -> [ceil(T / n), m * bins] (FunASR's ``apply_lfr``)."""
        t = len(fbank)
        rows = lfr_rows(t, self.lfr_n)
        left = (self.lfr_m - 1) // 2
        need = (rows - 1) * self.lfr_n + self.lfr_m  # padded frames the last row reads
        right = max(0, need - left - t)
        padded = np.concatenate([np.repeat(fbank[:1], left, axis=0), fbank, np.repeat(fbank[-1:], right, axis=0)])
        idx = np.arange(rows)[:, None] * self.lfr_n + np.arange(self.lfr_m)[None, :]
        return padded[idx].reshape(rows, self.lfr_m * fbank.shape[1])

    def __call__(self, samples: np.ndarray) -> Features:
        feats = self.stack(self.log_mel(samples))
        if self.cmvn_shift is not None:
            feats = (feats + np.asarray(self.cmvn_shift)) * np.asarray(self.cmvn_scale)
        return Features(feats.astype(np.float32), len(feats))

    def to_manifest(self) -> dict[str, Any]:
        return {
            "type": FRONTEND_TYPE,
            "sample_rate": self.sample_rate,
            "num_mel_bins": self.num_mel_bins,
            "frame_length_ms": self.frame_length_ms,
            "frame_shift_ms": self.frame_shift_ms,
            "window": self.window,
            "preemphasis": self.preemphasis,
            "low_freq": self.low_freq,
            "high_freq": self.high_freq,
            "input_scale": self.input_scale,
            "dither": 0.0,
            "lfr_m": self.lfr_m,
            "lfr_n": self.lfr_n,
            "cmvn": None if self.cmvn_shift is None else {"shift": list(self.cmvn_shift),
                                                          "scale": list(self.cmvn_scale)},
        }


def build_lfr_fbank(params: dict[str, Any]) -> LfrFbank:
    """The :data:`~nim4asr_edge.frontend.FRONTENDS` builder: a manifest section (without ``type``) -> frontend."""
    params = dict(params)
    dither = float(params.pop("dither", 0.0))
    if dither != 0.0:
        raise BundleError(f"lfr_fbank dither {dither} is not supported: recognition must be deterministic (use 0)")
    cmvn = params.pop("cmvn", None)
    if cmvn is not None:
        params["cmvn_shift"] = tuple(float(v) for v in cmvn["shift"])
        params["cmvn_scale"] = tuple(float(v) for v in cmvn["scale"])
    return LfrFbank(**params)


def parse_kaldi_mvn(text: str, where: str = "am.mvn") -> tuple[list[float], list[float]]:
    """(shift, scale) of a Kaldi nnet CMVN file (``<AddShift>`` / ``<Rescale>`` each followed by a
    ``<LearnRateCoef> x [ ... ]`` line), read as FunASR's ``load_cmvn`` does; ``ValueError`` naming what is missing."""
    lines = text.splitlines()
    found: dict[str, list[float]] = {}
    for i, line in enumerate(lines):
        item = line.split()
        if item and item[0] in ("<AddShift>", "<Rescale>") and i + 1 < len(lines):
            nxt = lines[i + 1].split()
            if nxt and nxt[0] == "<LearnRateCoef>":
                try:
                    found[item[0]] = [float(v) for v in nxt[3: len(nxt) - 1]]
                except ValueError as exc:
                    raise ValueError(f"{where}: {item[0]} has a non-numeric value ({exc})") from exc
    for key in ("<AddShift>", "<Rescale>"):
        if key not in found:
            raise ValueError(f"{where} has no {key} block: not a Kaldi nnet CMVN file")
    if len(found["<AddShift>"]) != len(found["<Rescale>"]):
        raise ValueError(f"{where}: <AddShift> has {len(found['<AddShift>'])} values, <Rescale> "
                         f"{len(found['<Rescale>'])}")
    return found["<AddShift>"], found["<Rescale>"]
