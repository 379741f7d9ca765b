"""The posterior verifier: CTC keyword scores (compiled and numpy), one-hot text evidence, and the engine passing the
encoder's posteriors to the hotword search (real reference bundle)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest

from nim4asr_edge.errors import HotwordError
from nim4asr_edge.hotwords import ENGLISH_INVENTORY, HotwordIndex, SearchOptions, verify
from nim4asr_edge.hotwords.ctc_score import (
    BIG,
    frame_costs,
    keyword_costs,
    keyword_costs_numpy,
    keyword_states,
    one_hot_logprobs,
)

from .test_hotwords_index import DictG2P

INV = list(ENGLISH_INVENTORY)
SYM = {s: i for i, s in enumerate(INV)}
BLANK, BOUNDARY, V = 0, 1, len(INV)


class WordsG2P(DictG2P):
    """A fixed pronunciation per word (the G2P protocol is pluggable)."""

    name = "dict:ctc-test"
    WORDS: ClassVar[dict[str, list[str]]] = {w: p.split() for w, p in {
        "zorblax": "z ɔː ɹ b l æ k s", "zorblix": "z ɔː ɹ b l ɪ k s", "quintaro": "k w ɪ n t ɑː ɹ oʊ",
        "meet": "m iː t", "the": "ð ə", "at": "æ t", "park": "p ɑː ɹ k", "bellamy": "b ɛ l ə m i",
        "street": "s t ɹ iː t", "bella": "b ɛ l ə"}.items()}


def posteriors(symbols, deleted=(), p_deleted=0.35, frames_per_symbol=2):
    """Log-posteriors a CTC head might give for ``symbols`` (a blank frame after each symbol): each symbol's frames
    peak at it (0.9); a symbol whose index is in ``deleted`` loses its frames to the blank (0.6 blank, ``p_deleted``
    for it), so the greedy path drops it though the posteriors keep it."""
    rows = []
    rest = 0.05
    for i, s in enumerate(symbols):
        for _ in range(frames_per_symbol):
            p = np.full(V, rest / (V - 2))
            if i in deleted:
                p[:] = (1 - 0.6 - p_deleted) / (V - 2)
                p[BLANK], p[SYM[s]] = 0.6, p_deleted
            else:
                p[SYM[s]], p[BLANK] = 0.9, 0.05
            rows.append(p / p.sum())
        p = np.full(V, rest / (V - 1))
        p[BLANK] = 0.95
        rows.append(p / p.sum())
    return np.log(np.array(rows, np.float32))


def greedy(lp):
    best = lp.argmax(axis=1)
    keep = (best != BLANK) & np.concatenate([[True], best[1:] != best[:-1]])
    return [INV[i] for i in best[keep]]


def states_of(texts, g2p=None):
    g2p = g2p or WordsG2P()
    seqs = [[SYM[s] for s in g2p.phonemize([t])[0]] for t in texts]
    m = max(map(len, seqs))
    mat = np.full((len(seqs), m), -1, np.int64)
    for i, s in enumerate(seqs):
        mat[i, : len(s)] = s
    return keyword_states(mat, np.array([len(s) for s in seqs]), BLANK, BOUNDARY, V)


# ------------------------------------------------------------------------------------------------ the score itself
def test_the_score_prefers_the_right_entry_when_the_head_deleted_phonemes():
    spoken = WordsG2P().phonemize(["meet zorblax at the park"])[0]
    zorblax = spoken.index("z")
    # the head drops ɹ, l, k and s of "zorblax": the greedy path has 4 of its 8 phonemes
    lp = posteriors(spoken, deleted={zorblax + k for k in (2, 4, 6, 7)})
    assert greedy(lp)[4:9] == ["z", "ɔː", "b", "æ", "|"]
    costs = frame_costs(lp, 6.0, BLANK, BOUNDARY)
    states, skip, n = states_of(["zorblax", "zorblix", "quintaro", "meet zorblax"])
    cost, first, last = keyword_costs(costs, states, skip, n, np.zeros(4, np.int64), np.full(4, len(lp)))
    deleted_cost = 4 * np.log(0.6 / 0.35)  # each deleted phoneme costs its best frame's log-ratio to the blank
    assert cost[0] == pytest.approx(deleted_cost, abs=1e-4)
    assert cost[1] > cost[0] + 4  # "zorblix": one vowel the audio does not support costs nearly a whole frame cap
    assert cost[2] > 30  # "quintaro" is not there
    assert cost[3] == pytest.approx(cost[0], abs=1e-4)  # "meet" is heard exactly; the separator takes the "|"
    # the path spans "zorblax"'s frames (3 per symbol: 2 of it and a blank)
    assert 3 * zorblax <= first[0] <= 3 * zorblax + 1 and 3 * (zorblax + 7) <= last[0] <= 3 * (zorblax + 7) + 1


def zorblax_heard_badly():
    """(log-posteriors, greedy hypothesis) of "meet zorblax at the park" whose head deleted 4 of Zorblax's 8
    phonemes (r, l, k, s)."""
    spoken = WordsG2P().phonemize(["meet zorblax at the park"])[0]
    z = spoken.index("z")
    lp = posteriors(spoken, deleted={z + k for k in (2, 4, 6, 7)})
    return lp, greedy(lp)


def test_the_posterior_verifier_finds_what_the_greedy_string_lost(tmp_path):
    g = WordsG2P()
    lp, hyp = zorblax_heard_badly()
    with HotwordIndex.build(["Zorblax", "Zorblix", "Quintaro"], tmp_path / "i", g, INV) as idx:
        greedy_hits = idx.search(hyp)  # "auto": greedy for a bare phoneme string
        assert "Zorblax" not in [h.text for h in greedy_hits]  # 4 edits in 8 phonemes: past the allowance
        hits = idx.search(hyp, logprobs=lp)  # "auto": posterior with posteriors
        assert hits[0].text == "Zorblax" and hits[0].method == "approx"
        assert hits[0].score == pytest.approx(1 - 4 * np.log(0.6 / 0.35) / (6.0 * 8), abs=1e-4)
        assert all(h.score < hits[0].score for h in hits[1:])
        assert (hits[0].start, hits[0].end) == (4, 8)  # "z ɔː b æ" in the cleaned hypothesis
        assert idx.search(hyp, logprobs=lp, options=SearchOptions(verifier="greedy")) == greedy_hits
        with pytest.raises(HotwordError, match="greedy path"):
            idx.search(hyp[:-2], logprobs=lp)
        with pytest.raises(HotwordError, match="inventory"):
            idx.search(hyp, logprobs=lp[:, :-1])


def test_a_frame_costs_at_most_the_cap_and_windows_bound_the_path():
    spoken = WordsG2P().phonemize(["meet the park"])[0]
    lp = posteriors(spoken)
    costs = frame_costs(lp, 6.0, BLANK, BOUNDARY)
    assert costs.shape == (len(lp), V + 1) and costs.min() == 0.0 and costs.max() == pytest.approx(6.0)
    assert np.array_equal(costs[:, V], np.minimum(costs[:, BLANK], costs[:, BOUNDARY]))
    states, skip, n = states_of(["park"])
    p = spoken.index("p")
    full = keyword_costs(costs, states, skip, n, np.array([0]), np.array([len(lp)]))
    assert full[0][0] == 0.0
    inside = keyword_costs(costs, states, skip, n, np.array([3 * p]), np.array([3 * p + 11]))
    assert inside[0][0] == 0.0  # the window holds "park"'s frames
    cut = keyword_costs(costs, states, skip, n, np.array([0]), np.array([3 * p + 5]))
    assert cut[0][0] >= 6.0  # the last two phonemes are outside the window
    none = keyword_costs(costs, states, skip, n, np.array([0]), np.array([3]))
    assert none[0][0] == BIG and none[1][0] == none[2][0] == -1  # 3 frames cannot hold 4 phonemes


def test_repeated_phonemes_need_a_blank_between_them():
    lp = posteriors(["l", "l"], frames_per_symbol=1)  # "l _ l _": two l emissions
    costs = frame_costs(lp, 6.0, BLANK, BOUNDARY)
    seq = np.array([[SYM["l"], SYM["l"]]])
    states, skip, n = keyword_states(seq, np.array([2]), BLANK, BOUNDARY, V)
    assert states.tolist() == [[SYM["l"], BLANK, SYM["l"]]] and skip.tolist() == [[0, 0, 0]]
    assert keyword_costs(costs, states, skip, n, np.array([0]), np.array([4]))[0][0] == 0.0
    one = frame_costs(posteriors(["l"], frames_per_symbol=2), 6.0, BLANK, BOUNDARY)  # "l l _": one emission
    assert keyword_costs(one, states, skip, n, np.array([0]), np.array([3]))[0][0] > 1.0


@pytest.mark.skipif(not verify.compiled_available(), reason="the compiled verifier was not built")
def test_compiled_and_numpy_keyword_costs_are_identical():
    rng = np.random.default_rng(7)
    checked = 0
    for trial in range(20):
        t = int(rng.integers(1, 120))
        lp = np.log(rng.dirichlet(np.full(V, 0.3), size=t)).astype(np.float32)
        costs = frame_costs(lp, float(rng.choice([3.0, 6.0, 9.0])), BLANK, BOUNDARY)
        c = int(rng.integers(1, 120))
        lens = rng.integers(1, 14, c)
        seqs = np.full((c, 14), -1, np.int64)
        for i, n in enumerate(lens):
            s = rng.integers(2, V, n)
            s[rng.random(n) < 0.15] = BOUNDARY  # boundaries, some doubled or at the ends
            s[rng.random(n) < 0.1] = s[0]  # repeated phonemes
            seqs[i, :n] = s
        states, skip, n = keyword_states(seqs, lens, BLANK, BOUNDARY, V)
        lo = rng.integers(0, t, c)
        hi = lo + rng.integers(0, t + 5, c)
        a = keyword_costs(costs, states, skip, n, lo, hi)
        b = keyword_costs_numpy(costs, states, skip, n, lo, hi)
        threaded = keyword_costs(costs, states, skip, n, lo, hi, threads=3)  # in chunks on a thread pool
        for x, y, z in zip(a, b, threaded):
            assert np.array_equal(x, y) and np.array_equal(x, z), trial
        # with a limit, partial paths over it are dropped: costs within it stay, the others become BIG
        limit = rng.uniform(0, 3 * lens).astype(np.float32)
        la = keyword_costs(costs, states, skip, n, lo, hi, threads=2, limit=limit)
        lb = keyword_costs_numpy(costs, states, skip, n, lo, hi, limit)
        for x, y in zip(la, lb):
            assert np.array_equal(x, y), trial
        within = a[0] <= limit
        assert np.array_equal(la[0][within], a[0][within]) and np.all(la[0][~within] == BIG)
        checked += int(within.sum())
    assert checked > 20  # the limits keep some costs and drop others


@pytest.mark.skipif(not verify.compiled_available(), reason="the compiled verifier was not built")
def test_compiled_and_numpy_posterior_searches_return_the_same_hits(tmp_path):
    g = WordsG2P()
    rng = np.random.default_rng(3)
    words = list(WordsG2P.WORDS)
    names = ["Zorblax", "Zorblix", "Quintaro", "Bellamy Street", "Bella", "Meet the Park"]
    with HotwordIndex.build(names, tmp_path / "i", g, INV) as idx:
        for _ in range(10):
            spoken = g.phonemize([" ".join(rng.choice(words, 6))])[0]
            lp = posteriors(spoken, deleted=set(rng.choice(len(spoken), 4).tolist()))
            hyp = greedy(lp)
            with_c = idx.search(hyp, logprobs=lp)
            verify.use_compiled(False)
            try:
                assert idx.search(hyp, logprobs=lp) == with_c
            finally:
                verify.use_compiled(True)


# ---------------------------------------------------------------------------------------- one-hot (text) evidence
def test_one_hot_posteriors_score_edits_in_units_of_the_cap(tmp_path):
    g = WordsG2P()
    ids = np.array([SYM[s] for s in g.phonemize(["meet zorblax"])[0]])
    lp = one_hot_logprobs(ids, V, 6.0, BLANK, BOUNDARY)
    assert lp.shape == (2 + 3 * len(ids), V) and greedy(lp) == [INV[i] for i in ids]
    with HotwordIndex.build(["Zorblax", "Quintaro"], tmp_path / "i", g, INV) as idx:
        posterior = SearchOptions(verifier="posterior")
        heard = g.phonemize(["meet zorblix at the park"])[0]  # one substitution
        (hit,) = idx.search(heard, options=posterior)
        assert (hit.text, hit.method, hit.start, hit.end) == ("Zorblax", "approx", 4, 12)
        assert hit.score == pytest.approx(1 - 1 / 8)  # one edit = one cap
        exact = idx.search(g.phonemize(["meet zorblax"])[0], options=posterior)
        assert [(h.text, h.method, h.score) for h in exact] == [("Zorblax", "exact", 1.0)]
        dropped = [s for s in heard if s not in ("l", "ɪ")]  # two deletions
        (hit,) = idx.search(dropped, options=posterior)
        assert hit.text == "Zorblax" and hit.score == pytest.approx(1 - 2 / 8)
        assert idx.search(dropped, options=dataclasses.replace(posterior, text_keyword_cost_per_phoneme=0.3)) == []
        # text evidence has a slope of its own: the one for CTC posteriors does not apply
        assert idx.search(dropped, options=dataclasses.replace(posterior, keyword_cost_per_phoneme=0.3)) != []


def test_options_choose_the_verifier():
    assert SearchOptions().resolve_verifier(True) == "posterior"
    assert SearchOptions().resolve_verifier(False) == "greedy"
    assert SearchOptions(verifier="greedy").resolve_verifier(True) == "greedy"
    assert SearchOptions(verifier="posterior").resolve_verifier(False) == "posterior"
    with pytest.raises(ValueError, match="verifier"):
        SearchOptions(verifier="beam")
    opt = SearchOptions().for_entries(1_000_000)
    allowed = opt.max_keyword_cost(np.array([5, 6, 12, 40]))
    assert allowed[0] < 0 <= allowed[1] < allowed[2] < allowed[3]  # longer entries earn more, as in the greedy rule


# ------------------------------------------------------------------------------------ the engine, end to end (real)
@pytest.fixture(scope="module")
def ref_rec():
    from nim4asr_edge import Recognizer, RecognizerOptions
    from nim4asr_edge.models import HERE as MODELS

    ref = MODELS / "nim4asr-ref-en"
    if not (ref / "manifest.json").is_file():
        pytest.skip("reference bundle not shipped")
    pytest.importorskip("espeakng_loader", reason="building a hotword index needs eSpeak NG (extra 'g2p')")
    with Recognizer(ref, RecognizerOptions(threads=2),
                    hotwords=["fellow Americans", "ask not", "Ada Lovelace", "Kingsford Park"]) as rec:
        yield rec


def test_the_engine_passes_the_ctc_posteriors_to_the_search(ref_rec, jfk, monkeypatch):
    """jfk.wav through the reference bundle: the engine hands the search the encoder's log-posteriors with their
    greedy path, the posterior verifier runs, and its hits are the hints the segment was decoded with."""
    index = ref_rec.engine.hotwords
    calls = []
    real_search = index.search

    def spy(phonemes, *args, **kwargs):
        hits = real_search(phonemes, *args, **kwargs)
        calls.append((tuple(phonemes), kwargs.get("logprobs"), kwargs.get("options"), hits))
        return hits

    monkeypatch.setattr(index, "search", spy)
    seg = ref_rec.transcribe(jfk, sample_rate=16000).segments[0]
    ((phonemes, lp, options, hits),) = calls
    assert lp is not None and lp.shape == (550, len(INV))  # 11 s at 50 frames/s, the head's 49 classes
    assert np.allclose(np.exp(lp).sum(axis=1), 1, atol=1e-4)
    assert phonemes == tuple(seg.phonemes.split()) == tuple(greedy(lp))
    assert options.resolve_verifier(True) == "posterior"
    texts = [h.text for h in hits]
    assert "ask not" in texts and "Ada Lovelace" not in texts and "Kingsford Park" not in texts
    assert "ask not" not in [h.text for h in real_search(phonemes, options=options, logprobs=None)]  # greedy
    assert set(texts) <= set(seg.hints)


def test_text_evidence_runs_the_posterior_verifier_on_one_hot_posteriors(ref_rec, monkeypatch):
    """A family without a phoneme head (evidence from its transcript's G2P) searches the same way, over one-hot
    "posteriors" of the phonemes."""
    from nim4asr_edge.evidence import HypothesisEvidence

    engine = ref_rec.engine
    monkeypatch.setattr(engine, "evidence", HypothesisEvidence(ref_rec.bundle.g2p()))
    evidence = engine.evidence.from_text("and so my fellow Americans, ask not")
    assert evidence.logprobs is None
    calls = []
    real_search = engine.hotwords.search
    monkeypatch.setattr(engine.hotwords, "search",
                        lambda *a, **k: calls.append(k) or real_search(*a, **k))
    hits = engine.hotword_hits(evidence.symbols, None, evidence.logprobs)
    assert calls[0]["options"].verifier == "posterior" and calls[0]["logprobs"] is None
    assert {h.text for h in hits} == {"fellow Americans", "ask not"}
