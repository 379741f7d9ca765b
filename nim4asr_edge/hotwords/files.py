"""The derived files of an index directory: writing them crash-safely, and checking them against the store on open.

Each derived file carries the store generation ``N`` in its name (``index.g<N>.hnsw``, ``matcher.g<N>.bin``,
``entries.g<N>.bin``, ``trie.g<N>.bin``) and is written to a temporary name, fsynced and renamed; the sidecar
``index.json`` (format, generation, graph and embedding settings, inventory, G2P, size and sha256 of every file)
is replaced last, then older generations are deleted. A crash at any point leaves either the old, complete set (whose generation no
longer matches the store: :class:`StaleIndex` on open) or the new one.

Format version 2 (this SDK): the matcher and the entry table are array files (arrayfile.py) that open by
memory-mapping. Version 1 (a pyahocorasick automaton and an npz table, both read into memory) is not read: such an
index is stale, so opening rebuilds its derived files from the store (``on_stale="rebuild"``, the default) or
raises HotwordError saying to rebuild (``on_stale="error"``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import hnswlib

from ..durable import fsync_dir, fsync_file
from ..errors import HotwordError
from . import hnsw_layout
from .embed import EmbeddingSpec
from .entries import EntryTable
from .graph import SPACE, load_graph
from .hnsw_layout import LayoutError
from .matcher import ExactMatcher
from .options import IndexOptions
from .store import STORE_FILE, HotwordStore
from .trie import PhonemeTrie

__all__ = ["SIDECAR", "GraphLoader", "StaleIndex", "derived_names", "load_derived", "read_sidecar",
           "save_derived", "sha256"]

SIDECAR = "index.json"
INDEX_FORMAT = "nim4asr-hotword-index"
INDEX_VERSION = 2
_DERIVED_PREFIXES = ("index.g", "matcher.g", "entries.g", "trie.g")


GraphLoader = Callable[[], tuple[hnswlib.Index, "threading.Thread | None"]]


class StaleIndex(Exception):
    """The derived files do not match the store (reason in the message)."""


def sha256(path: Path) -> str:
    from ..manifest import sha256_file

    return sha256_file(path)


def read_sidecar(directory: Path) -> tuple[dict, IndexOptions]:
    """The sidecar of ``directory`` and the index options it records; StaleIndex if it is missing or unreadable."""
    try:
        sidecar = json.loads((directory / SIDECAR).read_text(encoding="utf-8"))
        options = IndexOptions(dim=int(sidecar["dim"]), M=int(sidecar["M"]),
                               ef_construction=int(sidecar["ef_construction"]),
                               ngram_weights=tuple(sidecar["embedding"]["weights"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StaleIndex(f"sidecar {SIDECAR} is missing or unreadable ({exc})") from None
    return sidecar, options


def derived_names(generation: int) -> dict[str, str]:
    """File names of the derived files of store generation ``generation``, by kind."""
    return {"hnsw": f"index.g{generation}.hnsw", "matcher": f"matcher.g{generation}.bin",
            "entries": f"entries.g{generation}.bin", "trie": f"trie.g{generation}.bin"}


def save_derived(directory: Path, generation: int, write_graph: Callable[[Path], None], matcher: ExactMatcher,
                 entries: EntryTable, trie: PhonemeTrie, *, options: IndexOptions, ef: int, inventory: Sequence[str],
                 g2p_name: str, spec: EmbeddingSpec, elements: int) -> None:
    """Write the derived files of store generation ``generation``, then the sidecar; delete older generations.

    ``write_graph(path)`` saves the graph (of ``elements`` elements) at ``path``, a temporary name: the caller owns
    the graph, so it may renumber the file and swap its graph for the renumbered one there.
    """
    d = directory
    names = derived_names(generation)
    files = {}
    for kind, name in names.items():
        tmp = d / (name + ".tmp")
        if kind == "hnsw":
            write_graph(tmp)
        elif kind == "matcher":
            matcher.save(str(tmp))
        else:
            with open(tmp, "wb") as f:
                (entries if kind == "entries" else trie).save(f)
        fsync_file(tmp)
        os.replace(tmp, d / name)
        files[kind] = {"name": name, "size": (d / name).stat().st_size, "sha256": sha256(d / name)}
    sidecar = {
        "format": INDEX_FORMAT, "format_version": INDEX_VERSION, "generation": generation, "space": SPACE,
        "dim": options.dim, "M": options.M, "ef_construction": options.ef_construction,
        "ef": ef, "inventory": list(inventory), "g2p": g2p_name,
        "embedding": spec.to_json(), "count": entries.live_count(),
        "elements": int(elements), "files": files, "written": time.time(),
    }
    tmp = d / (SIDECAR + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(sidecar, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, d / SIDECAR)
    fsync_dir(d)
    keep = set(names.values()) | {SIDECAR, STORE_FILE}
    for p in d.iterdir():
        if p.name.startswith(_DERIVED_PREFIXES) and p.name not in keep:
            p.unlink(missing_ok=True)


def load_derived(directory: Path, sidecar: dict, verify: str, store: HotwordStore, inventory: Sequence[str],
                 spec: EmbeddingSpec, boundary: int,
                 ) -> tuple[EntryTable, ExactMatcher, GraphLoader, PhonemeTrie | None]:
    """The entry table, matcher, a loader of the graph and the phoneme trie described by ``sidecar`` (the trie is
    None in an index written before it existed: the search builds it in memory).

    The graph is loaded when first needed (``loader()`` returns it with its huge-pages thread, graph.py; a search
    with CTC posteriors over a large index may never need it); here only its header is checked against the sidecar.

    StaleIndex if they do not match the store (generation, inventory, embedding, entry count) or a file is missing,
    of another size, unreadable, or (``verify="full"``) does not match its sha256.
    """
    d = directory
    if sidecar.get("format") != INDEX_FORMAT:
        raise StaleIndex(f"sidecar is not a {INDEX_FORMAT} file")
    if sidecar.get("format_version") != INDEX_VERSION:
        raise StaleIndex(f"the derived files have index format version {sidecar.get('format_version')} (an older "
                         f"SDK's; version 1 held an Aho-Corasick automaton), this SDK reads version {INDEX_VERSION}: "
                         "they must be rebuilt from the store")
    if sidecar.get("generation") != store.generation:
        raise StaleIndex(f"index generation {sidecar.get('generation')} != store generation {store.generation} "
                         "(the store changed after the index was written, e.g. an interrupted update)")
    if sidecar.get("inventory") != list(inventory):
        raise StaleIndex("index was built for a different phoneme inventory than its store")
    if sidecar.get("space") != SPACE or EmbeddingSpec.from_json(sidecar["embedding"]) != spec:
        raise StaleIndex("index uses a different space or embedding than this SDK")
    paths = {}
    for kind in ("hnsw", "matcher", "entries", "trie"):
        if kind == "trie" and kind not in sidecar["files"]:
            continue
        info = sidecar["files"][kind]
        p = d / info["name"]
        if not p.is_file():
            raise StaleIndex(f"{info['name']} is missing")
        if p.stat().st_size != info["size"]:
            raise StaleIndex(f"{info['name']} has {p.stat().st_size} bytes, the sidecar says {info['size']} "
                             "(truncated or replaced)")
        if verify == "full" and sha256(p) != info["sha256"]:
            raise StaleIndex(f"{info['name']} does not match its sha256 (damaged or replaced)")
        paths[kind] = p
    try:
        entries = EntryTable.load(paths["entries"])
        matcher = ExactMatcher.load(str(paths["matcher"]), boundary)
        trie = PhonemeTrie.load(paths["trie"]) if "trie" in paths else None
    except HotwordError as exc:
        raise StaleIndex(str(exc)) from None
    elements = int(sidecar["elements"])
    try:
        header = hnsw_layout.read_header(paths["hnsw"], spec.dim)
    except LayoutError as exc:
        raise StaleIndex(f"{paths['hnsw'].name} is unreadable ({exc})") from None
    if header["n"] != elements or len(entries.ids) != elements:
        raise StaleIndex("HNSW element count disagrees with the sidecar")
    if entries.live_count() != store.count():
        raise StaleIndex("entry count disagrees with the store")
    if trie is not None and len(trie.rows) and int(trie.rows.max()) >= len(entries.ids):
        raise StaleIndex("the phoneme trie names entries the entry table lacks")

    def loader() -> tuple[hnswlib.Index, threading.Thread | None]:
        try:
            graph, huge_pages = load_graph(paths["hnsw"], spec.dim, max(1024, elements + 1024))
        except RuntimeError as exc:
            raise HotwordError(f"{paths['hnsw'].name} is unreadable ({exc}); rebuild the index") from None
        if graph.element_count != elements:
            raise HotwordError(f"{paths['hnsw'].name} changed since the index was opened; reopen it")
        return graph, huge_pages

    return entries, matcher, loader, trie
