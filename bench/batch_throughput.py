"""Batch throughput with 1 vs 2 local workers on the same short files, in the same run.

Each configuration runs the same job (``--files`` clips of ``--seconds`` s cut from examples/audio/jfk.wav) into a
fresh output directory, in alternating order, ``--repeats`` times. Figures: files/s and seconds of audio per wall
second over the job's work (first file handed out to last result; the workers' one-off bundle load is reported
apart), the speed-up of 2 workers over 1, and the load average around each run (other jobs share the machine).
Threads per worker are the batch defaults: the cores shared out (2 cores: 1 worker x 2 threads, 2 workers x 1
thread), so neither side is oversubscribed; ``1x1`` (one worker, one thread) shows what a single thread costs.

    python bench/batch_throughput.py --out bench/results/batch_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nim4asr_edge.batch import BatchOptions, WorkerSpec, run_batch
from nim4asr_edge.options import RecognizerOptions

CONFIGS = {"1 worker": (1, 0), "2 workers": (2, 0), "1x1": (1, 1)}  # name -> (workers, threads; 0 = default)


def _ratio(summary: dict, a: str, b: str) -> float | None:
    """Median files/s of configuration ``a`` over ``b`` (None unless both ran)."""
    if a not in summary or b not in summary:
        return None
    return round(summary[a]["files_per_s_median"] / summary[b]["files_per_s_median"], 3)


def make_inputs(root: Path, n: int, seconds: float) -> None:
    clip, rate = sf.read(ROOT / "examples" / "audio" / "jfk.wav", dtype="float32")
    size = int(seconds * rate)
    root.mkdir(parents=True)
    for i in range(n):
        offset = (i * 7919) % (len(clip) - size)
        sf.write(root / f"clip{i:03d}.wav", clip[offset:offset + size], rate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=None, help="bundle directory (default: the SDK's default bundle)")
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--configs", default="1 worker,2 workers,1x1")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "batch_throughput.json")
    args = ap.parse_args()
    names = [c.strip() for c in args.configs.split(",")]
    work = Path(tempfile.mkdtemp(prefix="batch-tput-"))
    runs = []
    try:
        make_inputs(work / "in", args.files, args.seconds)
        for rep in range(args.repeats):
            for name in (names if rep % 2 == 0 else names[::-1]):
                workers, threads = CONFIGS[name]
                out = work / f"out-{rep}-{name.replace(' ', '')}"
                load_before = os.getloadavg()[0]
                spec = WorkerSpec(args.bundle, RecognizerOptions(threads=threads), formats=("txt", "json"))
                s = run_batch(work / "in", out, spec, BatchOptions(workers=workers, threads=threads, progress=False))
                runs.append({"config": name, "repeat": rep, "workers": s.workers, "threads_per_worker": s.threads,
                             "files": s.processed, "audio_s": s.audio_seconds, "work_s": s.work_seconds,
                             "wall_s": s.wall_seconds, "startup_s": round(s.wall_seconds - s.work_seconds, 3),
                             "files_per_s": round(s.files_per_second, 3), "audio_s_per_wall_s": round(s.audio_per_wall, 3),
                             "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2)})
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for name in names:
        mine = [r for r in runs if r["config"] == name]
        summary[name] = {"files_per_s_median": statistics.median(r["files_per_s"] for r in mine),
                         "audio_s_per_wall_s_median": statistics.median(r["audio_s_per_wall_s"] for r in mine),
                         "threads_per_worker": mine[0]["threads_per_worker"]}
    report = {
        "benchmark": "batch_throughput", "bundle": args.bundle or "default", "files": args.files,
        "seconds_per_file": args.seconds, "repeats": args.repeats, "cpu_count": os.cpu_count(),
        "speedup_2_vs_1_workers": _ratio(summary, "2 workers", "1 worker"),
        "speedup_2_vs_1_workers_of_1_thread": _ratio(summary, "2 workers", "1x1"),
        "target_speedup": 1.8, "summary": summary, "runs": runs,
        "load_average_at_end": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
