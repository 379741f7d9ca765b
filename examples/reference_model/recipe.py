"""One command: generate data, train, export, evaluate (seeded; logs under WORK; ~2 h on 2 shared cores).

    cd examples && nohup nice -n 5 python -m reference_model.recipe > /work/refmodel_work/recipe.log 2>&1 &

Stages (each skips work already on disk, so a rerun resumes):
  1. datagen: eval_clean / eval_noisy / eval_empty, and up to ``--train-clips`` training clips in ``--workers``
     processes (1 torch thread each), stopped after ``--datagen-minutes``;
  2. train: the adaptor alone against the frozen LLM, with the whole machine (training beside data generation ran
     2-30x slower on 2 cores: the first session's lesson);
  3. train_ctc (the phoneme head alone, minutes) and export: encoder.onnx / encoder.int8.onnx / glue.pt / phonemes.txt / bundle_info.json in artifacts/;
  4. evaluate: JSON to artifacts/eval.json and WORK/eval.json.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from .resources import ARTIFACTS, WORK

log = logging.getLogger("refmodel.recipe")


def _spawn(args: list[str], logfile: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    return subprocess.Popen([sys.executable, "-m", *args], stdout=open(logfile, "a"), stderr=subprocess.STDOUT,
                            env=env, cwd=str(Path(__file__).resolve().parent.parent))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--train-clips", type=int, default=9000)
    ap.add_argument("--eval-clips", type=int, default=120)
    ap.add_argument("--min-train-clips", type=int, default=1500)
    ap.add_argument("--datagen-minutes", type=float, default=35.0, help="stop training-data generation after this")
    ap.add_argument("--train-minutes", type=float, default=60.0)
    ap.add_argument("--ctc-minutes", type=float, default=10.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seed = ["--seed", str(args.seed)]
    procs = []
    # worker 0 makes the evaluation sets first, then its share of training clips
    jobs = (f"eval_clean:{args.eval_clips}:40,eval_noisy:{args.eval_clips}:40,eval_empty:50:50,"
            f"train:{args.train_clips}:100")
    procs.append(_spawn(["reference_model.datagen", "--jobs", jobs, "--worker", "0", "--workers", str(args.workers),
                         *seed], WORK / "datagen_0.log"))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    for k in range(1, args.workers):
        procs.append(_spawn(["reference_model.datagen", "--split", "train", "--worker", str(k), "--workers",
                             str(args.workers), "--count", str(args.train_clips), *seed], WORK / f"datagen_{k}.log"))
    while any(p.poll() is None for p in procs) and time.time() - t0 < args.datagen_minutes * 60:
        time.sleep(15)
    for p in procs:
        if p.poll() is None:
            p.terminate()  # our own children only; shards are written atomically
    for p in procs:
        p.wait()
    log.info("datagen stopped after %.1f min", (time.time() - t0) / 60)
    trainer = _spawn(["reference_model.train", "--minutes", str(args.train_minutes), "--min-train-clips",
                      str(args.min_train_clips), "--stack", "8", "--max-clip-seconds", "10", *seed],
                     WORK / "train.log")
    trainer.wait()
    if trainer.returncode != 0:
        raise SystemExit(f"training failed (exit {trainer.returncode}); see {WORK / 'train.log'}")
    # the joint run's last checkpoint (its "best" is picked on 10+10 clips); then the CTC head trained alone
    last = max((WORK / "ckpt").glob("glue_step*.pt"), key=lambda p: int(p.stem[len("glue_step"):]))
    cwd = str(Path(__file__).resolve().parent.parent)
    subprocess.run([sys.executable, "-m", "reference_model.train_ctc", "--minutes", str(args.ctc_minutes),
                    "--init-from", str(last)], check=True, env=env, cwd=cwd,
                   stdout=open(WORK / "train_ctc.log", "a"), stderr=subprocess.STDOUT)
    subprocess.run([sys.executable, "-m", "reference_model.export_onnx", "--glue", str(last), "--ctc-from",
                    str(WORK / "ckpt" / "ctc_best.pt")], check=True, env=env, cwd=cwd)
    with open(WORK / "eval.json", "w") as f:
        subprocess.run([sys.executable, "-m", "reference_model.evaluate", "--glue", str(ARTIFACTS / "glue.pt"),
                        "--rows", str(WORK / "eval_rows.jsonl"), "--limit", "40", "--entity-limit", "10"], check=True, env=env, stdout=f,
                       cwd=str(Path(__file__).resolve().parent.parent))
    (ARTIFACTS / "eval.json").write_text((WORK / "eval.json").read_text())
    # the shipped bundle, then the figures of what users get (onnxruntime + llama.cpp + guard)
    subprocess.run([sys.executable, "-m", "reference_model.assemble", "--eval", str(WORK / "eval.json")],
                   check=True, env=env, cwd=cwd)
    with open(WORK / "bundle_eval.json", "w") as f:
        subprocess.run([sys.executable, "-m", "reference_model.evaluate_bundle", "--limit", "40"], check=True,
                       env=env, stdout=f, cwd=cwd)
    (ARTIFACTS / "bundle_eval.json").write_text((WORK / "bundle_eval.json").read_text())
    log.info("recipe done in %.1f min", (time.time() - t0) / 60)


if __name__ == "__main__":
    main()
