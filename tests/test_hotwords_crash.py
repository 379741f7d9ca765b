"""Hotword index robustness: kill -9 at random points of an import, a build and a rebuild (no committed entry lost,
the index loadable after), and lists full of junk lines (each reported by line number, good lines imported, the
store never half-written). Real SQLite, hnswlib and eSpeak NG in child processes."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nim4asr_edge.errors import HotwordError
from nim4asr_edge.hotwords import (
    ENGLISH_INVENTORY,
    HotwordIndex,
    IndexOptions,
    importer,
)

pytest.importorskip("espeakng_loader", reason="eSpeak NG backend (extra 'g2p') not installed")
from nim4asr_edge.hotwords import EspeakG2P

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
from entities import generate_entities

INV = ENGLISH_INVENTORY
OPTS = {"M": 8, "ef_construction": 32}
BATCH = 60  # entries per add in the child

CHILD = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from entities import generate_entities
from nim4asr_edge.hotwords import ENGLISH_INVENTORY, EspeakG2P, HotwordIndex, IndexOptions
mode, d = sys.argv[1], Path(sys.argv[2])
g2p = EspeakG2P("en-us")
g2p.phonemize(["warm up"])
opts = IndexOptions(M=8, ef_construction=32)
if mode == "build":
    names = list(generate_entities(800, seed=11))
    print("ready", flush=True)
    HotwordIndex.build(names, d, g2p, ENGLISH_INVENTORY, options=opts).close()
    print("built", flush=True)
elif mode == "rebuild":
    print("ready", flush=True)
    HotwordIndex.open(d).close()
    print("rebuilt", flush=True)
else:
    names = list(generate_entities(3000, seed=12))[1000:]
    idx = HotwordIndex.open(d, g2p=g2p)
    print("ready", flush=True)
    for i in range(0, len(names), int(sys.argv[4])):
        idx.add(names[i : i + int(sys.argv[4])])
        print("added", i, flush=True)
"""


def _run_and_kill(args: list[str], delay: float) -> list[str]:
    """Start the child, wait for "ready", let it run ``delay`` seconds, kill -9 it; its output lines."""
    p = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    first = p.stdout.readline()
    assert first.strip() == "ready", p.stderr.read()
    time.sleep(delay)
    p.kill()
    out, _ = p.communicate()
    return out.split("\n")


def _texts(d: Path) -> set[str]:
    with HotwordIndex.open(d) as idx:  # stale derived files are rebuilt from the store
        texts = {e.text for e in idx.list()}
        assert idx.stats()["entries"] == len(texts)
        e = idx.list(limit=1)[0] if texts else None
        if e is not None:
            assert e.text in {h.text for h in idx.search(list(e.phonemes))}
    HotwordIndex.open(d, on_stale="error", verify="full").close()  # consistent after that open
    return texts


def test_kill_during_imports_builds_and_rebuilds(tmp_path):
    rng = random.Random(18)
    g2p = EspeakG2P("en-us")
    d = tmp_path / "i"
    base = list(generate_entities(300, seed=12))
    HotwordIndex.build(base, d, g2p, INV, options=IndexOptions(**OPTS)).close()
    added = list(generate_entities(3000, seed=12))[1000:]
    have = set(_texts(d))
    assert have == set(base)
    for trial in range(3):  # kill during a stream of imports: every acknowledged batch survives, none half
        lines = _run_and_kill(["add", str(d), str(BENCH), str(BATCH)], rng.uniform(0.05, 1.2))
        done = [int(x.split()[1]) for x in lines if x.startswith("added")]
        texts = _texts(d)
        for i in range(0, len(added), BATCH):
            batch = set(added[i : i + BATCH])
            if i in done:
                assert batch <= texts, f"trial {trial}: acknowledged batch {i} lost"
            else:
                assert not (batch & texts) or batch <= texts, f"trial {trial}: batch {i} half-written"
        assert set(base) <= texts
        have = texts
    for trial in range(2):  # kill during a whole build: nothing or everything, and loadable
        b = tmp_path / f"b{trial}"
        lines = _run_and_kill(["build", str(b), str(BENCH)], rng.uniform(0.0, 1.0))
        if not (b / "hotwords.sqlite").exists():
            with pytest.raises(HotwordError):
                HotwordIndex.open(b)
            continue
        texts = _texts(b)
        assert len(texts) in (0, 800), f"build trial {trial}: {len(texts)} entries"
        if "built" in lines:
            assert len(texts) == 800
    (d / "index.json").unlink()  # kill while the derived files are rebuilt from the store
    _run_and_kill(["rebuild", str(d), str(BENCH)], rng.uniform(0.0, 0.5))
    assert _texts(d) == have


def _junk_list(path: Path, n_good: int, seed: int) -> tuple[dict[int, str], dict[int, str], set[int]]:
    """Write a list mixing good lines and junk; (good line -> text, bad line -> expected reason, blank lines)."""
    rng = random.Random(seed)
    names = list(generate_entities(n_good, seed=seed))
    good: dict[int, str] = {}
    bad: dict[int, str] = {}
    blank: set[int] = set()
    lines: list[bytes] = []
    junk = [
        (b"", None), (b"   \t ", None),
        (b"Bell\x07 Street", "control character"), (b"Acme\x00Corp", "control character"),
        (("Z" * 10_000).encode(), "line too long"), ("Caf\xe9 Rouge".encode("latin-1"), "not UTF-8"),
        (b"\xff\xfe\xfd broken", "not UTF-8"), ("Röstigraben Straße".encode("cp1252"), "not UTF-8"),
        ("北京饭店".encode(), "contains"), ("Pizza 🍕".encode(), "contains"), (b"!!! ???", "no letters"),
        (b"Kennedy,2.o", "weight"), (b"Weighty\t500", "outside"), (("word " * 60).encode(), "too long"),
    ]
    for name in names:
        while rng.random() < 0.6:  # 1.5 junk lines per good line on average
            raw, why = rng.choice(junk)
            if good and rng.random() < 0.15:  # a duplicate (in other case) of an earlier good line
                first = rng.choice(list(good))
                raw, why = good[first].upper().encode(), f"duplicate of line {first}"
            lines.append(raw)
            (bad.__setitem__(len(lines), why) if why else blank.add(len(lines)))
        lines.append(name.encode() + (b"\r" if rng.random() < 0.1 else b""))
        good[len(lines)] = name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return good, bad, blank


def _check_junk_import(report, good, bad, blank, stored: set[str]) -> None:
    skipped = {s.line: s for s in report.skipped}
    for line, why in bad.items():
        assert line in skipped, f"bad line {line} not reported"
        assert why in skipped[line].reason, (line, why, skipped[line])
        if why == "line too long":
            assert len(skipped[line].text) < 200  # junk is shortened in the report
    assert not (set(skipped) - set(bad)), f"good lines reported: {sorted(set(skipped) - set(bad))[:5]}"
    assert not (blank & set(skipped))
    assert report.added == len(good) and stored == set(good.values())


def test_junk_list_reports_every_bad_line(tmp_path):
    lst = tmp_path / "junk.txt"
    good, bad, blank = _junk_list(lst, 400, 3)
    assert len(bad) > 150
    with HotwordIndex.build(lst, tmp_path / "i", EspeakG2P("en-us"), INV, options=IndexOptions(**OPTS)) as idx:
        _check_junk_import(idx.import_report, good, bad, blank, {e.text for e in idx.list()})


def test_failed_import_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    g2p = EspeakG2P("en-us")
    d = tmp_path / "i"
    HotwordIndex.build(["Church Street"], d, g2p, INV, options=IndexOptions(**OPTS)).close()
    monkeypatch.setattr(importer, "IMPORT_CHUNK", 50)
    calls = {"n": 0}
    real = g2p.pronounce

    def failing(texts, progress=False):
        calls["n"] += 1
        if calls["n"] == 3:  # the third chunk: two chunks already inserted in the open transaction
            raise RuntimeError("G2P crashed")
        return real(texts, progress)

    with HotwordIndex.open(d, g2p=g2p) as idx:
        gen = idx.generation
        monkeypatch.setattr(g2p, "pronounce", failing)
        with pytest.raises(RuntimeError, match="G2P crashed"):
            idx.add(list(generate_entities(400, seed=4)))
    with HotwordIndex.open(d, on_stale="error") as idx:
        assert [e.text for e in idx.list()] == ["Church Street"] and idx.generation == gen


@pytest.mark.slow
def test_million_line_junk_list(tmp_path):
    lst = tmp_path / "junk.txt"
    good, bad, blank = _junk_list(lst, 400_000, 5)
    assert len(good) + len(bad) + len(blank) > 950_000
    with HotwordIndex.build(lst, tmp_path / "i", EspeakG2P("en-us"), INV, options=IndexOptions(**OPTS)) as idx:
        _check_junk_import(idx.import_report, good, bad, blank, {e.text for e in idx.list()})
