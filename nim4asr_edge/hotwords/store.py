"""The hotword store: one SQLite file, the durable truth from which the search index is derived.

Tables: ``meta`` (format, inventory, G2P, generation) and ``hotwords`` (namespace, text, normalised key, phonemes,
weight, timestamps). Every change increments ``generation`` in the same transaction, so derived files can tell
whether they were built from the current contents. Hotword list files are read by listfile.py.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import HotwordError

if TYPE_CHECKING:  # typing.Self is Python 3.11+; setup.py allows 3.10
    from typing import Self

__all__ = ["STORE_FILE", "HotwordEntry", "HotwordStore", "ImportReport", "Skipped"]

log = logging.getLogger("nim4asr_edge.hotwords")

STORE_FORMAT = "nim4asr-hotwords"
STORE_VERSION = 1
STORE_FILE = "hotwords.sqlite"


@dataclass(frozen=True)
class HotwordEntry:
    """One stored hotword."""

    id: int  # row id; also the label in the HNSW index
    namespace: str
    text: str
    phonemes: tuple[str, ...]
    weight: float


@dataclass(frozen=True)
class Skipped:
    """An input line that was not stored, and why."""

    line: int  # 1-based line of the source (or position in the sequence)
    text: str
    reason: str


@dataclass
class ImportReport:
    """What an import did: nothing is dropped without a line here."""

    added: int = 0
    updated: int = 0  # duplicates of stored entries whose weight changed
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> str:
        return f"added {self.added}, updated {self.updated}, skipped {len(self.skipped)}"


def _normkey(text: str) -> str:
    return " ".join(text.casefold().split())


class HotwordStore:
    """SQLite store of hotwords. Use as a context manager or call :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn = conn
        self.path = path
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("format") != STORE_FORMAT:
            conn.close()
            raise HotwordError(f"{path} is not a nim4asr hotword store (format {meta.get('format')!r})")
        if int(meta.get("format_version", 0)) != STORE_VERSION:
            conn.close()
            raise HotwordError(f"{path} has store version {meta.get('format_version')}; this SDK reads "
                               f"version {STORE_VERSION}")
        self.inventory: list[str] = json.loads(meta["inventory"])
        self.g2p_name: str = meta["g2p"]

    # ---------------------------------------------------------------------------------------------- lifecycle
    @classmethod
    def create(cls, path: Path, inventory: Sequence[str], g2p_name: str) -> HotwordStore:
        if path.exists():
            raise HotwordError(f"{path} already exists; open it, or choose a new directory")
        conn = sqlite3.connect(path, check_same_thread=False)
        with conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(
                """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE hotwords (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    namespace TEXT NOT NULL,
                    text TEXT NOT NULL,
                    key TEXT NOT NULL,
                    phonemes TEXT NOT NULL,
                    weight REAL NOT NULL,
                    created REAL NOT NULL,
                    updated REAL NOT NULL,
                    UNIQUE (namespace, key)
                );
                """
            )
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("format", STORE_FORMAT), ("format_version", str(STORE_VERSION)),
                 ("inventory", json.dumps(list(inventory), ensure_ascii=False)), ("g2p", g2p_name),
                 ("generation", "0"), ("created", str(time.time()))],
            )
        return cls(conn, path)

    @classmethod
    def open(cls, path: Path) -> HotwordStore:
        if not path.is_file():
            raise HotwordError(f"no hotword store at {path}; build one with 'nim4asr-edge hotwords build'")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, check_same_thread=False)
            conn.execute("SELECT 1 FROM meta LIMIT 1")
        except sqlite3.DatabaseError as exc:
            raise HotwordError(f"{path} is not a readable hotword store: {exc}") from exc
        return cls(conn, path)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------- access
    @property
    def generation(self) -> int:
        return int(self._conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def _bump(self) -> None:
        """Next generation, and the entry count :meth:`count` reads, in the caller's transaction."""
        self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
        self._conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('count', (SELECT value FROM meta WHERE key='generation') || ':' || "
            "(SELECT COUNT(*) FROM hotwords))")

    def count(self) -> int:
        """Entries in the store. Recorded as ``generation:count`` with every change; counted (at 10M entries a scan
        takes seconds) when the record is missing or from another generation (a store changed by other code)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key='count'").fetchone()
        if row is not None:
            gen, _, n = str(row[0]).partition(":")
            if n.isdigit() and gen == str(self.generation):
                return int(n)
        return int(self._conn.execute("SELECT COUNT(*) FROM hotwords").fetchone()[0])

    def add(self, rows: Iterable[tuple[int, str, float | None, tuple[str, ...]]], namespace: str,
            report: ImportReport) -> list[int]:
        """Insert (line, text, weight, phonemes) rows; duplicates update the weight if given, else are reported.

        Returns the ids whose phonemes are new to the index (inserted rows).
        """
        now = time.time()
        new_ids: list[int] = []
        seen: dict[str, int] = {}
        with self._conn:
            cur = self._conn.cursor()
            for line, text, weight, phonemes in rows:
                key = _normkey(text)
                if key in seen:
                    report.skipped.append(Skipped(line, text, f"duplicate of line {seen[key]}"))
                    continue
                seen[key] = line
                old = cur.execute("SELECT id, weight FROM hotwords WHERE namespace=? AND key=?",
                                  (namespace, key)).fetchone()
                if old is not None:
                    if weight is not None and weight != old[1]:
                        cur.execute("UPDATE hotwords SET weight=?, updated=? WHERE id=?", (weight, now, old[0]))
                        report.updated += 1
                    else:
                        report.skipped.append(Skipped(line, text, f"already in namespace {namespace!r}"))
                    continue
                cur.execute(
                    "INSERT INTO hotwords (namespace, text, key, phonemes, weight, created, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (namespace, text, key, " ".join(phonemes), 1.0 if weight is None else weight, now, now),
                )
                new_ids.append(int(cur.lastrowid))
            report.added += len(new_ids)
            if new_ids or report.updated:
                self._bump()
        return new_ids

    def remove(self, texts: Sequence[str], namespace: str) -> tuple[list[int], list[str]]:
        """Delete by text; returns (removed ids, texts that were not found)."""
        removed: list[int] = []
        missing: list[str] = []
        with self._conn:
            for text in texts:
                row = self._conn.execute("SELECT id FROM hotwords WHERE namespace=? AND key=?",
                                         (namespace, _normkey(text))).fetchone()
                if row is None:
                    missing.append(text)
                    continue
                self._conn.execute("DELETE FROM hotwords WHERE id=?", (row[0],))
                removed.append(int(row[0]))
            if removed:
                self._bump()
        return removed, missing

    def entries(self, namespace: str | None = None, limit: int | None = None) -> list[HotwordEntry]:
        sql = "SELECT id, namespace, text, phonemes, weight FROM hotwords"
        args: list = []
        if namespace is not None:
            sql += " WHERE namespace=?"
            args.append(namespace)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [HotwordEntry(i, ns, t, tuple(p.split(" ")), w) for i, ns, t, p, w in self._conn.execute(sql, args)]

    def iter_phonemes(self, batch: int = 50_000) -> Iterator[list[tuple[int, str, str]]]:
        """(id, namespace, phonemes) for every entry, in id order, in batches."""
        cur = self._conn.execute("SELECT id, namespace, phonemes FROM hotwords ORDER BY id")
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                return
            yield rows

    def get(self, ids: Sequence[int]) -> dict[int, tuple[str, float, str]]:
        """id -> (text, weight, namespace)."""
        if not ids:
            return {}
        q = ",".join("?" * len(ids))
        return {i: (t, w, ns) for i, t, w, ns in
                self._conn.execute(f"SELECT id, text, weight, namespace FROM hotwords WHERE id IN ({q})", list(ids))}

    def weights(self, ids: Sequence[int] | None = None) -> dict[int, float]:
        """id -> weight, of ``ids`` or (None) of every entry."""
        if ids is not None:
            return {i: w for i, (_, w, _) in self.get(ids).items()}
        return dict(self._conn.execute("SELECT id, weight FROM hotwords ORDER BY id").fetchall())

    def weight_arrays(self, batch: int = 500_000) -> tuple[np.ndarray, np.ndarray]:
        """(ids ascending as int64, their weights as float32) of every entry, read in batches."""
        cur = self._conn.execute("SELECT id, weight FROM hotwords ORDER BY id")
        ids, ws = [], []
        while rows := cur.fetchmany(batch):
            a = np.array(rows, np.float64)
            ids.append(a[:, 0].astype(np.int64))
            ws.append(a[:, 1].astype(np.float32))
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(ids), np.concatenate(ws)

    def counts(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT namespace, COUNT(*) FROM hotwords GROUP BY namespace"))
