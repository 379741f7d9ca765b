"""The LLM's input embedding rows of token ids, read from its GGUF as llama.cpp dequantises them.

llama.cpp takes one kind of input per batch: token ids or embeddings. A prompt's text after the audio (and a
stream's forced tokens) fed as their embedding rows goes into the same batch as the audio embeddings before it: one
``llama_decode`` instead of two, which matters where a batch's cost is far from proportional to its size (on a
2-core CPU, 1, 2, 8, 64 positions of a 0.6B model: 18, 30, 48, 112 ms; ``bench/prefill_batches.py``). For the architectures listed here the model's input for a
token is exactly its row of ``token_embd.weight`` (no scaling): a batch given the rows gives bit-identical logits to
the same batch given the ids (tested). Joining two batches into one moves float rounding, as any other split of a
prompt into batches does.
"""

from __future__ import annotations

import logging
import struct
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["TokenTable", "is_embeds", "open_token_table"]

log = logging.getLogger(__name__)

# GGUF architectures whose input embedding is the plain row lookup (no scale, no extra input projection)
PLAIN_INPUT_ARCHS = frozenset({"llama", "qwen2", "qwen3"})
_CACHE_ROWS = 1024  # rows kept dequantised (4-8 MB): the prompt text and a stream's recent transcript tokens


def is_embeds(part: object) -> bool:
    """An embeddings part of a prompt ([n, n_embd] array), not token ids."""
    return isinstance(part, np.ndarray) and part.ndim == 2


class TokenTable:
    """Dequantised rows of a GGUF's ``token_embd.weight``, read from the memory-mapped file and cached per id."""

    def __init__(self, data: np.ndarray, ggml_type: int, n_embd: int) -> None:
        self._data = data  # [n_vocab, row bytes] uint8, a view of the mapped file
        self._type = ggml_type
        self.n_embd = n_embd
        self._rows: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # streams of one model share the table from their own threads

    def rows(self, ids: Sequence[int]) -> np.ndarray:
        """float32 [len(ids), n_embd]: the input embedding of each token id."""
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        out = np.empty((len(ids), self.n_embd), np.float32)
        with self._lock:
            for i, tok in enumerate(ids):
                row = self._rows.get(tok)
                if row is None:
                    row = dequantize(self._data[tok], GGMLQuantizationType(self._type)).reshape(-1)
                    if len(self._rows) >= _CACHE_ROWS:
                        self._rows.pop(next(iter(self._rows)))
                    self._rows[tok] = row.astype(np.float32)
                out[i] = self._rows[tok]
        return out


_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value type -> bytes
_STRING, _ARRAY = 8, 9


def _tensor_info(buf, name: str) -> tuple[int, int, tuple[int, ...]] | None:
    """(absolute data offset, ggml type, dims) of tensor ``name`` in a GGUF file's bytes, or None. Only the header
    is walked (gguf-py's reader parses every metadata array, seconds for a 150k-token vocabulary)."""
    u32, u64 = struct.Struct("<I"), struct.Struct("<Q")
    if bytes(buf[:4]) != b"GGUF" or u32.unpack_from(buf, 4)[0] < 2:
        return None
    n_tensors, n_kv = u64.unpack_from(buf, 8)[0], u64.unpack_from(buf, 16)[0]
    pos, alignment = 24, 32

    def string(pos: int) -> tuple[str, int]:
        n = u64.unpack_from(buf, pos)[0]
        return bytes(buf[pos + 8 : pos + 8 + n]).decode("utf-8", "replace"), pos + 8 + n

    def skip(vtype: int, pos: int) -> int:
        if vtype in _SCALARS:
            return pos + _SCALARS[vtype]
        if vtype == _STRING:
            return pos + 8 + u64.unpack_from(buf, pos)[0]
        if vtype != _ARRAY:
            raise ValueError(f"unknown GGUF value type {vtype}")
        etype, count = u32.unpack_from(buf, pos)[0], u64.unpack_from(buf, pos + 4)[0]
        pos += 12
        if etype in _SCALARS:
            return pos + count * _SCALARS[etype]
        for _ in range(count):
            pos = skip(etype, pos)
        return pos

    for _ in range(n_kv):
        key, pos = string(pos)
        vtype = u32.unpack_from(buf, pos)[0]
        if key == "general.alignment" and vtype == 4:
            alignment = u32.unpack_from(buf, pos + 4)[0]
        pos = skip(vtype, pos + 4)
    found = None
    for _ in range(n_tensors):
        tname, pos = string(pos)
        n_dims = u32.unpack_from(buf, pos)[0]
        dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
        pos += 4 + 8 * n_dims
        ggml_type, offset = u32.unpack_from(buf, pos)[0], u64.unpack_from(buf, pos + 4)[0]
        pos += 12
        if tname == name:
            found = (offset, ggml_type, tuple(int(d) for d in dims))
    if found is None:
        return None
    start = (pos + alignment - 1) // alignment * alignment
    return start + found[0], found[1], found[2]


def open_token_table(path: Path, architecture: str | None, n_vocab: int, n_embd: int) -> TokenTable | None:
    """The token table of the GGUF at ``path``, or None where token ids must go to llama.cpp as ids (another
    architecture, no ``gguf`` package, or a table of another shape or type)."""
    if architecture not in PLAIN_INPUT_ARCHS:
        return None
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    except ImportError:  # pragma: no cover - gguf is a dependency; a stripped install runs the slower way
        log.info("the gguf package is missing: prompt text and audio are decoded in separate batches")
        return None
    data = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        info = _tensor_info(data, "token_embd.weight")
    except (ValueError, struct.error, IndexError):
        info = None
    if info is None or info[2] != (n_embd, n_vocab) or info[1] not in set(GGMLQuantizationType):
        log.info("%s has no readable token_embd.weight of [%d, %d]: prompt text goes in as token ids", path.name,
                 n_embd, n_vocab)
        return None
    offset, ggml_type, _ = info
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    row = n_embd // block * size
    if n_embd % block or offset + n_vocab * row > len(data):
        return None
    return TokenTable(data[offset : offset + n_vocab * row].reshape(n_vocab, row), ggml_type, n_embd)
