"""Substitution costs of the hotword verifier: measured table -> cost matrix -> cheaper confusable substitutions."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nim4asr_edge.errors import HotwordError
from nim4asr_edge.hotwords import ENGLISH_INVENTORY, HotwordIndex, SearchOptions
from nim4asr_edge.hotwords.costs import PhonemeCosts, costs_from_confusions, default_costs
from nim4asr_edge.hotwords.verify import PAD, align_scores

INV = list(ENGLISH_INVENTORY)
SYM = {p: i for i, p in enumerate(INV)}


def ids(symbols: str) -> np.ndarray:
    return np.array([SYM[s] for s in symbols.split()], np.int64)


def test_costs_from_confusions_levels():
    counts = np.zeros((len(INV), len(INV)))
    # substitutions of each reference phoneme: s 100, z 20, t 100, m 3
    counts[SYM["s"], SYM["z"]] = 30  # 30 / (100 + 20) = 0.25 -> 0.5
    counts[SYM["s"], SYM["t"]] = 20  # 20 / (100 + 100) = 0.1 -> 0.75
    counts[SYM["s"], SYM["f"]] = 50  # 50 / (100 + 0) -> 0.5
    counts[SYM["z"], SYM["k"]] = 20  # 20 / (20 + 0) -> 0.5
    counts[SYM["t"], SYM["d"]] = 96  # 96 / (100 + 0) -> 0.5
    counts[SYM["t"], SYM["m"]] = 4  # 4 / (100 + 3) = 0.04 -> 1
    counts[SYM["m"], SYM["b"]] = 3  # share 1, but seen 3 times: 1
    counts[SYM["|"], SYM["s"]] = 500  # word boundaries and blank are never cheap
    counts[SYM["s"], SYM["s"]] = 10_000  # correct emissions do not count
    c = costs_from_confusions(counts, INV, "test")
    assert {(a, b): v for a, b, v in c.pairs} == {("t", "s"): 0.75, ("s", "z"): 0.5, ("f", "s"): 0.5,
                                                   ("k", "z"): 0.5, ("t", "d"): 0.5}
    m = c.matrix(INV)
    assert m[SYM["s"], SYM["z"]] == m[SYM["z"], SYM["s"]] == 0.5
    assert m[SYM["|"], SYM["s"]] == 1.0 and m[SYM["s"], SYM["s"]] == 0.0 and m[SYM["k"], SYM["f"]] == 1.0
    assert m[-1].min() > 1e8 and m[:, -1].min() > 1e8  # PAD (-1) rows and columns


def test_cost_table_files_and_bad_input(tmp_path):
    c = PhonemeCosts(tuple(INV), (("s", "z", 0.5), ("m", "n", 0.75)), "unit test")
    c.save(tmp_path / "c.json")
    assert PhonemeCosts.load(tmp_path / "c.json") == c
    with pytest.raises(HotwordError, match="another phoneme inventory"):
        c.matrix(INV[:-1])
    good = c.to_json()
    for bad in ({"format": "x"}, {**good, "pairs": [["s", "q", 0.5]]}, {**good, "pairs": [["s", "z", 0.3]]},
                {**good, "pairs": [["s", "|", 0.5]]}, {**good, "pairs": [["s"]]}):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(HotwordError):
            PhonemeCosts.load(tmp_path / "bad.json")
    (tmp_path / "trunc.json").write_text(json.dumps(c.to_json())[:40])
    with pytest.raises(HotwordError, match="cannot read"):
        PhonemeCosts.load(tmp_path / "trunc.json")


def test_shipped_table_fits_the_english_inventory():
    c = default_costs(INV)
    assert c is not None and "measure_confusions" in c.source
    m = c.matrix(INV)
    assert 20 <= len(c.pairs) <= 200
    assert m[SYM["s"], SYM["z"]] < 1.0 and m[SYM["s"], SYM["ɑː"]] == 1.0  # voicing pair cheap, unrelated not
    assert default_costs(INV[:-1] + ["x2"]) is None


def test_align_scores_with_costs():
    c = PhonemeCosts(tuple(INV), (("s", "z", 0.5), ("m", "n", 0.75)))
    entry, text = ids("s ɪ m | p ɑː ɹ k"), ids("z ɪ n | p ɑː ɹ k | ð ə")
    e, t = entry[None, :], text[None, :]
    el, tl = np.array([len(entry)]), np.array([len(text)])
    unit, _ = align_scores(e, el, t, tl, SYM["|"], word_end=True)
    cheap, matched = align_scores(e, el, t, tl, SYM["|"], word_end=True, sub_cost=c.matrix(INV))
    ones, _ = align_scores(e, el, t, tl, SYM["|"], word_end=True, sub_cost=PhonemeCosts(tuple(INV), ()).matrix(INV))
    assert unit[0] == ones[0] == 2.0 and cheap[0] == 1.25 and matched[0] == len(entry)
    padded = np.full((1, len(text) + 3), PAD, np.int64)
    padded[0, : len(text)] = text
    again, _ = align_scores(e, el, padded, tl, SYM["|"], word_end=True, sub_cost=c.matrix(INV))
    assert again[0] == 1.25  # padding is never matched


def test_index_accepts_confusable_errors_that_unit_costs_reject(tmp_path):
    from nim4asr_edge.hotwords.g2p import BaseG2P

    class G(BaseG2P):
        name = "fixed:test"

        def _convert(self, text):
            return {"simsbury mills": "s ɪ m z b ɛ ɹ i | m ɪ l z"}[text.lower()].split()

    with HotwordIndex.build(["Simsbury Mills"], tmp_path / "i", G(), INV) as idx:
        assert idx.costs is not None and idx.costs == default_costs(INV)
        # 12 phonemes: allowance 0.55 * (12 - 5.5) = 3.575; s->z, m->n, ɛ->æ are confusions the head makes
        heard = "ð ə | z ɪ n z b æ ɹ i | n ɪ l z | ɪ z | k l oʊ s t".split()
        idx.search_options = SearchOptions(cost_free_phonemes=5.5)  # as strict as a million-entry list
        hits = idx.search(heard)
        assert [h.text for h in hits] == ["Simsbury Mills"] and hits[0].score == pytest.approx(1 - 2.0 / 12, abs=1e-4)
        unit = dataclasses.replace(idx.search_options, phoneme_costs=False)
        assert idx.search(heard, options=unit) == []  # cost 4 > 3.575
        idx.set_costs(None)
        assert idx.costs is None and idx.search(heard) == []
        # the same number of unrelated substitutions is rejected either way
        idx.set_costs(default_costs(INV))
        assert idx.search("ð ə | k ɪ θ z b ʊ ɹ i | ʃ ɪ l z".split()) == []


def test_compiled_verifier_matches_numpy():
    from nim4asr_edge.hotwords import verify

    assert verify._compiled is not None, "the C verifier (hotwords/_align.c) was not built: pip install -e ."
    rng = np.random.default_rng(4)
    costs = default_costs(INV).matrix(INV)
    b = SYM["|"]
    for trial in range(40):
        c, m, n = int(rng.integers(1, 60)), int(rng.integers(1, 20)), int(rng.integers(1, 30))
        elen = rng.integers(0, m + 1, c)
        tlen = rng.integers(0, n + 1, c)
        pool = np.array([b, b, *range(2, 12)])  # few symbols and many boundaries: many matches and word ends
        ent = np.where(np.arange(m)[None, :] < elen[:, None], rng.choice(pool, (c, m)), PAD)
        txt = np.where(np.arange(n)[None, :] < tlen[:, None], rng.choice(pool, (c, n)), PAD)
        final = rng.random(c) < 0.5
        for word_end in (False, True):
            for sub in (None, costs):
                want = verify.align_scores_numpy(ent, elen, txt, tlen, b, word_end, final, sub)
                got = verify.align_scores(ent, elen, txt, tlen, b, word_end, final, sub)
                reach = want[0] < 1e8
                assert np.array_equal(reach, got[0] < 1e8)
                assert np.array_equal(want[0][reach], got[0][reach]), (trial, word_end, sub is None)
                assert np.array_equal(want[1][reach], got[1][reach]), (trial, word_end, sub is None)
    bad = np.full((1, 2), len(INV), np.int64)  # an id the cost table does not cover: refused, never read past it
    with pytest.raises(ValueError, match="past"):
        verify.align_scores(bad, np.array([2]), bad, np.array([2]), b, True, None, costs)


def _bundle_with_costs(src, dst, costs: PhonemeCosts | None, declare: str = "costs.json"):
    import shutil

    from nim4asr_edge.manifest import FileEntry, Manifest, sha256_file

    shutil.copytree(src, dst)
    manifest = Manifest.from_dict(json.loads((dst / "manifest.json").read_text(encoding="utf-8")))
    if costs is not None:
        costs.save(dst / declare)
        manifest.files[declare] = FileEntry(sha256_file(dst / declare), (dst / declare).stat().st_size)
    manifest.phonemes["substitution_costs"] = declare
    manifest.write(dst)
    return dst


def test_bundle_declares_its_heads_costs(tiny_bundle, tmp_path):
    from nim4asr_edge.bundle import Bundle
    from nim4asr_edge.errors import BundleError
    from nim4asr_edge.recognizer import Recognizer

    inv = Bundle.load(tiny_bundle).phoneme_inventory
    own = PhonemeCosts(tuple(inv), ((inv[2], inv[3], 0.5),), "this head")
    with Recognizer(_bundle_with_costs(tiny_bundle, tmp_path / "b", own), hotwords=["Ada Lovelace"]) as rec:
        assert rec.phoneme_costs() == own and rec.hotwords.costs == own
    with Recognizer(tiny_bundle, hotwords=["Ada Lovelace"]) as rec:  # none declared: the SDK's table, if any
        assert rec.hotwords.costs == default_costs(inv)
    other = PhonemeCosts(tuple(INV[:-1]) + ("x9",), (), "another head")
    with pytest.raises(BundleError, match="another phoneme inventory"):
        Recognizer(_bundle_with_costs(tiny_bundle, tmp_path / "c", other), hotwords=["Ada Lovelace"])
    with pytest.raises(BundleError, match="substitution_costs"):  # declared but not listed in files
        Bundle.load(_bundle_with_costs(tiny_bundle, tmp_path / "d", None, declare="missing.json"))
