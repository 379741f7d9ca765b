"""The hotword store: one SQLite file, the durable truth from which the search index is derived.

Tables: ``meta`` (format, inventory, G2P, generation) and ``hotwords`` (namespace, text, normalised key, phonemes,
weight, timestamps). Every change increments ``generation`` in the same transaction, so derived files can tell
whether they were built from the current contents. Also: reading hotword lists (txt/csv) with per-line reports.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import HotwordError

if TYPE_CHECKING:  # typing.Self is Python 3.11+; setup.py allows 3.10
    from typing import Self

__all__ = ["Entries", "HotwordEntry", "HotwordStore", "ImportReport", "Skipped", "read_hotword_list"]

log = logging.getLogger("nim4asr_edge.hotwords")

STORE_FORMAT = "nim4asr-hotwords"
STORE_VERSION = 1
STORE_FILE = "hotwords.sqlite"
MAX_WEIGHT = 100.0  # weights are relative priorities in (0, MAX_WEIGHT]

# What `build`/`add` accept: texts, (text, weight) pairs, or a path to a txt/csv list.
Entries = str | os.PathLike | Iterable[str | tuple[str, float]]


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


def read_hotword_list(path: str | os.PathLike) -> Iterator[tuple[int, str, float | None, str | None]]:
    """Yield (line, text, weight or None, problem or None) from a txt or csv hotword list.

    txt: one hotword per line, optional weight after a tab (``NIO House<TAB>2.5``); ``#`` starts a comment line.
    csv (``.csv``): columns text[,weight]; a first row ``text,weight`` is a header; ``#`` lines are comments.
    Blank lines are skipped silently (they carry no entry); every other line yields a row.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise HotwordError(f"cannot read hotword list {p}: {exc.strerror or exc}") from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HotwordError(f"hotword list {p} is not UTF-8 (byte {exc.start}): save it as UTF-8") from exc
    if "\x00" in content:
        raise HotwordError(f"hotword list {p} contains NUL bytes: it is not a text file")
    is_csv = p.suffix.lower() == ".csv"
    lines = content.splitlines()
    for no, line in enumerate(lines, start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if is_csv:
            row = next(csv.reader(io.StringIO(line)))
            if no == 1 and [c.strip().lower() for c in row[:2]] in (["text", "weight"], ["text"]):
                continue
            text, wtxt = row[0], (row[1] if len(row) > 1 else "")
            if len(row) > 2:
                yield no, text, None, f"expected 1 or 2 columns (text,weight), got {len(row)}"
                continue
        else:
            text, _, wtxt = line.partition("\t")
        weight, problem = _parse_weight(wtxt)
        yield no, text.strip(), weight, problem


def _parse_weight(wtxt: str) -> tuple[float | None, str | None]:
    wtxt = wtxt.strip()
    if not wtxt:
        return None, None
    try:
        w = float(wtxt)
    except ValueError:
        return None, f"weight {wtxt!r} is not a number"
    if not (0 < w <= MAX_WEIGHT):
        return None, f"weight {w} is outside (0, {MAX_WEIGHT:g}]"
    return w, None


def iter_entries(entries: Entries) -> Iterator[tuple[int, str, float | None, str | None]]:
    """Normalise the accepted entry forms to (line, text, weight, problem)."""
    if isinstance(entries, (str, os.PathLike)) and (isinstance(entries, os.PathLike) or os.path.exists(entries)):
        yield from read_hotword_list(entries)
        return
    if isinstance(entries, str):
        raise HotwordError(f"hotword list {entries!r} does not exist (pass a list of texts for in-memory words)")
    for no, item in enumerate(entries, start=1):
        if isinstance(item, str):
            yield no, item, None, None
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            try:
                w = float(item[1])
            except (TypeError, ValueError):
                yield no, item[0], None, f"weight {item[1]!r} is not a number"
                continue
            yield (no, item[0], w, None) if 0 < w <= MAX_WEIGHT else (
                no, item[0], None, f"weight {w} is outside (0, {MAX_WEIGHT:g}]")
        else:
            raise HotwordError(f"hotword entry {no} is {type(item).__name__}; expected a text or (text, weight)")


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
        self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")

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

    def counts(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT namespace, COUNT(*) FROM hotwords GROUP BY namespace"))
