"""Audio input: formats, rates, channels, and every kind of bad input."""

import numpy as np
import pytest
import soundfile as sf

from nim4asr_edge.audio import load_audio, prepare_samples
from nim4asr_edge.errors import AudioError


def _tone(rate: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_formats_read_to_16k_mono(tmp_path, fmt, subtype):
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, _tone(16000), 16000, format=fmt, subtype=subtype)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 16000) <= 1
    assert np.corrcoef(out[:15000], _tone(16000)[:15000])[0, 1] > 0.99


def test_resampling_keeps_a_tone(tmp_path):
    path = tmp_path / "x44.wav"
    sf.write(path, _tone(44100, freq=1000.0), 44100)
    out = load_audio(path)
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) - 1000) <= 1  # 1 Hz bins over one second


def test_stereo_is_averaged(tmp_path):
    left, right = _tone(16000), np.zeros(16000, np.float32)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), left / 2, atol=1e-6)


def test_int16_arrays_are_scaled():
    pcm = (np.array([0, 16384, -32768, 32767])).astype(np.int16)
    np.testing.assert_allclose(prepare_samples(pcm, 16000, 16000), [0, 0.5, -1.0, 32767 / 32768], atol=1e-6)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4), "cannot decode"),
        (lambda p: p.write_text("this is not audio at all " * 50), "cannot decode"),
    ],
)
def test_bad_files(tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=match):
        load_audio(path)


def test_zero_length_wav(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_nan_audio_is_refused(tmp_path):
    x = _tone(16000)
    x[100:110] = np.nan
    with pytest.raises(AudioError, match="10 NaN"):
        prepare_samples(x, 16000, 16000)
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path)


@pytest.mark.parametrize(
    "samples,rate,match",
    [
        (np.zeros(0, np.float32), 16000, "empty"),
        (np.zeros((10, 10, 2), np.float32), 16000, "shape"),
        (np.zeros((100, 16), np.float32), 16000, "channels"),
        (np.zeros(100, np.complex64), 16000, "dtype"),
        (np.zeros(100, np.float32), 0, "sample rate"),
        (np.zeros(100, np.float32), 16000.5, "sample rate"),
    ],
)
def test_bad_arrays(samples, rate, match):
    with pytest.raises(AudioError, match=match):
        prepare_samples(samples, rate, 16000)


def test_array_without_rate():
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(np.zeros(100, np.float32))
