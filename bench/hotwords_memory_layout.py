"""Hotword search time by memory layout of the HNSW graph: 4 KiB vs transparent huge pages (hotwords/hugepages.py)
and, with --renumber, insertion order vs breadth-first node order (hotwords/hnsw_layout.py) of the same graph.

    python bench/hotwords_memory_layout.py --dir /work/hw1m --utterances 100 --rounds 3 [--renumber] > layout.json

The same ~27-word utterances (two entities, 10 % phoneme error, as in hotwords_bench.py) are searched in fresh
processes that open the index with huge pages on and off (NIM4ASR_EDGE_HUGE_PAGES), alternating, so every variant
sees the same machine load. --renumber needs an index saved in insertion order (built before renumbering existed,
or with fewer than RENUMBER_MIN entries): a temporary copy gets the renumbered graph. Each process reports
whole-utterance search p50 on 1 and 2 threads, the HNSW lookups alone, and a digest of the hits (equal digests:
identical results).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hotwords_bench import Material

from nim4asr_edge.hotwords import HotwordIndex, hnsw_layout, hugepages


def make_utterances(directory: str, n: int, seed: int) -> list[list[str]]:
    with HotwordIndex.open(directory, on_stale="error") as idx:
        rng = random.Random(seed)
        material = Material(idx)
        return [material.utterance(rng, 0.1) for _ in range(n)]


def child(directory: str, utt_file: str) -> dict:
    utts = json.loads(Path(utt_file).read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    idx = HotwordIndex.open(directory, on_stale="error")
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if idx.huge_pages is not None:
        idx.huge_pages.join()
    collapse_s = time.perf_counter() - t0
    entries = idx.entry_table.live_count()
    opt = idx.search_options.for_entries(entries)
    # the windows each utterance looks up, for the lookups-alone timing
    vecs = [idx.embed_sequences(idx.windows(idx.clean_hypothesis(u), opt)) for u in utts]
    for u in utts[:20]:  # warm-up
        idx.search(u)
    out = {"entries": entries, "huge_pages": hugepages.enabled(), "open_s": round(open_s, 2), "collapse_s": round(collapse_s, 2)}
    digest = hashlib.sha256()
    for th in (1, 2):
        o = dataclasses.replace(idx.search_options, threads=th)
        ts, tk = [], []
        for u, v in zip(utts, vecs):
            t = time.perf_counter()
            hits = idx.search(u, options=o)
            ts.append(time.perf_counter() - t)
            t = time.perf_counter()
            idx.graph_knn(v, opt.candidates, threads=th, ef=opt.ef)
            tk.append(time.perf_counter() - t)
            if th == 1:
                digest.update(repr([(h.id, h.score, h.start, h.end) for h in hits]).encode())
        out[f"utterance_p50_ms_{th}_thread"] = round(float(np.median(ts)) * 1000, 3)
        out[f"lookups_p50_ms_{th}_thread"] = round(float(np.median(tk)) * 1000, 3)
    out["lookups_per_utterance"] = round(float(np.mean([len(v) for v in vecs])), 1)
    out["hits_digest"] = digest.hexdigest()[:16]
    idx.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="a built index directory")
    ap.add_argument("--utterances", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="alternating pairs of processes")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--renumber", action="store_true", help="also a BFS-renumbered copy of the same graph")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.dir, args.child)))
        return
    if not hugepages.enabled():
        sys.exit("transparent huge pages are not in madvise mode on this machine: nothing to compare")
    with tempfile.TemporaryDirectory(dir=Path(args.dir).parent) as tmp:
        utt_file = Path(tmp) / "utterances.json"
        utt_file.write_text(json.dumps(make_utterances(args.dir, args.utterances, args.seed)), encoding="utf-8")
        dirs = {"insertion_order" if args.renumber else "as_saved": args.dir}
        if args.renumber:
            dirs["bfs_order"] = renumbered_copy(args.dir, Path(tmp) / "bfs")
        variants = [(order, pages) for order in dirs for pages in ("4k_pages", "huge_pages")]
        runs: dict[str, list[dict]] = {f"{o}+{p}": [] for o, p in variants}
        for r in range(args.rounds):
            for order, pages in (variants if r % 2 == 0 else variants[::-1]):
                env = dict(os.environ, NIM4ASR_EDGE_HUGE_PAGES="1" if pages == "huge_pages" else "0")
                res = subprocess.run([sys.executable, __file__, "--dir", dirs[order], "--child", str(utt_file)],
                                     env=env, capture_output=True, text=True, check=True)
                name = f"{order}+{pages}"
                runs[name].append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(json.dumps({name: runs[name][-1]}), file=sys.stderr, flush=True)
    first = next(iter(runs))
    keys = [k for k in runs[first][0] if k.endswith("_thread")]
    summary = {name: {k: round(float(np.median([x[k] for x in rs])), 3) for k in keys} for name, rs in runs.items()}
    summary["ratio_to_" + first] = {name: {k: round(summary[name][k] / summary[first][k], 3) for k in keys}
                                    for name in runs if name != first}
    digests = {x["hits_digest"] for rs in runs.values() for x in rs}
    print(json.dumps({"dir": args.dir, "entries": runs[first][0]["entries"], "utterances": args.utterances,
                      "rounds": args.rounds, "machine_cores": os.cpu_count(), "identical_hits": len(digests) == 1,
                      "summary": summary, "runs": runs}, indent=1))


def renumbered_copy(src: str, dst: Path) -> str:
    """A copy of the index directory whose HNSW graph is renumbered in BFS order (sidecar updated)."""
    shutil.copytree(src, dst)
    side = json.loads((dst / "index.json").read_text(encoding="utf-8"))
    info = side["files"]["hnsw"]
    graph = dst / info["name"]
    if not hnsw_layout.reorder_file(graph, graph.with_suffix(".bfs"), int(side["dim"])):
        sys.exit(f"{graph} is not an hnswlib graph this SDK can renumber")
    os.replace(graph.with_suffix(".bfs"), graph)
    info["sha256"] = hashlib.sha256(graph.read_bytes()).hexdigest()
    (dst / "index.json").write_text(json.dumps(side, indent=1), encoding="utf-8")
    return str(dst)


if __name__ == "__main__":
    main()
