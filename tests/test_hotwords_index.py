"""HotwordIndex: real SQLite, hnswlib, pyahocorasick and eSpeak NG; retrieval, persistence, bad input, CLI."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from nim4asr_edge.errors import HotwordError
from nim4asr_edge.hotwords import (
    ENGLISH_INVENTORY,
    HotwordAccumulator,
    HotwordHit,
    HotwordIndex,
    LookupCache,
    SearchOptions,
    format_hints,
    importer,
)
from nim4asr_edge.hotwords.g2p import BaseG2P
from nim4asr_edge.hotwords.options import cost_free_for

pytest.importorskip("espeakng_loader", reason="eSpeak NG backend (extra 'g2p') not installed")
from nim4asr_edge.hotwords import EspeakG2P

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from entities import FILLER_WORDS, generate_entities

INV = ENGLISH_INVENTORY


class DictG2P(BaseG2P):
    """A tiny deterministic G2P (the protocol is pluggable): one fixed pronunciation per word."""

    name = "dict:test"
    WORDS: ClassVar[dict[str, list[str]]] = {"nio": ["n", "iː", "oʊ"], "house": ["h", "aʊ", "s"], "the": ["ð", "ə"], "at": ["æ", "t"],
             "meet": ["m", "iː", "t"], "me": ["m", "iː"], "park": ["p", "ɑː", "ɹ", "k"]}

    def _convert(self, text):
        out = []
        for w in text.lower().split():
            if w not in self.WORDS:
                raise ValueError(f"no pronunciation for {w!r}")
            out += (["|"] if out else []) + self.WORDS[w]
        return out


@pytest.fixture(scope="module")
def g2p():
    return EspeakG2P("en-us")


@pytest.fixture(scope="module")
def filler(g2p):
    return {w: p for w, p in zip(FILLER_WORDS, g2p.phonemize(FILLER_WORDS)) if p}


def words_to_hyp(words):
    out = []
    for w in words:
        out += (["|"] if out else []) + list(w)
    return out


def test_exact_longest_match_wins(tmp_path):
    g = DictG2P()
    with HotwordIndex.build(["NIO", "NIO House", "Park"], tmp_path / "i", g, INV) as idx:
        hyp = g.phonemize(["meet me at the NIO House"])[0]
        hits = idx.search(hyp)
        assert [h.text for h in hits] == ["NIO House"]
        h = hits[0]
        assert h.method == "exact" and h.score == 1.0
        assert hyp[h.start : h.end] == list(h.phonemes)
        # NIO alone still matches when no longer hotword covers it; whole words only
        hits = idx.search(g.phonemize(["meet NIO at the park"])[0])
        assert {h.text for h in hits} == {"NIO", "Park"}
        assert idx.search(["n", "iː", "oʊ", "h", "aʊ", "s"], options=SearchOptions(approximate=False)) == []


def test_search_input_cleaning_and_errors(tmp_path):
    g = DictG2P()
    with HotwordIndex.build(["NIO House"], tmp_path / "i", g, INV) as idx:
        ctc = ["<blank>", "|", "n", "<blank>", "iː", "oʊ", "|", "|", "h", "aʊ", "s", "|", "<blank>"]
        hits = idx.search(ctc)
        assert [h.text for h in hits] == ["NIO House"] and hits[0].method == "exact"
        assert idx.search([]) == []
        with pytest.raises(HotwordError, match="not in the index's inventory"):
            idx.search(["n", "ʁ"])
        with pytest.raises(dataclasses.FrozenInstanceError):
            hits[0].score = 0.5


def _corrupt(seq, rate, rng):
    out = []
    for p in seq:
        if p == "|" or rng.random() >= rate:
            out.append(p)
            continue
        op = rng.random()
        other = rng.choice(INV[2:])
        if op < 0.6:
            out.append(other)
        elif op < 0.8:
            continue
        else:
            out += [p, other]
    return out


def test_approximate_recall_under_phoneme_errors(tmp_path, g2p, filler):
    names = list(generate_entities(3000, seed=7))
    with HotwordIndex.build(names, tmp_path / "i", g2p, INV) as idx:
        rng = random.Random(3)
        entries = [e for e in idx.list() if sum(p != "|" for p in e.phonemes) >= 8]
        sample = rng.sample(entries, 150)
        fwords = list(filler)
        recall = {}
        for rate in (0.0, 0.1, 0.2):
            found = {"exact": 0, "approx": 0}
            for e in sample:
                ctx = lambda: [filler[rng.choice(fwords)] for _ in range(3)]
                hyp = _corrupt(words_to_hyp(ctx() + [e.phonemes] + ctx()), rate, rng)
                found["approx"] += any(h.id == e.id for h in idx.search(hyp))
                found["exact"] += any(h.id == e.id for h in idx.search(hyp, options=SearchOptions(approximate=False)))
            recall[rate] = {k: v / len(sample) for k, v in found.items()}
        assert recall[0.0]["exact"] == 1.0 and recall[0.0]["approx"] == 1.0
        assert recall[0.1]["approx"] >= 0.9
        assert recall[0.2]["approx"] >= 0.8
        assert recall[0.2]["exact"] <= 0.3  # exact matching alone does not survive errors
        assert recall[0.2]["approx"] > recall[0.2]["exact"] + 0.4


def test_persistence_and_generation(tmp_path, g2p):
    d = tmp_path / "i"
    with HotwordIndex.build(["Kingsford Park", "Church Street"], d, g2p, INV) as idx:
        gen = idx.generation
        hyp = g2p.phonemize(["meet me at kingsford park"])[0]
        before = idx.search(hyp)
    side = json.loads((d / "index.json").read_text())
    assert side["generation"] == gen and side["dim"] and side["M"] and side["inventory"] == INV
    with HotwordIndex.open(d, on_stale="error", verify="full") as idx:
        assert idx.search(hyp) == before
        rep = idx.add(["Holmbrook Lane"])
        assert rep.added == 1 and idx.generation == gen + 1
    # Another writer changes the store behind the index's back: generation mismatch is detected.
    con = sqlite3.connect(d / "hotwords.sqlite")
    with con:
        con.execute("INSERT INTO hotwords (namespace, text, key, phonemes, weight, created, updated) VALUES "
                    "('default', 'Walgate', 'walgate', 'w ɔː l ɡ eɪ t', 1, 0, 0)")
        con.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
    con.close()
    with pytest.raises(HotwordError, match="generation"):
        HotwordIndex.open(d, on_stale="error")
    with HotwordIndex.open(d) as idx:  # default: rebuild from the store, the truth
        assert [h.text for h in idx.search(["w", "ɔː", "l", "ɡ", "eɪ", "t"])] == ["Walgate"]
    with HotwordIndex.open(d, on_stale="error") as idx:
        assert idx.stats()["entries"] == 4


def test_crash_between_store_and_index_is_detected(tmp_path, g2p):
    d = tmp_path / "i"
    HotwordIndex.build(["Church Street"], d, g2p, INV).close()
    snapshot = tmp_path / "snap"
    shutil.copytree(d, snapshot)
    with HotwordIndex.open(d) as idx:
        idx.add(["Kingsford Park"])
    # Simulate a crash after the store commit but before the new derived files/sidecar were renamed in.
    for p in d.iterdir():
        if p.name != "hotwords.sqlite" and not p.name.startswith("hotwords.sqlite"):
            p.unlink()
    for p in snapshot.iterdir():
        if not p.name.startswith("hotwords.sqlite"):
            shutil.copy(p, d / p.name)
    with pytest.raises(HotwordError, match="does not match its store"):
        HotwordIndex.open(d, on_stale="error")
    with HotwordIndex.open(d) as idx:
        assert "Kingsford Park" in {h.text for h in idx.search(g2p.phonemize(["kingsford park"])[0])}


@pytest.mark.parametrize("damage", ["truncate_hnsw", "foreign_matcher", "garbage_sidecar", "missing_entries"])
def test_damaged_derived_files(tmp_path, g2p, damage):
    d = tmp_path / "i"
    HotwordIndex.build(list(generate_entities(200, seed=1)), d, g2p, INV).close()
    side = json.loads((d / "index.json").read_text())
    files = {k: d / v["name"] for k, v in side["files"].items()}
    if damage == "truncate_hnsw":
        data = files["hnsw"].read_bytes()
        files["hnsw"].write_bytes(data[: len(data) // 2])
    elif damage == "foreign_matcher":
        size = files["matcher"].stat().st_size
        files["matcher"].write_bytes(random.Random(0).randbytes(size))  # same size: only loading can tell
    elif damage == "garbage_sidecar":
        (d / "index.json").write_text("{not json")
    else:
        files["entries"].unlink()
    with pytest.raises(HotwordError, match="does not match its store"):
        HotwordIndex.open(d, on_stale="error")
    with HotwordIndex.open(d) as idx:  # rebuilt from the store
        assert idx.stats()["entries"] == 200
        e = idx.list(limit=1)[0]
        assert idx.search(list(e.phonemes))[0].text == e.text
    HotwordIndex.open(d, on_stale="error", verify="full").close()


def test_damaged_store_and_foreign_inventory(tmp_path, g2p):
    d = tmp_path / "i"
    HotwordIndex.build(["Church Street"], d, g2p, INV).close()
    other = INV[:-1]  # a bundle whose inventory differs
    with pytest.raises(HotwordError, match="different phoneme inventory"):
        HotwordIndex.open(d, inventory=other)
    HotwordIndex.open(d, inventory=INV).close()
    with pytest.raises(HotwordError, match="was built with G2P"):
        HotwordIndex.open(d, g2p=DictG2P())
    (d / "hotwords.sqlite").write_bytes(b"this is not sqlite" * 100)
    for p in d.glob("hotwords.sqlite-*"):
        p.unlink()
    with pytest.raises(HotwordError, match="not a readable hotword store"):
        HotwordIndex.open(d)
    with pytest.raises(HotwordError, match="no hotword index directory"):
        HotwordIndex.open(tmp_path / "nothing")
    with pytest.raises(HotwordError, match="not empty"):
        HotwordIndex.build(["x"], d, g2p, INV)


def test_namespaces(tmp_path, g2p):
    with HotwordIndex.build(["Church Street"], tmp_path / "i", g2p, INV, namespace="alice") as idx:
        idx.add(["Church Street", "Kingsford Park"], namespace="bob")
        assert idx.stats()["namespaces"] == {"alice": 1, "bob": 2}
        hyp = g2p.phonemize(["church street and kingsford park"])[0]
        assert {(h.text, h.namespace) for h in idx.search(hyp, namespace="alice")} == {("Church Street", "alice")}
        assert {h.text for h in idx.search(hyp, namespace="bob")} == {"Church Street", "Kingsford Park"}
        assert len(idx.search(hyp)) == 3
        assert idx.search(hyp, namespace="nobody") == []
        # approximate search honours the namespace too
        noisy = list(hyp)
        noisy[noisy.index("p")] = "b"
        assert {h.text for h in idx.search(noisy, namespace="alice")} == {"Church Street"}
        assert idx.remove(["Church Street"], namespace="bob").removed == 1
        assert {(h.text, h.namespace) for h in idx.search(hyp)} == {("Church Street", "alice"),
                                                                     ("Kingsford Park", "bob")}


def test_list_size_rule_counts_the_namespace_searched(tmp_path, g2p, filler):
    """A user's short list keeps its error allowance inside a large shared index."""
    names = list(generate_entities(20_000, seed=8))
    with HotwordIndex.build(names, tmp_path / "i", g2p, INV, namespace="shared") as idx:
        idx.add(["Kathleen Weaver"], namespace="me")
        me = next(e for e in idx.list(namespace="me"))
        n = sum(p != "|" for p in me.phonemes)
        errors = int(SearchOptions().for_entries(20_001).max_cost([n])[0]) + 1  # too many among 20,001 entries
        assert errors <= SearchOptions().for_entries(1).max_cost([n])[0]  # within a one-entry list's allowance
        ctx = [filler[w] for w in sorted(filler)[:2]]
        hyp = words_to_hyp([*ctx, _substitute(me.phonemes, errors), *ctx])
        assert [h.text for h in idx.search(hyp, namespace="me")] == ["Kathleen Weaver"]
        assert me.id not in {h.id for h in idx.search(hyp)}


def test_small_namespace_is_searched_exactly(tmp_path, g2p, filler, monkeypatch):
    """A small namespace inside a larger index: exact numpy search, same hits as the graph with a filter."""
    import nim4asr_edge.hotwords.search as search_mod

    names = list(generate_entities(2030, seed=12))
    rng = random.Random(2)
    with HotwordIndex.build(names[:2000], tmp_path / "i", g2p, INV, namespace="shared") as idx:
        idx.add(names[2000:], namespace="me")
        mine = idx.list(namespace="me")
        hyps = [_corrupt(words_to_hyp([filler["the"], e.phonemes, filler["and"]]), 0.15, rng) for e in mine]
        exact = [idx.search(h, namespace="me") for h in hyps]
        assert len(idx._ns_exact) == 1  # built once, reused
        monkeypatch.setattr(search_mod, "NAMESPACE_EXACT_MAX", 0)  # as if the namespace were large
        filtered = [idx.search(h, namespace="me") for h in hyps]
        assert exact == filtered
        assert sum(any(h.id == e.id for h in hits) for e, hits in zip(mine, exact)) >= 25
        assert all(h.namespace == "me" for hits in exact for h in hits)
        idx.remove([mine[0].text], namespace="me")  # edits drop the cached vectors
        assert idx._ns_exact == {}
        assert mine[0].id not in {h.id for h in idx.search(hyps[0], namespace="me")}


@pytest.mark.parametrize("chunk", [None, 2])  # None: the default; 2 puts duplicates and skips in other chunks
def test_import_txt_and_csv_reports_everything(tmp_path, g2p, chunk, monkeypatch):
    if chunk:
        monkeypatch.setattr(importer, "IMPORT_CHUNK", chunk)
    txt = tmp_path / "list.txt"
    long_entry = " ".join(["Supercalifragilistic"] * 12)
    txt.write_text(
        "# comment line\n"
        "Kingsford Park\t2.5\n"
        "\n"
        "Church Street\n"
        "church street\n"  # duplicate (case-insensitive)
        "北京饭店\n"  # other script
        "Pizza 🍕\n"  # emoji
        "!!!\n"  # unpronounceable
        "Bad Weight\tlots\n"
        "Zero Weight\t0\n"
        f"{long_entry}\n",
        encoding="utf-8",
    )
    with HotwordIndex.build(txt, tmp_path / "i", g2p, INV) as idx:
        rep = idx.import_report
        assert rep.added == 2
        reasons = {s.line: s.reason for s in rep.skipped}
        assert set(reasons) == {5, 6, 7, 8, 9, 10, 11}  # every non-blank, non-comment line is accounted for
        assert "duplicate of line 4" in reasons[5]
        assert "CJK" in reasons[6] and "PIZZA" in reasons[7] and "no letters" in reasons[8]
        assert "not a number" in reasons[9] and "outside" in reasons[10] and "too long" in reasons[11]
        assert {e.text: e.weight for e in idx.list()} == {"Kingsford Park": 2.5, "Church Street": 1.0}
        # re-adding with a new weight updates it; without one it is reported
        rep2 = idx.add([("Church Street", 3.0), "Kingsford Park"])
        assert rep2.updated == 1 and rep2.added == 0 and "already in namespace" in rep2.skipped[0].reason
        out = tmp_path / "export.txt"
        assert idx.export(out) == 2
    csv = tmp_path / "list.csv"
    csv.write_text('text,weight\n# comment\n"Smith, Jones and Sons",4\nWalgate\nA,b,c\n', encoding="utf-8")
    with HotwordIndex.build(csv, tmp_path / "c", g2p, INV) as idx:
        assert {e.text: e.weight for e in idx.list()} == {"Smith, Jones and Sons": 4.0, "Walgate": 1.0}
        assert [s.line for s in idx.import_report.skipped] == [5]
    with HotwordIndex.build(out, tmp_path / "e", g2p, INV) as idx:  # export round-trips
        assert {e.text: e.weight for e in idx.list()} == {"Kingsford Park": 2.5, "Church Street": 3.0}
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00N\x00I")
    with pytest.raises(HotwordError, match="not UTF-8|NUL"):
        HotwordIndex.build(bad, tmp_path / "b", g2p, INV)
    with pytest.raises(HotwordError, match="does not exist"):
        HotwordIndex.build(str(tmp_path / "missing.txt"), tmp_path / "m", g2p, INV)


def test_remove_and_add_update_search(tmp_path, g2p):
    with HotwordIndex.build(["Kingsford Park", "Church Street"], tmp_path / "i", g2p, INV) as idx:
        hyp = g2p.phonemize(["kingsford park"])[0]
        assert idx.search(hyp)[0].text == "Kingsford Park"
        rep = idx.remove(["kingsford park", "never added"])
        assert rep.removed == 1 and rep.missing == ["never added"]
        assert all(h.text != "Kingsford Park" for h in idx.search(hyp))
        noisy = ["k", "ɪ", "ŋ", "s", "f", "ɚ", "d", "|", "p", "ɑː", "ɹ", "k"]
        assert all(h.text != "Kingsford Park" for h in idx.search(noisy))
        idx.add(["Kingsford Park"])
        assert idx.search(hyp)[0].text == "Kingsford Park"


def test_from_words_is_temporary(g2p):
    idx = HotwordIndex.from_words(["Church Street", "Kingsford Park"], g2p, INV)
    d = idx.directory
    assert d.exists()
    assert idx.search(g2p.phonemize(["church street"])[0])[0].text == "Church Street"
    idx.close()
    assert not d.exists()
    with pytest.raises(HotwordError, match="closed"):
        idx.search(["k"])


def test_accumulator_and_hints():
    def hit(text, score, start):
        return HotwordHit(text, score, start, start + 3, "approx", ("a",), 1.0, "default", 1)

    acc = HotwordAccumulator(top_k=3)
    assert acc.add([hit("NIO House", 0.8, 0)]) and acc.add([hit("Walgate", 1.0, 2)], offset=10)
    assert acc.add([hit("nio house", 0.7, 1)]) == []  # duplicate, worse
    assert acc.add([hit("NIO House", 0.9, 5)], offset=20)[0].start == 25
    assert acc.hints() == ["Walgate", "NIO House"]
    assert [h.start for h in acc.hits()] == [12, 25]
    acc.reset()
    assert acc.hints() == []
    assert format_hints([hit("A b", 1, 0), hit("a B", 0.9, 4), hit("C", 0.5, 8)]) == ["A b", "C"]


def test_false_hints_are_rare_on_hotword_free_speech(tmp_path, g2p, filler):
    names = list(generate_entities(3000, seed=11))
    rng = random.Random(5)
    fwords = list(filler)
    with HotwordIndex.build(names, tmp_path / "i", g2p, INV) as idx:
        total = 0
        for _ in range(40):
            hyp = words_to_hyp([filler[rng.choice(fwords)] for _ in range(27)])
            total += len(idx.search(hyp, options=SearchOptions(min_score=0.75)))
        assert total / 40 <= 1.0


def test_cli(tmp_path, capsys):
    from nim4asr_edge.cli import main

    lst = tmp_path / "l.txt"
    lst.write_text("Church Street\n北京\nKingsford Park\t2\n", encoding="utf-8")
    d = tmp_path / "idx"
    assert main(["hotwords", "build", str(lst), "-o", str(d)]) == 0
    err = capsys.readouterr().err
    assert "skipped line 2" in err and "added 2" in err
    assert main(["hotwords", "search", str(d), "meet me at church street"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["text"] == "Church Street" and hits[0]["method"] == "exact"
    assert main(["hotwords", "add", str(d), "Walgate"]) == 0
    assert main(["hotwords", "remove", str(d), "Walgate", "nothing"]) == 1
    capsys.readouterr()
    assert main(["hotwords", "stats", str(d)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["entries"] == 2 and stats["acceptance"]["cost_free_phonemes"] == 2.0  # a two-entry list
    assert "measure_confusions" in stats["acceptance"]["phoneme_costs"]
    assert main(["hotwords", "search", str(tmp_path / "none"), "x"]) == 2
    assert "no hotword index directory" in capsys.readouterr().err


@pytest.mark.slow
def test_recall_at_larger_scale(tmp_path, g2p, filler):
    names = list(generate_entities(50_000, seed=3))
    with HotwordIndex.build(names, tmp_path / "i", g2p, INV) as idx:
        rng = random.Random(9)
        entries = idx.list()
        fwords = list(filler)
        found = 0
        sample = rng.sample(entries, 300)
        for e in sample:
            ctx = lambda: [filler[rng.choice(fwords)] for _ in range(3)]
            found += any(h.id == e.id for h in idx.search(_corrupt(words_to_hyp(ctx() + [e.phonemes] + ctx()),
                                                                   0.1, rng)))
        assert found / len(sample) >= 0.85


def test_length_aware_acceptance_options():
    assert SearchOptions().cost_free_phonemes is None  # by list size
    with pytest.raises(ValueError, match="for_entries"):
        SearchOptions().max_cost([8])
    # free phonemes: 5.5 at a million entries, one more or fewer per decade, within [2, 6.5]
    assert [cost_free_for(n) for n in (10**8, 10**7, 10**6, 10**5, 10**4, 1000, 300, 1, 0)] == \
        pytest.approx([6.5, 6.5, 5.5, 4.5, 3.5, 2.5, 2.0, 2.0, 2.0], abs=0.03)
    opt = SearchOptions().for_entries(1_000_000)
    assert SearchOptions(cost_free_phonemes=3.0).for_entries(10**6).cost_free_phonemes == 3.0  # explicit: kept
    assert opt.max_cost_per_phoneme == 0.5 and opt.cost_free_phonemes == 5.5
    # allowance grows with the entry's length: 0.5 * (n - 5.5), capped by min_score (0.4 * n)
    assert opt.max_cost([5, 8, 12, 20, 64]).tolist() == pytest.approx([-0.25, 1.25, 3.25, 7.25, 25.6])
    legacy = dataclasses.replace(opt, max_cost_per_phoneme=None)
    assert legacy.max_cost([8, 20]).tolist() == pytest.approx([3.2, 8.0])
    assert SearchOptions(max_cost_per_phoneme=1.0, cost_free_phonemes=0, min_score=0.7).max_cost([10])[0] == \
        pytest.approx(3.0)
    for bad in ({"max_cost_per_phoneme": 0.0}, {"max_cost_per_phoneme": 1.5}, {"cost_free_phonemes": -1},
                {"cost_free_phonemes": 64}):
        with pytest.raises(ValueError):
            SearchOptions(**bad)


def _substitute(phonemes, count):
    """`count` substitutions at evenly spread non-boundary positions, by a phoneme the entry does not contain."""
    out = list(phonemes)
    pos = [i for i, p in enumerate(out) if p != "|"]
    other = next(p for p in ("ʒ", "θ", "ɔɪ", "x") if p not in out)
    for k in range(count):
        out[pos[(2 * k + 1) * len(pos) // (2 * count)]] = other
    return out


def test_length_aware_rule_rejects_short_chance_matches_keeps_long_ones(tmp_path, g2p, filler):
    names = ["Kathleen Weaver", "Atlantic Telecom International Holdings"] + list(generate_entities(500, seed=4))
    legacy = SearchOptions(max_cost_per_phoneme=None)
    at_1m = SearchOptions(cost_free_phonemes=5.5)  # the rule as a million-entry list applies it
    fwords = sorted(filler)
    with HotwordIndex.build(names, tmp_path / "i", g2p, INV) as idx:
        by_text = {e.text: e for e in idx.list()}
        short, long_ = by_text["Kathleen Weaver"], by_text["Atlantic Telecom International Holdings"]
        ctx = [filler[w] for w in fwords[:2]]
        for e, default_finds in ((short, False), (long_, True)):
            n = sum(p != "|" for p in e.phonemes)
            # short: one error more than its length-aware allowance; long: a quarter of its phonemes wrong
            errors = int(at_1m.max_cost([n])[0]) + 1 if not default_finds else round(0.25 * n)
            assert errors <= 0.4 * n  # min_score alone accepts both
            hyp = words_to_hyp([*ctx, _substitute(e.phonemes, errors), *ctx])
            assert any(h.id == e.id for h in idx.search(hyp, options=legacy)), (e.text, n, errors)
            hits = [h for h in idx.search(hyp, options=at_1m) if h.id == e.id]
            assert bool(hits) == default_finds, (e.text, n, errors)
            if hits:
                assert hits[0].method == "approx" and hits[0].score == pytest.approx(1 - errors / n, abs=1e-3)
        # exact hits are never subject to the rule
        hits = idx.search(words_to_hyp([*ctx, short.phonemes, *ctx]), options=at_1m)
        assert any(h.id == short.id and h.method == "exact" for h in hits)
        # this list has 502 entries, so by default the short entry may have as many errors as the long one
        n_short = sum(p != "|" for p in short.phonemes)
        hyp = words_to_hyp([*ctx, _substitute(short.phonemes, int(at_1m.max_cost([n_short])[0]) + 1), *ctx])
        assert any(h.id == short.id for h in idx.search(hyp)) and not idx.search(hyp, options=at_1m)


def test_length_aware_rule_trades_better_than_min_score(tmp_path, g2p, filler):
    """Any flat min_score with no more false hints than the length-aware rule finds less under 20 % errors."""
    names = list(generate_entities(4000, seed=21))
    rng = random.Random(13)
    fwords = list(filler)
    flat = {ms: SearchOptions(max_cost_per_phoneme=None, min_score=ms) for ms in (0.6, 0.7, 0.75, 0.8, 0.85)}
    modes = {"rule": SearchOptions(), **flat}
    with HotwordIndex.build(names, tmp_path / "i", g2p, INV) as idx:
        sample = rng.sample(idx.list(), 200)
        found = dict.fromkeys(modes, 0)
        for e in sample:
            ctx = lambda: [filler[rng.choice(fwords)] for _ in range(3)]
            hyp = _corrupt(words_to_hyp(ctx() + [e.phonemes] + ctx()), 0.2, rng)
            for m, opt in modes.items():
                found[m] += any(h.id == e.id for h in idx.search(hyp, options=opt))
        false = dict.fromkeys(modes, 0)
        for _ in range(60):
            hyp = words_to_hyp([filler[rng.choice(fwords)] for _ in range(27)])
            for m, opt in modes.items():
                false[m] += len(idx.search(hyp, options=opt))
        as_precise = [m for m in flat if false[m] <= false["rule"]]
        assert as_precise, (found, false)  # not vacuous
        assert all(found["rule"] >= found[m] + 10 for m in as_precise), (found, false)
        assert false["rule"] < false[0.6] / 4 and false["rule"] / 60 <= 0.5, (found, false)


def test_span_can_match_follows_the_acceptance_rule():
    opt = SearchOptions().for_entries(10**6)
    spans = list(range(3, 80))
    # with the defaults no entry may cost >= 0.5 unless it has >= 7 phonemes, and cost >= |entry - span|
    assert [n for n, ok in zip(spans, opt.span_can_match(spans)) if not ok] == [3, 4, 5, 6]
    # without the exact stage a zero-cost alignment counts: a 6-phoneme span can match a 6-phoneme entry
    assert opt.span_can_match([6]).tolist() == [False]
    assert dataclasses.replace(opt, exact=False).span_can_match([5, 6]).tolist() == [False, True]
    assert SearchOptions(max_cost_per_phoneme=None).span_can_match([3, 5, 90]).tolist() == [True, True, False]


def test_length_bound_never_exceeds_the_verified_cost(tmp_path):
    from nim4asr_edge.hotwords.verify import PAD, align_scores

    g = DictG2P()
    names = ["NIO House", "Meet Park", "The NIO", "Park House at the NIO", "Me"]
    rng = random.Random(5)
    with HotwordIndex.build(names, tmp_path / "i", g, INV) as idx:
        assert idx._sub_cost is not None
        ent = idx._entries
        words = list(DictG2P.WORDS.values())
        for _ in range(30):
            hyp = idx.clean_hypothesis(_corrupt(words_to_hyp(rng.choices(words, k=8)), 0.3, rng))
            starts = np.concatenate([[0], np.flatnonzero(hyp == idx._boundary) + 1])
            rows = np.repeat(np.arange(len(ent.ids)), len(starts))
            st = np.tile(starts, len(ent.ids))
            elen = ent.offsets[rows + 1] - ent.offsets[rows]
            tlen = np.minimum(elen + np.maximum(2, elen // 3), len(hyp) - st)
            emat = np.full((len(rows), int(elen.max())), PAD, np.int64)
            tmat = np.full((len(rows), int(tlen.max())), PAD, np.int64)
            for i, (r, s, t) in enumerate(zip(rows, st, tlen)):
                emat[i, : elen[i]] = ent.seq(r)
                tmat[i, :t] = hyp[s : s + t]
            bound = idx._length_bound(hyp, rows, st, tlen)
            assert bound.max() >= 2  # not vacuous
            for sub_cost in (None, idx._sub_cost):  # unit costs and the shipped substitution costs
                cost, _ = align_scores(emat, elen, tmat, tlen, idx._boundary, word_end=True,
                                       text_is_final=st + tlen >= len(hyp), sub_cost=sub_cost)
                reachable = cost < 1e8
                assert np.all(bound[reachable] <= cost[reachable] + 1e-4)


def test_pruned_batched_search_returns_the_same_hits(tmp_path, g2p, filler):
    """Window skipping, candidate pruning and de-duplicated lookups change no hit (unlimited verification)."""
    names = list(generate_entities(2000, seed=17))
    rng = random.Random(23)
    fwords = list(filler)
    with HotwordIndex.build(names, tmp_path / "i", g2p, INV) as idx:
        entries = idx.list()
        # as strict as a million-entry list, where pruning skips the most (a 2,000-entry list allows more)
        pruned = dataclasses.replace(idx.search_options, max_verify=1_000_000, cost_free_phonemes=5.5)
        checked = skipped_windows = 0
        for rule in (0.5, None):
            opt = dataclasses.replace(pruned, max_cost_per_phoneme=rule)
            full = dataclasses.replace(opt, prune=False)
            for _ in range(25):
                words = [filler[rng.choice(fwords)] for _ in range(6)]
                words[2:2] = [rng.choice(entries).phonemes]
                words[5:5] = [words[0], rng.choice(entries).phonemes]  # a repeated word: one lookup for both
                hyp = _corrupt(words_to_hyp(words), 0.2, rng)
                a, b = idx.search(hyp, options=opt), idx.search(hyp, options=full)
                assert a == b
                checked += bool(a)
                clean = idx.clean_hypothesis(hyp)
                n = len(entries)
                skipped_windows += (len(idx._windows(clean, full.for_entries(n))[0])
                                    - len(idx._windows(clean, opt.for_entries(n))[0]))
        assert checked >= 20 and skipped_windows > 0


def test_entry_rows_of_dense_and_sparse_ids():
    from nim4asr_edge.hotwords.entries import EntryTable as _Entries

    for ids in ([1, 2, 5, 9], [1, 5, 50_000_000]):  # a dense id map, and sorted search for sparse ids
        e = _Entries.empty()
        e.append(ids, [[2, 3]] * len(ids), [2] * len(ids), ["default"] * len(ids), [1.0] * len(ids))
        assert e.rows_of(np.array(ids[::-1], np.int64)).tolist() == list(range(len(ids)))[::-1]
        for missing in (3, 0, 60_000_000, -1):
            with pytest.raises(HotwordError, match="disagree"):
                e.rows_of(np.array([ids[0], missing], np.int64))


def test_recognizer_searches_one_namespace(tmp_path, g2p, tiny_bundle):
    from nim4asr_edge.recognizer import Recognizer, RecognizerOptions

    with HotwordIndex.build(["Church Street"], tmp_path / "i", g2p, INV, namespace="alice") as idx:
        idx.add(["Kingsford Park"], namespace="bob")
        hyp = g2p.phonemize(["church street and kingsford park"])[0]
        with Recognizer(tiny_bundle, RecognizerOptions(hotword_namespace="bob"), hotwords=idx) as rec:
            assert [h.text for h in rec.hotword_hits(hyp)] == ["Kingsford Park"]
        with Recognizer(tiny_bundle, hotwords=idx) as rec:
            assert {h.text for h in rec.hotword_hits(hyp)} == {"Church Street", "Kingsford Park"}


def test_lookup_cache_reuses_windows_of_a_growing_hypothesis(tmp_path, g2p, filler, monkeypatch):
    names = list(generate_entities(3000, seed=8))
    rng = random.Random(4)
    fwords = list(filler)
    with HotwordIndex.build(names, tmp_path / "i", g2p, INV) as idx:
        ents = [idx.list()[i].phonemes for i in (10, 2000)]
        words = [filler[rng.choice(fwords)] for _ in range(6)] + [ents[0]] + \
            [filler[rng.choice(fwords)] for _ in range(6)] + [ents[1]] + [filler[rng.choice(fwords)] for _ in range(4)]
        hyp = _corrupt(words_to_hyp(words), 0.1, rng)
        looked = []
        knn = idx._knn
        monkeypatch.setattr(idx, "_knn", lambda v, *a: looked.append(len(v)) or knn(v, *a))
        cache = LookupCache()
        cuts = [i for i, p in enumerate(hyp) if p == "|"][::2] + [len(hyp)]
        for cut in cuts:  # a stream: the utterance so far, again and again
            prefix = hyp[:cut]
            assert idx.search(prefix, cache=cache) == idx.search(prefix)
        with_cache, without = looked[0::2], looked[1::2]
        assert sum(with_cache) < 0.5 * sum(without) and cache.reused > cache.lookups
        # other search settings, or an edited index, start afresh
        n, r = cache.lookups, cache.reused
        idx.search(hyp, options=dataclasses.replace(idx.search_options, ef=20), cache=cache)
        assert cache.lookups > n and cache.reused == r
        idx.add(["Zyxwell Quorn"])
        idx.search(hyp, options=dataclasses.replace(idx.search_options, ef=20), cache=cache)
        assert cache.reused == r


def test_open_hotwords_takes_what_a_hotwords_argument_names(tmp_path):
    from nim4asr_edge.hotwords import open_hotwords

    names = tmp_path / "names.txt"
    names.write_text("Ada Lovelace\n", encoding="utf-8")
    assert open_hotwords(None) is None and open_hotwords("") is None
    assert open_hotwords(str(names)) == names  # a list file: the recognizer builds its index
    with pytest.raises(HotwordError, match=r"hotwords .*missing: neither an index directory nor a list file"):
        open_hotwords(tmp_path / "missing")
