"""Prompted decoding with KV-cache discipline: the tokens before the speech and the speech stay cached, and the text
after the speech (instruction, hints) and the hypothesis are dropped after every decode."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .llm import LLMSession
from .prompt import PromptFormat, check_language

__all__ = ["Hypothesis", "PromptedDecoder"]


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]  # forced tokens followed by newly generated ones
    text: str
    stopped: bool  # the end token closed it (False: the token budget ran out)
    # evaluating what the KV cache lacked (changed text before the speech, new speech, the prompt after it, forced
    # tokens)
    prefill_s: float
    decode_s: float  # token-by-token generation
    n_prompt: int  # positions in the KV cache before generation started


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PromptedDecoder:
    """One LLM context laid out as ``[before | speech | after + hypothesis]`` (see :class:`~.prompt.PromptParts`).

    The tokens before the speech are evaluated once and stay cached while they do not change (NIM4's are static); a
    prompt that puts hints before the speech re-evaluates from the first changed token, and the speech after it.
    :meth:`set_speech` / :meth:`append_speech` replace or extend the speech part; :meth:`set_tail` replaces a
    tentative last part of it (a stream's open encoder block: the next partial replaces it again); :meth:`decode`
    evaluates the text after the speech, generates greedily and removes that text and the hypothesis again.

    Evaluation is lazy: what changed before the speech, the speech not yet cached and the text after it go to
    llama.cpp together at :meth:`decode` (one batch where the model allows, see :meth:`LLMSession.eval_parts`);
    :meth:`evaluate` does it earlier (a stream caches a finished block between partials).
    """

    def __init__(self, llm: LLMSession, prompt: PromptFormat, language: str | None = None) -> None:
        check_language(prompt, language)
        self.llm = llm
        self.prompt = prompt
        self.language = language  # forced language (None: the model detects it)
        self.stop_ids = [llm.token_id(s) for s in prompt.stop]
        self._before: list[int] = []
        self._speech: list[np.ndarray] = []  # committed parts, then the tentative tail (if any) last
        self._tail = 0  # embeddings of the tentative tail
        self.n_speech = 0  # embeddings of the speech, the tail included
        # what the KV cache holds: the first `_before_cached` tokens before the speech, then (only when all of them
        # are cached) the first `_speech_cached` speech embeddings
        self._before_cached = 0
        self._speech_cached = 0
        llm.clear()
        self.prefix = self._tokens(prompt.render((), language).before)  # the plain prompt's tokens before speech
        self._sync_before(self.prefix)
        self.evaluate()

    @property
    def n_prefix(self) -> int:
        """Positions before the speech."""
        return len(self._before)

    def _tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text) if text else []

    def _cached(self) -> int:
        return self._before_cached + self._speech_cached

    def _sync_before(self, tokens: list[int]) -> None:
        """Make the text before the speech ``tokens``, keeping the cached part they share with the cached one."""
        if tokens == self._before:
            return
        common = min(_common_prefix(self._before, tokens), self._before_cached)
        self._before = list(tokens)
        self._before_cached = common
        self._speech_cached = 0  # positions after the change: the speech goes in again
        self.llm.truncate(common)

    def _pending(self) -> list[np.ndarray | list[int]]:
        """What the cache lacks of ``[before | speech]``, in order."""
        parts: list[np.ndarray | list[int]] = [self._before[self._before_cached :]]
        skip = self._speech_cached
        for part in self._speech:
            if skip >= len(part):
                skip -= len(part)
                continue
            parts.append(part[skip:])
            skip = 0
        return parts

    def _mark_cached(self) -> None:
        self._before_cached = len(self._before)
        self._speech_cached = self.n_speech

    def evaluate(self) -> None:
        """Put the text before the speech and the speech into the KV cache now."""
        self.llm.truncate(self._cached())
        self.llm.eval_parts(self._pending())
        self._mark_cached()

    def set_speech(self, embeds: np.ndarray) -> None:
        """Replace the speech part with ``embeds`` (evaluated at the next decode)."""
        self.reset()
        self.append_speech(embeds)

    def append_speech(self, embeds: np.ndarray) -> None:
        """Add audio embeddings after the committed speech (streaming), dropping a tentative tail."""
        self._drop_tail()
        if len(embeds):
            self._speech.append(embeds)
            self.n_speech += len(embeds)

    def set_tail(self, embeds: np.ndarray) -> None:
        """Make ``embeds`` the tentative end of the speech, replacing the previous tail."""
        self.append_speech(embeds)
        self._tail = len(embeds)

    def _drop_tail(self) -> None:
        if self._tail:
            self._speech.pop()
            self.n_speech -= self._tail
            self._tail = 0
        self._speech_cached = min(self._speech_cached, self.n_speech)
        self.llm.truncate(min(self.llm.n_past, self._cached()))

    def reset(self) -> None:
        """Forget the speech (keep the text before it) for the next utterance."""
        self._speech = []
        self._tail = 0
        self.n_speech = 0
        self._speech_cached = 0
        self.llm.truncate(min(self.llm.n_past, self._before_cached))

    def decode(self, hints: Sequence[str], max_new_tokens: int, forced: Sequence[int] = (),
               draft: Sequence[int] = ()) -> Hypothesis:
        """Greedy transcript of the speech; ``forced`` tokens start the answer (streaming rollback) and ``draft``
        guesses the tokens after them (checked in one batch, see ``LLMSession.continue_greedy``)."""
        t0 = time.perf_counter()
        parts = self.prompt.render(hints, self.language)
        self.llm.truncate(self._cached())
        self._sync_before(self._tokens(parts.before))
        forced = list(forced)[: max(0, max_new_tokens - 1)]
        self.llm.eval_parts([*self._pending(), self._tokens(parts.after) + forced], output_last=True)
        self._mark_cached()
        keep = self._cached()
        n_prompt = self.llm.n_past
        t1 = time.perf_counter()
        try:
            new, stop_id, _ = self.llm.continue_greedy(max_new_tokens - len(forced), self.stop_ids, draft=draft)
        finally:
            self.llm.truncate(keep)
        t2 = time.perf_counter()
        tokens = tuple(forced + new)
        return Hypothesis(tokens, self.llm.detokenize(tokens).strip(), stop_id is not None, t1 - t0, t2 - t1, n_prompt)
