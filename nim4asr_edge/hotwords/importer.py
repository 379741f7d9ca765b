"""The import pipeline: hotword entries (texts, (text, weight) pairs or a list file) -> G2P -> the store.

Entries are converted chunk by chunk as the store inserts them (in its one transaction), so a list of millions
never sits in memory as pronunciations. Nothing is dropped without a line in the :class:`~.store.ImportReport`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator

from ..errors import HotwordError
from .g2p import BLANK, G2P, WORD_BOUNDARY
from .listfile import Entries, iter_entries
from .options import MAX_PHONEMES
from .store import HotwordStore, ImportReport, Skipped

__all__ = ["IMPORT_CHUNK", "import_entries"]

log = logging.getLogger("nim4asr_edge.hotwords")

IMPORT_CHUNK = 20_000  # entries converted to phonemes at a time during an import

Row = tuple[int, str, float | None, str | None]  # (line, text, weight or None, problem or None): listfile.py


def import_entries(store: HotwordStore, g2p: Callable[[], G2P], symbols: Collection[str], entries: Entries,
                   namespace: str, progress: bool) -> tuple[ImportReport, list[int]]:
    """Pronounce ``entries`` with ``g2p()`` (called only when needed) and add them to ``namespace`` of ``store``.

    ``symbols``: the inventory (a pronunciation with another symbol is skipped). Returns the report (skipped lines
    in line order, also logged) and the ids of the inserted entries.
    """
    if not namespace or not isinstance(namespace, str):
        raise HotwordError(f"namespace must be a non-empty string, not {namespace!r}")
    report = ImportReport()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc=f"G2P {g2p().name}", unit="entry", mininterval=1.0)
    rows = (row for chunk in _chunks(iter_entries(entries), IMPORT_CHUNK)
            for row in _pronounce_chunk(g2p, symbols, chunk, report, bar))
    try:
        new_ids = store.add(rows, namespace, report)
    finally:
        if bar is not None:
            bar.close()
    report.skipped.sort(key=lambda s: s.line)
    for s in report.skipped:
        log.info("hotword line %d %r skipped: %s", s.line, s.text, s.reason)
    return report, new_ids


def _pronounce_chunk(g2p: Callable[[], G2P], symbols: Collection[str], chunk: list[Row], report: ImportReport,
                     bar) -> list[tuple[int, str, float | None, tuple[str, ...]]]:
    """(line, text, weight, phonemes) of a chunk's usable entries; the others go to ``report.skipped``."""
    raw = []
    for line, text, weight, problem in chunk:
        if problem is not None:
            report.skipped.append(Skipped(line, text, problem))
        else:
            raw.append((line, text, weight))
    rows = []
    for (line, text, weight), pron in zip(raw, g2p().pronounce([t for _, t, _ in raw])):
        if pron.problem is not None:
            report.skipped.append(Skipped(line, text, pron.problem))
            continue
        bad = [p for p in pron.phonemes if p not in symbols or p == BLANK]
        if bad:
            report.skipped.append(Skipped(line, text, f"phoneme {bad[0]!r} is not in the inventory"))
            continue
        n = sum(p != WORD_BOUNDARY for p in pron.phonemes)
        if n > MAX_PHONEMES:
            report.skipped.append(Skipped(line, text, f"too long ({n} phonemes, at most {MAX_PHONEMES})"))
            continue
        rows.append((line, pron.text, weight, pron.phonemes))
    if bar is not None:
        bar.update(len(chunk))
    return rows


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
