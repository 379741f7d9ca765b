"""Hotword retrieval benchmark (issue 4): build, size, RSS, latency, recall under phoneme errors, false hints.

    nice -n 10 python bench/hotwords_bench.py --n 1000000 --dir /tmp/hw1m > hotwords_1m.json

Side by side in one run: exact Aho-Corasick only (the paper's method), HNSW (exact + approximate, the default),
HNSW with the length-aware acceptance rule off (min_score alone), HNSW with unit substitution costs (the measured
phoneme costs off), and brute-force nearest neighbours in place of HNSW (the ceiling for the approximate stage);
the verifier bound (share of queries whose true entry passes acceptance at all: the ceiling for any candidate
generator); the compiled verifier against its numpy implementation; operating points of min_score and of the
length-aware rule (max_cost_per_phoneme:cost_free_phonemes) on the same queries. --search-options overrides
SearchOptions. Searching runs in a child process that only opens the built index, so its RSS is what serving the
index costs.

Queries: a random stored entry inside 2-4 filler words of context on each side ("snippet"); errors are applied
to every phoneme of the snippet at rate p: substitution by an acoustically close phoneme (60 %), deletion (20 %),
insertion of a close phoneme (20 %); word boundaries are kept. A query succeeds when the entry is among the
top-K hits. Utterances: ~27 words (~10 s of speech), two entities among filler words; hotword-free utterances:
filler words only (every hit counts as a false hint).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from entities import FILLER_WORDS, generate_entities

from nim4asr_edge.hotwords import (
    ENGLISH_INVENTORY,
    EspeakG2P,
    HotwordIndex,
    IndexOptions,
    LookupCache,
    verify,
)
from nim4asr_edge.hotwords.embed import nearest
from nim4asr_edge.hotwords.verify import PAD, align_scores

# Acoustically close phonemes (voicing, place, vowel height/backness neighbours). Defined here, independently of
# the retriever, whose substitution costs were measured on the reference CTC head (hotwords/costs.py).
CONFUSABLE_GROUPS = [
    "p b", "t d ɾ", "k ɡ", "f v", "θ ð f", "s z", "ʃ ʒ s", "tʃ dʒ ʃ", "m n", "n ŋ", "l ɹ", "w v", "j i",
    "i iː ɪ", "ɪ ɛ ᵻ", "ɛ æ eɪ", "ə ʌ ɐ", "ɚ ɜː ə", "ɑː ɔː ʌ", "ɔː oʊ", "ʊ uː", "aɪ æ", "aʊ æ", "ɔɪ ɔː", "h ʔ",
]
_CLOSE: dict[str, list[str]] = {}
for g in CONFUSABLE_GROUPS:
    for a in g.split():
        _CLOSE.setdefault(a, []).extend(b for b in g.split() if b != a)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corrupt(seq: list[str], rate: float, rng: random.Random) -> list[str]:
    out: list[str] = []
    for p in seq:
        if p == "|" or rng.random() >= rate:
            out.append(p)
            continue
        op = rng.random()
        alt = _CLOSE.get(p) or [q for q in ENGLISH_INVENTORY[2:] if q != p]
        if op < 0.6:
            out.append(rng.choice(alt))
        elif op < 0.8:
            continue  # deletion
        else:
            out.extend([p, rng.choice(alt)] if rng.random() < 0.5 else [rng.choice(alt), p])
    return out


def join_words(words: list[list[str]]) -> list[str]:
    out: list[str] = []
    for w in words:
        if out:
            out.append("|")
        out.extend(w)
    return out


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q)) if len(xs) else float("nan")


class Material:
    """Query material over an opened index: its stored entries as phonemes and filler words; every draw comes from
    the rng passed in, so a section with its own rng sees the same queries whatever ran before it."""

    def __init__(self, idx: HotwordIndex):
        self.idx = idx
        self.filler = {w: list(p) for w, p in zip(FILLER_WORDS, idx.g2p.phonemize(FILLER_WORDS)) if p}
        self.words = list(self.filler)
        self.live = np.flatnonzero(idx.entry_table.live)

    def entity(self, row) -> list[str]:
        return [self.idx.inventory[i] for i in self.idx.entry_table.seq(int(row))]

    def ctx(self, rng: random.Random, a: int, b: int) -> list[list[str]]:
        """a..b filler words."""
        return [self.filler[rng.choice(self.words)] for _ in range(rng.randint(a, b))]

    def utterance(self, rng: random.Random, rate: float) -> list[str]:
        """~27 words (~10 s) with two random stored entities, phoneme errors at ``rate``."""
        words = self.ctx(rng, 5, 8) + [self.entity(rng.choice(self.live))] + self.ctx(rng, 6, 9) \
            + [self.entity(rng.choice(self.live))] + self.ctx(rng, 5, 8)
        return corrupt(join_words(words), rate, rng)


# --------------------------------------------------------------------------------------------------- build
def run_build(args) -> dict:
    out = Path(args.dir)
    t0 = time.perf_counter()
    names = list(generate_entities(args.n, args.seed))
    t_gen = time.perf_counter() - t0
    g2p = EspeakG2P()
    t1 = time.perf_counter()
    idx = HotwordIndex.build(names, out, g2p, ENGLISH_INVENTORY,
                             options=IndexOptions(dim=args.dim, M=args.M, ef_construction=args.ef_construction),
                             progress=args.progress, overwrite=True)
    t_build = time.perf_counter() - t1
    rep = idx.import_report
    stats = idx.stats()
    idx.close()
    return {
        "n_generated": len(names), "n_stored": stats["entries"], "generate_s": round(t_gen, 2),
        "build_s": round(t_build, 2), "build_peak_rss_mb": round(peak_rss_mb(), 1),
        "skipped": len(rep.skipped), "skipped_examples": [(s.text, s.reason) for s in rep.skipped[:5]],
        "bytes_on_disk": stats["bytes_on_disk"], "files": stats["files"], "hnsw": stats["hnsw"],
        "exact_patterns": stats["exact_patterns"],
    }


# -------------------------------------------------------------------------------------------------- search
class BruteForce:
    """Exact inner-product neighbours over all entry embeddings, in place of HNSW (idx.set_neighbour_lookup)."""

    def __init__(self, idx: HotwordIndex):
        ent = idx.entry_table
        step = 250_000  # embed() holds float64 sums: in blocks, so 10M entries need 5 GB, not 10+
        self.mat = np.concatenate([idx.embed_sequences([ent.seq(r) for r in range(lo, min(lo + step, len(ent.ids)))])
                                   for lo in range(0, len(ent.ids), step)])
        self.labels = ent.ids

    def __call__(self, vecs, k, threads, filt):
        parts = [nearest(vecs[i : i + 16], self.mat, self.labels, k) for i in range(0, len(vecs), 16)]  # bounded memory
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def verifier_bound(idx: HotwordIndex, snippets: dict, opt) -> dict:
    """Share of snippets whose true entry passes acceptance at its best word start: an upper bound on the recall of
    any candidate generator (HNSW, brute force) with these acceptance options; the rest is lost to the rule."""
    ent = idx.entry_table
    opt = opt.for_entries(int(ent.live.sum()))
    sub_cost = idx.costs.matrix(idx.inventory) if idx.costs is not None and opt.phoneme_costs else None
    out = {}
    for rate, snips in snippets.items():
        ok = 0
        for r, ph in snips:
            hyp = idx.clean_hypothesis(ph)
            starts = np.concatenate([[0], np.flatnonzero(hyp == idx.boundary_id) + 1])
            e = ent.seq(int(r)).astype(np.int64)
            texts = np.full((len(starts), len(hyp)), PAD, np.int64)
            for i, st in enumerate(starts):
                texts[i, : len(hyp) - st] = hyp[st:]
            cost, _ = align_scores(np.tile(e, (len(starts), 1)), np.full(len(starts), len(e)), texts,
                                   len(hyp) - starts, idx.boundary_id, word_end=True, sub_cost=sub_cost)
            best = float(cost.min())
            ok += best == 0 or (ent.nphon[int(r)] >= opt.approx_min_phonemes
                                and best <= float(opt.max_cost(np.array([ent.nphon[int(r)]]))[0]) + 1e-4)
        out[f"{int(rate * 100)}%"] = round(ok / max(len(snips), 1), 4)
    return out


def run_search(args) -> dict:
    rng = random.Random(args.seed + 1)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    idx = HotwordIndex.open(args.dir, on_stale="error")
    open_s = time.perf_counter() - t0
    rss_open = rss_mb()
    material = Material(idx)
    filler, fwords, entity = material.filler, material.words, material.entity
    ent = idx.entry_table
    live_rows = material.live

    def ctx(a, b):
        return material.ctx(rng, a, b)

    K = args.top_k
    default = dataclasses.replace(idx.search_options, **json.loads(args.search_options))
    idx.search_options = default
    # "hnsw" is the default pipeline (length-aware acceptance); "hnsw_min_score_only" is the same pipeline with the
    # length-aware rule off (acceptance by min_score alone, the rule before it existed).
    legacy = dataclasses.replace(default, max_cost_per_phoneme=None)
    modes = {"exact_aho_corasick": dataclasses.replace(default, approximate=False), "hnsw": default}
    if default.max_cost_per_phoneme is not None:
        modes["hnsw_min_score_only"] = legacy
    if idx.costs is not None and default.phoneme_costs:
        modes["hnsw_unit_costs"] = dataclasses.replace(default, phoneme_costs=False)
    result: dict = {"open_s": round(open_s, 2), "rss_before_open_mb": round(rss0, 1),
                    "rss_after_open_mb": round(rss_open, 1), "search_options": default.__dict__, "top_k": K,
                    "cost_free_phonemes_used": default.for_entries(int(ent.live.sum())).cost_free_phonemes}

    # Recall and latency on snippets.
    rows = rng.sample(list(live_rows), min(args.queries, len(live_rows)))
    recall: dict = {}
    lat: dict = {}
    brute_rows = rows[: args.brute_queries]
    snippets: dict = {}
    for rate in args.error_rates:
        snips = []
        for r in rows:
            words = ctx(2, 4) + [entity(r)] + ctx(2, 4)
            snips.append((r, corrupt(join_words(words), rate, rng)))
        snippets[rate] = snips
        for mode, opt in modes.items():
            found, times = 0, []
            for r, ph in snips:
                t = time.perf_counter()
                hits = idx.search(ph, top_k=K, options=opt)
                times.append(time.perf_counter() - t)
                found += any(h.id == int(ent.ids[r]) for h in hits)
            recall.setdefault(mode, {})[f"{int(rate * 100)}%"] = round(found / len(snips), 4)
            lat.setdefault(mode, {})[f"{int(rate * 100)}%"] = {"p50_ms": round(pct(times, 50), 3),
                                                                "p99_ms": round(pct(times, 99), 3)}
    # Entity-only queries ("one query" = one hotword-length phoneme string), 20 % error.
    qtimes, qfound = [], 0
    for r in rows:
        ph = corrupt(entity(r), 0.2, rng)
        t = time.perf_counter()
        hits = idx.search(ph, top_k=K)
        qtimes.append(time.perf_counter() - t)
        qfound += any(h.id == int(ent.ids[r]) for h in hits)
    result["query_entity_only_20pct"] = {"p50_ms": round(pct(qtimes, 50), 3), "p99_ms": round(pct(qtimes, 99), 3),
                                         "recall": round(qfound / len(rows), 4)}
    # HNSW window lookups alone.
    hn = []
    for r in rows[:200]:
        v = idx.embed_sequences([ent.seq(int(r))])
        t = time.perf_counter()
        idx.graph_knn(v, default.candidates, threads=1, ef=default.ef)
        hn.append(time.perf_counter() - t)
    result["hnsw_lookup_one_window"] = {"p50_ms": round(pct(hn, 50), 3), "p99_ms": round(pct(hn, 99), 3)}

    # Whole utterances: ~27 words (~10 s), two entities, 10 % phoneme error.
    # Interleaved with the same search without window/candidate pruning (prune=False), so their ratio is measured
    # under the same load; which runs first alternates (the second finds the graph nodes it visits in cache).
    unpruned = dataclasses.replace(default, prune=False)
    ut, ut_unpruned, ufound, utotal = [], [], 0, 0
    for i in range(args.utterances):
        ents = rng.sample(list(live_rows), 2)
        words = ctx(5, 8) + [entity(ents[0])] + ctx(6, 9) + [entity(ents[1])] + ctx(5, 8)
        ph = corrupt(join_words(words), 0.1, rng)
        for pruned in ((True, False) if i % 2 else (False, True)):
            t = time.perf_counter()
            res = idx.search(ph, top_k=K, options=None if pruned else unpruned)
            (ut if pruned else ut_unpruned).append(time.perf_counter() - t)
            if pruned:
                hits = res
        ids = {h.id for h in hits}
        ufound += sum(int(ent.ids[e]) in ids for e in ents)
        utotal += 2
    result["utterance_10s"] = {"p50_ms": round(pct(ut, 50), 3), "p99_ms": round(pct(ut, 99), 3),
                               "words": "21-29 + 2 entities", "recall_at_k_10pct": round(ufound / utotal, 4)}
    result["utterance_10s_prune_off"] = {"p50_ms": round(pct(ut_unpruned, 50), 3),
                                         "p99_ms": round(pct(ut_unpruned, 99), 3),
                                         "p50_ratio_pruned_over_off": round(pct(ut, 50) / pct(ut_unpruned, 50), 3)}
    ut2 = []
    for _ in range(min(args.utterances, 100)):
        ph = material.utterance(rng, 0.1)
        t = time.perf_counter()
        idx.search(ph, top_k=K, options=dataclasses.replace(default, threads=2))
        ut2.append(time.perf_counter() - t)
    result["utterance_10s_2_threads"] = {"p50_ms": round(pct(ut2, 50), 3), "p99_ms": round(pct(ut2, 99), 3)}
    # The compiled verifier against its numpy implementation on the same utterances, alternating (1 thread).
    if verify.compiled_available():
        ab_rng = random.Random(args.seed + 2)  # its own draws: the sections after it see the same queries as before
        times = {"compiled": [], "numpy": []}
        utts = [material.utterance(ab_rng, 0.1) for _ in range(100)]
        try:
            for i, ph in enumerate(utts):
                for name in (("compiled", "numpy") if i % 2 else ("numpy", "compiled")):
                    verify.use_compiled(name == "compiled")
                    t = time.perf_counter()
                    idx.search(ph, top_k=K)
                    times[name].append(time.perf_counter() - t)
        finally:
            verify.use_compiled(True)
        result["utterance_10s_verifier"] = {f"{k}_p50_ms": round(pct(v, 50), 3) for k, v in times.items()}
        result["utterance_10s_verifier"]["p50_ratio_compiled_over_numpy"] = round(
            pct(times["compiled"], 50) / pct(times["numpy"], 50), 3)

    # Streaming: a 10-s utterance searched as it grows (the utterance so far after every second word, about one
    # partial per 640 ms), with and without a LookupCache, alternating; totals per utterance.
    st_rng = random.Random(args.seed + 3)  # own draws, as above
    streamed = {"no_cache": [], "cache": []}
    same = True
    for i in range(min(args.utterances, 50)):
        words = material.ctx(st_rng, 21, 29)
        for e in st_rng.sample(list(live_rows), 2):
            words.insert(st_rng.randint(0, len(words)), entity(e))
        ph = corrupt(join_words(words), 0.1, st_rng)
        cuts = [j for j, p in enumerate(ph) if p == "|"][1::2] + [len(ph)]
        outs = {}
        for name in (("cache", "no_cache") if i % 2 else ("no_cache", "cache")):
            cache = LookupCache() if name == "cache" else None
            t = time.perf_counter()
            outs[name] = [idx.search(ph[:c], top_k=K, cache=cache) for c in cuts]
            streamed[name].append(time.perf_counter() - t)
        same &= outs["cache"] == outs["no_cache"]
    result["utterance_10s_streamed"] = {f"{k}_total_p50_ms": round(pct(v, 50), 3) for k, v in streamed.items()}
    result["utterance_10s_streamed"].update(
        searches_per_utterance="one per 2 words", same_hits=bool(same),
        p50_ratio_cache_over_no_cache=round(pct(streamed["cache"], 50) / pct(streamed["no_cache"], 50), 3))

    # False hints on hotword-free utterances.
    fh: dict = {}
    examples = []
    for rate in (0.0, 0.2):
        counts = {m: 0 for m in modes}
        for _ in range(args.utterances):
            ph = corrupt(join_words([filler[rng.choice(fwords)] for _ in range(27)]), rate, rng)
            for mode, opt in modes.items():
                hits = idx.search(ph, top_k=K, options=opt)
                counts[mode] += len(hits)
                if mode == "hnsw" and hits and len(examples) < 8:
                    examples.extend(f"{h.text} ({h.method} {h.score})" for h in hits[:2])
        fh[f"{int(rate * 100)}%"] = {m: round(c / args.utterances, 3) for m, c in counts.items()}
    result["false_hints_per_utterance"] = fh
    result["false_hint_examples"] = examples[:8]
    result["rss_after_search_mb"] = round(rss_mb(), 1)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)

    # Operating points: recall at the highest error rate vs false hints at 0 % / 20 %: score thresholds alone
    # (length-aware rule off) and the length-aware rule (max_cost_per_phoneme:cost_free_phonemes), same queries.
    free = {rate: [corrupt(join_words([filler[rng.choice(fwords)] for _ in range(27)]), rate, rng)
                   for _ in range(args.utterances // 2)] for rate in (0.0, 0.2)}
    top_rate = max(args.error_rates)
    sweep_snips = snippets[top_rate][: args.sweep_queries]

    def operating_point(opt):
        found = sum(any(h.id == int(ent.ids[r]) for h in idx.search(ph, top_k=K, options=opt))
                    for r, ph in sweep_snips)
        fh = {rate: sum(len(idx.search(ph, top_k=K, options=opt)) for ph in us) / len(us)
              for rate, us in free.items()}
        return {f"recall_at_{int(top_rate * 100)}pct": round(found / len(sweep_snips), 4),
                "false_hints_per_utterance": round((fh[0.0] + fh[0.2]) / 2, 3),
                "false_hints_0pct": round(fh[0.0], 3), "false_hints_20pct": round(fh[0.2], 3)}

    result["sweep_queries"] = len(sweep_snips)
    result["min_score_sweep"] = {str(ms): operating_point(dataclasses.replace(legacy, min_score=ms))
                                 for ms in args.sweep}
    rule_sweep = {}
    for spec in args.rule_sweep:
        slope, free_ph = (float(x) for x in spec.split(":"))
        rule_sweep[spec] = operating_point(dataclasses.replace(default, max_cost_per_phoneme=slope,
                                                               cost_free_phonemes=free_ph))
    result["length_rule_sweep"] = rule_sweep

    # Brute-force ceiling vs HNSW on the same queries.
    bf = BruteForce(idx)
    paired: dict = {}
    for rate in args.error_rates:
        snips = snippets[rate][: len(brute_rows)]
        res = {}
        for name, lookup in (("hnsw", None), ("brute_force", bf)):
            idx.set_neighbour_lookup(lookup)  # same pipeline; brute force: exact neighbours
            found = 0
            for r, ph in snips:
                found += any(h.id == int(ent.ids[r]) for h in idx.search(ph, top_k=K))
            res[name] = round(found / max(len(snips), 1), 4)
        idx.set_neighbour_lookup(None)
        res["hnsw_over_brute"] = round(res["hnsw"] / res["brute_force"], 4) if res["brute_force"] else None
        paired[f"{int(rate * 100)}%"] = res
    result["brute_force_vs_hnsw"] = {"queries_per_rate": len(brute_rows), **paired}

    # Search breadth (ef): recall on the brute-force queries (so the ratio to brute force compares) and utterance
    # time, the same queries and utterances for every ef, timings interleaved over three rounds.
    if args.ef_sweep:
        ef_rng = random.Random(args.seed + 4)
        ef_utts = [material.utterance(ef_rng, 0.1) for _ in range(min(args.utterances, 100))]
        ef_sweep: dict = {}
        for ef in args.ef_sweep:
            opt = dataclasses.replace(default, ef=ef)
            row = ef_sweep[str(ef)] = {}
            for rate in args.error_rates:
                snips = snippets[rate][: len(brute_rows)]
                found = sum(any(h.id == int(ent.ids[r]) for h in idx.search(ph, top_k=K, options=opt))
                            for r, ph in snips) / max(len(snips), 1)
                row[f"recall_{int(rate * 100)}pct"] = round(found, 4)
                bf_recall = paired[f"{int(rate * 100)}%"]["brute_force"]
                row[f"over_brute_{int(rate * 100)}pct"] = round(found / bf_recall, 4) if bf_recall else None
        times: dict = {}
        for _ in range(3):
            for ef in args.ef_sweep:
                for th in (1, 2):
                    opt = dataclasses.replace(default, ef=ef, threads=th)
                    for ph in ef_utts:
                        t = time.perf_counter()
                        idx.search(ph, top_k=K, options=opt)
                        times.setdefault((ef, th), []).append(time.perf_counter() - t)
        for (ef, th), ts in times.items():
            ef_sweep[str(ef)][f"utterance_p50_ms_{th}_thread"] = round(pct(ts, 50), 3)
        result["ef_sweep"] = ef_sweep
    result["verifier_bound"] = verifier_bound(idx, snippets, default)
    result["recall_at_k"] = recall
    result["snippet_latency"] = lat
    idx.close()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="entities to generate and index")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default=None, help="index directory (default: a temporary one)")
    ap.add_argument("--queries", type=int, default=1000, help="snippet queries per error rate")
    ap.add_argument("--brute-queries", type=int, default=100, help="queries per rate for the brute-force run")
    ap.add_argument("--utterances", type=int, default=200)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--error-rates", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    ap.add_argument("--sweep", type=float, nargs="*", default=[0.6, 0.65, 0.7, 0.75, 0.8],
                    help="min_score values, length-aware rule off")
    ap.add_argument("--rule-sweep", nargs="*", default=["0.45:4", "0.5:5", "0.55:5.5", "0.5:5.5", "0.6:7"],
                    help="length-aware rule operating points, max_cost_per_phoneme:cost_free_phonemes")
    ap.add_argument("--sweep-queries", type=int, default=400, help="snippets per sweep operating point")
    ap.add_argument("--ef-sweep", type=int, nargs="*", default=[], help="search ef values to compare side by side")
    ap.add_argument("--search-options", default="{}",
                    help='SearchOptions overrides for every mode, JSON (e.g. \'{"ef": 64, "candidates": 16}\')')
    ap.add_argument("--dim", type=int, default=IndexOptions.dim, help="embedding width (power of two)")
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=IndexOptions.ef_construction)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--search-only", action="store_true", help="(internal) search an existing --dir")
    ap.add_argument("--skip-build", action="store_true", help="reuse an index already in --dir")
    args = ap.parse_args(argv)
    if args.search_only:
        print(json.dumps(run_search(args)))
        return 0
    tmp = None
    if args.dir is None:
        tmp = tempfile.mkdtemp(prefix="hwbench-")
        args.dir = str(Path(tmp) / "index")
    result = {"n": args.n, "machine_cores": os.cpu_count()}
    if not args.skip_build:
        result["build"] = run_build(args)
        print(json.dumps({"build": result["build"]}), file=sys.stderr, flush=True)
    cmd = [sys.executable, __file__, "--search-only", "--dir", args.dir, "--seed", str(args.seed),
           "--queries", str(args.queries), "--brute-queries", str(args.brute_queries),
           "--utterances", str(args.utterances), "--top-k", str(args.top_k),
           "--error-rates", *map(str, args.error_rates), "--sweep", *map(str, args.sweep),
           "--rule-sweep", *args.rule_sweep, "--sweep-queries", str(args.sweep_queries),
           "--ef-sweep", *map(str, args.ef_sweep), "--search-options", args.search_options]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    result["search"] = json.loads(out)
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
