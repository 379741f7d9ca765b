"""Prompted decoding with KV-cache discipline: the static prompt prefix stays cached, speech follows it, and the
dynamic suffix (instruction + hints) and hypothesis are dropped after every decode."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .llm import LLMSession
from .prompt import PromptTemplate

__all__ = ["Hypothesis", "PromptedDecoder"]


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]  # forced tokens followed by newly generated ones
    text: str
    stopped: bool  # the end token closed it (False: the token budget ran out)
    prefill_s: float  # suffix (+ forced tokens) evaluation
    decode_s: float  # token-by-token generation
    n_prompt: int  # positions in the KV cache before generation started


class PromptedDecoder:
    """One LLM context laid out as ``[prefix | speech | suffix + hypothesis]``.

    The prefix is evaluated once; :meth:`set_speech` / :meth:`append_speech` replace or extend the speech part;
    :meth:`decode` evaluates the suffix, generates greedily and removes suffix and hypothesis again.
    """

    def __init__(self, llm: LLMSession, prompt: PromptTemplate) -> None:
        self.llm = llm
        self.prompt = prompt
        self.prefix = llm.tokenize(prompt.prefix)
        self.stop_ids = [llm.token_id(s) for s in prompt.stop]
        llm.clear()
        llm.eval_tokens(self.prefix)
        self.n_prefix = len(self.prefix)
        self.n_speech = 0

    def set_speech(self, embeds: np.ndarray) -> float:
        """Replace the speech part with ``embeds``; returns seconds spent."""
        t = time.perf_counter()
        self.llm.truncate(self.n_prefix)
        self.n_speech = 0
        self.append_speech(embeds)
        return time.perf_counter() - t

    def append_speech(self, embeds: np.ndarray) -> float:
        """Add audio embeddings after the speech already cached (streaming); returns seconds spent."""
        t = time.perf_counter()
        self.llm.truncate(self.n_prefix + self.n_speech)
        if len(embeds):
            self.llm.eval_embeds(embeds)
            self.n_speech += len(embeds)
        return time.perf_counter() - t

    def reset(self) -> None:
        """Forget the speech (keep the cached prefix) for the next utterance."""
        self.llm.truncate(self.n_prefix)
        self.n_speech = 0

    def decode(self, hints: Sequence[str], max_new_tokens: int, forced: Sequence[int] = (),
               draft: Sequence[int] = ()) -> Hypothesis:
        """Greedy transcript of the cached speech; ``forced`` tokens start the answer (streaming rollback) and
        ``draft`` guesses the tokens after them (checked in one batch, see ``LLMSession.continue_greedy``)."""
        keep = self.n_prefix + self.n_speech
        t0 = time.perf_counter()
        self.llm.truncate(keep)
        suffix = self.llm.tokenize(self.prompt.render_suffix(hints))
        forced = list(forced)[: max(0, max_new_tokens - 1)]
        self.llm.eval_tokens(suffix + forced, output_last=True)
        n_prompt = self.llm.n_past
        t1 = time.perf_counter()
        try:
            new, stop_id, _ = self.llm.continue_greedy(max_new_tokens - len(forced), self.stop_ids, draft=draft)
        finally:
            self.llm.truncate(keep)
        t2 = time.perf_counter()
        tokens = tuple(forced + new)
        return Hypothesis(tokens, self.llm.detokenize(tokens).strip(), stop_id is not None, t1 - t0, t2 - t1, n_prompt)
