"""The numpy frontends against independent reference implementations."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nim4asr_edge.errors import AudioError, BundleError
from nim4asr_edge.frontend import KaldiFbank, WhisperLogMel, make_frontend

JFK = Path(__file__).parents[1] / "examples" / "audio" / "jfk.wav"


@pytest.fixture(scope="module")
def jfk():
    x, rate = sf.read(JFK, dtype="float32")
    assert rate == 16000
    return x


def test_kaldi_fbank_matches_kaldi_native_fbank(jfk):
    knf = pytest.importorskip("kaldi_native_fbank", reason="reference implementation (dev extra)")
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.mel_opts.num_bins = 80
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, (jfk * 32768).tolist())
    fb.input_finished()
    ref = np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])
    ours = KaldiFbank()(jfk).values
    assert ours.shape == ref.shape
    # kaldi-native-fbank computes in float32; ours in float64: differences are float32 rounding in the log domain
    assert np.abs(ours - ref).max() < 5e-3


def test_whisper_logmel_matches_transformers(jfk):
    transformers = pytest.importorskip("transformers", reason="reference implementation (export extra)")
    ref = transformers.WhisperFeatureExtractor(feature_size=80)(jfk, sampling_rate=16000, return_tensors="np")
    ours = WhisperLogMel(pad_to_seconds=30.0)(jfk)
    assert ours.values.shape == (3000, 80)
    assert ours.n_valid == len(jfk) // 160
    assert np.abs(ours.values - ref.input_features[0].T).max() < 1e-4


def test_cmvn_applied_and_round_trips_through_manifest(jfk):
    mean, istd = tuple(np.linspace(-1, 1, 80)), tuple(np.full(80, 0.5))
    fb = KaldiFbank(cmvn_mean=mean, cmvn_istd=istd)
    raw = KaldiFbank().log_mel(jfk)
    np.testing.assert_allclose(fb(jfk).values, ((raw - mean) * istd).astype(np.float32), rtol=1e-6)
    again = make_frontend(fb.to_manifest())
    np.testing.assert_array_equal(again(jfk).values, fb(jfk).values)


def test_too_short_and_unknown_frontend():
    with pytest.raises(AudioError, match="too short"):
        KaldiFbank()(np.zeros(100, np.float32))
    with pytest.raises(BundleError, match="unknown frontend type"):
        make_frontend({"type": "mfcc"})
    with pytest.raises(BundleError, match="CMVN"):
        KaldiFbank(cmvn_mean=(0.0,) * 3, cmvn_istd=(1.0,) * 3)
