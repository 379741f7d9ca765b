"""Long-audio splitting and output formats."""

import numpy as np
import pytest

from nim4asr_edge.formats import format_result
from nim4asr_edge.phonemes import ctc_greedy
from nim4asr_edge.results import Result, Segment, Timings
from nim4asr_edge.segmenter import split_points


def test_short_audio_is_one_segment():
    assert split_points(np.zeros(16000 * 10, np.float32), 16000) == [(0, 160000)]


def test_long_audio_cut_at_quiet_points():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000 * 95)).astype(np.float32)
    quiet = [int(16000 * 24.0), int(16000 * 51.5), int(16000 * 77.0)]
    for q in quiet:
        x[q : q + 4000] = 0.0  # 250 ms of silence
    segs = split_points(x, 16000, max_seconds=30.0)
    assert segs[0][0] == 0 and segs[-1][1] == len(x)
    assert all(b == c for (_, b), (c, _) in zip(segs, segs[1:]))  # contiguous, nothing lost
    assert all(e - s <= 30 * 16000 for s, e in segs)
    for (_, cut), q in zip(segs, quiet):
        assert q <= cut <= q + 4000


def test_no_sliver_after_last_cut():
    x = np.ones(16000 * 30 + 50, np.float32)
    segs = split_points(x, 16000)
    assert segs[-1][1] - segs[-1][0] >= 16000


def test_ctc_greedy_collapses():
    inv = ["<blank>", "|", "a", "b"]
    path = [2, 2, 0, 2, 3, 3, 0, 1, 0, 0]
    lp = np.full((len(path), 4), -10.0, np.float32)
    lp[np.arange(len(path)), path] = -0.1
    hyp = ctc_greedy(lp, inv)
    assert hyp.symbols == ("a", "a", "b", "|")
    assert hyp.frames == (0, 3, 4, 7)
    assert hyp.speech_frames == 6
    with pytest.raises(ValueError):
        ctc_greedy(lp[:, :3], inv)


def _result():
    segs = (
        Segment(0.0, 2.5, "hello world", (1, 2), "h a"),
        Segment(2.5, 3661.25, "second", (3,), "s"),
        Segment(3661.25, 3662.0, "", (), ""),
    )
    return Result("hello world second", segs, 3662.0, Timings(total=1.0))


def test_formats():
    r = _result()
    assert format_result(r, "txt") == "hello world second\n"
    srt = format_result(r, "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\nhello world\n\n2\n00:00:02,500 --> 01:01:01,250\nsecond")
    assert "3\n" not in srt  # empty segments produce no cue
    assert format_result(r, "vtt").startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nhello world")
    assert '"text": "hello world second"' in format_result(r, "json")
    with pytest.raises(ValueError):
        format_result(r, "doc")
