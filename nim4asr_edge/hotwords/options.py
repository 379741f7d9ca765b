"""How an index is built and searched: :class:`IndexOptions`, :class:`SearchOptions` and the acceptance rule.

An approximate hit on an entry of ``n`` phonemes whose best alignment costs ``cost`` is accepted when
``1 - cost / n >= min_score`` and ``cost <= max_cost_per_phoneme * (n - cost_free_phonemes)``; by default the free
phonemes follow the number of entries searched (:func:`cost_free_for`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_PHONEMES", "VERIFIERS", "IndexOptions", "SearchOptions", "cost_free_for"]

MAX_PHONEMES = 64  # longer entries are refused (a hotword, not a sentence)
VERIFIERS = ("auto", "posterior", "greedy")  # SearchOptions.verifier
POSTERIOR_CANDIDATES = ("auto", "trie+windows", "trie", "windows")  # SearchOptions.posterior_candidates
# From this many entries "auto" takes posterior candidates from the trie alone: at 1M the window lookups cost ~4 ms
# of a ~5 ms search per clip and added 2 points of hint recall (tune split of bench/hotwords_real_ctc.py); at 10k
# they cost ~2 ms and added 5 points. Only 10k and 1M were measured.
TRIE_ALONE_FROM = 500_000
FREE_AT_1M, FREE_PER_DECADE, FREE_MIN, FREE_MAX = 5.5, 1.0, 2.0, 6.5  # cost_free_for (bench/hotwords_size_sweep.py;
# 10M: docs/HOTWORDS.md)


@dataclass(frozen=True)
class IndexOptions:
    """How the derived search files are built; recorded in the sidecar."""

    dim: int = 128  # embedding width; 1 M entries x 128 float32 = 512 MB of vectors
    M: int = 16  # HNSW graph degree
    ef_construction: int = 160  # HNSW build breadth (160 vs 80 at 1M: +0.02 recall at 20 % error at the same ef)
    threads: int = 0  # build threads (0 = all cores)
    ngram_weights: tuple[float, float, float] = (1.0, 1.0, 0.0)  # weight of phoneme 1-, 2-, 3-grams


def cost_free_for(entries: int) -> float:
    """Default free phonemes of the length-aware rule for a search over ``entries`` entries.

    ``5.5 + log10(entries / 1e6)`` within [2, 6.5]: 6.5 from ten million entries, 5.5 at a million, 4.5 at 100,000,
    3.5 at 10,000, 2 up to about 300. Calibrated so that hotword-free speech gets about half a false hint per
    27-word utterance at every list size (``bench/hotwords_size_sweep.py``; docs/HOTWORDS.md).
    """
    decades = np.log10(max(int(entries), 1) / 1e6)
    return float(np.clip(FREE_AT_1M + FREE_PER_DECADE * decades, FREE_MIN, FREE_MAX))


@dataclass(frozen=True)
class SearchOptions:
    """How a hypothesis is searched. Override with ``dataclasses.replace``.

    Acceptance of an approximate hit for an entry of ``n`` phonemes (word boundaries excluded) whose best alignment
    costs ``cost`` edits: ``1 - cost / n >= min_score`` and, unless ``max_cost_per_phoneme`` is None, the
    length-aware rule ``cost <= max_cost_per_phoneme * (n - cost_free_phonemes)``. The first
    ``cost_free_phonemes`` phonemes of an entry earn no error allowance: a short entry matched with two or three
    errors is most often a chance match among a large list, while a long entry with 20-30 % errors rarely is.
    With the defaults at a million entries an entry of 8 phonemes may cost 1.25 (costs are multiples of 0.25: one
    error plus a misplaced word boundary is too much), 12 phonemes 3.25, 20 phonemes 7.25; entries of 6 phonemes or
    fewer are in effect matched exactly only. Substitutions the CTC head often makes cost less than 1 (``costs.py``).

    Chance matches grow with the number of entries searched, so by default (``cost_free_phonemes=None``) the free
    phonemes grow with it too (:func:`cost_free_for`): 5.5 at a million entries, 6.5 at ten million, fewer for a
    short list, which may accept a 7-phoneme name with one error where a million-entry list may not. :meth:`HotwordIndex.search` resolves
    it for the entries it searches (:meth:`for_entries`).
    """

    ef: int = 48  # HNSW search breadth (>= candidates); 1M: recall as 64 for 0.85x the time (bench --ef-sweep)
    candidates: int = 16  # HNSW neighbours taken per window
    max_window_words: int = 4  # windows of 1..this many words start at every word
    min_similarity: float = 0.35  # cosine similarity a neighbour needs to be verified
    min_score: float = 0.6  # 1 - edit cost / entry phonemes an approximate hit needs
    max_cost_per_phoneme: float | None = 0.5  # length-aware rule: allowance per phoneme beyond the free ones
    cost_free_phonemes: float | None = None  # phonemes of each entry that earn no error allowance; None: by size
    max_length_ratio: float = 0.35  # |window - entry| phonemes allowed, relative to the entry's length
    max_verify: int = 400  # most similar (entry, window) candidates verified by edit distance per search
    approx_min_phonemes: int = 5  # entries with fewer phonemes are only matched exactly
    threads: int = 1  # HNSW query threads
    prune: bool = True  # skip windows and candidates whose length rules out acceptance (False: check them all)
    phoneme_costs: bool = True  # the index's substitution costs (see costs.py); False: every substitution costs 1
    exact: bool = True  # run the exact matcher
    approximate: bool = True  # run the HNSW stage
    # -- the verifier (docs/HOTWORDS.md "Verifiers"; ctc_score.py) --
    verifier: str = "auto"  # "posterior" (CTC keyword cost), "greedy" (edit distance); "auto": posterior when the
    # search is given log-posteriors, greedy for a bare phoneme string
    frame_cap: float = 6.0  # nats: the most one frame may cost the posterior verifier (ctc_score.frame_costs)
    frame_margin: int = 10  # frames searched beyond a candidate's greedy span on each side (10 = 200 ms at 50 Hz)
    keyword_cost_per_phoneme: float = 0.35  # posterior rule: allowance per phoneme beyond the free ones, x frame_cap
    # (tuned on the tune split of bench/hotwords_real_ctc.py with trie candidates: at 1M, 0.4 gave 0.24 false hints
    # per entity-free clip, 0.35 gave 0.13 for 2 points of hint recall; docs/HOTWORDS.md)
    text_keyword_cost_per_phoneme: float = 0.4  # the same over one-hot posteriors of a transcript's G2P (text
    # evidence; in edits: the value keyword_cost_per_phoneme had before the trie, not tuned again)
    keyword_free_offset: float = 0.0  # posterior rule: phonemes earning no allowance beyond cost_free_phonemes
    posterior_min_window: int = 4  # posterior: shortest greedy window looked up (the head deletes phonemes)
    posterior_candidates: str = "auto"  # with CTC posteriors, where the posterior verifier's candidates come
    # from: "windows" (HNSW neighbours of greedy windows), "trie" (every entry's keyword path followed through the
    # frames, trie.py: finds entries whose phonemes the greedy string lost), "trie+windows" (both); "auto": both
    # below TRIE_ALONE_FROM entries, the trie alone from there (resolved by for_entries)
    trie_prefix_rate: float = 1.2  # trie search: a partial path of k phonemes may cost rate x k + slack nats
    trie_prefix_slack: float = 3.0

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.ef < self.candidates:
            raise ValueError(f"need 1 <= candidates <= ef, got candidates={self.candidates}, ef={self.ef}")
        if not 0.0 < self.min_score <= 1.0:
            raise ValueError(f"min_score must be in (0, 1], got {self.min_score}")
        if self.max_window_words < 1:
            raise ValueError("max_window_words must be >= 1")
        if self.max_cost_per_phoneme is not None and not 0.0 < self.max_cost_per_phoneme <= 1.0:
            raise ValueError(f"max_cost_per_phoneme must be in (0, 1] or None, got {self.max_cost_per_phoneme}")
        if self.cost_free_phonemes is not None and not 0.0 <= self.cost_free_phonemes < MAX_PHONEMES:
            raise ValueError(f"cost_free_phonemes must be in [0, {MAX_PHONEMES}), got {self.cost_free_phonemes}")
        if self.verifier not in VERIFIERS:
            raise ValueError(f"verifier must be one of {', '.join(VERIFIERS)}, got {self.verifier!r}")
        if not self.frame_cap > 0.0 or self.frame_margin < 0:
            raise ValueError(f"need frame_cap > 0 and frame_margin >= 0, got {self.frame_cap}, {self.frame_margin}")
        if self.posterior_candidates not in POSTERIOR_CANDIDATES:
            raise ValueError(f"posterior_candidates must be one of {', '.join(POSTERIOR_CANDIDATES)}, got "
                             f"{self.posterior_candidates!r}")
        if self.trie_prefix_rate < 0.0 or self.trie_prefix_slack < 0.0:
            raise ValueError(f"need trie_prefix_rate, trie_prefix_slack >= 0, got {self.trie_prefix_rate}, "
                             f"{self.trie_prefix_slack}")
        for name in ("keyword_cost_per_phoneme", "text_keyword_cost_per_phoneme"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")

    def for_entries(self, n: int) -> SearchOptions:
        """These options for a search over ``n`` entries: ``cost_free_phonemes`` resolved if it is None, and
        ``posterior_candidates`` if it is "auto"."""
        out = self
        if self.cost_free_phonemes is None:
            out = dataclasses.replace(out, cost_free_phonemes=cost_free_for(n))
        if self.posterior_candidates == "auto":
            out = dataclasses.replace(out, posterior_candidates="trie" if n >= TRIE_ALONE_FROM else "trie+windows")
        return out

    def max_cost(self, nphon: np.ndarray) -> np.ndarray:
        """Largest edit cost an approximate hit on entries of `nphon` phonemes may have (negative: none)."""
        n = np.asarray(nphon, np.float64)
        limit = (1.0 - self.min_score) * n
        if self.max_cost_per_phoneme is not None:
            if self.cost_free_phonemes is None:
                raise ValueError("cost_free_phonemes is None (by list size): resolve it with for_entries(n) first")
            limit = np.minimum(limit, self.max_cost_per_phoneme * (n - self.cost_free_phonemes))
        return limit

    def max_keyword_cost(self, nphon: np.ndarray, one_hot: bool = False) -> np.ndarray:
        """Largest CTC keyword cost (nats) an approximate hit on entries of `nphon` phonemes may have under the
        posterior verifier: ``frame_cap * min((1 - min_score) n, slope (n - free))``, free = ``cost_free_phonemes +
        keyword_free_offset``, slope ``keyword_cost_per_phoneme`` (``text_keyword_cost_per_phoneme`` for
        ``one_hot`` posteriors of text); negative: none."""
        n = np.asarray(nphon, np.float64)
        if self.cost_free_phonemes is None:
            raise ValueError("cost_free_phonemes is None (by list size): resolve it with for_entries(n) first")
        free = self.cost_free_phonemes + self.keyword_free_offset
        slope = self.text_keyword_cost_per_phoneme if one_hot else self.keyword_cost_per_phoneme
        return self.frame_cap * np.minimum((1.0 - self.min_score) * n, slope * (n - free))

    def resolve_verifier(self, has_posteriors: bool) -> str:
        """The verifier a search runs: ``"posterior"`` or ``"greedy"``."""
        if self.verifier == "auto":
            return "posterior" if has_posteriors else "greedy"
        return self.verifier

    def span_can_match(self, nphon: np.ndarray, posterior: bool = False) -> np.ndarray:
        """Whether a hypothesis span of `nphon` phonemes can be an approximate hit on an entry of any length.

        Greedy verifier: aligning an entry of n phonemes to a span of p costs at least |n - p| (see
        ``verifiers.length_bound``); a hit must also pass the window-length filter (``max_length_ratio``) and, when
        the exact matcher runs, cost at least 0.5 (a zero-cost alignment is an exact match, found by the exact
        stage). Posterior verifier: the phonemes the head deleted may still be in the posteriors, so only the
        window-length filter and an entry length with any allowance (``max_keyword_cost`` >= 0) count.
        """
        n_e = np.arange(self.approx_min_phonemes, MAX_PHONEMES + 1, dtype=np.float64)
        if posterior:
            limit = np.where(self.max_keyword_cost(n_e) >= 0.0, self.max_length_ratio * n_e + 1, -1.0)
        else:
            limit = np.minimum(self.max_cost(n_e), self.max_length_ratio * n_e + 1)
            limit[self.max_cost(n_e) < (0.5 if self.exact else 0.0) - 1e-4] = -1.0
        p = np.asarray(nphon, np.float64)[:, None]
        return (np.abs(p - n_e[None, :]) <= limit[None, :] + 1e-4).any(axis=1)
