"""Seeded tiny random-init checkpoints: same code paths as the full model, small enough for tests and demos.

Their output is meaningless: they prove the pipeline (parity), not recognition.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from nim4asr_edge.hotwords.g2p import ENGLISH_INVENTORY

from .checkpoint import save_checkpoint
from .config import tiny_config

__all__ = ["TINY_PHONEMES", "make_tiny_checkpoint"]

# The English eSpeak inventory, so hotword and guard paths run on tiny bundles exactly as on real ones.
TINY_PHONEMES = list(ENGLISH_INVENTORY)


def make_tiny_checkpoint(
    out_dir: str | Path,
    seed: int = 0,
    tokenizer: Literal["bpe", "sentencepiece"] = "bpe",
    vocab_size: int = 400,
    weight_std: float = 0.3,
    embed_std: float = 2.0,
) -> Path:
    """Write a tiny checkpoint.

    The LLM's matrices get std ``weight_std`` and its (tied) token embedding ``embed_std``: with the usual 0.02 a
    random model only echoes its last token and its logits are nearly tied; these make it mix its inputs and give
    clear greedy argmax margins, so token-exact parity checks are meaningful.
    """
    import torch

    from .model import Nim4AsrModel
    from .tokenizers import SourceTokenizer, sample_corpus, train_bpe, train_sentencepiece

    out = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        train = train_bpe if tokenizer == "bpe" else train_sentencepiece
        tok_path = train(tmp, sample_corpus(seed=seed), vocab_size, seed)
        n_vocab = SourceTokenizer.load(tok_path).vocab_size
        cfg = tiny_config(vocab_size=n_vocab, n_phonemes=len(TINY_PHONEMES))
        model = Nim4AsrModel.build(cfg, seed=seed)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            for p in model.llm.parameters():
                if p.ndim == 2:
                    p.normal_(0.0, weight_std)
            model.llm.get_input_embeddings().weight.normal_(0.0, embed_std)
        rng = np.random.default_rng(seed)
        n_mels = cfg.encoder.n_mels
        # CMVN roughly centred on speech-level log-Mel energies (mean ~ 10, spread ~ 3).
        mean = 10.0 + rng.standard_normal(n_mels)
        istd = 1.0 / (3.0 + rng.random(n_mels))
        save_checkpoint(model, out, tok_path, mean, istd, TINY_PHONEMES)
    return out
