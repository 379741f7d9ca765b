"""WER with one English normaliser applied to every system (reference, ours, Whisper peer)."""
from __future__ import annotations

import re

from .corpus import num_words, ordinal, year_words

_ABBR = {"dr": "doctor", "mr": "mister", "mrs": "missus", "ms": "miss", "st": "street", "ave": "avenue",
         "rd": "road", "blvd": "boulevard", "a.m": "a m", "p.m": "p m", "am": "a m", "pm": "p m", "ok": "okay"}


def _number(tok: str) -> str:
    m = re.fullmatch(r"(\d+)(st|nd|rd|th)", tok)
    if m:
        return ordinal(int(m.group(1)))
    if re.fullmatch(r"\d+", tok):
        n = int(tok)
        if len(tok) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099):
            return year_words(n)
        if len(tok) > 1 and tok[0] == "0":
            return " ".join(num_words(int(d)) for d in tok)
        return num_words(n) if n < 10**9 else tok
    return tok


def normalize(text: str) -> str:
    t = text.lower()
    t = t.replace("%", " percent").replace("&", " and ").replace("o'clock", "o clock")
    t = re.sub(r"\$(\d+)(?:\.(\d\d))?", lambda m: f"{m.group(1)} dollars" + (f" and {m.group(2)} cents" if m.group(2) else ""), t)
    t = re.sub(r"(\d+):(\d\d)", lambda m: f"{m.group(1)} {'' if m.group(2) == '00' else ('oh ' + str(int(m.group(2))) if m.group(2)[0] == '0' else m.group(2))}", t)
    t = re.sub(r"(\d),(\d{3})", r"\1\2", t)
    t = re.sub(r"\b(a|p)\.m\.?", r"\1 m", t)
    t = re.sub(r"[-–—/]", " ", t)
    out = []
    for w in re.findall(r"[a-z0-9']+\.?", t):
        w = w.rstrip(".")
        w = _ABBR.get(w, w)
        w = w.strip("'")
        if not w:
            continue
        out.extend(_number(x) for x in w.split())
    return " ".join(" ".join(out).replace("-", " ").split())


def edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def wer_counts(ref: str, hyp: str) -> tuple[int, int]:
    """(errors, reference words) after normalisation."""
    r, h = normalize(ref).split(), normalize(hyp).split()
    return edit_distance(r, h), len(r)
