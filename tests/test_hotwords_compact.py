"""The compact index: the hashed exact matcher against the Aho-Corasick automaton it replaces (random and real
lists, edits, hash collisions), memory-mapped derived files, and indexes of the previous format version."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from nim4asr_edge.errors import HotwordError
from nim4asr_edge.hotwords import ENGLISH_INVENTORY, HotwordIndex, IndexOptions, matcher
from nim4asr_edge.hotwords.arrayfile import map_arrays, write_arrays
from nim4asr_edge.hotwords.entries import EntryTable
from nim4asr_edge.hotwords.matcher import ExactMatcher

pytest.importorskip("ahocorasick", reason="the reference matcher needs pyahocorasick (extra 'dev')")
from nim4asr_edge.hotwords.matcher_ac import AhoCorasickMatcher

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from entities import FILLER_WORDS, generate_entities

INV = ENGLISH_INVENTORY
B = 1  # the boundary id in the random tests


def _seq(rng, words: int, alphabet: int = 6) -> np.ndarray:
    out: list[int] = []
    for w in range(words):
        out += ([B] if w else []) + list(rng.integers(2, 2 + alphabet, rng.integers(1, 4)))
    return np.array(out, np.uint8)


def _hyp(rng) -> np.ndarray:
    """A random hypothesis, sometimes with the boundary runs and edges a cleaned one never has."""
    h = _seq(rng, int(rng.integers(1, 25)))
    if rng.random() < 0.2:
        h = np.concatenate([[B], h, [B, B], _seq(rng, 2), [B]]).astype(np.uint8)
    return h


def _same(ac: AhoCorasickMatcher, m: ExactMatcher, rng, n: int = 50) -> None:
    assert len(m) == len(ac)
    for _ in range(n):
        h = _hyp(rng)
        assert list(m.find(h)) == list(ac.find(h)), h.tolist()


def test_matcher_equals_aho_corasick_on_random_patterns(tmp_path):
    rng = np.random.default_rng(0)
    for _ in range(6):
        pats = [_seq(rng, int(rng.integers(1, 4)), alphabet=int(rng.integers(2, 7))) for _ in range(250)]
        ids = np.arange(1, len(pats) + 1) * 3  # sparse ids
        ac = AhoCorasickMatcher(B)
        ac.add(zip(ids.tolist(), pats))
        ac.finalize()
        offs = np.concatenate([[0], np.cumsum([len(p) for p in pats])])
        bulk = ExactMatcher.from_entries(B, ids, offs, np.concatenate(pats))
        one_by_one = ExactMatcher(B)
        one_by_one.add(zip(ids.tolist(), pats))
        assert sum(len(i) for _, _, i in ac.find(np.concatenate([np.r_[p, B] for p in pats]))) > 0
        _same(ac, bulk, rng)
        _same(ac, one_by_one, rng)
        # edits on a mapped matcher: removals (some homophones, some whole patterns) and additions
        bulk.save(tmp_path / "m.bin")
        mapped = ExactMatcher.load(tmp_path / "m.bin", B)
        drop = rng.choice(len(pats), 80, replace=False)
        more = [_seq(rng, int(rng.integers(1, 3)), 4) for _ in range(40)]
        more_ids = (np.arange(len(more)) + 10_000).tolist()
        for m in (ac, mapped):
            m.remove((int(ids[i]), pats[i]) for i in drop)
            m.add(zip(more_ids, more))
            m.remove([(more_ids[0], more[0]), (999_999, pats[0])])  # an added one, and one never there
        ac.finalize()
        _same(ac, mapped, rng)
        mapped.save(tmp_path / "m2.bin")  # the edits merged into a new file
        _same(ac, ExactMatcher.load(tmp_path / "m2.bin", B), rng)


def test_hash_collisions_never_make_false_matches(monkeypatch):
    # every span of the same length gets the same hash: only the phoneme comparison tells patterns apart
    monkeypatch.setattr(matcher, "_finish", lambda h, length: length.astype(np.uint64))
    rng = np.random.default_rng(1)
    pats = [_seq(rng, int(rng.integers(1, 3)), 3) for _ in range(200)]
    ids = list(range(1, 201))
    ac = AhoCorasickMatcher(B)
    ac.add(zip(ids, pats))
    ac.finalize()
    offs = np.concatenate([[0], np.cumsum([len(p) for p in pats])])
    m = ExactMatcher.from_entries(B, np.array(ids), offs, np.concatenate(pats))
    assert len(np.unique(m.arrays()["hash"])) < len(m)
    _same(ac, m, rng, 100)


@pytest.fixture(scope="module")
def g2p():
    pytest.importorskip("espeakng_loader", reason="eSpeak NG backend (extra 'g2p') not installed")
    from nim4asr_edge.hotwords import EspeakG2P

    return EspeakG2P("en-us")


@pytest.fixture(scope="module")
def real_index(tmp_path_factory, g2p):
    d = tmp_path_factory.mktemp("compact") / "i"
    names = list(generate_entities(3000, seed=2)) + ["Church Street", "Church", "Street"]
    HotwordIndex.build(names, d, g2p, INV, options=IndexOptions(M=8, ef_construction=32)).close()
    return d


def test_matcher_equals_aho_corasick_on_a_real_list(real_index, g2p):
    rng = np.random.default_rng(2)
    with HotwordIndex.open(real_index) as idx:
        ent = idx.entry_table
        b = idx.boundary_id
        ac = AhoCorasickMatcher(b)
        ac.add((int(ent.ids[r]), ent.seq(r)) for r in range(len(ent.ids)))
        ac.finalize()
        filler = [np.array([idx.inventory.index(p) for p in w], np.uint8) for w in g2p.phonemize(FILLER_WORDS[:300])]
        n_matches = 0
        for _ in range(200):
            words = [filler[i] for i in rng.integers(0, len(filler), 20)]
            for r in rng.integers(0, len(ent.ids), 3):
                words.insert(int(rng.integers(0, len(words))), ent.seq(int(r)))
            hyp = np.concatenate([np.r_[w, b] for w in words])[:-1].astype(np.uint8)
            want = list(ac.find(hyp))
            n_matches += len(want)
            assert list(idx._matcher.find(hyp)) == want
        assert n_matches >= 600
        assert len(idx._matcher) == len(ac) and idx.stats()["exact_patterns"] == len(ac)


def _mapped_paths() -> set[str]:
    with open("/proc/self/maps") as f:
        return {line.split()[-1] for line in f if len(line.split()) >= 6}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_open_maps_the_matcher_and_entry_table(real_index):
    with HotwordIndex.open(real_index) as idx:
        side = json.loads((real_index / "index.json").read_text())
        assert side["format_version"] == 2
        maps = _mapped_paths()
        for kind in ("matcher", "entries"):
            assert str(real_index / side["files"][kind]["name"]) in maps, kind
        ent = idx.entry_table
        assert not ent.flat.flags.owndata and not ent.flat.flags.writeable
        hits = idx.search(["tʃ", "ɜː", "tʃ", "|", "s", "t", "ɹ", "iː", "t"], top_k=3)
        assert hits[0].text == "Church Street" and hits[0].method == "exact"
        # edits work on mapped arrays and leave mapped arrays behind
        idx.remove(["Church Street"])
        idx.add(["Kingsford Park"])
        assert idx.entry_table.flat.flags.writeable is False
        assert "Church Street" not in {h.text for h in idx.search(["tʃ", "ɜː", "tʃ", "|", "s", "t", "ɹ", "iː", "t"])}
    with HotwordIndex.open(real_index, on_stale="error") as idx:
        assert "Kingsford Park" in {e.text for e in idx.list()}
        idx.add(["Church Street"])


def test_index_of_format_version_1_is_rebuilt_or_refused(tmp_path, g2p):
    d = tmp_path / "i"
    HotwordIndex.build(["Church Street", "Kingsford Park"], d, g2p, INV).close()
    side = json.loads((d / "index.json").read_text())
    # what a version-1 SDK wrote: an Aho-Corasick automaton and an npz entry table
    with HotwordIndex.open(d) as idx:
        ent, b = idx.entry_table, idx.boundary_id
        ac = AhoCorasickMatcher(b)
        ac.add((int(ent.ids[r]), ent.seq(r)) for r in range(len(ent.ids)))
        ac.save(str(d / "matcher.old"))
        np.savez(d / "entries.old", ids=ent.ids, offsets=ent.offsets, flat=ent.flat)
    for kind, old in (("matcher", "matcher.old"), ("entries", "entries.old.npz")):
        (d / side["files"][kind]["name"]).unlink()
        name = side["files"][kind]["name"].replace(".bin", ".npz" if kind == "entries" else ".bin")
        (d / old).rename(d / name)
        side["files"][kind].update(name=name, size=(d / name).stat().st_size)
    side["format_version"] = 1
    (d / "index.json").write_text(json.dumps(side))
    with pytest.raises(HotwordError, match=r"format version 1.*rebuil"):
        HotwordIndex.open(d, on_stale="error")
    with HotwordIndex.open(d) as idx:  # default: rebuilt from the store, in the current format
        assert idx.search(["tʃ", "ɜː", "tʃ", "|", "s", "t", "ɹ", "iː", "t"])[0].text == "Church Street"
    assert json.loads((d / "index.json").read_text())["format_version"] == 2
    assert not list(d.glob("*.npz"))
    HotwordIndex.open(d, on_stale="error").close()


def test_array_file_rejects_damage(tmp_path):
    p = tmp_path / "a.bin"
    with open(p, "wb") as f:
        write_arrays(f, "entry-table", {"x": np.arange(1000, dtype=np.int64), "e": np.zeros(0, np.uint8)}, {"v": 1})
    arrays, meta = map_arrays(p, "entry-table")
    assert arrays["x"].tolist() == list(range(1000)) and meta == {"v": 1} and len(arrays["e"]) == 0
    with pytest.raises(HotwordError, match="holds 'entry-table'"):
        map_arrays(p, "exact-matcher")
    p.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(HotwordError, match="truncated"):
        map_arrays(p, "entry-table")
    p.write_bytes(b"PK\x03\x04 an npz file")
    with pytest.raises(HotwordError, match="magic"):
        EntryTable.load(p)


def test_large_builds_with_default_options_use_the_compact_graph(tmp_path, g2p, monkeypatch):
    from nim4asr_edge.hotwords import derived

    monkeypatch.setattr(derived, "COMPACT_FROM", 50)
    names = list(generate_entities(60, seed=3))
    with HotwordIndex.build(names, tmp_path / "a", g2p, INV) as idx:  # default options, "large"
        st = idx.stats()["hnsw"]
        assert (st["dim"], st["M"], st["ef_construction"]) == (64, 12, derived.COMPACT_OPTIONS["ef_construction"])
        e = idx.list(limit=1)[0]
        assert idx.search(list(e.phonemes))[0].text == e.text
    with HotwordIndex.open(tmp_path / "a", on_stale="error") as idx:  # the sidecar records them
        assert idx.stats()["hnsw"]["dim"] == 64
        assert idx.search(list(e.phonemes))[0].text == e.text
    with HotwordIndex.build(names, tmp_path / "b", g2p, INV, options=IndexOptions(M=12)) as idx:  # chosen: kept
        assert (idx.stats()["hnsw"]["dim"], idx.stats()["hnsw"]["M"]) == (128, 12)
