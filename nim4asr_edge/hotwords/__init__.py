"""Hotwords: phoneme store (SQLite), exact (Aho-Corasick) and approximate (HNSW) retrieval over CTC phonemes.

See docs/HOTWORDS.md. eSpeak NG (GPL-3.0) is an optional run-time backend of :mod:`.g2p`, loaded only when a
G2P is created.
"""

from .costs import PhonemeCosts, costs_from_confusions, default_costs
from .g2p import ENGLISH_INVENTORY, G2P, EspeakG2P, Pronunciation, get_g2p
from .index import (
    HotwordAccumulator,
    HotwordHit,
    HotwordIndex,
    IndexOptions,
    LookupCache,
    RemoveReport,
    SearchOptions,
    format_hints,
)
from .store import HotwordEntry, ImportReport, Skipped

__all__ = [
    "ENGLISH_INVENTORY",
    "G2P",
    "EspeakG2P",
    "HotwordAccumulator",
    "HotwordEntry",
    "HotwordHit",
    "HotwordIndex",
    "ImportReport",
    "IndexOptions",
    "LookupCache",
    "PhonemeCosts",
    "Pronunciation",
    "RemoveReport",
    "SearchOptions",
    "Skipped",
    "costs_from_confusions",
    "default_costs",
    "format_hints",
    "get_g2p",
]
