"""Train the phoneme-CTC head alone on the cached encoder outputs (no LLM in the loop: milliseconds per step).

    python -m reference_model.train_ctc --minutes 10 --init-from WORK/ckpt/glue_latest.pt

The head is the same module as in ``train.py``; the result (WORK/ckpt/ctc_best.pt) replaces the jointly trained
head at export (``export_onnx.py --ctc-from``). Evaluates phoneme error rate on eval_clean / eval_noisy / jfk.wav.
"""
from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from .data import feature_mask, load_split, make_batches
from .evaluate import ctc_greedy, encode_wav
from .g2p import get_g2p
from .model import Glue, GlueConfig
from .resources import JFK_TEXT, JFK_WAV, WORK, whisper_dir
from .textnorm import edit_distance
from .whisper_torch import load_whisper

log = logging.getLogger("refmodel.train_ctc")


def per(head, clips, inventory) -> float:
    err = n = 0
    head.eval()
    with torch.no_grad():
        for c in clips:
            if not c.meta["phonemes"]:
                continue
            hyp = ctc_greedy(F.log_softmax(head(c.feat.float()[None])[0], -1), inventory)
            err += edit_distance(c.meta["phonemes"], hyp)
            n += len(c.meta["phonemes"])
    head.train()
    return err / max(n, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init-from", required=True, help="glue checkpoint giving config + inventory (+ adaptor)")
    ap.add_argument("--out", default=str(WORK / "ckpt" / "ctc_best.pt"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    r = np.random.default_rng(args.seed)
    ck = torch.load(args.init_from, map_location="cpu", weights_only=False)
    inventory = ck["inventory"]
    sym = {s: i for i, s in enumerate(inventory)}
    glue = Glue(GlueConfig(**ck["config"]))
    glue.load_state_dict(ck["state"])
    head = glue.ctc_head
    train, seen = load_split("train")
    ev_clean, _ = load_split("eval_clean")
    ev_noisy, _ = load_split("eval_noisy")
    w = load_whisper(whisper_dir())
    audio, _ = sf.read(str(JFK_WAV), dtype="float32")
    jfk_feat, _ = encode_wav(w, audio)
    g2p = get_g2p("espeak-ng:en-us")
    jfk_ref = g2p.phonemize([JFK_TEXT])[0]

    class _C:  # jfk as a clip for per()
        feat = jfk_feat
        meta = {"phonemes": jfk_ref}

    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
    t0 = time.time()
    deadline = t0 + args.minutes * 60
    step, best = 0, float("inf")
    hist = []
    while time.time() < deadline:
        more, new = load_split("train", skip=seen)
        train += more
        seen |= new
        batches = make_batches([c.feat.shape[0] for c in train], r, args.batch, args.batch * 400)
        for b in batches:
            feats = [feature_mask(train[i].feat.float(), r) for i in b]
            T = max(f.shape[0] for f in feats)
            x = torch.zeros(len(b), T, feats[0].shape[1])
            for k, f in enumerate(feats):
                x[k, : f.shape[0]] = f
            tg = [torch.tensor([sym[p] for p in train[i].meta["phonemes"] if p in sym], dtype=torch.long) for i in b]
            p = min(1.0, (time.time() - t0) / (deadline - t0))
            for gp in opt.param_groups:
                gp["lr"] = args.lr * min(1.0, (step + 1) / 50) * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * p)))
            logp = F.log_softmax(head(x), -1)
            loss = F.ctc_loss(logp.transpose(0, 1), torch.cat(tg), torch.tensor([f.shape[0] for f in feats]),
                              torch.tensor([len(t) for t in tg]), blank=0, zero_infinity=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 5.0)
            opt.step()
            step += 1
            hist.append(float(loss))
            if step % 200 == 0:
                rep = {"step": step, "minutes": round((time.time() - t0) / 60, 1), "ctc_loss": round(float(np.mean(hist[-200:])), 3),
                       "per_clean": round(per(head, ev_clean[:60], inventory), 4),
                       "per_noisy": round(per(head, ev_noisy[:40], inventory), 4),
                       "per_jfk": round(per(head, [_C], inventory), 4), "train_clips": len(train)}
                log.info("CTC %s", json.dumps(rep))
                score = rep["per_clean"] + rep["per_noisy"]
                if score < best:
                    best = score
                    torch.save({"state": head.state_dict(), "inventory": inventory, "config": ck["config"], "eval": rep,
                                "step": step}, args.out)
            if time.time() >= deadline:
                break
    head.eval()
    with torch.no_grad():
        hyp = ctc_greedy(F.log_softmax(head(jfk_feat.float()[None])[0], -1), inventory)
    log.info("done %d steps; jfk CTC: %s", step, " ".join(hyp))


if __name__ == "__main__":
    main()
