"""Hotword retrieval on real CTC output: the greedy and posterior verifiers and candidate sources, side by side.

    cd examples && NIM4ASR_REF_WORK=DIR PYTHONPATH=. python ../bench/hotwords_real_ctc.py --base-dir /tmp/hw1m \\
        > ../bench/results/hotwords_real_ctc_posterior.json

Clips: the reference recipe's held-out synthetic clips (``python -m reference_model.datagen --jobs
eval_clean:160:100,eval_noisy:160:100`` writes them under ``$NIM4ASR_REF_WORK``), run through the reference bundle's
encoder: their greedy phoneme hypotheses and CTC log-posteriors. Split by clip index: **report** = index < 80 of each
split (the 160 clips of ``hotwords_real_ctc_ref.json``), **tune** = index >= 80 (``--tune-only`` for a quick
look). Thresholds are tuned on the tune split only (``tuning``: a grid over the posterior rule, with recall and
false hints per point, on the tune clips) and reported on the report split.

Stores: the clips' own entities (both splits) alone; 10,000 generated entities plus them; ``--base-dir``, an index
built by ``hotwords_bench.py`` (1M generated entities; copied, not changed), plus them; ``--base-dir-10m``, the same
with 10M. Modes, on the same clips:
exact matching only (the paper's method), the greedy verifier (edit distance against the greedy string), the
posterior verifier (CTC keyword cost over the posteriors) with candidates from the HNSW neighbours of greedy windows
(``posterior_windows_previous``: the previous default, with its rule; ``posterior_windows``: today's rule), from
token passing over the phoneme trie (``posterior_trie``), from both, and as shipped (``posterior``: ``auto``), and
the shipped mode's candidate bound (every candidate accepted: the ceiling of any threshold; top 1000). Reported per
mode: share of the clips' entity mentions among the top-K hits ("hint recall"), hits per entity-free clip (false
hints), other hits per clip with entities, search time per clip. ``utterances``: report clips concatenated into
10-s utterances, encoded whole, searched by the greedy verifier, the previous posterior default and the shipped one
in alternation on 1 and 2 threads (``--threads``): time per 10-s utterance, p50 / p90.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from entities import generate_entities

REPORT_BELOW = 80  # clip index < 80 of each split: the report split (the clips of hotwords_real_ctc_ref.json)
UTTERANCE_S = 10.0
GRID_SLOPE = (0.25, 0.3, 0.35, 0.4, 0.5)  # keyword_cost_per_phoneme (x frame_cap) tried on the tune split
GRID_OFFSET = (-2.0, -1.0, 0.0, 1.0)  # keyword_free_offset (phonemes) tried on the tune split


@dataclasses.dataclass
class Clip:
    split: str  # "report" or "tune"
    entities: list[str]
    symbols: tuple[str, ...]
    logprobs: np.ndarray
    seconds: float


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-dir", help="a 1M index built by hotwords_bench.py (copied, not changed)")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--utterances", type=int, default=16, help="10-s utterances timed")
    ap.add_argument("--repeats", type=int, default=5, help="timed searches per utterance and mode")
    ap.add_argument("--search-options", default="{}", help="SearchOptions overrides for the posterior modes (JSON)")
    ap.add_argument("--no-tune", action="store_true", help="skip the threshold grid on the tune split")
    ap.add_argument("--grid-slope", type=float, nargs="+", default=list(GRID_SLOPE))
    ap.add_argument("--grid-offset", type=float, nargs="+", default=list(GRID_OFFSET))
    ap.add_argument("--encodings", help="cache of the clips' encoder outputs (pickle; written if missing)")
    ap.add_argument("--encode-only", action="store_true", help="fill --encodings and stop")
    ap.add_argument("--base-dir-10m", help="a 10M index built by hotwords_bench.py (copied, not changed)")
    ap.add_argument("--stores", nargs="+", default=["own", "10k", "1m", "10m"], choices=["own", "10k", "1m", "10m"])
    args = ap.parse_args()
    from reference_model.textnorm import normalize

    from nim4asr_edge.hotwords import HotwordIndex

    clips, utterances, inventory = _encode(args.utterances, args.encodings)
    if args.encode_only:
        return
    ents = sorted({e for c in clips for e in c.entities})
    report = [c for c in clips if c.split == "report"]
    tune = [c for c in clips if c.split == "tune"]
    overrides = json.loads(args.search_options)
    result: dict = {"clips": {"report": len(report), "tune": len(tune)},
                    "entity_clips": {"report": sum(bool(c.entities) for c in report),
                                     "tune": sum(bool(c.entities) for c in tune)},
                    "entities_in_store": len(ents), "top_k": args.top_k, "search_options": overrides,
                    "load_average_start": os.getloadavg(), "machine_cores": os.cpu_count(), "stores": {}}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"own_entities": lambda: HotwordIndex.build(ents, Path(tmp) / "own", "espeak-ng:en-us", inventory),
                  "10k_generated_plus_own": lambda: HotwordIndex.build(
                      list(dict.fromkeys([*generate_entities(10_000, seed=3), *ents])), Path(tmp) / "10k",
                      "espeak-ng:en-us", inventory)}
        for size, base_dir in (("1m", args.base_dir), ("10m", args.base_dir_10m)):
            if base_dir and size in args.stores:
                shutil.copytree(base_dir, Path(tmp) / size)
                stores[f"{size}_generated_plus_own"] = (
                    lambda size=size: HotwordIndex.open(Path(tmp) / size, on_stale="error"))
        for name, make in stores.items():
            if name.split("_")[0] not in args.stores:
                continue
            with make() as idx:
                if name.startswith(("1m", "10m")):
                    idx.add(ents)  # already-stored ones are reported as duplicates, not added twice
                base = dataclasses.replace(idx.search_options, threads=1)
                posterior = dataclasses.replace(base, verifier="posterior", **overrides)
                modes = {"exact_aho_corasick": dataclasses.replace(base, approximate=False),
                         "greedy": dataclasses.replace(base, verifier="greedy"),
                         "posterior_windows_previous": dataclasses.replace(
                             posterior, posterior_candidates="windows", keyword_cost_per_phoneme=0.4),
                         "posterior_windows": dataclasses.replace(posterior, posterior_candidates="windows"),
                         "posterior_trie": dataclasses.replace(posterior, posterior_candidates="trie"),
                         "posterior_trie+windows": dataclasses.replace(posterior, posterior_candidates="trie+windows"),
                         "posterior": posterior,
                         "posterior_candidate_bound": dataclasses.replace(
                             posterior, keyword_cost_per_phoneme=1.0, keyword_free_offset=-MAXF, min_score=1e-6)}
                live = idx.stats()["entries"]
                entry = {"entries": live, "cost_free_phonemes": base.for_entries(live).cost_free_phonemes,
                         "posterior_options": {k: v for k, v in dataclasses.asdict(posterior).items()
                                               if k.startswith(("keyword", "frame", "posterior", "candidates", "ef",
                                                                "max_verify"))},
                         "modes": {m: _score(idx, report, opt, 1000 if m.endswith("bound") else args.top_k,
                                             normalize)
                                   for m, opt in modes.items()}}
                if not args.no_tune:
                    entry["tuning_on_tune_split"] = {
                        "greedy": _score(idx, tune, modes["greedy"], args.top_k, normalize),
                        "grid": [{"keyword_cost_per_phoneme": s, "keyword_free_offset": o,
                                  **_score(idx, tune, dataclasses.replace(posterior, keyword_cost_per_phoneme=s,
                                                                          keyword_free_offset=o), args.top_k,
                                           normalize, timing=False)}
                                 for s in args.grid_slope for o in args.grid_offset]}
                if name.startswith(("1m", "10m", "10k")):
                    entry["utterance_search"] = _time_utterances(idx, utterances, modes, args.threads, args.repeats)
                result["stores"][name] = entry
                print(json.dumps({name: {m: (v["hint_recall"], v["false_hints_per_entity_free_clip"])
                                         for m, v in entry["modes"].items()}}), file=sys.stderr, flush=True)
    result["load_average_end"] = os.getloadavg()
    print(json.dumps(result, indent=1, ensure_ascii=False))


MAXF = 64.0  # a free-phoneme offset that gives every entry length an allowance
TIMED = ("greedy", "posterior_windows_previous", "posterior")  # modes timed on 10-s utterances


def _encode(n_utterances: int, cache: str | None) -> tuple[list[Clip], list[tuple[tuple[str, ...], np.ndarray]],
                                                          list[str]]:
    """Every held-out clip through the reference bundle's encoder, and 10-s utterances of report clips (from
    ``cache`` where it holds them: a clip is known by its split and index)."""
    from reference_model.data import load_split

    from nim4asr_edge import Recognizer, RecognizerOptions

    raw = [c for s in ("eval_clean", "eval_noisy") for c in load_split(s)[0]]
    known = pickle.loads(Path(cache).read_bytes()) if cache and Path(cache).is_file() else {}
    clips, utterances = [], []
    with Recognizer(None, RecognizerOptions(threads=2)) as rec:
        engine = rec.engine

        def evidence(key, audio):
            if key not in known:
                ev = engine.acoustic_evidence([engine.encode(audio).phoneme_logprobs])
                known[key] = (ev.symbols, ev.logprobs)
            return known[key]

        pending: list[np.ndarray] = []
        for c in raw:
            audio = c.wav.numpy().astype(np.float32) / 32767.0
            split = "report" if int(c.meta["index"]) < REPORT_BELOW else "tune"
            symbols, lp = evidence((c.meta["split"], int(c.meta["index"])), audio)
            clips.append(Clip(split, list(c.meta.get("entities") or []), symbols, lp, len(audio) / 16000))
            if split == "report" and len(utterances) < n_utterances:
                pending.append(audio)
                if sum(map(len, pending)) >= UTTERANCE_S * 16000:
                    key = ("utterance", len(utterances), c.meta["split"], int(c.meta["index"]))
                    utterances.append(evidence(key, np.concatenate(pending)[: int(UTTERANCE_S * 16000)]))
                    pending = []
        inventory = rec.bundle.phoneme_inventory
    if cache:
        Path(cache).write_bytes(pickle.dumps(known))
    return clips, utterances, inventory


def _score(idx, clips: list[Clip], opt, top_k: int, normalize, timing: bool = True) -> dict:
    found = total = false = free = wrong = 0
    ms = []
    for c in clips:
        t = time.perf_counter()
        hits = idx.search(c.symbols, top_k=top_k, options=opt, logprobs=c.logprobs)
        ms.append(1000 * (time.perf_counter() - t))
        want = {normalize(e) for e in c.entities}
        if want:
            got = {normalize(h.text) for h in hits}
            found += len(want & got)
            total += len(want)
            wrong += len(got - want)
        else:
            free += 1
            false += len(hits)
    out = {"hint_recall": round(found / max(total, 1), 4), "entities_found": found, "entity_mentions": total,
           "false_hints_per_entity_free_clip": round(false / max(free, 1), 3), "entity_free_clips": free,
           "other_hints_per_entity_clip": round(wrong / max(len(clips) - free, 1), 3)}
    if timing:
        out.update(search_ms_p50=round(float(np.median(ms)), 2), search_ms_p90=round(float(np.percentile(ms, 90)), 2))
    return out


def _time_utterances(idx, utterances, modes: dict, threads: list[int], repeats: int) -> dict:
    """Per 10-s utterance search time of the :data:`TIMED` modes, alternating, on each thread count."""
    out: dict = {"utterances": len(utterances), "seconds": UTTERANCE_S,
                 "phonemes_p50": float(np.median([len(s) for s, _ in utterances]))}
    for n in threads:
        ms: dict[str, list[float]] = {m: [] for m in TIMED}
        hits: dict[str, int] = {m: 0 for m in TIMED}
        opts = {m: dataclasses.replace(modes[m], threads=n) for m in ms}
        for symbols, lp in utterances:
            for m in ms:  # warm-up: the graph's pages, the ef setting
                idx.search(symbols, options=opts[m], logprobs=lp)
            for _ in range(repeats):
                for m, times in ms.items():
                    t = time.perf_counter()
                    h = idx.search(symbols, options=opts[m], logprobs=lp)
                    times.append(1000 * (time.perf_counter() - t))
                    hits[m] += len(h)
        out[f"threads_{n}"] = {m: {"ms_p50": round(float(np.median(v)), 2),
                                   "ms_p90": round(float(np.percentile(v, 90)), 2),
                                   "hits_per_utterance": round(hits[m] / max(len(utterances) * repeats, 1), 2)}
                               for m, v in ms.items()}
    return out


if __name__ == "__main__":
    sys.exit(main())
