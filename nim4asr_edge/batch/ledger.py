"""The job ledger: one SQLite database per output directory, the single source of truth of a batch job.

Each file is ``pending``, ``running`` (handed to a worker under a lease: one id per attempt), ``done`` (with its
JSONL record and a commit sequence number) or ``failed`` (with the reason). Only the driver writes it, in WAL mode
with ``synchronous=FULL``, so a committed state survives kill -9 and power loss; ``running`` rows left by a dead
driver go back to ``pending`` when the job is run again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .inputs import InputFile, name_key, unique_name

__all__ = ["STATES", "Ledger", "Task", "done_count"]

STATES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,           -- absolute path of the audio file
    name TEXT NOT NULL,                    -- output name (relative, no extension), fixed once assigned
    name_key TEXT NOT NULL UNIQUE,         -- casefolded name: no two files share outputs
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    lease TEXT,                            -- the attempt id a running file was handed out under
    attempts INTEGER NOT NULL DEFAULT 0,   -- times handed to a worker
    failures INTEGER NOT NULL DEFAULT 0,   -- attempts lost to a worker that died or an unexpected error
    error TEXT,                            -- why it failed (the SDK's error type and message)
    seq INTEGER UNIQUE,                    -- commit order of done files: the JSONL's order
    record TEXT,                           -- the file's JSONL line, once done
    duration REAL,                         -- seconds of audio, once done
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_state ON files (state, id);
"""


@dataclass(frozen=True)
class Task:
    id: int
    source: str
    name: str
    lease: str  # the attempt id: a result under any other lease is stale and ignored


class Ledger:
    """The SQLite ledger of one job (see the module docstring). Not thread-safe; the driver owns it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _txn(self) -> _Txn:
        return _Txn(self._db)

    # -- job metadata ----------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        with self._txn():
            self._set_meta(key, value)

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # -- files -----------------------------------------------------------------------------------------
    def add_files(self, files: Iterable[InputFile]) -> int:
        """Add the files not in the ledger yet as pending (names already taken get a unique variant); returns how
        many were new. Files already present keep their state and name."""
        now = time.time()
        with self._txn():
            known = {r[0] for r in self._db.execute("SELECT source FROM files")}
            taken = {r[0] for r in self._db.execute("SELECT name_key FROM files")}
            new = 0
            for f in files:
                if f.source in known:
                    continue
                name = unique_name(f.name, f.source, taken)
                taken.add(name_key(name))
                self._db.execute("INSERT INTO files (source, name, name_key, state, updated) VALUES (?, ?, ?, ?, ?)",
                                 (f.source, name, name_key(name), "pending", now))
                new += 1
        return new

    def recover(self) -> int:
        """Put files a dead driver left ``running`` back to ``pending`` (their attempt did not count); returns how
        many."""
        with self._txn():
            cur = self._db.execute("UPDATE files SET state = 'pending', lease = NULL, attempts = attempts - 1, "
                                   "updated = ? WHERE state = 'running'", (time.time(),))
        return cur.rowcount

    def retry_failed(self) -> int:
        """Put failed files back to pending with their failure counts cleared; returns how many."""
        with self._txn():
            cur = self._db.execute("UPDATE files SET state = 'pending', failures = 0, error = NULL, updated = ? "
                                   "WHERE state = 'failed'", (time.time(),))
        return cur.rowcount

    def reset(self) -> None:
        """Start the job over: every file pending, nothing done (names are kept)."""
        with self._txn():
            self._db.execute("UPDATE files SET state = 'pending', lease = NULL, attempts = 0, failures = 0, "
                             "error = NULL, seq = NULL, record = NULL, duration = NULL, updated = ?", (time.time(),))
            self._set_meta("jsonl", [0, 0])

    def claim(self, n: int, run_id: str) -> list[Task]:
        """Hand out up to ``n`` pending files: each becomes ``running`` under a new lease."""
        if n <= 0:
            return []
        tasks = []
        with self._txn():
            rows = self._db.execute("SELECT id, source, name, attempts FROM files WHERE state = 'pending' "
                                    "ORDER BY id LIMIT ?", (n,)).fetchall()
            now = time.time()
            for fid, source, name, attempts in rows:
                lease = f"{run_id}/{fid}/{attempts + 1}"
                self._db.execute("UPDATE files SET state = 'running', lease = ?, attempts = ?, updated = ? "
                                 "WHERE id = ?", (lease, attempts + 1, now, fid))
                tasks.append(Task(fid, source, name, lease))
        return tasks

    def is_current(self, task: Task) -> bool:
        """Whether ``task`` is still running under its lease (a result under another lease is stale)."""
        row = self._db.execute("SELECT state, lease FROM files WHERE id = ?", (task.id,)).fetchone()
        return row is not None and row[0] == "running" and row[1] == task.lease

    def complete(self, task: Task, record: str, duration: float) -> bool:
        """Record ``task`` as done with its JSONL line; False (nothing changed) when its lease is stale."""
        with self._txn():
            if not self.is_current(task):
                return False
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM files").fetchone()[0]
            self._db.execute("UPDATE files SET state = 'done', lease = NULL, error = NULL, seq = ?, record = ?, "
                             "duration = ?, updated = ? WHERE id = ?", (seq, record, duration, time.time(), task.id))
        return True

    def fail(self, task: Task, error: str, lost: bool = False, max_failures: int = 3) -> str | None:
        """Record an attempt that failed. ``lost``: the worker died or failed unexpectedly, so the file goes back
        to pending until it has been lost ``max_failures`` times; otherwise (the SDK refused the file: corrupt,
        empty or unsupported audio) it fails at once. Returns the new state (None: the lease was stale)."""
        with self._txn():
            if not self.is_current(task):
                return None
            failures = self._db.execute("SELECT failures FROM files WHERE id = ?", (task.id,)).fetchone()[0]
            failures += 1 if lost else 0
            state = "pending" if lost and failures < max_failures else "failed"
            self._db.execute("UPDATE files SET state = ?, lease = NULL, failures = ?, error = ?, updated = ? "
                             "WHERE id = ?", (state, failures, error, time.time(), task.id))
        return state

    # -- reading ---------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Files per state (every state present, 0 when none)."""
        counts = dict.fromkeys(STATES, 0)
        counts.update(self._db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall())
        return counts

    def done_after(self, seq: int) -> list[tuple[int, str]]:
        """(seq, JSONL line) of the files done after commit ``seq``, in commit order."""
        return self._db.execute("SELECT seq, record FROM files WHERE state = 'done' AND seq > ? ORDER BY seq",
                                (seq,)).fetchall()

    def failed(self) -> list[dict]:
        """The failed files: source, output name, attempts and the error."""
        rows = self._db.execute("SELECT source, name, attempts, error FROM files WHERE state = 'failed' ORDER BY id")
        return [{"file": s, "name": n, "attempts": a, "error": e} for s, n, a, e in rows]

    def audio_seconds(self) -> float:
        return float(self._db.execute("SELECT COALESCE(SUM(duration), 0) FROM files WHERE state = 'done'")
                     .fetchone()[0])


class _Txn:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *exc) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def done_count(path: str | Path) -> int:
    """Files done in the ledger at ``path``, read without writing or locking (a running job may hold it); 0 while
    there is no ledger yet."""
    try:
        db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM files WHERE state = 'done'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0
