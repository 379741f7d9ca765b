"""Measure Whisper encoding of short input: 30-s padding (Whisper's training condition) vs true length.

For jfk.wav and pieces of it (real speech; evaluation only) and the first clips of eval_clean: the Whisper peer
decoder's WER in both modes, the cosine similarity of the kept frames, and encoder time. Prints JSON.

    python -m reference_model.measure_padding
"""
from __future__ import annotations

import json
import time

import numpy as np
import soundfile as sf
import torch

from .data import load_split
from .resources import JFK_TEXT, JFK_WAV, whisper_dir
from .textnorm import wer_counts
from .whisper_torch import CHUNK_FRAMES, greedy_decode, load_whisper, log_mel

PIECES = [(0.0, 11.0, JFK_TEXT), (0.0, 3.6, "And so my fellow Americans,"), (3.6, 7.9, "ask not what your country can do for you,"),
          (7.9, 11.0, "ask what you can do for your country.")]


def run(w, audio):
    n = len(audio) // 160
    keep = (n + 1) // 2
    out = {}
    for mode in ("pad30", "true"):
        feats = log_mel(audio, pad_to_frames=CHUNK_FRAMES)[:CHUNK_FRAMES] if mode == "pad30" else log_mel(audio)
        t0 = time.time()
        with torch.no_grad():
            h = w.encoder(torch.from_numpy(feats)[None])[0]
        dt = time.time() - t0
        out[mode] = (h, dt, greedy_decode(w, h, max_tokens=60))
    cos = torch.nn.functional.cosine_similarity(out["pad30"][0][:keep], out["true"][0][:keep], dim=-1).mean().item()
    return out, cos


def main():
    torch.set_num_threads(2)
    w = load_whisper(whisper_dir())
    audio, sr = sf.read(str(JFK_WAV), dtype="float32")
    rows = []
    for s, e, ref in PIECES:
        out, cos = run(w, audio[int(s * sr):int(e * sr)])
        rows.append({"set": "jfk", "span_s": [s, e], "ref": ref, "cosine_kept_frames": round(cos, 4),
                     **{f"{m}_hyp": out[m][2] for m in out}, **{f"{m}_wer": wer_counts(ref, out[m][2])[0] / wer_counts(ref, ref)[1] for m in out},
                     **{f"{m}_encoder_s": round(out[m][1], 3) for m in out}})
    clips, _ = load_split("eval_clean")
    tot = {"pad30": [0, 0], "true": [0, 0]}
    coss = []
    for c in clips[:20]:
        a = c.wav.numpy().astype(np.float32) / 32767
        out, cos = run(w, a)
        coss.append(cos)
        for m in out:
            e, n = wer_counts(c.meta["text"], out[m][2])
            tot[m][0] += e
            tot[m][1] += n
    synth = {"clips": min(20, len(clips)), "pad30_peer_wer": tot["pad30"][0] / max(1, tot["pad30"][1]),
             "true_peer_wer": tot["true"][0] / max(1, tot["true"][1]), "mean_cosine_kept_frames": float(np.mean(coss)) if coss else None}
    print(json.dumps({"jfk": rows, "eval_clean_subset": synth}, indent=1))


if __name__ == "__main__":
    main()
