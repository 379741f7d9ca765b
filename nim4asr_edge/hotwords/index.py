"""HotwordIndex: the SQLite store plus its derived search files; building, opening, editing and importing.

Directory layout (``DIR``)::

    hotwords.sqlite        the store: durable truth (store.py)
    index.json             sidecar: generation, space, dim, M, ef, inventory, G2P, embedding, file sizes/sha256
    index.g<N>.hnsw        hnswlib graph over entry embeddings (label = store id; graph.py)
    matcher.g<N>.bin       sorted hashes of entry phoneme strings, memory-mapped (exact matches; matcher.py)
    entries.g<N>.bin       entry phonemes, namespaces and weights as arrays, memory-mapped (verification; entries.py)

How the derived files are built and written: derived.py; checked on open: files.py. Retrieval
(:meth:`HotwordIndex.search`): search.py. :class:`HotwordIndex` inherits both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import hnswlib
import numpy as np

from ..errors import HotwordError
from . import files, graph, importer
from .costs import PhonemeCosts, default_costs
from .derived import DerivedState
from .embed import EmbeddingSpec
from .entries import EntryTable
from .g2p import BLANK, G2P, WORD_BOUNDARY, get_g2p
from .hits import RemoveReport
from .listfile import Entries, write_hotword_list
from .matcher import ExactMatcher
from .options import IndexOptions, SearchOptions
from .store import STORE_FILE, HotwordEntry, HotwordStore, ImportReport

if TYPE_CHECKING:  # typing.Self is Python 3.11+; setup.py allows 3.10
    from typing import Self

__all__ = ["HotwordIndex"]

RENUMBER_MIN = 50_000  # smaller graphs fit the caches anyway: saved in insertion order

log = logging.getLogger("nim4asr_edge.hotwords")


class HotwordIndex(DerivedState):
    """A hotword store with its exact matcher and HNSW index. Thread-compatible: one search at a time per object.

    Create with :meth:`build`, :meth:`open` or :meth:`from_words`; close with :meth:`close` or ``with``.
    """

    def __init__(self, directory: Path, store: HotwordStore, g2p: G2P | None, options: IndexOptions,
                 search_options: SearchOptions | None = None, _tmpdir: str | None = None):
        self.directory = directory
        self._store = store
        self._g2p = g2p
        self.options = options
        self.search_options = search_options or SearchOptions()
        self._tmpdir = _tmpdir
        self.inventory: list[str] = list(store.inventory)
        self._sym = {s: i for i, s in enumerate(self.inventory)}
        self._boundary = self._sym[WORD_BOUNDARY]
        self._blank = self._sym.get(BLANK, -1)
        self._spec = EmbeddingSpec(dim=options.dim, weights=tuple(options.ngram_weights))
        self._entries = EntryTable.empty()
        self._hnsw: hnswlib.Index | None = None
        self._graph_loader = None
        self._graph_lock = threading.Lock()
        self._matcher = ExactMatcher(self._boundary)
        self._ef = 0
        self._ns_of: dict[int, int] | None = None
        self._ns_exact: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # small namespace -> (embeddings, ids)
        self._costs: PhonemeCosts | None = None
        self._sub_cost: np.ndarray | None = None
        self.set_costs(default_costs(self.inventory))
        self.import_report: ImportReport | None = None  # report of the import that built this index
        self.generation = -1
        self.huge_pages = None  # the thread backing a loaded graph with huge pages, while it runs (hugepages.py)

    # ------------------------------------------------------------------------------------------- factories
    @classmethod
    def build(cls, entries: Entries, out_dir: str | os.PathLike, g2p: G2P | str, inventory: Sequence[str],
              namespace: str = "default", options: IndexOptions | None = None, progress: bool = False,
              overwrite: bool = False) -> HotwordIndex:
        """Create a store in `out_dir` from `entries` and build its search files.

        The import report (skipped lines and why) is in ``index.import_report``.
        """
        _check_inventory(inventory)
        g2p = get_g2p(g2p, inventory) if isinstance(g2p, str) else g2p
        out = Path(out_dir)
        if out.exists() and any(out.iterdir()):
            if not overwrite:
                raise HotwordError(f"{out} is not empty; choose a new directory or pass overwrite")
            if not (out / STORE_FILE).exists():
                raise HotwordError(f"{out} is not a hotword index directory; refusing to overwrite it")
            shutil.rmtree(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HotwordError(f"cannot create hotword index directory {out}: {exc}") from exc
        store = HotwordStore.create(out / STORE_FILE, inventory, g2p.name)
        self = cls(out, store, g2p, options or IndexOptions())
        self.options_by_size = options is None
        try:
            self.import_report = self._import(entries, namespace, progress, incremental=False)
            self._derive_all(progress)
            self._save_derived(renumber=self._hnsw.element_count >= RENUMBER_MIN)
        except OSError as exc:
            self.close()
            raise HotwordError(f"cannot write the hotword index in {out}: {exc}") from exc
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def open(cls, directory: str | os.PathLike, g2p: G2P | str | None = None,
             inventory: Sequence[str] | None = None, on_stale: str = "rebuild", verify: str = "size",
             search_options: SearchOptions | None = None) -> HotwordIndex:
        """Open an index directory.

        inventory: the bundle's phoneme inventory; a store built for another one is refused.
        on_stale: "rebuild" (derived files that do not match the store are rebuilt from it, with a warning) or
        "error" (raise HotwordError). verify: "size" (file sizes) or "full" (sha256 of every derived file).
        g2p: needed only to add entries; by default the store's recorded G2P is created on first use.
        """
        if on_stale not in ("rebuild", "error"):
            raise ValueError(f"on_stale must be 'rebuild' or 'error', not {on_stale!r}")
        if verify not in ("size", "full"):
            raise ValueError(f"verify must be 'size' or 'full', not {verify!r}")
        d = Path(directory)
        if not d.is_dir():
            raise HotwordError(f"no hotword index directory at {d}")
        store = HotwordStore.open(d / STORE_FILE)
        if inventory is not None and list(inventory) != store.inventory:
            store.close()
            raise HotwordError(
                f"hotword store {d} was built for a different phoneme inventory ({len(store.inventory)} symbols, "
                f"G2P {store.g2p_name}) than this model ({len(list(inventory))} symbols); rebuild it from the "
                "hotword list with 'nim4asr-edge hotwords build'")
        if isinstance(g2p, str):
            g2p = get_g2p(g2p, store.inventory)
        if g2p is not None and g2p.name != store.g2p_name:
            store.close()
            raise HotwordError(f"hotword store {d} was built with G2P {store.g2p_name}, not {g2p.name}")
        try:
            sidecar, options = files.read_sidecar(d)
        except files.StaleIndex as exc:
            sidecar, options, why = None, IndexOptions(), exc
        self = cls(d, store, g2p, options, search_options)
        self.options_by_size = sidecar is None  # a rebuild keeps the options an existing sidecar records
        try:
            if sidecar is None:
                raise why
            self._load_derived(sidecar, verify)
        except files.StaleIndex as exc:
            if on_stale == "error":
                self.close()
                raise HotwordError(f"hotword index {d} does not match its store: {exc}; reopen with "
                                   "on_stale='rebuild' (CLI: it rebuilds by default) to rebuild it") from None
            log.warning("hotword index %s: %s; rebuilding from the store", d, exc)
            try:
                self._entries = EntryTable.empty()
                self._matcher = ExactMatcher(self._boundary)
                self._derive_all(progress=False)
                self._save_derived(renumber=self._hnsw.element_count >= RENUMBER_MIN)
            except OSError as oserr:
                self.close()
                raise HotwordError(f"hotword index {d} is stale ({exc}) and cannot be rebuilt there: "
                                   f"{oserr}") from oserr
            except BaseException:
                self.close()
                raise
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def from_words(cls, words: Entries, g2p: G2P | str, inventory: Sequence[str], namespace: str = "default",
                   options: IndexOptions | None = None) -> HotwordIndex:
        """An index over a plain list, in a temporary directory removed on :meth:`close`."""
        tmp = tempfile.mkdtemp(prefix="nim4asr-hotwords-")
        try:
            self = cls.build(words, Path(tmp) / "index", g2p, inventory, namespace,
                             options or IndexOptions(M=12, ef_construction=64))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._tmpdir = tmp
        return self

    # ------------------------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None  # type: ignore[assignment]
        self._hnsw, self._graph_loader = None, None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # fallback only; call close()
        with contextlib.suppress(Exception):
            self.close()

    def _require_open(self) -> HotwordStore:
        if self._store is None:
            raise HotwordError("this HotwordIndex is closed")
        return self._store

    @property
    def g2p(self) -> G2P:
        if self._g2p is None:
            self._g2p = get_g2p(self._require_open().g2p_name, self.inventory)
        return self._g2p

    @property
    def entry_table(self) -> EntryTable:
        """Every entry indexed, by row: ids, phonemes, namespaces, weights, liveness (removed entries stay, not
        live). Read-only: do not modify it. ``entry_table.ids[row]`` is the store id (``HotwordHit.id``)."""
        return self._entries

    @property
    def boundary_id(self) -> int:
        """Inventory id of the word boundary ``|`` (in cleaned hypotheses and entry phoneme sequences)."""
        return self._boundary

    # --------------------------------------------------------------------------------------------- editing
    def add(self, entries: Entries, namespace: str = "default", progress: bool = False) -> ImportReport:
        """Add entries (texts, (text, weight) pairs or a txt/csv path); returns what was added and skipped."""
        self._require_open()
        report = self._import(entries, namespace, progress, incremental=True)
        if report.added or report.updated:
            self._save_derived()
        return report

    def remove(self, texts: Sequence[str] | str, namespace: str = "default") -> RemoveReport:
        """Remove entries by text (case-insensitive); texts not found are listed in the report."""
        store = self._require_open()
        if isinstance(texts, str):
            texts = [texts]
        ids, missing = store.remove(list(texts), namespace)
        if ids:
            rows = self._entries.rows_of(np.asarray(ids, np.int64))
            self._entries.kill(rows)
            self._ns_exact.clear()
            for i in ids:
                self._graph().mark_deleted(int(i))
            self._matcher.remove((int(self._entries.ids[r]), self._entries.seq(r)) for r in rows)
            self._matcher.finalize()
            self._save_derived()
        return RemoveReport(len(ids), missing)

    def list(self, namespace: str | None = None, limit: int | None = None) -> list[HotwordEntry]:
        return self._require_open().entries(namespace, limit)

    def export(self, path: str | os.PathLike, namespace: str | None = None) -> int:
        """Write entries as a txt list (``text<TAB>weight``) that :meth:`build` reads back; returns the count."""
        rows = self.list(namespace)
        write_hotword_list(path, ((e.text, e.weight) for e in rows),
                           f"nim4asr-edge hotwords, namespace {namespace or 'all'}, {len(rows)} entries")
        return len(rows)

    def stats(self) -> dict:
        store = self._require_open()
        sizes = {p.name: p.stat().st_size for p in sorted(self.directory.iterdir()) if p.is_file()}
        return {
            "directory": str(self.directory),
            "entries": self._entries.live_count(),
            "namespaces": store.counts(),
            "generation": self.generation,
            "g2p": store.g2p_name,
            "inventory_size": len(self.inventory),
            "exact_patterns": len(self._matcher),
            "hnsw": {"space": graph.SPACE, "dim": self.options.dim, "M": self.options.M,
                     "ef_construction": self.options.ef_construction, "ef": self.search_options.ef,
                     "elements": len(self._entries.ids),
                     "loaded": self._hnsw is not None},
            "acceptance": {"cost_free_phonemes": self.search_options.for_entries(self._entries.live_count())
                           .cost_free_phonemes, "max_cost_per_phoneme": self.search_options.max_cost_per_phoneme,
                           "phoneme_costs": self._costs.source if self._costs else None},
            "bytes_on_disk": sum(sizes.values()),
            "files": sizes,
        }

    # --------------------------------------------------------------------------------------------- import
    def _import(self, entries: Entries, namespace: str, progress: bool, incremental: bool) -> ImportReport:
        store = self._require_open()
        report, new_ids = importer.import_entries(store, lambda: self.g2p, self._sym, entries, namespace, progress)
        if incremental and (new_ids or report.updated):
            by_id = {}
            if new_ids:
                by_id = {i: (p, ns) for i, ns, p in
                         (r for batch in store.iter_phonemes() for r in batch if r[0] >= new_ids[0])}
                self._append(new_ids, [by_id[i][0].split(" ") for i in new_ids], [by_id[i][1] for i in new_ids],
                             [1.0] * len(new_ids))
                self._matcher.finalize()
            self._refresh_weights()
        return report


def _check_inventory(inventory: Sequence[str]) -> None:
    inv = list(inventory)
    if WORD_BOUNDARY not in inv:
        raise HotwordError(f"the phoneme inventory has no word boundary {WORD_BOUNDARY!r}")
    if len(set(inv)) != len(inv):
        raise HotwordError("the phoneme inventory has duplicate symbols")
    if len(inv) > 250:
        raise HotwordError(f"the phoneme inventory has {len(inv)} symbols; at most 250 are supported")


def open_hotwords(spec: str | Path | None) -> HotwordIndex | Path | None:
    """What a ``--hotwords`` argument names, as ``Recognizer(hotwords=...)`` takes it: an index directory opened, a
    list file's path (parsed like ``hotwords build`` lists), or None for none; ``HotwordError`` for anything else."""
    if not spec:
        return None
    path = Path(spec)
    if path.is_dir():
        return HotwordIndex.open(path)
    if path.is_file():
        return path
    raise HotwordError(f"hotwords {spec}: neither an index directory nor a list file")
