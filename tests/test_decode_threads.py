"""The decode-thread chooser: which thread count it keeps as token times change (times given, no clock)."""

from __future__ import annotations

import math

import pytest

from nim4asr_edge.decode_threads import ThreadChooser, best_seconds


def drive(chooser: ThreadChooser, times: dict[int, float], tokens: int) -> list[int]:
    """Decode ``tokens`` tokens whose time depends only on the thread count; the threads used for each."""
    used = []
    for _ in range(tokens):
        before = chooser.threads(chooser.n)
        used.append(before[0])
        changed = chooser.record(times[before[0]])
        assert changed == (chooser.threads(chooser.n) != before)
    return used


def test_starts_with_the_faster_measurement():
    assert ThreadChooser(2, one_s=0.010, many_s=0.020).current == 1
    assert ThreadChooser(2, one_s=0.050, many_s=0.038).current == 2
    assert ThreadChooser(4, one_s=0.019, many_s=0.020).current == 4  # within the margin: every thread
    assert ThreadChooser(2, one_s=math.inf, many_s=0.1).current == 2  # one thread not measured
    with pytest.raises(ValueError):
        ThreadChooser(1, 0.01, 0.01)


def test_an_idle_cpu_keeps_every_thread_and_probes_one_ever_less_often():
    c = ThreadChooser(2, one_s=0.050, many_s=0.038)
    used = drive(c, {1: 0.050, 2: 0.038}, 4000)
    assert c.current == 2 and c.switches == 0
    probes = [i for i in range(1, len(used)) if used[i] == 1 and used[i - 1] == 2]
    gaps = [b - a for a, b in zip(probes, probes[1:])]
    assert probes[0] == 32 and gaps == sorted(gaps) and gaps[-1] > 1000  # 32, 64, ... up to 1024 tokens apart
    assert used.count(1) <= 4 * len(probes)  # each probe: one wake-up token and three measured


def test_contention_moves_to_one_thread_within_a_few_tokens_and_back_when_it_ends():
    c = ThreadChooser(2, one_s=0.050, many_s=0.038)
    drive(c, {1: 0.050, 2: 0.038}, 90)  # one probe of one thread (tokens 32-35); the next is at 100
    assert c.current == 2
    busy = {1: 0.058, 2: 0.180}  # spinning threads beside a busy process (full size, bench/omp_wait_policy.py)
    assert c.threads(2) == (2, 2)
    used = drive(c, busy, 20)
    first_one = used.index(1)
    assert first_one <= 5  # the median of the last 6 tokens crosses 1.3x within 4 slow tokens
    assert c.current == 1 and c.switches == 1
    assert c.threads(2) == (1, 1)  # prefill leaves the busy core too
    used = drive(c, busy, 3000)
    assert used.count(2) < 0.02 * len(used)  # two threads re-measured ever less often while they stay slow
    used = drive(c, {1: 0.050, 2: 0.038}, 1100)  # contention over: the next probe of two threads wins
    assert c.current == 2 and c.switches == 2 and c.threads(2) == (2, 2)


def test_a_small_model_decodes_on_one_thread_and_keeps_prefilling_on_all():
    c = ThreadChooser(2, one_s=0.021, many_s=0.035)  # SmolLM2-135M under passive waiting
    drive(c, {1: 0.021, 2: 0.035}, 500)
    assert c.threads(2) == (1, 2) and c.switches == 0


def test_a_uniformly_slower_cpu_does_not_make_it_switch_back_and_forth():
    c = ThreadChooser(2, one_s=0.050, many_s=0.038)
    drive(c, {1: 0.050, 2: 0.038}, 50)
    drive(c, {1: 0.100, 2: 0.076}, 500)  # both twice as slow (thermal throttling): two threads stay best
    assert c.current == 2 and c.switches == 0


def test_the_token_after_a_switch_is_not_counted():
    c = ThreadChooser(2, one_s=0.050, many_s=0.038, explore=4)
    drive(c, {1: 0.050, 2: 0.038}, 4)
    assert c.current == 1  # probing
    c.record(10.0)  # waking the pool: ignored
    for _ in range(3):
        c.record(0.030)  # one thread is now clearly faster
    assert c.current == 1 and c.switches == 1


def test_copy_is_independent():
    c = ThreadChooser(2, one_s=0.050, many_s=0.038)
    d = c.copy()
    drive(d, {1: 0.058, 2: 0.180}, 30)
    assert d.current == 1 and c.current == 2 and c.switches == 0


def test_best_seconds_skips_the_first_call():
    calls = []
    assert best_seconds(lambda: calls.append(1), 3) >= 0 and len(calls) == 4
