"""Compact hotword index (issue 18): memory, open time and build cost of the index at 1M / 10M entries, the compact
exact matcher against the Aho-Corasick one, and what HNSW settings do to memory and recall. JSON on stdout.

    python bench/hotwords_compact.py store  --n 1000000 --dir /tmp/hw1m       # list -> G2P -> SQLite (timed)
    python bench/hotwords_compact.py derive --dir /tmp/hw1m                   # the derived files from the store
    python bench/hotwords_compact.py open   --dir /tmp/hw1m [--posteriors]    # open + search RSS, in fresh processes
    python bench/hotwords_compact.py matchers --dir /tmp/hw1m [--no-ac]       # compact vs Aho-Corasick matcher
    python bench/hotwords_compact.py hnsw   --dir /tmp/hw1m --sub 300000 --settings 128:16:160 64:8:100 ...

``store`` and ``derive`` are the two halves of ``HotwordIndex.build`` (the build time is their sum; each reports
its peak RSS); entries come from bench/entities.py (seed 0, as hotwords_bench.py). ``open`` starts a new process
per repetition (the page cache stays warm after the first: ``cold`` is the first). ``matchers`` builds both exact
matchers over the index's entry table, each in a fresh process, and reports build time, peak RSS, file size, load
time, RSS after load and per-hypothesis find time, and checks that both report the same matches on hypotheses made
of entries and filler words. ``hnsw`` builds graphs over the first ``--sub`` entries with each ``dim:M:efc`` and
measures, for entries heard with 20 % phoneme errors (hotwords_bench.corrupt), how often the true entry is among the
16 nearest by brute force and by the graph at ef 32/48/64, and the graph's bytes per element.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def word_g2p():
    """eSpeak NG on each distinct word once, pronunciations joined with "|" (``store --word-g2p``): the same
    entities with nearly the same phonemes, for measuring the index at 10M where eSpeak on every entry would take
    most of an hour on a shared machine. Not for recall figures (eSpeak reads some words differently in context)."""
    from nim4asr_edge.hotwords import EspeakG2P
    from nim4asr_edge.hotwords.g2p import BaseG2P

    class WordG2P(BaseG2P):
        name = "espeak-ng-words:en-us"

        def __init__(self) -> None:
            super().__init__(cache_size=0)
            self._espeak = EspeakG2P()
            self._words: dict[str, list[str]] = {}

        def _convert(self, text: str) -> list[str]:
            out: list[str] = []
            for w in text.split():
                if w not in self._words:
                    self._words[w] = self._espeak._convert(w)
                out += (["|"] if out else []) + self._words[w]
            return out

    return WordG2P()


def cmd_store(args) -> dict:
    from entities import generate_entities

    from nim4asr_edge.hotwords import ENGLISH_INVENTORY, EspeakG2P, importer
    from nim4asr_edge.hotwords.store import STORE_FILE, HotwordStore

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    g2p = word_g2p() if args.word_g2p else EspeakG2P()
    store = HotwordStore.create(out / STORE_FILE, ENGLISH_INVENTORY, g2p.name)
    sym = {s: i for i, s in enumerate(ENGLISH_INVENTORY)}
    rep, _ = importer.import_entries(store, lambda: g2p, sym, generate_entities(args.n, seed=0), "default", False)
    store.close()
    return {"mode": "store", "n": args.n, "g2p": g2p.name, "store_s": round(time.perf_counter() - t0, 1), "added": rep.added,
            "skipped": len(rep.skipped), "peak_rss_mb": round(peak_mb()), "load": load()}


def cmd_derive(args) -> dict:
    from nim4asr_edge.hotwords import HotwordIndex, IndexOptions
    from nim4asr_edge.hotwords.files import SIDECAR

    d = Path(args.dir)
    (d / SIDECAR).unlink(missing_ok=True)  # no sidecar: open rebuilds every derived file from the store
    if args.options:
        # the options a build records come from the sidecar; write one the rebuild starts from
        opts = IndexOptions(**json.loads(args.options))
        (d / SIDECAR).write_text(json.dumps({"dim": opts.dim, "M": opts.M, "ef_construction": opts.ef_construction,
                                             "embedding": {"weights": list(opts.ngram_weights)}}))
    t0 = time.perf_counter()
    with HotwordIndex.open(d) as idx:
        t = time.perf_counter() - t0
        st = idx.stats()
    return {"mode": "derive", "dir": str(d), "derive_s": round(t, 1), "peak_rss_mb": round(peak_mb()),
            "entries": st["entries"], "hnsw": st["hnsw"], "files_mb": {k: round(v / 2**20, 1)
                                                                        for k, v in st["files"].items()},
            "load": load()}


def _hypotheses(idx, n: int, seed: int) -> list[list[str]]:
    """27-word hypotheses: filler words with 2 entries (clean) in each."""
    from entities import FILLER_WORDS

    rng = random.Random(seed)
    ent = idx.entry_table
    filler = [list(p) for p in idx.g2p.phonemize(FILLER_WORDS[:400]) if p]
    out = []
    for _ in range(n):
        words = [rng.choice(filler) for _ in range(25)]
        for _ in range(2):
            r = rng.randrange(len(ent.ids))
            words.insert(rng.randrange(len(words)), [idx.inventory[i] for i in ent.seq(r)])
        hyp: list[str] = []
        for w in words:
            hyp += (["|"] if hyp else []) + w
        out.append(hyp)
    return out


def _posteriors(inventory: list[str], hyp: list[str]) -> np.ndarray:
    """CTC log-posteriors whose greedy path is ``hyp``: a frame at 0.9 for each symbol, then a blank frame at 0.95
    (a stand-in for a head's output, so that the search runs the trie over the posteriors)."""
    from nim4asr_edge.hotwords.g2p import BLANK

    v = len(inventory)
    lp = np.full((2 * len(hyp), v), 0.05 / (v - 1), np.float32)
    lp[np.arange(0, 2 * len(hyp), 2), [inventory.index(s) for s in hyp]] = 0.9
    lp[1::2, inventory.index(BLANK)] = 0.95
    return np.log(lp)


def cmd_open_once(args) -> dict:
    from nim4asr_edge.hotwords import HotwordIndex

    r0 = rss_mb()
    t0 = time.perf_counter()
    idx = HotwordIndex.open(args.dir, on_stale="error")
    t_open = time.perf_counter() - t0
    r_open = rss_mb()
    hyps = _hypotheses(idx, args.searches, 1)
    lps = [_posteriors(idx.inventory, h) if args.posteriors else None for h in hyps]
    times = []
    for h, lp in zip(hyps, lps):
        t = time.perf_counter()
        idx.search(h, logprobs=lp)
        times.append(time.perf_counter() - t)
    res = {"open_s": round(t_open, 2), "rss_before_mb": round(r0), "rss_open_mb": round(r_open),
           "rss_after_searches_mb": round(rss_mb()), "peak_rss_mb": round(peak_mb()), "searches": len(hyps),
           "with_posteriors": args.posteriors, "search_ms_p50": round(float(np.median(times)) * 1000, 2)}
    idx.close()
    return res


def cmd_open(args) -> dict:
    runs = []
    for _ in range(args.repeat):
        p = subprocess.run([sys.executable, __file__, "open-once", "--dir", args.dir, "--searches", str(args.searches),
                            *(["--posteriors"] if args.posteriors else [])], capture_output=True, text=True,
                           check=True)
        runs.append(json.loads(p.stdout))
    return {"mode": "open", "dir": args.dir, "runs": runs, "load": load()}


def cmd_matcher_once(args) -> dict:
    """One matcher (args.kind) over the index's entries: build, save, load in a fresh state, find."""
    import gc

    from nim4asr_edge.hotwords import ENGLISH_INVENTORY
    from nim4asr_edge.hotwords.entries import EntryTable
    from nim4asr_edge.hotwords.files import derived_names, read_sidecar
    from nim4asr_edge.hotwords.g2p import WORD_BOUNDARY
    from nim4asr_edge.hotwords.matcher import ExactMatcher
    from nim4asr_edge.hotwords.matcher_ac import AhoCorasickMatcher

    d = Path(args.dir)
    if args.entries:
        ent = EntryTable.load(Path(args.entries))
        boundary = ENGLISH_INVENTORY.index(WORD_BOUNDARY)
    else:
        sidecar, _ = read_sidecar(d)
        ent = EntryTable.load(d / derived_names(sidecar["generation"])["entries"])
        boundary = sidecar["inventory"].index(WORD_BOUNDARY)
    path = d / f"bench_matcher.{args.kind}"
    r0 = rss_mb()
    t0 = time.perf_counter()
    if args.kind == "ac":
        m = AhoCorasickMatcher(boundary)
        for lo in range(0, len(ent.ids), 100_000):
            m.add((int(ent.ids[r]), ent.seq(r)) for r in range(lo, min(lo + 100_000, len(ent.ids))))
        m.finalize()
    else:
        m = ExactMatcher.from_entries(boundary, ent.ids, ent.offsets, ent.flat, ent.live)
    t_build = time.perf_counter() - t0
    m.save(str(path))
    build_peak = peak_mb()
    del m
    gc.collect()
    r_before = rss_mb()
    t0 = time.perf_counter()
    m = AhoCorasickMatcher.load(str(path), boundary) if args.kind == "ac" else ExactMatcher.load(path, boundary)
    t_load = time.perf_counter() - t0
    r_load = rss_mb()
    rng = np.random.default_rng(3)
    results, times = [], []
    for _ in range(args.hyps):  # 27 words: 25 entries' words shuffled + 2 whole entries
        rows = rng.integers(0, len(ent.ids), 27)
        parts = [ent.seq(int(r)) for r in rows]
        words = [w for p in parts[:25] for w in np.split(p, np.flatnonzero(p == boundary)) if len(w)]
        words = [w[w != boundary] for w in words]
        rng.shuffle(words)
        words = words[:25] + parts[25:]
        hyp = np.concatenate([np.concatenate([w, [boundary]]) for w in words])[:-1].astype(np.uint8)
        t = time.perf_counter()
        found = list(m.find(hyp))
        times.append(time.perf_counter() - t)
        results.append([(s, e, list(i)) for s, e, i in found])
    out = {"kind": args.kind, "patterns": len(m), "build_s": round(t_build, 1), "build_peak_rss_mb": round(build_peak),
           "file_mb": round(path.stat().st_size / 2**20, 1), "load_s": round(t_load, 2),
           "rss_before_load_mb": round(r_before), "rss_after_load_mb": round(r_load),
           "rss_after_finds_mb": round(rss_mb()), "find_ms_p50": round(float(np.median(times)) * 1000, 3),
           "find_ms_p99": round(float(np.percentile(times, 99)) * 1000, 3), "results": results,
           "rss_at_start_mb": round(r0)}
    path.unlink()
    return out


def cmd_synth(args) -> dict:
    """An entry table of ``--n`` generated entities (word_g2p), without a store or graph: the matchers at 10M."""
    from entities import generate_entities

    from nim4asr_edge.hotwords import ENGLISH_INVENTORY
    from nim4asr_edge.hotwords.entries import EntryTable
    from nim4asr_edge.hotwords.g2p import WORD_BOUNDARY

    t0 = time.perf_counter()
    g2p = word_g2p()
    code = {s: i for i, s in enumerate(ENGLISH_INVENTORY)}
    b = code[WORD_BOUNDARY]
    flats, lens, skipped = [], [], 0
    names = generate_entities(args.n, seed=0)
    while batch := [x for _, x in zip(range(200_000), names)]:
        for pron in g2p.pronounce(batch):
            if pron.problem is not None or any(p not in code for p in pron.phonemes):
                skipped += 1
                continue
            flats.append(np.fromiter((code[p] for p in pron.phonemes), np.uint8, len(pron.phonemes)))
            lens.append(len(flats[-1]))
    flat = np.concatenate(flats)
    del flats
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    n = len(lens)
    ids = np.arange(1, n + 1, dtype=np.int64)
    nphon = (np.diff(offsets) - np.add.reduceat((flat == b).astype(np.int64), offsets[:-1])).astype(np.int32)
    ent = EntryTable(ids, offsets, flat, nphon, np.zeros(n, np.int16), np.ones(n, np.float32), np.ones(n, bool),
                     ["default"])
    out = Path(args.out)
    with open(out, "wb") as f:
        ent.save(f)
    return {"mode": "synth", "entries": n, "skipped": skipped, "phonemes": len(flat), "s": round(time.perf_counter()
            - t0, 1), "file_mb": round(out.stat().st_size / 2**20, 1), "peak_rss_mb": round(peak_mb()), "load": load()}


def cmd_matchers(args) -> dict:
    out = {"mode": "matchers", "dir": args.dir, "entries": args.entries, "load": load()}
    kinds = ["compact"] + ([] if args.no_ac else ["ac"])
    for kind in kinds:
        p = subprocess.run([sys.executable, __file__, "matcher-once", "--dir", args.dir, "--kind", kind,
                            "--hyps", str(args.hyps)] + (["--entries", args.entries] if args.entries else []),
                           check=False, capture_output=True, text=True)
        if p.returncode:
            out[kind] = {"error": p.stderr[-2000:]}
            continue
        out[kind] = json.loads(p.stdout)
    if "results" in out.get("ac", {}) and "results" in out.get("compact", {}):
        out["same_matches"] = out["ac"]["results"] == out["compact"]["results"]
        out["matches_compared"] = sum(len(r) for r in out["ac"]["results"])
    for kind in kinds:
        out[kind].pop("results", None)
    out["load_after"] = load()
    return out


def cmd_hnsw(args) -> dict:
    import hnswlib
    from hotwords_bench import corrupt

    from nim4asr_edge.hotwords import ENGLISH_INVENTORY
    from nim4asr_edge.hotwords.embed import EmbeddingSpec, embed, nearest
    from nim4asr_edge.hotwords.store import STORE_FILE, HotwordStore

    with HotwordStore.open(Path(args.dir) / STORE_FILE) as store:
        rows = []
        for batch in store.iter_phonemes(batch=100_000):
            rows += [r[2].split(" ") for r in batch]
            if len(rows) >= args.sub:
                break
    rows = rows[: args.sub]
    sym = {s: i for i, s in enumerate(ENGLISH_INVENTORY)}
    seqs = [np.array([sym[p] for p in r], np.uint8) for r in rows]
    rng = random.Random(7)
    qrows = rng.sample(range(len(rows)), args.queries)
    queries = [np.array([sym[p] for p in corrupt(rows[r], 0.2, rng)] or [sym["|"]], np.uint8) for r in qrows]
    truth = np.array(qrows)
    out = {"mode": "hnsw", "entries": len(rows), "queries": len(qrows), "k": 16, "settings": [], "load": load()}
    cache = {}
    for setting in args.settings:
        dim, m, efc = (int(x) for x in setting.split(":"))
        spec = EmbeddingSpec(dim=dim)
        if dim not in cache:
            vecs = embed(seqs, len(ENGLISH_INVENTORY), spec)
            qv = embed(queries, len(ENGLISH_INVENTORY), spec)
            labels = np.arange(len(rows))
            brute = np.concatenate([nearest(qv[i : i + 100], vecs, labels, 16)[0] for i in range(0, len(qv), 100)])
            cache[dim] = (vecs, qv, float(np.mean([t in b for t, b in zip(truth, brute)])))
        vecs, qv, brute_recall = cache[dim]
        g = hnswlib.Index(space="ip", dim=dim)
        g.init_index(max_elements=len(rows), M=m, ef_construction=efc, random_seed=100)
        t0 = time.perf_counter()
        g.add_items(vecs, np.arange(len(rows)), num_threads=args.threads)
        t_build = time.perf_counter() - t0
        res = {"dim": dim, "M": m, "ef_construction": efc, "build_s": round(t_build, 1),
               "bytes_per_element_level0": 4 + 8 * m + 4 * dim + 8, "brute_recall_at_16": round(brute_recall, 4)}
        for ef in (32, 48, 64):
            g.set_ef(ef)
            lab, _ = g.knn_query(qv, k=16, num_threads=1)
            rec = float(np.mean([t in row for t, row in zip(truth, lab)]))
            t0 = time.perf_counter()
            for i in range(200):
                g.knn_query(qv[i : i + 1], k=16, num_threads=1)
            res[f"ef{ef}"] = {"recall_at_16": round(rec, 4), "of_brute": round(rec / brute_recall, 4),
                              "lookup_ms": round((time.perf_counter() - t0) / 200 * 1000, 3)}
        out["settings"].append(res)
        print(json.dumps(res), file=sys.stderr, flush=True)
        del g
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("store")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--word-g2p", action="store_true", help="eSpeak once per distinct word (see word_g2p)")
    p = sub.add_parser("derive")
    p.add_argument("--dir", required=True)
    p.add_argument("--options", default=None, help='IndexOptions as JSON, e.g. {"dim": 64, "M": 8}')
    for name in ("open", "open-once"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True)
        p.add_argument("--searches", type=int, default=50)
        p.add_argument("--repeat", type=int, default=3)
        p.add_argument("--posteriors", action="store_true",
                       help="search with stand-in CTC posteriors (the posterior verifier and the trie run)")
    for name in ("matchers", "matcher-once"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True)
        p.add_argument("--hyps", type=int, default=300)
        p.add_argument("--no-ac", action="store_true", help="compact matcher only (the automaton may not fit)")
        p.add_argument("--kind", choices=["ac", "compact"], default="compact")
        p.add_argument("--entries", default=None, help="an entry table file (synth) instead of the index's")
    p = sub.add_parser("synth")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("hnsw")
    p.add_argument("--dir", required=True)
    p.add_argument("--sub", type=int, default=300_000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--settings", nargs="+", default=["128:16:160", "64:16:160", "64:12:120", "64:8:100"])
    args = ap.parse_args(argv)
    fn = {"store": cmd_store, "derive": cmd_derive, "open": cmd_open, "open-once": cmd_open_once,
          "matchers": cmd_matchers, "matcher-once": cmd_matcher_once, "hnsw": cmd_hnsw, "synth": cmd_synth}[args.mode]
    print(json.dumps(fn(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
