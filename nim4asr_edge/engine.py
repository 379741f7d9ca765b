"""The segment engine: encode -> evidence -> hotword hits (one hint rule) -> prompt -> decode -> guard, for every
model family. ``Recognizer`` runs it over the segments of a file; ``Stream`` over partials and finals of live audio.

The engine owns the loaded model (frontend, encoder session, LLM weights and the shared context) and knows nothing
of files or streams. What differs between model families comes from the bundle's :class:`~.families.ModelFamily`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .bundle import Bundle
from .decoding import Hypothesis, PromptedDecoder
from .encoder import EncoderOutput, EncoderSession
from .errors import AudioError, BundleError, MissingDependencyError, OptionsError
from .evidence import Evidence, match_error, phonemize_text
from .families import Transcript
from .frontend import Features
from .guard import EvidenceGuard, GuardOptions
from .llm import LLMSession
from .llm_options import load_model
from .options import AUTO_HINT_CHECK, RecognizerOptions
from .process_memory import return_freed_heap
from .prompt import check_language
from .results import Segment, Timings

if TYPE_CHECKING:
    from .hotwords import HotwordAccumulator, HotwordHit, HotwordIndex, LookupCache
    from .streaming_encoder import StreamingEncoderSession

__all__ = ["MAX_HINT_TOKENS", "Decoded", "SegmentEngine", "merge_hints"]

log = logging.getLogger("nim4asr_edge.engine")

# LLM tokens the caller's hints may add to the prompt: contexts are sized with 512 positions for the prompt and every
# hint (the caller's and the hotwords found), so a longer list of the caller's would not fit beside the audio
MAX_HINT_TOKENS = 256


def merge_hints(explicit: Sequence[str], found: Sequence[str]) -> list[str]:
    """The one hint rule: the caller's hints, then the hotwords found, without case-insensitive repeats."""
    out: list[str] = []
    seen: set[str] = set()
    for text in (*explicit, *found):
        key = text.casefold()
        if key not in seen:
            seen.add(key)
            out.append(text)
    return out


@dataclass(frozen=True)
class Decoded:
    """One decode of an utterance (or of the audio so far), guarded."""

    hypothesis: Hypothesis  # of the pass that produced the text
    transcript: Transcript  # the parsed answer, before the guard
    evidence: Evidence | None  # None: the family's evidence needs a transcript and this decode made none
    hints: tuple[str, ...]  # the hints the producing pass was given
    passes: int  # 1, or 2 when a first pass's transcript found hotwords and a second pass decoded with them
    text: str  # what to show: the transcript, or "" when the guard withheld it
    confidence: float | None  # agreement with the acoustic evidence (None: no guard, or no acoustic evidence)
    withheld: str  # the transcript, when the guard withheld it
    search_s: float = 0.0  # hotword search time (included in no other figure)


class SegmentEngine:
    """A loaded bundle and the one recognition pipeline over it. Thread-safe for :meth:`segment` on the shared
    decoder (one at a time); streams get their own decoders from :meth:`new_decoder`."""

    def __init__(self, bundle: Bundle, options: RecognizerOptions, hotwords: "HotwordIndex | None" = None) -> None:
        self.bundle = bundle
        self.options = options
        manifest = bundle.manifest
        self.family = bundle.family
        self.frontend = bundle.frontend()
        self.sample_rate = int(manifest.frontend["sample_rate"])
        self.prompt = self.family.prompt(manifest)
        self.streaming_mode = self.family.streaming_mode(manifest)
        self.blocks = self.family.encoder_blocks(manifest) if self.streaming_mode == "blocks" else None
        self.hotwords = hotwords
        self.lock = threading.Lock()  # one decode at a time on the shared context
        self._load_lock = threading.Lock()
        self._streaming_encoder: StreamingEncoderSession | None = None
        self._g2p = None  # the bundle's G2P, loaded when hint_check first needs it
        self.llm: LLMSession | None = None
        self.encoder: EncoderSession | None = None
        check_language(self.prompt, options.language)  # before anything is loaded
        try:
            self.evidence = self.family.evidence(manifest, bundle.g2p)
            phonemes = "phoneme_logprobs" in self.family.encoder_outputs(manifest)
            self.encoder = EncoderSession(bundle.encoder_path(options.encoder_precision), options.encoder_options(),
                                          phonemes=phonemes)
            if self.blocks is not None and self.blocks.window_input and not self.encoder.takes_window:
                raise BundleError(f"bundle mismatch: the manifest streams with {self.blocks.tokens}-token attention "
                                  "windows but the encoder graph takes no attention_window; re-import the bundle")
            self.llm = self._load_llm(bundle.llm_path(options.llm_quant))
            if self.llm.n_embd != self.encoder.llm_hidden:
                raise BundleError(
                    f"bundle mismatch: encoder emits {self.encoder.llm_hidden}-dim embeddings but the LLM expects "
                    f"{self.llm.n_embd}; the encoder and GGUF come from different exports")
            self.decoder = PromptedDecoder(self.llm, self.prompt, options.language)  # the static prefix, once
            if options.tunes_decode_threads and self.decoder.prefix:
                self.llm.tune_decode_threads(self.decoder.prefix[-1])
            self.guard = self._make_guard()
            check = options.hint_check
            self.hint_check = None if not self.evidence.acoustic or check is None else (
                AUTO_HINT_CHECK if check == "auto" else float(check))
        except BaseException:
            self.close()
            raise

    def hint_problem(self, hints: Sequence[str]) -> str | None:
        """Why the caller's ``hints`` cannot go into the prompt, or None: a hint holding the text of one of the
        model's special tokens (it would end or restructure the prompt), or hints taking more than
        :data:`MAX_HINT_TOKENS` LLM tokens."""
        if not hints:
            return None
        llm = self.llm
        for h in hints:
            if llm.tokenize(h, parse_special=True) != llm.tokenize(h, parse_special=False):
                return f"hint {h!r} contains the text of one of the model's special tokens"
        added = self._prompt_tokens(llm.tokenize, hints) - self._prompt_tokens(llm.tokenize)
        if added > MAX_HINT_TOKENS:
            return f"the hints take {added} LLM tokens; at most {MAX_HINT_TOKENS} fit in the prompt"
        return None

    def check_hints(self, hints: Sequence[str]) -> None:
        """Raise :class:`OptionsError` when the caller's ``hints`` cannot go into the prompt (see :meth:`hint_problem`)."""
        if (problem := self.hint_problem(hints)) is not None:
            raise OptionsError(problem)

    def _prompt_tokens(self, tokenize: Callable[[str], list[int]], hints: Sequence[str] = ()) -> int:
        """The prompt's tokens around the speech with ``hints``, as the decoder reads them."""
        parts = self.prompt.render(hints, self.options.language)
        return sum(len(tokenize(text)) for text in (parts.before, parts.after) if text)

    def _load_llm(self, path: Path) -> LLMSession:
        """The LLM with a context for the longest segment: its audio tokens, the prompt (counted by the model's own
        tokenizer, so the model loads before the context), the most hint tokens and the token budget."""
        model = load_model(path, self.options.llm_options(1))  # loading reads no context size
        try:
            prompt = self._prompt_tokens(
                lambda text: model.tokenize(text.encode("utf-8"), add_special=False, parse_special=True))
            o = self.options
            audio = int(o.max_segment_seconds * self.family.token_rate_hz(self.bundle.manifest)) + 1
            output = int(o.max_segment_seconds * o.max_tokens_per_second) + o.min_new_tokens
            needed = 256 * -(-(audio + prompt + MAX_HINT_TOKENS + output) // 256)  # llama.cpp pads to 256 anyway
            options = o.llm_options(needed)
        except BaseException:
            model.close()
            raise
        return LLMSession(path, options, _model=model, _owns_model=True)

    def _make_guard(self) -> EvidenceGuard | None:
        g = self.options.guard
        if not self.evidence.acoustic:
            for wanted, what in ((isinstance(g, GuardOptions), "the evidence guard"),
                                 (self.options.hint_check not in (None, "auto"), "hint_check")):
                if wanted:
                    raise OptionsError(f"{what} needs acoustic evidence, and this bundle's model family "
                                       f"({self.family.name}) has none; leave it off")
            return None
        options = GuardOptions.from_manifest(self.bundle.manifest.phonemes) if g == "auto" else g
        if options is None or options == "off":
            return None
        return EvidenceGuard(self.bundle.g2p(), options)

    @property
    def guard_status(self) -> str:
        """``"on"``, ``"off"``, or ``"no acoustic evidence"`` (the family cannot check text against the audio)."""
        if not self.evidence.acoustic:
            return "no acoustic evidence"
        return "on" if self.guard is not None else "off"

    def close(self) -> None:
        for name in ("llm", "encoder", "_streaming_encoder"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()
                setattr(self, name, None)

    @property
    def streaming_encoder(self) -> "StreamingEncoderSession | None":
        """The bundle's cache-carrying encoder graph (loaded on first use, shared by streams), or None when the
        family streams by windowed re-encoding."""
        with self._load_lock:
            if self._streaming_encoder is None and self.streaming_mode == "cache":
                from .streaming_encoder import StreamingEncoderSession

                path = self.bundle.streaming_encoder_path(self.options.encoder_precision)
                self._streaming_encoder = StreamingEncoderSession(path, self.encoder.options)
            return self._streaming_encoder

    def new_decoder(self) -> PromptedDecoder:
        """A decoder on its own LLM context over the shared weights (a stream's); close ``decoder.llm`` after use."""
        llm = self.llm.fork()
        try:
            return PromptedDecoder(llm, self.prompt, self.options.language)
        except BaseException:
            llm.close()
            raise

    # -- pipeline stages -------------------------------------------------------------------------------------------
    def _features(self, samples: np.ndarray) -> Features | None:
        """The frontend's features of ``samples``; None when they are too short to give a feature frame."""
        if len(samples) < self.frontend.min_samples():
            return None
        try:
            return self.frontend(samples)
        except AudioError:
            return None

    def encode(self, samples: np.ndarray) -> EncoderOutput | None:
        """The offline encoder over ``samples``; None when they are too short to give a feature frame."""
        feats = self._features(samples)
        return None if feats is None else self.encoder.run(feats)

    def encode_blocks(self, samples: np.ndarray, committed: int,
                      open_block: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
        """``"blocks"`` streaming: (embeddings of the blocks of ``samples`` finished after the first ``committed``,
        embeddings of the open block, empty without ``open_block``); None when the samples are too short to give a
        feature frame."""
        feats = self._features(samples)
        if feats is None:
            return None
        window = self.blocks.tokens if self.blocks.window_input else None  # else the graph's own window
        return self.blocks.split(lambda f: self.encoder.run(f, window=window).audio_embeds,
                                 feats.values[: feats.n_valid], committed, open_block)

    def acoustic_evidence(self, logprobs: Sequence[np.ndarray | None]) -> Evidence | None:
        """Evidence of encoder posteriors (the chunks of one utterance); None for families whose evidence comes
        from a transcript."""
        if not self.evidence.acoustic:
            return None
        return self.evidence.from_encoder([lp for lp in logprobs if lp is not None])

    def token_budget(self, seconds: float) -> int:
        """Most tokens generated for ``seconds`` of audio (stops runaway output)."""
        return max(self.options.min_new_tokens, int(seconds * self.options.max_tokens_per_second))

    def hotword_hits(self, phonemes: Sequence[str], cache: "LookupCache | None" = None,
                     logprobs: np.ndarray | None = None) -> list["HotwordHit"]:
        """Hotwords found in a phoneme sequence, best first (empty without a hotword index). ``logprobs``: the CTC
        log-posteriors whose greedy path ``phonemes`` is (acoustic evidence), for the posterior verifier."""
        if self.hotwords is None or not phonemes or self.options.hotword_top_k == 0:
            return []
        # The search sits between the encoder and the LLM, so it may use every thread the recognizer has: HNSW
        # looks all windows of the hypothesis up in one call.
        search = dataclasses.replace(self.hotwords.search_options, threads=self.options.effective_threads)
        if logprobs is not None and list(self.hotwords.inventory) != list(getattr(self.evidence, "inventory", ())):
            log.debug("the hotword index has another phoneme inventory than the model: greedy verification")
            logprobs = None  # an index over another inventory reads the symbols only
        if logprobs is None and not self.evidence.acoustic and search.verifier == "auto":
            # text evidence: the posterior verifier over one-hot "posteriors" of the transcript's phonemes
            search = dataclasses.replace(search, verifier="posterior")
        return self.hotwords.search(phonemes, top_k=self.options.hotword_top_k,
                                    namespace=self.options.hotword_namespace, options=search, cache=cache,
                                    logprobs=logprobs)

    def _found(self, evidence: Evidence | None, accumulator: "HotwordAccumulator | None") -> tuple[list[str], float]:
        """Hotword texts for the hints (this evidence's hits, or those of the whole utterance so far), seconds."""
        t = time.perf_counter()
        cache = accumulator.lookups if accumulator is not None else None
        hits = self.hotword_hits(evidence.symbols, cache, evidence.logprobs) if evidence is not None else []
        if accumulator is None:
            return [h.text for h in hits], time.perf_counter() - t
        accumulator.add(hits)
        return accumulator.hints(), time.perf_counter() - t

    def decode(self, decoder: PromptedDecoder, evidence: Evidence | None, seconds: float, hints: Sequence[str] = (),
               accumulator: "HotwordAccumulator | None" = None, forced: Sequence[int] = (),
               draft: Sequence[int] = (), second_pass: bool = True) -> Decoded:
        """Decode the speech cached in ``decoder`` with the hints this evidence finds, then guard the text.

        Without acoustic evidence (``evidence`` None) the first pass's transcript is the evidence: its hotwords
        are searched, and with ``second_pass`` a second decode runs with them when they add a hint. ``accumulator``
        gathers a stream's hits over the utterance (its hints then include earlier partials' finds).
        """
        budget = self.token_budget(seconds)
        if evidence is not None and self.hint_check is not None:
            hints = self._supported(hints, evidence)
        found, search_s = self._found(evidence, accumulator)
        used = merge_hints(hints, found)
        hyp = decoder.decode(used, budget, forced, draft)
        transcript = self.family.parse_output(hyp.text, self.options.language)
        passes = 1
        if evidence is None:
            evidence = self.evidence.from_text(transcript.text)
            found, more_s = self._found(evidence, accumulator)
            search_s += more_s
            again = merge_hints(hints, found)
            if second_pass and again != used:
                first = hyp
                hyp = decoder.decode(again, budget, draft=first.tokens)
                hyp = Hypothesis(hyp.tokens, hyp.text, hyp.stopped, first.prefill_s + hyp.prefill_s,
                                 first.decode_s + hyp.decode_s, hyp.n_prompt)
                transcript = self.family.parse_output(hyp.text, self.options.language)
                used, passes = again, 2
        text, confidence, withheld = self.check(transcript.text, evidence)
        return Decoded(hyp, transcript, evidence, tuple(used), passes, text, confidence, withheld, search_s)

    def _supported(self, hints: Sequence[str], evidence: Evidence) -> list[str]:
        """The hints whose phonemes the evidence supports (``options.hint_check``)."""
        if not hints:
            return []
        with self._load_lock:
            if self._g2p is None:
                try:
                    self._g2p = self.bundle.g2p()
                except MissingDependencyError:
                    if self.options.hint_check != "auto":
                        raise
                    log.warning("hint_check='auto' is off: it needs the G2P (pip install 'nim4asr-edge[g2p]')")
                    self.hint_check = None
                    return list(hints)
        kept = [h for h in hints
                if match_error(phonemize_text(self._g2p, h), evidence.symbols) <= self.hint_check]
        if len(kept) < len(hints):
            log.debug("hints without acoustic support left out: %s", [h for h in hints if h not in kept])
        return kept

    def check(self, text: str, evidence: Evidence | None) -> tuple[str, float | None, str]:
        """(text to show, confidence, withheld text) after the evidence guard; the one check for every path."""
        if self.guard is None or evidence is None:
            return text, None, ""
        ev = self.guard.check(text, evidence.symbols)
        return (text, ev.confidence, "") if ev.accepted else ("", ev.confidence, text)

    # -- whole segments --------------------------------------------------------------------------------------------
    def segment(self, samples: np.ndarray, offset: float, hints: Sequence[str], timings: Timings,
                decoder: PromptedDecoder | None = None, accumulator: "HotwordAccumulator | None" = None,
                draft: Sequence[int] = ()) -> Segment:
        """Recognise one segment (at most ``max_segment_seconds``) starting ``offset`` seconds into the input.

        ``decoder``: a stream's own (default: the shared one, under the engine's lock).
        """
        duration = len(samples) / self.sample_rate
        end = offset + duration
        t = time.perf_counter()
        try:
            feats = self.frontend(samples)
            timings.frontend += time.perf_counter() - t
            t = time.perf_counter()
            out = self.encoder.run(feats)
        except AudioError:
            if offset > 0:  # a sliver after a split: nothing to recognise
                return Segment(offset, end, "", (), "")
            raise
        timings.encoder += time.perf_counter() - t
        evidence = self.acoustic_evidence([out.phoneme_logprobs])
        if decoder is None:
            with self.lock:
                self.decoder.set_speech(out.audio_embeds)
                d = self.decode(self.decoder, evidence, duration, hints, accumulator, draft=draft)
        else:
            decoder.set_speech(out.audio_embeds)
            d = self.decode(decoder, evidence, duration, hints, accumulator, draft=draft)
        gen = d.hypothesis
        timings.hotwords += d.search_s
        timings.prefill += gen.prefill_s
        timings.decode += gen.decode_s
        timings.generated_tokens += len(gen.tokens)
        timings.prompt_tokens += gen.n_prompt
        if not gen.stopped:
            log.warning("segment %.1f-%.1f s hit the %d-token limit; output may be cut", offset, end,
                        self.token_budget(duration))
        if d.withheld:
            log.info("segment %.1f-%.1f s withheld by the evidence guard: %r", offset, end, d.withheld)
        return_freed_heap()
        return Segment(offset, end, d.text, gen.tokens, d.evidence.text() if d.evidence else "", d.hints,
                       gen.stopped, d.confidence, d.withheld, d.transcript.language, d.passes)
