"""Hotwords: phoneme store (SQLite), exact (sorted pattern hashes) and approximate (HNSW) retrieval over CTC phonemes.

See docs/HOTWORDS.md (its "Modules" section maps the files). eSpeak NG (GPL-3.0) is an optional run-time backend
of :mod:`.g2p`, loaded only when a G2P is created.
"""

from .accumulate import HotwordAccumulator, LookupCache
from .costs import PhonemeCosts, costs_from_confusions, default_costs
from .g2p import ENGLISH_INVENTORY, G2P, EspeakG2P, Pronunciation, get_g2p
from .hits import HotwordHit, RemoveReport, format_hints
from .index import HotwordIndex, open_hotwords
from .options import IndexOptions, SearchOptions, cost_free_for
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
    "cost_free_for",
    "costs_from_confusions",
    "default_costs",
    "format_hints",
    "get_g2p",
    "open_hotwords",
]
