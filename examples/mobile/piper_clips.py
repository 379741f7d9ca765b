"""A fixed clip set without the reference recipe's generated data: corpus sentences synthesised by its Piper voice.

    cd examples && python -m mobile.piper_clips --out /work/mobile_work/clips [--n 8] [--seed 20261209]

Writes 16-kHz WAV files and ``clips.json`` (file, set, reference text) in the layout ``mobile.evaluate --clips-out``
writes, so ``mobile.profiles`` and ``mobile.arm64_check`` read either. The sentences come from the reference
recipe's corpus grammar with a seed no training split uses; the voice (Piper en_US-joe-medium) is one the model was
trained on, so these are held-out sentences, not held-out voices.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SEED = 20261209
RATE = 16000


def sentences(n: int, seed: int = SEED) -> list[str]:
    """``n`` sentences of the reference corpus grammar."""
    from reference_model.corpus import CorpusGen

    gen = CorpusGen(seed)
    return [gen.sentence().text for _ in range(n)]


def synthesise(texts: list[str], seed: int = SEED) -> list[np.ndarray]:
    """Each text spoken by the Piper voice (16 kHz float32), prosody drawn from ``seed``."""
    from reference_model.resources import piper_joe
    from reference_model.tts import PiperEngine

    engine = PiperEngine(*piper_joe())
    voice = engine.voices()[0]
    rng = np.random.default_rng(seed)
    return [engine.synth(voice, t, rng) for t in texts]


def write_clips(out: Path, n: int, seed: int = SEED) -> Path:
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    texts = sentences(n, seed)
    index = []
    for i, (text, audio) in enumerate(zip(texts, synthesise(texts, seed))):
        name = f"piper_{i:02d}.wav"
        sf.write(out / name, (np.clip(audio, -1, 1) * 32767).astype(np.int16), RATE, subtype="PCM_16")
        index.append({"file": name, "set": "piper_heldout_sentences", "text": text})
    (out / "clips.json").write_text(json.dumps(index, indent=1) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args()
    print(write_clips(a.out, a.n, a.seed))


if __name__ == "__main__":
    main()
