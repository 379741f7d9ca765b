"""Cached clips on disk -> training / evaluation examples; phoneme inventory; hint sampling; batching."""
from __future__ import annotations

import glob
import logging
from dataclasses import dataclass

import numpy as np
import torch

from .corpus import distractors
from .resources import WORK

log = logging.getLogger("refmodel.data")

BLANK, WORD_BOUNDARY = "<blank>", "|"


@dataclass
class Clip:
    feat: torch.Tensor  # float16 [T_enc, 384], the frozen encoder's output covering the audio
    meta: dict
    wav: torch.Tensor | None = None  # int16, eval splits only


def load_split(split: str, skip: set[str] | None = None) -> tuple[list[Clip], set[str]]:
    """Every complete shard of ``split`` not in ``skip`` (shards are written atomically)."""
    clips, seen = [], set()
    for path in sorted(glob.glob(str(WORK / "data" / split / "shard_*.pt"))):
        if skip and path in skip:
            continue
        d = torch.load(path, weights_only=False)
        for f, m, w in zip(d["feats"], d["meta"], d.get("wav") or [None] * len(d["feats"])):
            clips.append(Clip(f, m, w))
        seen.add(path)
    _renormalise_phonemes(clips)
    return clips, seen


def _renormalise_phonemes(clips: list[Clip]) -> None:
    """Re-derive CTC targets written with symbols outside the runtime inventory (clips generated while only the
    recipe's own eSpeak reader was used keep eSpeak's ``ɑːɹ``-style symbols; the runtime G2P splits them)."""
    from nim4asr_edge.hotwords.g2p import ENGLISH_INVENTORY, get_g2p

    known = set(ENGLISH_INVENTORY)
    stale = [c for c in clips if any(p not in known for p in c.meta.get("phonemes", []))]
    if stale:
        g2p = get_g2p("espeak-ng:en-us")
        for c, ph in zip(stale, g2p.phonemize([c.meta["text"] for c in stale])):
            c.meta["phonemes"] = ph
        log.info("re-derived phonemes of %d clips with the runtime G2P", len(stale))


def build_inventory(seqs: list[list[str]]) -> list[str]:
    """<blank>, "|", the runtime G2P's inventory, then any other symbol seen (sorted)."""
    from nim4asr_edge.hotwords.g2p import ENGLISH_INVENTORY

    inv = [s for s in ENGLISH_INVENTORY if s not in (BLANK, WORD_BOUNDARY)]
    extra = sorted({p for s in seqs for p in s} - set(inv) - {WORD_BOUNDARY})
    if extra:
        log.warning("symbols outside ENGLISH_INVENTORY appended: %s", extra)
    inv += extra
    return [BLANK, WORD_BOUNDARY] + inv


def sample_hints(r: np.random.Generator, meta: dict) -> tuple[list[str], str]:
    """Contextual hints for one example: right entity among distractors, distractors only, or none."""
    ents = meta.get("entities") or []
    u = r.random()
    if ents and u < 0.5:
        right = [ents[int(r.integers(len(ents)))]] if r.random() < 0.7 else list(ents)
        hints = right + distractors(r, int(r.integers(0, 5)), set(ents))
        r.shuffle(hints)
        return hints, "right"
    if u < (0.7 if ents else 0.25):
        return distractors(r, int(r.integers(1, 6)), set(ents)), "distractors"
    return [], "none"


def feature_mask(h: torch.Tensor, r: np.random.Generator) -> torch.Tensor:
    """SpecAugment-style masking on cached encoder output [T, D] (training only)."""
    h = h.clone()
    t, d = h.shape
    for _ in range(int(r.integers(0, max(1, t // 60) + 1))):  # time masks up to 8 frames (160 ms)
        w = int(r.integers(1, 9))
        s = int(r.integers(0, max(1, t - w)))
        h[s:s + w] = 0
    for _ in range(int(r.integers(0, 3))):  # channel masks up to 24 of 384
        w = int(r.integers(1, 25))
        s = int(r.integers(0, d - w))
        h[:, s:s + w] = 0
    if r.random() < 0.5:
        h = h + torch.randn_like(h) * float(r.uniform(0.0, 0.15)) * h.std()
    return h


def make_batches(lengths: list[int], r: np.random.Generator, max_items: int, max_frames: int) -> list[list[int]]:
    """Length-bucketed batches (shuffled), each with at most max_items clips and max_frames padded frames."""
    order = np.argsort(np.asarray(lengths) + r.uniform(0, 40, len(lengths)))
    batches, cur, cur_max = [], [], 0
    for i in order:
        m = max(cur_max, lengths[i])
        if cur and (len(cur) + 1 > max_items or m * (len(cur) + 1) > max_frames):
            batches.append(cur)
            cur, m = [], lengths[i]
        cur.append(int(i))
        cur_max = m
    if cur:
        batches.append(cur)
    r.shuffle(batches)
    return batches
