"""Generate training / evaluation clips and cache the frozen Whisper encoder's output per clip.

One worker = one process (torch 1 thread). Clip ``i`` of a split is fully determined by ``(seed, split, i)``.
Output: ``WORK/data/<split>/shard_<worker>_<n>.pt`` = {"feats": [float16 [T_enc, 384]], "meta": [dict]};
eval splits also keep the waveform (``wav``) and the Whisper peer transcript (``peer``).

Encoding = Whisper's own way (pad the audio to 30 s, encode 1500 frames), keeping the frames that cover the
audio (``encode_mode="pad30"``; chosen by measurement, see README).
"""
from __future__ import annotations

import argparse
import logging
import os
import time
import zlib

import numpy as np
import torch

from . import augment as A
from .corpus import CorpusGen
from .g2p import get_g2p
from .resources import WORK, piper_joe, whisper_dir
from .tts import SR, Voice, all_engines
from .whisper_torch import CHUNK_FRAMES, greedy_decode, load_whisper, log_mel

log = logging.getLogger("refmodel.datagen")

# voices never used for training (the "unseen voices" eval set)
HELDOUT_VOICES = {"flite:awb", "festival:ked_diphone"}
HELDOUT_ESPEAK_BASE = "en-gb-x-gbcwmd"
ENGINE_WEIGHTS = {"piper": 0.25, "festival": 0.2, "flite": 0.25, "espeak": 0.3}
SPLITS = {  # name: (corpus seed offset, voices, augmentation, n silence/noise-only fraction)
    "train": dict(corpus=0, voices="train", aug=True, empty=0.06),
    "eval_clean": dict(corpus=1_000_003, voices="all", aug=False, empty=0.0),
    "eval_noisy": dict(corpus=1_000_003, voices="all", aug=True, empty=0.0),
    "eval_empty": dict(corpus=2_000_003, voices="all", aug=True, empty=1.0),
}


def _voice_pool(engines, which: str) -> dict[str, list[Voice]]:
    pool = {}
    for name, e in engines.items():
        vs = e.voices()
        if which == "train":
            vs = [v for v in vs if v.key not in HELDOUT_VOICES and not v.name.startswith(HELDOUT_ESPEAK_BASE + "+")]
        pool[name] = vs
    return pool


def is_heldout_voice(key: str) -> bool:
    return key in HELDOUT_VOICES or key.startswith(f"espeak:{HELDOUT_ESPEAK_BASE}+")


class Generator:
    def __init__(self, seed: int, split: str):
        self.seed, self.split = seed, split
        self.cfg = SPLITS[split]
        self.engines = all_engines(piper_joe())
        self.pool = _voice_pool(self.engines, self.cfg["voices"])
        self.g2p = get_g2p("espeak-ng:en-us")
        self.whisper = load_whisper(whisper_dir())
        r = np.random.default_rng([seed, 7])
        babble_gen = CorpusGen(seed + 555)
        self.babble = []  # babble talkers: training voices only, other sentences
        tr_pool = _voice_pool(self.engines, "train")
        for _ in range(12):
            eng = ["flite", "espeak", "espeak", "festival"][int(r.integers(4))]
            v = tr_pool[eng][int(r.integers(len(tr_pool[eng])))]
            text = " ".join(babble_gen.sentence().text for _ in range(3))
            self.babble.append(self.engines[eng].synth(v, text, r))

    def pick_voice(self, r) -> Voice:
        names = list(ENGINE_WEIGHTS)
        p = np.array([ENGINE_WEIGHTS[n] for n in names])
        eng = names[int(r.choice(len(names), p=p / p.sum()))]
        vs = self.pool[eng]
        return vs[int(r.integers(len(vs)))]

    def clip(self, i: int) -> dict:
        r = np.random.default_rng([self.seed, zlib.crc32(self.split.encode()), i])
        cfg = self.cfg
        meta: dict = {"split": self.split, "index": i, "aug": []}
        if r.random() < cfg["empty"]:
            dur = r.uniform(0.5, 8.0)
            n = int(SR * dur)
            if r.random() < 0.4:
                a = (r.standard_normal(n) * 10 ** (r.uniform(-80, -50) / 20)).astype(np.float32)
                meta["aug"].append("silence")
            else:
                a, kind = A.make_noise(r, n, self.babble)
                a = A.set_level(a, r)
                meta["aug"].append(f"noise:{kind}")
            meta.update(text="", entities=[], voice="none", family="empty")
        else:
            voice = self.pick_voice(r)
            gen = CorpusGen(int(r.integers(2**31)) + cfg["corpus"])
            k = 1 if cfg["voices"] != "train" else int(r.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
            sents = [gen.sentence() for _ in range(k)]
            parts = []
            for j, s in enumerate(sents):
                a = self.engines[voice.engine].synth(voice, s.text, r)
                parts.append(a)
                if j + 1 < k:
                    parts.append(np.zeros(int(SR * r.uniform(0.1, 0.6)), np.float32))
                if sum(len(p) for p in parts) > 18 * SR:
                    sents = sents[: j + 1]
                    break
            a = np.concatenate(parts)[: 20 * SR]
            meta.update(text=" ".join(s.text for s in sents), entities=sorted({e for s in sents for e in s.entities}),
                        voice=voice.key, family="+".join(s.family for s in sents))
            if cfg["aug"]:
                if r.random() < 0.4:
                    f = float(r.uniform(0.88, 1.12))
                    a = A.speed(a, f)
                    meta["aug"].append(f"speed:{f:.2f}")
                if r.random() < 0.3:
                    a = A.reverb(a, r)
                    meta["aug"].append("reverb")
                if r.random() < 0.15:
                    a = A.telephone(a, r)
                    meta["aug"].append("telephone")
            a = A.pad_silence(a, r) if (cfg["aug"] or r.random() < 0.5) else a
            a = A.set_level(a, r)
            noisy_p = 1.0 if self.split == "eval_noisy" else 0.3
            if cfg["aug"] and r.random() < noisy_p:
                snr = float(np.clip(r.normal(10, 5), -2, 30))
                a, kind = A.add_noise(a, r, snr, self.babble)
                meta["aug"].append(f"noise:{kind}@{snr:.1f}dB")
            a = a[: 30 * SR - SR // 10]
        warp = None
        if cfg["aug"] and self.split == "train" and r.random() < 0.5:
            warp = float(r.uniform(0.9, 1.1))
            meta["aug"].append(f"vtlp:{warp:.2f}")
        a = np.clip(a, -1, 1).astype(np.float32)
        meta["seconds"] = len(a) / SR
        meta["phonemes"] = self.g2p.phonemize([meta["text"]])[0] if meta["text"] else []
        feats = log_mel(a, pad_to_frames=CHUNK_FRAMES, warp=warp)[:CHUNK_FRAMES]
        with torch.no_grad():
            h = self.whisper.encoder(torch.from_numpy(feats)[None])[0]
        keep = ((len(a) // 160) + 1) // 2
        out = {"feat": h[:keep].to(torch.float16).clone(), "meta": meta}
        if self.split.startswith("eval"):
            out["wav"] = torch.from_numpy((a * 32767).astype(np.int16))
            meta["peer"] = greedy_decode(self.whisper, h, max_tokens=int(min(224, 20 + 6 * meta["seconds"])))
        return out


def run_worker(split: str, seed: int, worker: int, n_workers: int, count: int, shard_size: int = 100):
    torch.set_num_threads(1)
    out_dir = WORK / "data" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    g = Generator(seed, split)
    idx = list(range(worker, count, n_workers))
    t0 = time.time()
    for s0 in range(0, len(idx), shard_size):
        path = out_dir / f"shard_{worker:02d}_{s0 // shard_size:04d}.pt"
        if path.exists():
            continue
        items = [g.clip(i) for i in idx[s0:s0 + shard_size]]
        tmp = path.with_suffix(".tmp")
        torch.save({"feats": [x["feat"] for x in items], "meta": [x["meta"] for x in items],
                    "wav": [x.get("wav") for x in items]}, tmp)
        os.replace(tmp, path)
        done = s0 + len(items)
        log.info("%s worker %d: %d/%d clips, %.2f clips/s", split, worker, done, len(idx), done / (time.time() - t0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", default="", help="run several splits in turn: 'split:count:shard,...' (overrides --split)")
    ap.add_argument("--split", choices=list(SPLITS))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--worker", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--shard", type=int, default=100)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.jobs:
        for job in args.jobs.split(","):
            split, count, shard = job.split(":")
            w, n = (args.worker, args.workers) if split == "train" else (0, 1)
            run_worker(split, args.seed, w, n, int(count), int(shard))
    else:
        run_worker(args.split, args.seed, args.worker, args.workers, args.count, args.shard)


if __name__ == "__main__":
    main()
