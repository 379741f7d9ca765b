"""Candidates from the CTC posteriors: the phoneme trie of an index and token passing over it (hotwords/trie.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nim4asr_edge.errors import HotwordError
from nim4asr_edge.hotwords import HotwordIndex, SearchOptions, verify
from nim4asr_edge.hotwords.ctc_score import (
    frame_costs,
    keyword_costs_numpy,
    keyword_states,
)
from nim4asr_edge.hotwords.options import TRIE_ALONE_FROM
from nim4asr_edge.hotwords.trie import (
    PhonemeTrie,
    trie_keyword_search,
    trie_keyword_search_numpy,
)
from nim4asr_edge.hotwords.verifiers import entry_matrix

from .test_hotwords_ctc_score import (
    BLANK,
    BOUNDARY,
    INV,
    V,
    WordsG2P,
    greedy,
    posteriors,
    zorblax_heard_badly,
)

NO_BEAM = (1e3, 1e6)  # prefix rate and slack no path reaches


class Table:
    """The two arrays of an entry table the trie reads."""

    def __init__(self, seqs):
        self.offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
        self.flat = np.concatenate([np.asarray(s, np.uint8) for s in seqs])


def random_entries(rng, n, classes=12):
    seqs = []
    for _ in range(n):
        s = []
        for w in range(int(rng.integers(1, 3))):
            s += ([BOUNDARY] if w else []) + rng.integers(2, classes, int(rng.integers(1, 5))).tolist()
        seqs.append(s)
    return seqs + [list(seqs[3]), list(seqs[3][:2])]  # a duplicate and a prefix of another entry


def random_case(seed, n):
    """(rng, entries, their table, their trie) for a random list of ``n`` entries."""
    rng = np.random.default_rng(seed)
    seqs = random_entries(rng, n)
    tab = Table(seqs)
    return rng, seqs, tab, PhonemeTrie.build(tab.offsets, tab.flat, np.arange(len(seqs)), BOUNDARY)


def random_costs(rng, alpha, frames):
    """Frame costs of random posteriors (Dirichlet ``alpha``: smaller is peakier)."""
    return frame_costs(np.log(rng.dirichlet(np.full(V, alpha), frames)).astype(np.float32), 6.0, BLANK, BOUNDARY)


def walk(trie, seq):
    node = 0
    for sym in seq:
        kids = np.arange(trie.child[node], trie.child[node + 1])
        match = kids[trie.label[kids] == sym]
        assert len(match) == 1
        node = int(match[0])
    return node


def test_the_trie_holds_every_entry_on_the_path_of_its_symbols():
    _, seqs, tab, trie = random_case(0, 300)
    for row, seq in enumerate(seqs):
        node = walk(trie, seq)
        assert trie.final[node] == 1 and row in trie.rows[trie.term_node == node]
        assert trie.depth[node] == sum(s != BOUNDARY for s in seq)
        assert trie.maxlen[node] >= trie.depth[node]
    assert sorted(trie.rows.tolist()) == list(range(len(seqs)))
    assert np.all(np.diff(trie.term_node) >= 0)
    # every node but the root is some entry's prefix: as many nodes as distinct prefixes
    prefixes = {tuple(s[:d]) for s in seqs for d in range(1, len(s) + 1)}
    assert trie.nodes == len(prefixes) + 1
    # rows left out (removed entries) are not in it
    part = PhonemeTrie.build(tab.offsets, tab.flat, np.arange(0, len(seqs), 2), BOUNDARY)
    assert sorted(part.rows.tolist()) == list(range(0, len(seqs), 2))


def test_without_a_beam_the_search_finds_every_entry_at_its_keyword_cost():
    rng, seqs, tab, trie = random_case(1, 200)
    costs = random_costs(rng, 0.3, 50)
    rows, cost, first, last = trie_keyword_search_numpy(trie, costs, BLANK, BOUNDARY, np.float32(1e9), *NO_BEAM)
    emat, elen = entry_matrix(tab, np.arange(len(seqs)))
    states, skip, n = keyword_states(emat, elen, BLANK, BOUNDARY, V)
    ref, ref_first, ref_last = keyword_costs_numpy(costs, states, skip, n, np.zeros(len(seqs), np.int64),
                                                   np.full(len(seqs), len(costs)))
    assert np.array_equal(rows, np.arange(len(seqs)))
    assert np.array_equal(cost, ref) and np.array_equal(first, ref_first) and np.array_equal(last, ref_last)
    # limits by length: exactly the entries within their limit
    limit = (np.arange(256) * 1.5 - 1).astype(np.float32)
    rows, cost, _, _ = trie_keyword_search_numpy(trie, costs, BLANK, BOUNDARY, limit, *NO_BEAM)
    nphon = np.array([sum(s != BOUNDARY for s in q) for q in seqs])
    assert np.array_equal(rows, np.flatnonzero(ref <= limit[nphon] + 1e-4))


def test_the_prefix_beam_only_drops_paths():
    rng, _, _, trie = random_case(2, 300)
    costs = random_costs(rng, 0.2, 60)
    limit = (np.arange(256) * 2.0).astype(np.float32)
    full = dict(zip(*trie_keyword_search_numpy(trie, costs, BLANK, BOUNDARY, limit, *NO_BEAM)[:2]))
    rows, cost, _, _ = trie_keyword_search_numpy(trie, costs, BLANK, BOUNDARY, limit, 1.0, 2.0)
    assert 0 < len(rows) < len(full)
    assert all(full[r] <= c for r, c in zip(rows.tolist(), cost.tolist()))


@pytest.mark.skipif(verify.compiled_module() is None or not hasattr(verify.compiled_module(), "trie_keyword"),
                    reason="the C extension is not built")
def test_compiled_and_numpy_trie_searches_are_identical():
    rng, _, _, trie = random_case(3, 400)
    limit = (np.arange(256) * 1.5 - 1).astype(np.float32)
    for alpha, (rate, slack) in ((0.3, NO_BEAM), (0.2, (1.2, 3.0)), (1.0, (0.5, 1.0))):
        costs = random_costs(rng, alpha, 80)
        a = trie_keyword_search_numpy(trie, costs, BLANK, BOUNDARY, limit, rate, slack)
        for threads in (1, 2, 3):  # the root's subtrees split over threads: the same hits
            b = trie_keyword_search(trie, costs, BLANK, BOUNDARY, limit, rate, slack, threads)
            assert len(a[0]) and all(np.array_equal(x, y) for x, y in zip(a, b))
    empty = trie_keyword_search(trie, costs, BLANK, BOUNDARY, np.float32(-1.0), 1.2, 3.0)
    assert all(len(x) == 0 for x in empty)


def no_neighbours(vecs, k, threads, filt):
    return np.full((len(vecs), k), -1, np.int64), np.ones((len(vecs), k), np.float32)


def test_trie_candidates_find_an_entry_the_graph_does_not_return(tmp_path):
    g = WordsG2P()
    lp, hyp = zorblax_heard_badly()
    with HotwordIndex.build(["Zorblax", "Zorblix", "Quintaro"], tmp_path / "i", g, INV) as idx:
        idx.set_neighbour_lookup(no_neighbours)  # the windows' lookups find nothing
        assert idx.search(hyp, logprobs=lp, options=SearchOptions(posterior_candidates="windows")) == []
        hits = idx.search(hyp, logprobs=lp, options=SearchOptions(posterior_candidates="trie"))
        assert hits[0].text == "Zorblax" and all(h.score < hits[0].score for h in hits[1:])
        assert hits[0].score == pytest.approx(1 - 4 * np.log(0.6 / 0.35) / (6.0 * 8), abs=1e-4)
        assert (hits[0].start, hits[0].end) == (4, 8)  # the same span the posterior verifier gives
        idx.set_neighbour_lookup(None)
        both = idx.search(hyp, logprobs=lp)  # auto below TRIE_ALONE_FROM entries: trie and windows
        assert both == idx.search(hyp, logprobs=lp, options=SearchOptions(posterior_candidates="windows"))
        # speech without the entity, and a bare phoneme string, give no trie hits
        other = g.phonemize(["meet bella at the park"])[0]
        lp2 = posteriors(other)
        assert idx.search(greedy(lp2), logprobs=lp2, options=SearchOptions(posterior_candidates="trie")) == []


def test_the_trie_is_saved_mapped_and_follows_edits(tmp_path):
    g = WordsG2P()
    spoken = g.phonemize(["meet zorblax at the park"])[0]
    lp = posteriors(spoken)
    hyp = greedy(lp)
    trie_only = SearchOptions(posterior_candidates="trie")
    d = tmp_path / "i"
    with HotwordIndex.build(["Quintaro", "Bellamy Street"], d, g, INV) as idx:
        assert (d / "trie.g1.bin").is_file()
        assert idx.search(hyp, logprobs=lp, options=trie_only) == []
        idx.add(["Zorblax"])
        assert [h.text for h in idx.search(hyp, logprobs=lp, options=trie_only)] == ["Zorblax"]
        assert not (d / "trie.g1.bin").exists()
        idx.remove(["Zorblax"])
        assert idx.search(hyp, logprobs=lp, options=trie_only) == []
        idx.add(["Zorblax"])
    with HotwordIndex.open(d, on_stale="error") as idx:
        trie = idx.phoneme_trie()
        assert isinstance(trie.label.base, memoryview) or not trie.label.flags.owndata  # mapped, not read
        assert [h.text for h in idx.search(hyp, logprobs=lp, options=trie_only)] == ["Zorblax"]
    # an index written before the trie existed: opened as it is, the trie built in memory on first use
    sidecar = json.loads((d / "index.json").read_text())
    (d / sidecar["files"].pop("trie")["name"]).unlink()
    (d / "index.json").write_text(json.dumps(sidecar))
    with HotwordIndex.open(d, on_stale="error") as idx:
        assert [h.text for h in idx.search(hyp, logprobs=lp, options=trie_only)] == ["Zorblax"]


def test_a_damaged_trie_file_makes_the_index_stale(tmp_path):
    d = tmp_path / "i"
    HotwordIndex.build(["Zorblax", "Quintaro"], d, WordsG2P(), INV).close()
    sidecar = json.loads((d / "index.json").read_text())
    path = d / sidecar["files"]["trie"]["name"]
    data = bytearray(path.read_bytes())
    data[20:40] = b"\xff" * 20  # the header
    path.write_bytes(bytes(data))
    with pytest.raises(HotwordError, match="trie|rebuild|stale"):
        HotwordIndex.open(d, on_stale="error")
    with HotwordIndex.open(d) as idx:  # rebuilt from the store
        assert idx.stats()["entries"] == 2
        assert idx.phoneme_trie().nodes > 1


def test_options_choose_the_candidate_source_by_list_size():
    opt = SearchOptions()
    assert opt.for_entries(TRIE_ALONE_FROM - 1).posterior_candidates == "trie+windows"
    assert opt.for_entries(TRIE_ALONE_FROM).posterior_candidates == "trie"
    fixed = dataclasses.replace(opt, posterior_candidates="windows")
    assert fixed.for_entries(10 * TRIE_ALONE_FROM).posterior_candidates == "windows"
    with pytest.raises(ValueError, match="posterior_candidates"):
        SearchOptions(posterior_candidates="graph")
    with pytest.raises(ValueError, match="trie_prefix"):
        SearchOptions(trie_prefix_rate=-1.0)


def test_the_graph_loads_only_when_a_search_needs_it(tmp_path):
    g = WordsG2P()
    spoken = g.phonemize(["meet zorblax at the park"])[0]
    lp = posteriors(spoken)
    hyp = greedy(lp)
    d = tmp_path / "i"
    HotwordIndex.build(["Zorblax", "Quintaro"], d, g, INV).close()
    with HotwordIndex.open(d, on_stale="error") as idx:
        assert idx.stats()["hnsw"] == {**idx.stats()["hnsw"], "elements": 2, "loaded": False}
        hits = idx.search(hyp, logprobs=lp, options=SearchOptions(posterior_candidates="trie"))
        assert [h.text for h in hits] == ["Zorblax"] and not idx.stats()["hnsw"]["loaded"]
        assert [h.text for h in idx.search(g.phonemize(["zorblix"])[0])] == ["Zorblax"]  # greedy: the windows
        assert idx.stats()["hnsw"]["loaded"]
    # a graph file that is not one (same size) is caught by its header on open, not at the first search
    side = json.loads((d / "index.json").read_text())
    path = d / side["files"]["hnsw"]["name"]
    path.write_bytes(bytes(path.stat().st_size))
    with pytest.raises(HotwordError, match="does not match its store"):
        HotwordIndex.open(d, on_stale="error")
