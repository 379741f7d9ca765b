"""Kill-and-resume trials of a batch job: SIGKILL the driver at random moments, rerun it, check nothing was lost or
written twice.

Each trial starts a fresh job of ``--files`` short clips (cut from examples/audio/jfk.wav) with the shipped
tiny-random bundle, kills it 1 to 3 times (at a random time, or right after a random number of files were
committed), reruns it to the end and checks: every file done once in the ledger (gapless commit order), exactly one
output per file and format and nothing else, exactly one JSONL line per file. Results are rewritten after every
trial (``--out``), so an interrupted run still reports the trials it finished.

    python bench/batch_kill_resume.py --trials 100 --out bench/results/batch_kill_resume.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nim4asr_edge.batch.ledger import done_count  # noqa: E402
from nim4asr_edge.batch.outputs import JobFiles  # noqa: E402

BUNDLE = ROOT / "nim4asr_edge" / "models" / "tiny-random"
FORMATS = ("txt", "json")


def make_inputs(root: Path, n: int, seconds: float) -> list[Path]:
    clip, rate = sf.read(ROOT / "examples" / "audio" / "jfk.wav", dtype="float32")
    size = int(seconds * rate)
    paths = []
    for i in range(n):
        path = root / f"d{i % 7}" / f"clip{i:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        offset = (i * 1777) % (len(clip) - size)
        sf.write(path, clip[offset:offset + size], rate)
        paths.append(path)
    return paths


def start(inp: Path, out: Path, workers: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "nim4asr_edge", "batch", str(inp), "-o", str(out), "--bundle",
                             str(BUNDLE), "--workers", str(workers), "--threads", "1", "--formats", ",".join(FORMATS),
                             "--no-progress"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def verify(out: Path, sources: list[Path]) -> dict:
    """Lost and duplicated files, by the ledger, the outputs and the JSONL."""
    db = sqlite3.connect(out / ".nim4asr-batch" / "ledger.sqlite")
    rows = db.execute("SELECT source, name, state, seq FROM files").fetchall()
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    expected = {str(p.resolve()) for p in sources}
    done = {r[0]: r[1] for r in rows if r[2] == "done"}
    names = set(done.values())
    seqs = sorted(r[3] for r in rows if r[2] == "done")
    outputs = collections.Counter(str(p.relative_to(out)) for p in out.rglob("*")
                                  if p.is_file() and not p.relative_to(out).parts[0].startswith("."))
    want = {f"{n}.{f}" for n in names for f in FORMATS} | {"transcripts.jsonl", "errors.jsonl"}
    lines = [json.loads(line)["name"] for line in (out / "transcripts.jsonl").read_text().splitlines()]
    counts = collections.Counter(lines)
    return {
        "lost_ledger": len(expected - set(done)),
        "lost_outputs": len(want - set(outputs)),
        "lost_jsonl": len(names - set(counts)),
        "duplicated_jsonl": sum(c - 1 for c in counts.values() if c > 1),
        "extra_outputs": len(set(outputs) - want),
        "seq_gapless": seqs == list(range(1, len(seqs) + 1)),
        "integrity": integrity,
    }


def trial(rng: random.Random, inp: Path, out: Path, sources: list[Path], workers: int) -> dict:
    kills = []
    for _ in range(rng.randint(1, 3)):
        job = start(inp, out, workers)
        t0 = time.monotonic()
        if rng.random() < 0.5:  # at a random time: before, while or after the workers load
            time.sleep(rng.uniform(0.1, 6.0))
            how = "time"
        else:  # just after the n-th commit from now, plus a random delay under 50 ms
            target = done_count(JobFiles(out).ledger) + rng.randint(1, len(sources) // 2)
            while done_count(JobFiles(out).ledger) < target and job.poll() is None and time.monotonic() - t0 < 120:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
            how = "after_commits"
        alive = job.poll() is None
        os.kill(job.pid, signal.SIGKILL) if alive else None
        job.wait(60)
        kills.append({"how": how, "at_s": round(time.monotonic() - t0, 2), "killed_running_job": alive,
                      "done_at_kill": done_count(JobFiles(out).ledger)})
    job = start(inp, out, workers)
    _, err = job.communicate(timeout=900)
    result = verify(out, sources)
    result.update(kills=kills, rerun_rc=job.returncode, rerun_stderr_tail=err.decode()[-300:] if job.returncode else "")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=0.25, help="seconds of audio per file")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "batch_kill_resume.json")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="batch-kill-"))
    trials: list[dict] = []
    t_start = time.time()
    try:
        sources = make_inputs(work / "in", args.files, args.seconds)
        for i in range(args.trials):
            out = work / f"out{i}"
            trials.append(trial(rng, work / "in", out, sources, args.workers))
            shutil.rmtree(out, ignore_errors=True)
            bad = [t for t in trials if t["rerun_rc"] != 0 or t["integrity"] != "ok" or not t["seq_gapless"]
                   or any(t[k] for k in ("lost_ledger", "lost_outputs", "lost_jsonl", "duplicated_jsonl",
                                         "extra_outputs"))]
            report = {
                "benchmark": "batch_kill_resume", "files": args.files, "seconds_per_file": args.seconds,
                "workers": args.workers, "seed": args.seed, "trials_planned": args.trials,
                "trials_done": len(trials), "kills": sum(len(t["kills"]) for t in trials),
                "kills_of_running_jobs": sum(k["killed_running_job"] for t in trials for k in t["kills"]),
                "kills_mid_job": sum(0 < k["done_at_kill"] < args.files for t in trials for k in t["kills"]),
                "lost": sum(t["lost_ledger"] + t["lost_outputs"] + t["lost_jsonl"] for t in trials),
                "duplicated": sum(t["duplicated_jsonl"] + t["extra_outputs"] for t in trials),
                "failed_trials": len(bad), "wall_s": round(time.time() - t_start, 1),
                "load_average": os.getloadavg(), "cpu_count": os.cpu_count(), "trials": trials,
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1) + "\n")
            print(json.dumps({k: v for k, v in report.items() if k != "trials"}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
