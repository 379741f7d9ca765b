"""What a batch job writes: per-file outputs replaced atomically, the job's JSONL kept in step with the ledger,
the error report, and the lock that keeps a second driver out of the same output directory."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..durable import fsync_dir
from ..errors import BatchError
from .ledger import Ledger

__all__ = ["JobFiles", "JobLock", "sync_jsonl", "write_atomic", "write_error_report"]


class JobFiles:
    """Where a job's files live inside its output directory."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out = Path(out_dir)
        self.state = self.out / ".nim4asr-batch"  # the ledger, the lock and temporary files
        self.ledger = self.state / "ledger.sqlite"
        self.lock = self.state / "lock"
        self.tmp = self.state / "tmp"  # same file system as the outputs, so os.replace is atomic
        self.jsonl = self.out / "transcripts.jsonl"  # one line per done file
        self.errors = self.out / "errors.jsonl"  # one line per failed file

    def output(self, name: str, fmt: str) -> Path:
        return self.out / f"{name}.{fmt}"

    def prepare(self) -> None:
        """Create the directories and drop temporary files a killed run left behind."""
        self.state.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()


def write_atomic(path: Path, data: str | bytes, tmp_dir: Path, sync_dir: bool = True) -> None:
    """Write ``path`` so that it holds either its old content or all of ``data``, never a part: a temporary file
    in ``tmp_dir`` (same file system), fsync'd, then ``os.replace``d, and the directory fsync'd (unless
    ``sync_dir`` is False: the caller does it once for several files)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{os.getpid()}-{path.name}"
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


def sync_jsonl(ledger: Ledger, files: JobFiles) -> int:
    """Bring the job's JSONL in step with the ledger: exactly one line per done file, in commit order.

    The ledger keeps a mark (last sequence number written, byte size at that point), moved only after the lines
    are fsync'd. Bytes past the mark (a run killed between append and mark) are cut off and appended again; a file
    shorter than its mark (lost or edited) is rebuilt from the ledger. Returns the number of lines appended.
    """
    seq, size = ledger.get_meta("jsonl", [0, 0])
    path = files.jsonl
    actual = path.stat().st_size if path.exists() else 0
    if actual < size:  # the file lost lines the ledger says it had: rebuild it from every done record
        seq, size = 0, 0
        write_atomic(path, b"", files.tmp)
    elif actual > size:
        with open(path, "r+b") as fh:
            fh.truncate(size)
            fh.flush()
            os.fsync(fh.fileno())
    rows = ledger.done_after(seq)
    if not rows:
        if not path.exists():
            write_atomic(path, b"", files.tmp)
        return 0
    data = "".join(record + "\n" for _, record in rows).encode("utf-8")
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    ledger.set_meta("jsonl", [rows[-1][0], size + len(data)])
    return len(rows)


def write_error_report(ledger: Ledger, files: JobFiles) -> int:
    """Rewrite ``errors.jsonl`` from the ledger's failed files (file, output name, attempts, error); returns how many
    there are."""
    failed = ledger.failed()
    write_atomic(files.errors, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failed), files.tmp)
    return len(failed)


class JobLock:
    """An exclusive lock on a job's output directory for the life of a driver (released by the OS if it dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> JobLock:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise BatchError(f"another batch process (pid {holder}) is running this job in {self.path.parent.parent};"
                             " wait for it or stop it") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
