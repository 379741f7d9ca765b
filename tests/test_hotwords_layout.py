"""Renumbering a saved HNSW graph (hnsw_layout.py): same answers, refusals leave nothing behind."""

from __future__ import annotations

import sys
from pathlib import Path

import hnswlib
import numpy as np
import pytest

from nim4asr_edge.hotwords import (
    ENGLISH_INVENTORY,
    EspeakG2P,
    HotwordIndex,
    IndexOptions,
    hnsw_layout,
)
from nim4asr_edge.hotwords import index as index_mod

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from entities import FILLER_WORDS, generate_entities


def _graph(tmp_path: Path, n: int = 5000, dim: int = 16) -> tuple[hnswlib.Index, np.ndarray, Path]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    g = hnswlib.Index(space="ip", dim=dim)
    g.init_index(n + 100, M=8, ef_construction=64, random_seed=1)
    g.add_items(x, np.arange(n) * 3 + 5)
    g.mark_deleted(5 + 3 * 17)
    path = tmp_path / "g.hnsw"
    g.save_index(str(path))
    return g, x, path


def test_renumbered_graph_answers_the_same(tmp_path):
    g, x, path = _graph(tmp_path)
    assert hnsw_layout.reorder_file(path, tmp_path / "r.hnsw", 16)
    r = hnswlib.Index(space="ip", dim=16)
    r.load_index(str(tmp_path / "r.hnsw"))
    g.set_ef(40)
    r.set_ef(40)
    a, b = g.knn_query(x[:400], k=8), r.knn_query(x[:400], k=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert 5 + 3 * 17 not in set(b[0].ravel())  # the deletion mark moved with its node
    assert sorted(r.get_ids_list()) == sorted(g.get_ids_list())
    # breadth-first numbering: linked nodes are numbered closer together (here ~0.8x the mean id distance)
    assert _mean_link_distance(tmp_path / "r.hnsw") < 0.9 * _mean_link_distance(path)


def _mean_link_distance(path: Path) -> float:
    level0 = hnsw_layout.read_graph(path, 16)["level0"]
    links = np.asarray(level0[:, 4 : 4 + 4 * 16]).view(np.uint32).astype(np.int64)
    used = np.arange(16)[None, :] < np.asarray(level0[:, 0:2]).view(np.uint16)
    return float(np.abs(links - np.arange(len(links))[:, None])[used].mean())


@pytest.mark.parametrize("damage", ["dim", "truncate", "foreign"])
def test_files_it_does_not_understand_are_left_alone(tmp_path, damage):
    _, _, path = _graph(tmp_path)
    dim = 16
    if damage == "dim":
        dim = 32
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    else:
        path.write_bytes(b"\x00" * 4096)
    assert not hnsw_layout.reorder_file(path, tmp_path / "r.hnsw", dim)
    assert not (tmp_path / "r.hnsw").exists()


def test_index_build_renumbers_large_graphs_and_finds_the_same(tmp_path, monkeypatch):
    g2p = EspeakG2P("en-us")
    names = list(generate_entities(3000, seed=4))
    filler = [p for p in g2p.phonemize(FILLER_WORDS[:40]) if p]
    rng = np.random.default_rng(2)
    queries = []
    for _ in range(60):
        words = [filler[i] for i in rng.integers(0, len(filler), 3)]
        words.insert(1, list(g2p.phonemize([names[int(rng.integers(0, len(names)))]])[0]))
        queries.append([p for w in words for p in [*w, "|"]][:-1])
    answers = {}
    for renumber_min in (10**9, 1000):
        monkeypatch.setattr(index_mod, "RENUMBER_MIN", renumber_min)
        with HotwordIndex.build(names, tmp_path / str(renumber_min), g2p, ENGLISH_INVENTORY,
                                options=IndexOptions(threads=1)) as idx:  # one thread: the same graph twice
            built = [[(h.id, h.score) for h in idx.search(q)] for q in queries]
            assert not list((tmp_path / str(renumber_min)).glob("*.bfs"))
        with HotwordIndex.open(tmp_path / str(renumber_min), on_stale="error") as idx:
            assert [[(h.id, h.score) for h in idx.search(q)] for q in queries] == built
        answers[renumber_min] = built
    assert answers[1000] == answers[10**9]
    plain, renumbered = ((tmp_path / str(m) / "index.g1.hnsw").read_bytes() for m in (10**9, 1000))
    assert len(plain) == len(renumbered) and plain != renumbered
    assert sum(map(len, answers[1000])) >= 60


def test_a_renumbered_graph_that_answers_differently_is_not_used(tmp_path, monkeypatch, caplog):
    def broken(src, dst, dim):  # loadable, but every level-0 link is gone
        data = bytearray(Path(src).read_bytes())
        g = hnsw_layout.read_graph(src, dim)
        for i in range(g["n"]):
            data[96 + i * g["per"] : 96 + i * g["per"] + 2] = b"\x00\x00"
        Path(dst).write_bytes(bytes(data))
        return True

    g2p = EspeakG2P("en-us")
    names = list(generate_entities(1500, seed=5))
    monkeypatch.setattr(index_mod, "RENUMBER_MIN", 1000)
    monkeypatch.setattr(hnsw_layout, "reorder_file", broken)
    hyp = list(g2p.phonemize([names[7]])[0])
    with HotwordIndex.build(names, tmp_path / "i", g2p, ENGLISH_INVENTORY) as idx:
        assert "answers differently" in caplog.text
        assert idx.search(hyp)[0].text == names[7]
        assert not list((tmp_path / "i").glob("*.bfs"))
    with HotwordIndex.open(tmp_path / "i", on_stale="error", verify="full") as idx:
        assert idx.search(hyp)[0].text == names[7]


def test_a_graph_whose_layout_is_not_recognised_is_kept_in_insertion_order(tmp_path, monkeypatch):
    """The graph is dropped before the copy is attempted; when no copy is made it is loaded back from its file."""
    g2p = EspeakG2P("en-us")
    names = list(generate_entities(1500, seed=6))
    monkeypatch.setattr(index_mod, "RENUMBER_MIN", 1000)
    monkeypatch.setattr(hnsw_layout, "reorder_file", lambda src, dst, dim: False)
    hyp = list(g2p.phonemize([names[11]])[0])
    with HotwordIndex.build(names, tmp_path / "i", g2p, ENGLISH_INVENTORY) as idx:
        assert idx.stats()["hnsw"]["loaded"] and idx.search(hyp)[0].text == names[11]
    with HotwordIndex.open(tmp_path / "i", on_stale="error", verify="full") as idx:
        assert idx.search(hyp)[0].text == names[11]
