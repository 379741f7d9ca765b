"""The LLM's input embedding rows of token ids, read from its GGUF as llama.cpp dequantises them.

llama.cpp takes one kind of input per batch: token ids or embeddings. A prompt's text after the audio (and a
stream's forced tokens) fed as their embedding rows goes into the same batch as the audio embeddings before it: one
``llama_decode`` instead of two, which matters on a CPU where a small batch costs nearly as much per position as a
single-token step (measured in ``bench/prefill_batches.py``). For the architectures listed here the model's input for a
token is exactly its row of ``token_embd.weight`` (no scaling), and the logits are bit-identical either way (tested).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["TokenTable", "open_token_table"]

log = logging.getLogger(__name__)

# GGUF architectures whose input embedding is the plain row lookup (no scale, no extra input projection)
PLAIN_INPUT_ARCHS = frozenset({"llama", "qwen2", "qwen3"})
_CACHE_ROWS = 8192  # rows kept dequantised (32 MB at n_embd 1024); a prompt uses a few hundred distinct tokens


class TokenTable:
    """Dequantised rows of a GGUF's ``token_embd.weight``, memory-mapped and cached per token id."""

    def __init__(self, tensor, n_embd: int) -> None:
        self._tensor = tensor
        self.n_embd = n_embd
        self._rows: dict[int, np.ndarray] = {}

    def rows(self, ids: Sequence[int]) -> np.ndarray:
        """float32 [len(ids), n_embd]: the input embedding of each token id."""
        from gguf.quants import dequantize

        out = np.empty((len(ids), self.n_embd), np.float32)
        for i, tok in enumerate(ids):
            row = self._rows.get(tok)
            if row is None:
                row = dequantize(self._tensor.data[tok], self._tensor.tensor_type).reshape(-1).astype(np.float32)
                if len(self._rows) >= _CACHE_ROWS:
                    self._rows.pop(next(iter(self._rows)))
                self._rows[tok] = row
            out[i] = row
        return out


def open_token_table(path: Path, architecture: str | None, n_vocab: int, n_embd: int) -> TokenTable | None:
    """The token table of the GGUF at ``path``, or None where token ids must go to llama.cpp as ids (another
    architecture, no ``gguf`` package, or a table of another shape)."""
    if architecture not in PLAIN_INPUT_ARCHS:
        return None
    try:
        from gguf import GGUFReader
    except ImportError:  # pragma: no cover - gguf is a dependency; a stripped install runs the slower way
        log.info("the gguf package is missing: prompt text and audio are decoded in separate batches")
        return None
    tensor = next((t for t in GGUFReader(str(path), "r").tensors if t.name == "token_embd.weight"), None)
    if tensor is None or tuple(int(d) for d in tensor.shape) != (n_embd, n_vocab):
        log.info("%s has no token_embd.weight of [%d, %d]: prompt text goes in as token ids", path.name, n_embd,
                 n_vocab)
        return None
    return TokenTable(tensor, n_embd)
