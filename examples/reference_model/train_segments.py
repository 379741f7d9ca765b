"""Run ``train`` as a chain of short processes that resume each other (optimizer state, step count, one cosine
schedule over the whole run).

Why: on the 2-core machine a training process got slower as it lived (about 2 s per step in its first minutes, 4-10 s
later, RSS growing from 4.6 to 8 GB), and a fresh process that loads the same weights and optimizer state started
fast again. The cause is not established: other jobs shared the machine during most of those runs, and the machine's
speed itself varied between sessions. Short segments bound the loss either way, at ~70 s of start-up per segment.

    cd examples && python -m reference_model.train_segments --init-from CKPT --until 04:03 --out DIR [train args]
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("refmodel.segments")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init-from", required=True,
                    help="glue checkpoint to start from (one with optimizer state, glue_latest.pt, is resumed)")
    ap.add_argument("--until", required=True, help="UTC wall-clock end, HH:MM (today, or tomorrow if past)")
    ap.add_argument("--segment-minutes", type=float, default=12.0)
    ap.add_argument("--out", required=True)
    args, train_args = ap.parse_known_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    now = dt.datetime.now(dt.timezone.utc)
    hh, mm = map(int, args.until.split(":"))
    end = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if end <= now:
        end += dt.timedelta(days=1)
    start_ts, end_ts = time.time(), end.timestamp()
    latest = Path(args.out) / "glue_latest.pt"
    import torch

    init = args.init_from
    resume = "optimizer" in torch.load(init, map_location="cpu", weights_only=False)
    while (left := (end_ts - time.time()) / 60) > 2:
        minutes = min(args.segment_minutes, left)
        final = minutes == left
        cmd = [sys.executable, "-m", "reference_model.train", "--minutes", f"{minutes:.2f}", "--init-from", init,
               "--out", args.out, "--schedule-window", str(start_ts), str(end_ts), *train_args]
        if resume:
            cmd.append("--resume")
        if not final:
            cmd.append("--skip-final-eval")
        log.info("segment: %.1f min%s", minutes, " (last)" if final else "")
        subprocess.run(cmd, check=True)
        snapshot = Path(args.out) / "resume_from.pt"  # the next process reads a copy the running one cannot rewrite
        snapshot.write_bytes(latest.read_bytes())
        init, resume = str(snapshot), True


if __name__ == "__main__":
    main()
