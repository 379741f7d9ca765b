"""Offline recognition of files and arrays, and the factory of live streams, over one loaded bundle."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, Union

import numpy as np

from .audio import AudioInput, load_audio
from .bundle import Bundle
from .engine import SegmentEngine
from .options import RecognizerOptions
from .process_memory import ProcessMemory
from .results import Result, Segment, Timings
from .segmenter import split_points
from .stream import Stream, StreamOptions

if TYPE_CHECKING:
    from .hotwords import HotwordHit, HotwordIndex, LookupCache, PhonemeCosts

__all__ = ["Recognizer", "RecognizerOptions"]

log = logging.getLogger(__name__)

Progress = Callable[[float, float], None]  # (seconds done, seconds total)

# an index, a list of texts, or a txt/csv hotword list file (a Path: optional weights and comments are parsed)
Hotwords = Union["HotwordIndex", Sequence[str], os.PathLike, None]


class Recognizer:
    """A loaded bundle ready to transcribe. Thread-safe; one transcription runs at a time per instance, and any
    number of streams (each with its own LLM context) beside it."""

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike | None = None,
        options: RecognizerOptions = RecognizerOptions(),
        hotwords: Hotwords = None,
    ) -> None:
        t0 = time.perf_counter()
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle, verify=options.verify)
        self.options = options
        self._owned: list = []  # objects the recognizer created and must close
        self._engine: SegmentEngine | None = None
        index = self._open_hotwords(hotwords)
        try:
            self._engine = SegmentEngine(self.bundle, options, index)
        except BaseException:
            self.close()
            raise
        self.load_seconds = time.perf_counter() - t0
        self.load_memory = ProcessMemory.now()  # resident memory of this process right after loading

    @property
    def engine(self) -> SegmentEngine:
        """The loaded model and pipeline (frontend, encoder, LLM, guard), for tools and benchmarks."""
        if self._engine is None:
            raise RuntimeError("the recognizer is closed")
        return self._engine

    @property
    def sample_rate(self) -> int:
        return self.engine.sample_rate

    @property
    def hotwords(self) -> "HotwordIndex | None":
        """The hotword index searched for every segment (None: no hotwords)."""
        return self.engine.hotwords

    def phoneme_costs(self) -> "PhonemeCosts | None":
        """The substitution costs for hotword verification of this bundle's phonemes (see
        :meth:`Bundle.phoneme_costs`). An index built from a plain list uses them; apply them to your own index
        with ``index.set_costs(...)``."""
        return self.bundle.phoneme_costs()

    def _open_hotwords(self, hotwords: Hotwords) -> "HotwordIndex | None":
        if hotwords is None:
            return None
        from .hotwords import HotwordIndex

        if isinstance(hotwords, HotwordIndex):
            return hotwords
        if isinstance(hotwords, (str, bytes)):
            raise TypeError("hotwords must be a HotwordIndex, a list of strings or a Path to a list file, not a single "
                            "string")
        words = hotwords if isinstance(hotwords, os.PathLike) else list(hotwords)
        index = HotwordIndex.from_words(words, g2p=self.bundle.g2p(), inventory=self.bundle.phoneme_inventory)
        self._owned.append(index)  # its temporary directory goes when the recognizer closes
        index.set_costs(self.bundle.phoneme_costs())
        report = index.import_report
        if report is not None and report.skipped:
            log.warning("hotwords: %s; skipped: %s", report.summary(),
                        "; ".join(f"{s.text!r} ({s.reason})" for s in report.skipped[:10]))
        return index

    # -- lifecycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        for obj in self._owned:
            obj.close()
        self._owned = []

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def create_stream(self, options: StreamOptions | None = None, hints: Sequence[str] = ()) -> Stream:
        """A live stream with its own LLM context over this recognizer's shared weights (see nim4asr_edge.stream)."""
        self.engine.check_hints(hints)
        return Stream(self.engine, options or StreamOptions(), hints)

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
        engine = self.engine
        engine.check_hints(hints)
        timings = timings if timings is not None else Timings()
        rate = self.sample_rate
        total = len(samples) / rate
        longest = self.options.max_segment_seconds  # the cut is searched in its last 10 s, or half when shorter
        for start, end in split_points(samples, rate, longest, search_seconds=min(10.0, longest / 2)):
            segment = engine.segment(samples[start:end], start / rate, hints, timings)
            if progress is not None:
                progress(end / rate, total)
            yield segment

    def hotword_hits(self, phonemes: Sequence[str], cache: "LookupCache | None" = None) -> list["HotwordHit"]:
        """Hotwords found in a phoneme sequence, best first (empty without a hotword index). ``cache``: a
        :class:`~.hotwords.LookupCache` shared by the searches of one growing hypothesis (a stream's partials)."""
        return self.engine.hotword_hits(phonemes, cache)

    def _options_dict(self) -> dict:
        engine = self.engine
        opts = dataclasses.asdict(self.options)
        opts["bundle"] = str(self.bundle.path)
        opts["family"] = engine.family.name
        opts["guard_status"] = engine.guard_status
        opts["encoder_file"] = engine.encoder.path.name
        opts["llm_file"] = engine.llm.path.name
        opts["llm_decode_threads"] = engine.llm.options.n_threads
        opts["llm_mmap"] = engine.llm.uses_mmap
        opts["llm_extra_buffers"] = engine.llm.uses_extra_buffers
        return opts
