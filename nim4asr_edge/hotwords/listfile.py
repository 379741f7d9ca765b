"""Hotword list files (txt/csv, weights, comments) and the other entry forms ``build``/``add`` accept, normalised
to numbered rows with a problem per unusable line; and writing a list back (``export``)."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import HotwordError

__all__ = ["MAX_LINE_CHARS", "MAX_WEIGHT", "Entries", "iter_entries", "read_hotword_list", "write_hotword_list"]

MAX_WEIGHT = 100.0  # weights are relative priorities in (0, MAX_WEIGHT]

# What `build`/`add` accept: texts, (text, weight) pairs, or a path to a txt/csv list.
Entries = str | os.PathLike | Iterable[str | tuple[str, float]]


def read_hotword_list(path: str | os.PathLike) -> Iterator[tuple[int, str, float | None, str | None]]:
    """Yield (line, text, weight or None, problem or None) from a txt or csv hotword list, reading line by line.

    txt: one hotword per line, optional weight after a tab (``NIO House<TAB>2.5``) or after the last comma when what
    follows it is one number-like word (``NIO House,2.5``; ``Smith, John`` stays one text); a weight field that does
    not parse (``Kennedy,2.o``) or is out of range is reported with its line, never stored as text. ``#`` starts a
    comment line.
    csv (``.csv``): columns text[,weight]; a first row ``text,weight`` is a header; ``#`` lines are comments.
    Lines end at ``\n`` (a trailing ``\r`` is dropped). Blank lines are skipped silently (they carry no entry);
    every other line yields a row. A line that is not UTF-8, holds a control character (other than the tab
    separator), or is longer than MAX_LINE_CHARS yields a row with its problem (its text shortened for the report),
    so one bad line never stops the others. A file in UTF-16 or UTF-32 (a byte order mark) is refused as a whole.
    """
    p = Path(path)
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        raise HotwordError(f"cannot read hotword list {p}: {exc.strerror or exc}") from exc
    is_csv = p.suffix.lower() == ".csv"
    with f:
        if f.read(4).startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16/32: every line would be "not UTF-8"
            raise HotwordError(f"hotword list {p} is not UTF-8 (it starts with a UTF-16/UTF-32 byte order mark): "
                               "save it as UTF-8")
        f.seek(0)
        for no, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            if no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            line, problem = _decode_line(raw)
            if problem is not None:
                yield no, _shorten(line), None, problem
                continue
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if is_csv:
                try:
                    row = next(csv.reader(io.StringIO(line)))
                except csv.Error as exc:
                    yield no, _shorten(line), None, f"not a csv row ({exc})"
                    continue
                if no == 1 and [c.strip().lower() for c in row[:2]] in (["text", "weight"], ["text"]):
                    continue
                text, wtxt = row[0], (row[1] if len(row) > 1 else "")
                if len(row) > 2:
                    yield no, text, None, f"expected 1 or 2 columns (text,weight), got {len(row)}"
                    continue
            else:
                text, _, wtxt = line.partition("\t") if "\t" in line else _comma_weight(line)
            weight, problem = _parse_weight(wtxt)
            yield no, text.strip(), weight, problem


MAX_LINE_CHARS = 1000  # a longer line is reported without being parsed (a hotword has at most 200 characters)
_SHOWN = 80  # characters of a bad line kept in its report
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _decode_line(raw: bytes) -> tuple[str, str | None]:
    """(text, problem or None) of one line's bytes."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (raw.decode("utf-8", "backslashreplace"),
                f"not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}); save the list as UTF-8")
    if len(line) > MAX_LINE_CHARS:
        return line, f"line too long ({len(line)} characters, at most {MAX_LINE_CHARS})"
    bad = _CONTROL.search(line)
    if bad:
        return line, f"contains control character U+{ord(bad.group()):04X} at column {bad.start() + 1}"
    return line, None


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + f"... ({len(text)} characters)"


_NUMBER_LIKE = re.compile(r"\s*[-+]?\.?\d[\w.+-]*\s*")


def _comma_weight(line: str) -> tuple[str, str, str]:
    """(text, ",", weight field) when the part after the last comma is a number-like word, else (line, "", "")."""
    text, sep, tail = line.rpartition(",")
    if sep and text.strip() and _NUMBER_LIKE.fullmatch(tail):
        return text, sep, tail
    return line, "", ""


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


def write_hotword_list(path: str | os.PathLike, rows: Iterable[tuple[str, float]], header: str) -> None:
    """Write (text, weight) rows as a txt list that :func:`read_hotword_list` reads back, after a ``# header``
    comment line; written to a temporary name, fsynced and renamed."""
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"# {header}\n")
        f.writelines(f"{text}\t{weight:g}\n" for text, weight in rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
