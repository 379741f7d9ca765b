"""Phoneme-CTC posteriors simulated from text: extra training input for an adaptor that reads the CTC head's
posteriors (``GlueConfig.adaptor_input = "posteriors"``).

Why: the synthetic audio holds 6,900 clips from a small phrase grammar, so an adaptor trained on it alone learns
those sentences. Posteriors need no audio, so any text can become a training example. They are shaped after the
real head's output (measured on held-out synthetic clips: non-blank runs of 1-5+ frames, a spike's top probability
has median 0.93 and 10th percentile 0.58, about 0.25 phonemes per 50 Hz frame) and carry the head's own errors:
substitutions drawn from its confusion matrix, deletions and insertions, at a per-utterance rate wide enough to
cover real speech (jfk.wav: 27.7 % phoneme error).
"""
from __future__ import annotations

import numpy as np
import torch

BLANK = 0


def align_pairs(ref: list[int], hyp: list[int]) -> list[tuple[int | None, int | None]]:
    """Levenshtein alignment of two id sequences as (ref, hyp) pairs; None marks an insertion or a deletion."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int32)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs, i, j = [], n, m
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            pairs.append((ref[i - 1], None))
            i -= 1
        else:
            pairs.append((None, hyp[j - 1]))
            j -= 1
    return pairs[::-1]


@torch.no_grad()
def confusion_matrix(head: torch.nn.Module, clips, sym: dict[str, int], n: int) -> np.ndarray:
    """Row-normalised P(emitted | true) over the non-blank classes, from the head's greedy output on ``clips``
    (add-one smoothing; the diagonal is zeroed, so a row says what a substitution turns the phoneme into)."""
    counts = np.ones((n, n))
    for c in clips:
        ids = head(c.feat.float()).argmax(-1).tolist()
        hyp = [i for k, i in enumerate(ids) if i != BLANK and (k == 0 or i != ids[k - 1])]
        ref = [sym[p] for p in c.meta["phonemes"] if p in sym]
        for a, b in align_pairs(ref, hyp):
            if a is not None and b is not None:
                counts[a, b] += 1
    counts[:, BLANK] = 0
    counts[BLANK, :] = 0
    np.fill_diagonal(counts, 0)
    counts[BLANK, 1] = 1  # unused row, kept a distribution
    return counts / counts.sum(1, keepdims=True)


def corrupt(ids: list[int], confusion: np.ndarray, rate: float, r: np.random.Generator) -> list[int]:
    """The phoneme sequence the head might emit: substitutions (from ``confusion``) at ``rate``, deletions at
    rate/3, insertions at rate/6."""
    out: list[int] = []
    n = confusion.shape[0]
    for i in ids:
        u = r.random()
        if u < rate / 3:
            continue
        if u < rate / 3 + rate:
            i = int(r.choice(n, p=confusion[i]))
        out.append(i)
        if r.random() < rate / 6:
            out.append(int(r.integers(1, n)))
    return out


def simulate(ids: list[int], n_classes: int, confusion: np.ndarray, r: np.random.Generator,
             error_rate: float | None = None, pad_s: float | None = None) -> torch.Tensor:
    """Posteriors [T, n_classes] (50 Hz frames) for the phoneme ids of one utterance; ``error_rate`` defaults to a
    draw from U(0.03, 0.35), the leading and trailing silence ``pad_s`` to Beta(1, 3) s each."""
    rate = float(r.uniform(0.03, 0.35)) if error_rate is None else error_rate
    seq = corrupt(ids, confusion, rate, r)
    lead = r.beta(1, 3) if pad_s is None else pad_s
    tail = r.beta(1, 3) if pad_s is None else pad_s
    speed = r.uniform(0.75, 1.3)  # frames per phoneme scale
    frames: list[tuple[int, float]] = [(BLANK, 1.0)] * int(lead * 50)
    for i in seq:
        dur = max(1, int(round((1 + r.poisson(3.0)) * speed)))
        run = max(1, dur - int(r.poisson(1.0)))
        for _ in range(run):
            frames.append((i, float(min(0.999, max(0.51, r.beta(4.0, 0.6))))))  # stays the argmax
        frames += [(BLANK, 1.0)] * (dur - run)
    frames += [(BLANK, 1.0)] * int(tail * 50)
    T = max(1, len(frames))
    p = np.zeros((T, n_classes), np.float32)
    for t, (i, top) in enumerate(frames):
        if i == BLANK:
            top = 1.0 - float(r.beta(0.4, 12.0))  # mostly ~0.99, sometimes ~0.6
        p[t, i] = top
        rest = 1.0 - top
        if rest > 0:
            other = BLANK if i != BLANK else (frames[t - 1][0] if t and frames[t - 1][0] != BLANK else
                                              int(r.integers(1, n_classes)))
            if i != BLANK and r.random() < 0.4:  # part of the rest on a confusable phoneme
                alt = int(r.choice(n_classes, p=confusion[i]))
                split = float(r.uniform(0.2, 0.8))
                p[t, alt] += rest * split
                rest *= 1 - split
            p[t, other] += rest
    return torch.from_numpy(p)


def log_posteriors_like(p: torch.Tensor) -> torch.Tensor:
    """Logits whose softmax is ``p`` (so a simulated item goes through the same ``Glue.embed`` as a real one)."""
    return torch.log(p.clamp_min(1e-8))




class TextExamples:
    """Text-only training examples: sentences from the corpus generator, and word sequences drawn from the LLM
    tokenizer's whole-word vocabulary (so the adaptor learns to spell words the grammar never uses)."""

    def __init__(self, tok, g2p, seed: int, salad: float = 0.25, empty: float = 0.03):
        from .corpus import CorpusGen, leaks_eval_text

        self.corpus = CorpusGen(seed)
        self.g2p, self.salad, self.empty = g2p, salad, empty
        self._leaks = leaks_eval_text
        words = []
        for piece in tok.get_vocab():
            w = piece[1:] if piece.startswith("\u0120") else ""  # byte-level BPE: "Ġword" is " word"
            if len(w) >= 3 and w.isascii() and w.isalpha() and w.islower():
                words.append(w)
        self.words = sorted(set(words))

    def sample(self, r: np.random.Generator) -> dict:
        """One example's metadata: text, entities, phonemes (runtime G2P symbols)."""
        u = r.random()
        if u < self.empty:
            return {"text": "", "entities": [], "phonemes": []}
        while True:
            if u < self.empty + self.salad:
                n = int(r.integers(2, 11))
                text = " ".join(self.words[int(i)] for i in r.integers(0, len(self.words), n))
                text = text[:1].upper() + text[1:] + "."
                ents: list[str] = []
            else:
                s = self.corpus.sentence()
                text, ents = s.text, list(s.entities)
            phonemes = self.g2p.phonemize([text])[0]
            if phonemes and not self._leaks(text):
                return {"text": text, "entities": ents, "phonemes": phonemes}
