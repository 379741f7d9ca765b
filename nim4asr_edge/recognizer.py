"""Offline recognition: audio -> fbank -> encoder -> phonemes (+ hotwords) -> LLM -> text."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, Union

import numpy as np

from .audio import AudioInput, load_audio
from .bundle import Bundle, resolve_file
from .decoding import PromptedDecoder
from .encoder import EncoderOptions, EncoderSession, StreamingEncoderSession
from .errors import AudioError, BundleError
from .guard import EvidenceGuard, GuardOptions
from .llm import LLMOptions, LLMSession
from .phonemes import ctc_greedy
from .results import Result, Segment, Timings
from .segmenter import split_points

if TYPE_CHECKING:
    from .hotwords.costs import PhonemeCosts
    from .hotwords.index import LookupCache
    from .stream import Stream, StreamOptions

__all__ = ["Recognizer", "RecognizerOptions"]

log = logging.getLogger(__name__)

Progress = Callable[[float, float], None]  # (seconds done, seconds total)


def _default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class RecognizerOptions:
    encoder_precision: str | None = None  # "fp32" | "int8"; None: the bundle's default
    llm_quant: str | None = None  # "f16" | "q8_0" | "q4_k_m" | ...; None: the bundle's default
    threads: int = 0  # CPU threads for encoder and LLM; 0: up to 8 of this machine's cores
    max_segment_seconds: float = 30.0  # longer audio is split at low-energy points
    max_tokens_per_second: float = 8.0  # cap on generated tokens per second of audio (stops runaway output)
    min_new_tokens: int = 16  # token budget floor for very short segments
    hotword_top_k: int = 10  # hotword hits injected as contextual hints per segment
    hotword_namespace: str | None = None  # search only this namespace of the hotword index (None: every entry)
    verify: str = "full"  # bundle file check: "full" (sha256) | "size" | "none"
    n_ctx: int = 0  # LLM context; 0: enough for the longest segment plus prompt and output
    llm: LLMOptions | None = None  # advanced llama.cpp settings (threads/n_ctx above override theirs)
    encoder: EncoderOptions | None = None  # advanced onnxruntime settings (threads above override theirs)
    guard: "GuardOptions | str" = "auto"  # "auto": the bundle's calibrated evidence guard, if any; "off"; or options
    tune_decode_threads: bool = True  # at load, decode with 1 thread if that is faster here (small LLMs; ~0.2 s)

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError("threads must be >= 0")
        if not 5.0 <= self.max_segment_seconds <= 120.0:
            raise ValueError("max_segment_seconds must be within [5, 120]")
        if self.max_tokens_per_second <= 0 or self.min_new_tokens < 1:
            raise ValueError("max_tokens_per_second must be > 0 and min_new_tokens >= 1")
        if self.verify not in ("full", "size", "none"):
            raise ValueError("verify must be 'full', 'size' or 'none'")
        if self.hotword_top_k < 0:
            raise ValueError("hotword_top_k must be >= 0")
        if isinstance(self.guard, str) and self.guard not in ("auto", "off"):
            raise ValueError("guard must be 'auto', 'off' or a GuardOptions")

    @property
    def effective_threads(self) -> int:
        return self.threads or _default_threads()


# an index, a list of texts, or a txt/csv hotword list file (a Path: optional weights and comments are parsed)
Hotwords = Union["HotwordIndex", Sequence[str], os.PathLike, None]  # noqa: F821 - nim4asr_edge.hotwords is optional


class Recognizer:
    """A loaded bundle ready to transcribe. Thread-safe; one transcription runs at a time per instance."""

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike | None = None,
        options: RecognizerOptions = RecognizerOptions(),
        hotwords: Hotwords = None,
    ) -> None:
        t0 = time.perf_counter()
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle, verify=options.verify)
        self.options = options
        manifest = self.bundle.manifest
        self.frontend = self.bundle.frontend()
        self.sample_rate = int(manifest.frontend["sample_rate"])
        self.inventory = self.bundle.phoneme_inventory
        self.blank = int(manifest.phonemes.get("blank", 0))
        self.prompt = manifest.prompt
        self._lock = threading.Lock()  # one offline decode at a time on the shared LLM context
        self._load_lock = threading.Lock()
        threads = options.effective_threads
        enc_opts = dataclasses.replace(options.encoder or EncoderOptions(), intra_op_num_threads=threads)
        self.encoder = EncoderSession(self.bundle.encoder_path(options.encoder_precision), enc_opts)
        token_rate = float(manifest.encoder.get("token_rate_hz", 6.25))
        n_ctx = options.n_ctx or self._needed_ctx(token_rate)
        llm_opts = dataclasses.replace(options.llm or LLMOptions(), n_threads=threads, n_ctx=n_ctx)
        self.llm = LLMSession(self.bundle.llm_path(options.llm_quant), llm_opts)
        if self.llm.n_embd != self.encoder.llm_hidden:
            message = (
                f"bundle mismatch: encoder emits {self.encoder.llm_hidden}-dim embeddings but the LLM expects "
                f"{self.llm.n_embd}; the encoder and GGUF come from different exports"
            )
            self.close()
            raise BundleError(message)
        self.decoder = PromptedDecoder(self.llm, self.prompt)  # the static prefix is evaluated once, here
        if options.tune_decode_threads:
            self.llm.tune_decode_threads(self.decoder.prefix[-1])
        self._owned: list = []  # objects the recognizer created and must close
        self.hotwords = self._open_hotwords(hotwords)
        self.guard = self._make_guard()
        self._streaming_encoder: StreamingEncoderSession | None = None
        self._streaming_checked = False
        self.load_seconds = time.perf_counter() - t0

    def _needed_ctx(self, token_rate: float) -> int:
        seconds = self.options.max_segment_seconds
        audio = int(seconds * token_rate) + 1
        output = int(seconds * self.options.max_tokens_per_second) + self.options.min_new_tokens
        prompt_and_hints = 512
        return 256 * -(-(audio + output + prompt_and_hints) // 256)

    def _make_guard(self) -> EvidenceGuard | None:
        g = self.options.guard
        options = GuardOptions.from_manifest(self.bundle.manifest.phonemes) if g == "auto" else g
        if options is None or options == "off":
            return None
        from .hotwords import get_g2p

        return EvidenceGuard(get_g2p(self.bundle.manifest.phonemes.get("g2p", "espeak-ng:en-us")), options)

    def check_evidence(self, text: str, phoneme_symbols: Sequence[str]) -> tuple[str, float | None, str]:
        """(text to show, confidence, withheld text) after the evidence guard; the one check for every path."""
        if self.guard is None:
            return text, None, ""
        ev = self.guard.check(text, phoneme_symbols)
        return (text, ev.confidence, "") if ev.accepted else ("", ev.confidence, text)

    def phoneme_costs(self) -> "PhonemeCosts | None":
        """The substitution costs for hotword verification of this bundle's CTC head: the table the bundle declares
        (``phonemes.substitution_costs``), else the SDK's table for its inventory, else None (unit costs). An index
        built from a plain list uses them; apply them to your own index with ``index.set_costs(...)``."""
        from .hotwords.costs import PhonemeCosts, default_costs

        name = self.bundle.manifest.phonemes.get("substitution_costs")
        if name is None:
            return default_costs(self.inventory)
        costs = PhonemeCosts.load(resolve_file(self.bundle.path, name))
        if list(costs.inventory) != list(self.inventory):
            raise BundleError(f"bundle file {name} holds substitution costs for another phoneme inventory")
        return costs

    def _open_hotwords(self, hotwords: Hotwords):
        if hotwords is None:
            return None
        from .hotwords import HotwordIndex, get_g2p

        if isinstance(hotwords, HotwordIndex):
            return hotwords
        if isinstance(hotwords, (str, bytes)):
            raise TypeError("hotwords must be a HotwordIndex, a list of strings or a Path to a list file, not a single "
                            "string")
        g2p = get_g2p(self.bundle.manifest.phonemes.get("g2p", "espeak-ng:en-us"))
        words = hotwords if isinstance(hotwords, os.PathLike) else list(hotwords)
        index = HotwordIndex.from_words(words, g2p=g2p, inventory=self.inventory)
        index.set_costs(self.phoneme_costs())
        self._owned.append(index)  # its temporary directory goes when the recognizer closes
        report = index.import_report
        if report is not None and report.skipped:
            log.warning("hotwords: %s; skipped: %s", report.summary(),
                        "; ".join(f"{s.text!r} ({s.reason})" for s in report.skipped[:10]))
        return index

    # -- lifecycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        for name in ("llm", "encoder", "_streaming_encoder"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()
                setattr(self, name, None)
        for obj in getattr(self, "_owned", ()):
            obj.close()
        self._owned = []

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def streaming_encoder(self) -> "StreamingEncoderSession | None":
        """The bundle's cache-carrying encoder graph (loaded on first use, shared by streams), or None."""
        with self._load_lock:
            if self._streaming_encoder is None and not self._streaming_checked:
                self._streaming_checked = True
                path = self.bundle.streaming_encoder_path(self.options.encoder_precision)
                if path is not None:
                    self._streaming_encoder = StreamingEncoderSession(path, self.encoder.options)
            return self._streaming_encoder

    def create_stream(self, options: "StreamOptions | None" = None, hints: Sequence[str] = ()) -> "Stream":
        """A live stream with its own LLM context over this recognizer's shared weights (see nim4asr_edge.stream)."""
        from .stream import Stream, StreamOptions

        return Stream(self, options or StreamOptions(), hints)

    # -- recognition -----------------------------------------------------------------------------------
    def transcribe(
        self,
        audio: AudioInput,
        sample_rate: int | None = None,
        hints: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> Result:
        """Recognise a whole file or array. ``hints`` are extra contextual hints (names, terms) for the LLM."""
        t0 = time.perf_counter()
        timings = Timings(load=self.load_seconds)
        samples = load_audio(audio, self.sample_rate, sample_rate)
        timings.audio = time.perf_counter() - t0
        segments = tuple(self.iter_segments(samples, hints, progress, timings))
        timings.total = time.perf_counter() - t0
        text = " ".join(s.text for s in segments if s.text)
        return Result(text, segments, len(samples) / self.sample_rate, timings, self._options_dict())

    def iter_segments(
        self,
        samples: np.ndarray,
        hints: Sequence[str] = (),
        progress: Progress | None = None,
        timings: Timings | None = None,
    ) -> Iterator[Segment]:
        """Lazily recognise mono float32 samples at the bundle's rate, one segment (<= max_segment_seconds) at a time.

        Work happens while iterating.
        """
        timings = timings if timings is not None else Timings()
        total = len(samples) / self.sample_rate
        for start, end in split_points(samples, self.sample_rate, self.options.max_segment_seconds):
            segment = self._recognise_segment(samples[start:end], start / self.sample_rate, hints, timings)
            if progress is not None:
                progress(end / self.sample_rate, total)
            yield segment

    def _recognise_segment(self, samples: np.ndarray, offset: float, hints: Sequence[str], timings: Timings) -> Segment:
        duration = len(samples) / self.sample_rate
        end = offset + duration
        t = time.perf_counter()
        try:
            feats = self.frontend(samples)
        except AudioError:
            if offset > 0:  # a sliver after a split: nothing to recognise
                return Segment(offset, end, "", (), "")
            raise
        timings.frontend += time.perf_counter() - t
        t = time.perf_counter()
        out = self.encoder.run(feats)
        timings.encoder += time.perf_counter() - t
        hyp = ctc_greedy(out.phoneme_logprobs, self.inventory, self.blank)
        t = time.perf_counter()
        all_hints = list(dict.fromkeys([*hints, *(h.text for h in self.hotword_hits(hyp.symbols))]))
        timings.hotwords += time.perf_counter() - t
        budget = self.token_budget(duration)
        with self._lock:
            timings.prefill += self.decoder.set_speech(out.audio_embeds)
            gen = self.decoder.decode(all_hints, budget)
        timings.prefill += gen.prefill_s
        timings.decode += gen.decode_s
        timings.generated_tokens += len(gen.tokens)
        timings.prompt_tokens += gen.n_prompt
        if not gen.stopped:
            log.warning("segment %.1f-%.1f s hit the %d-token limit; output may be cut", offset, end, budget)
        text, confidence, withheld = self.check_evidence(gen.text, hyp.symbols)
        if withheld:
            log.info("segment %.1f-%.1f s withheld by the evidence guard: %r", offset, end, withheld)
        return Segment(offset, end, text, gen.tokens, hyp.text(), tuple(all_hints), gen.stopped, confidence, withheld)

    def token_budget(self, seconds: float) -> int:
        """Most tokens generated for ``seconds`` of audio (stops runaway output)."""
        return max(self.options.min_new_tokens, int(seconds * self.options.max_tokens_per_second))

    def hotword_hits(self, phonemes: Sequence[str], cache: LookupCache | None = None) -> list:
        """Hotwords found in a phoneme-CTC hypothesis, best first (empty without a hotword index). ``cache``: a
        :class:`~.hotwords.LookupCache` shared by the searches of one growing hypothesis (a stream's partials)."""
        if self.hotwords is None or not phonemes or self.options.hotword_top_k == 0:
            return []
        # The search sits between the encoder and the LLM, so it may use every thread the recognizer has: HNSW
        # looks all windows of the hypothesis up in one call (1M entries, 10 s: 8.9 ms p50 on 1 thread, 5.9 on 2).
        options = dataclasses.replace(self.hotwords.search_options, threads=self.options.effective_threads)
        return self.hotwords.search(phonemes, top_k=self.options.hotword_top_k, namespace=self.options.hotword_namespace,
                                    options=options, cache=cache)

    def _options_dict(self) -> dict:
        opts = dataclasses.asdict(self.options)
        opts["bundle"] = str(self.bundle.path)
        opts["encoder_file"] = self.encoder.path.name if self.encoder else None
        opts["llm_file"] = self.llm.path.name if self.llm else None
        opts["llm_decode_threads"] = self.llm.options.n_threads if self.llm else None
        return opts


def transcribe_file(path: str | Path, bundle: str | Path | None = None, **options) -> Result:
    """One-shot helper: load a bundle, transcribe one file, release the bundle."""
    with Recognizer(bundle, RecognizerOptions(**options)) as rec:
        return rec.transcribe(path)
