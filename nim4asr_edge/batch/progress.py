"""Progress of a batch job: a tqdm bar in files with ETA, throughput and audio speed, and the run's figures."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["BatchSummary", "Progress"]


@dataclass(frozen=True)
class BatchSummary:
    """What one run of a batch job did, and where the job stands."""

    total: int  # files in the job
    done: int  # files done (this run and earlier ones)
    failed: int  # files failed (see errors.jsonl)
    pending: int  # files left (0 unless the run was stopped)
    processed: int  # files done by this run
    failed_now: int  # files that failed in this run
    retried: int  # attempts this run lost to dead workers and gave again
    audio_seconds: float  # seconds of audio done by this run
    wall_seconds: float  # this run, workers' start-up included
    work_seconds: float  # this run from the first file handed out to the last result
    workers: int
    threads: int  # per worker
    mode: str  # "local" | "ray"
    out_dir: str

    @property
    def files_per_second(self) -> float:
        return self.processed / self.work_seconds if self.work_seconds > 0 else 0.0

    @property
    def audio_per_wall(self) -> float:
        """Seconds of audio transcribed per wall-clock second of work (the speed-up over real time)."""
        return self.audio_seconds / self.work_seconds if self.work_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["files_per_second"] = round(self.files_per_second, 3)
        d["audio_per_wall"] = round(self.audio_per_wall, 3)
        return d

    def line(self) -> str:
        """One human line for the end of a run."""
        return (f"{self.done}/{self.total} done, {self.failed} failed, {self.pending} pending; this run: "
                f"{self.processed} file(s), {self.audio_seconds:.1f} s of audio in {self.work_seconds:.1f} s "
                f"({self.files_per_second:.2f} files/s, {self.audio_per_wall:.1f}x real time) on {self.workers} "
                f"{self.mode} worker(s); outputs in {self.out_dir}")


class Progress:
    """A tqdm bar over the files left at the start of a run (off when disabled or stderr is not a terminal)."""

    def __init__(self, total: int, disabled: bool = False) -> None:
        self._bar = None
        self._audio = 0.0
        self._start = time.perf_counter()
        if not disabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="file", desc="batch", dynamic_ncols=True)

    def update(self, audio_seconds: float, failed: int) -> None:
        """One more file finished (done or failed)."""
        self._audio += audio_seconds
        if self._bar is not None:
            elapsed = max(time.perf_counter() - self._start, 1e-9)
            self._bar.set_postfix_str(f"{self._audio / elapsed:.1f}x real time, {failed} failed", refresh=False)
            self._bar.update(1)

    def write(self, message: str) -> None:
        """A line that does not break the bar."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
