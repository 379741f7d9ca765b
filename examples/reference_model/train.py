"""Train the phoneme-CTC head and the adaptor on cached Whisper encoder outputs, frozen SmolLM2 on top.

    python -m reference_model.train --minutes 45

Seeded; logs to stdout (the recipe redirects to WORK/train.log); checkpoints WORK/ckpt/glue_latest.pt every
``--ckpt-minutes``, evaluates a held-out subset + jfk.wav every ``--eval-minutes`` (JSON lines in the log and in
WORK/ckpt/evals.jsonl), keeps the best held-out-synthetic checkpoint as WORK/ckpt/glue_best.pt. New training
shards written while it runs are picked up at every epoch.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import build_inventory, feature_mask, load_split, make_batches, sample_hints
from .evaluate import eval_clips, eval_real
from .g2p import get_g2p
from .model import Glue, GlueConfig, load_llm, save_glue
from .posteriors import TextExamples, confusion_matrix, log_posteriors_like, simulate
from .resources import WORK, smollm_gguf, whisper_dir
from .speechllm import SpeechLLM
from .whisper_torch import load_whisper

log = logging.getLogger("refmodel.train")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=45.0, help="wall-clock training budget")
    ap.add_argument("--max-steps", type=int, default=3000, help="cosine schedule length")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--max-frames", type=int, default=12 * 320, help="padded encoder frames per batch")
    ap.add_argument("--ctc-weight", type=float, default=0.0,
                    help="joint CTC loss weight; 0 = train the adaptor alone (the CTC head is trained by train_ctc)")
    ap.add_argument("--ctc-init", default="", help="load the CTC head from a train_ctc checkpoint (ctc_best.pt)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-minutes", type=float, default=30.0)
    ap.add_argument("--ckpt-minutes", type=float, default=4.0)
    ap.add_argument("--eval-limit", type=int, default=10)
    ap.add_argument("--min-train-clips", type=int, default=600)
    ap.add_argument("--stack", type=int, default=4,
                    help="encoder frames per audio token (4: 12.5 Hz; 8 = 6.25 Hz did not align within 420 steps)")
    ap.add_argument("--max-clip-seconds", type=float, default=12.0, help="skip longer training clips (speed)")
    ap.add_argument("--out", default=str(WORK / "ckpt"))
    ap.add_argument("--init-from", default="", help="start from these glue weights (a glue_*.pt checkpoint)")
    ap.add_argument("--schedule-window", type=float, nargs=2, metavar=("START", "END"),
                    help="unix times the cosine schedule spans (for a run split into several processes)")
    ap.add_argument("--skip-final-eval", action="store_true", help="only save at the end (a segment of a longer run)")
    ap.add_argument("--adaptor-input", choices=("encoder", "posteriors"), default="encoder",
                    help="what the adaptor reads: the encoder's hidden states or the frozen CTC head's posteriors "
                         "(needs --ctc-init or --init-from)")
    ap.add_argument("--text-fraction", type=float, default=0.5,
                    help="with --adaptor-input posteriors: share of each batch simulated from text alone")
    ap.add_argument("--resume", action="store_true",
                    help="with --init-from: also restore the optimizer state and step count saved in it")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    # Adam's second moments of rarely-updated weights can decay into subnormal floats, which x86 handles far slower;
    # flush them to zero (this alone did not stop the slowdown that train_segments.py works around).
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    r = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    deadline = t_start + args.minutes * 60

    while True:
        train, seen = load_split("train")
        if len(train) >= args.min_train_clips:
            break
        log.info("waiting for training data: %d clips so far", len(train))
        time.sleep(60)
    evals = {s: load_split(s)[0] for s in ("eval_clean", "eval_noisy", "eval_empty")}
    g2p = get_g2p("espeak-ng:en-us")
    # inventory: training + eval phonemes + a broad corpus sample, so later shards never bring new symbols
    from .corpus import CorpusGen
    cg = CorpusGen(424242)
    sample = g2p.phonemize([cg.sentence().text for _ in range(5000)])
    inventory = build_inventory([c.meta["phonemes"] for c in train] + sample
                                + [c.meta["phonemes"] for v in evals.values() for c in v])
    sym = {s: i for i, s in enumerate(inventory)}
    log.info("inventory %d symbols: %s", len(inventory), " ".join(inventory))
    (out / "phonemes.txt").write_text("\n".join(inventory) + "\n")

    train = [c for c in train if c.meta["seconds"] <= args.max_clip_seconds]
    cfg = GlueConfig(n_phonemes=len(inventory), stack=args.stack, adaptor_input=args.adaptor_input)
    posteriors = args.adaptor_input == "posteriors"
    if posteriors and not (args.ctc_init or args.init_from):
        raise SystemExit("--adaptor-input posteriors reads a trained CTC head: give --ctc-init or --init-from")
    glue = Glue(cfg)
    tok, llm = load_llm(smollm_gguf())
    if args.init_from:
        ck = torch.load(args.init_from, map_location="cpu", weights_only=False)
        if ck["inventory"] != inventory or {"adaptor_input": "encoder", **ck["config"]} != cfg.to_dict():
            raise SystemExit(f"{args.init_from}: inventory or config differs from this run")
        glue.load_state_dict(ck["state"])
        log.info("initialised from %s (step %s)", args.init_from, ck.get("step"))
    else:
        if args.ctc_init:
            ck = torch.load(args.ctc_init, map_location="cpu", weights_only=False)
            if ck["inventory"] != inventory:
                raise SystemExit(f"{args.ctc_init}: phoneme inventory differs from this run")
            glue.ctc_head.load_state_dict(ck["state"])
            log.info("CTC head from %s (%s)", args.ctc_init, ck.get("eval"))
        with torch.no_grad():  # start the adaptor output at the scale of the LLM's token embeddings
            emb_std = float(llm.get_input_embeddings().weight.std())
            glue.adaptor.fc2.weight.mul_(emb_std / 0.05)
    sllm = SpeechLLM(tok, llm)
    whisper = load_whisper(whisper_dir())
    n_params = sum(p.numel() for p in glue.parameters())
    log.info("glue params %d (ctc %d, adaptor %d); train clips %d; config %s", n_params,
             sum(p.numel() for p in glue.ctc_head.parameters()), sum(p.numel() for p in glue.adaptor.parameters()),
             len(train), json.dumps(vars(args)))
    # A joint run shares one clipping budget between two very different losses and starved the CTC head (first
    # session); with --ctc-weight 0 the head stays as loaded and only the adaptor trains.
    train_ctc_head = args.ctc_weight > 0
    if posteriors and train_ctc_head:
        raise SystemExit("--adaptor-input posteriors keeps the CTC head frozen: use --ctc-weight 0")
    text_examples = None
    if posteriors:
        glue.ctc_head.eval()
        confusion = confusion_matrix(glue.ctc_head, train[:: max(1, len(train) // 800)], sym, len(inventory))
        text_examples = TextExamples(tok, g2p, args.seed)
        log.info("posterior adaptor: %.0f %% of each batch simulated from text (%d vocabulary words)",
                 100 * args.text_fraction, len(text_examples.words))
    glue.ctc_head.requires_grad_(train_ctc_head)
    opt = torch.optim.AdamW([p for p in glue.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01,
                            betas=(0.9, 0.98))

    def lr_at(step):
        """Linear warm-up, then cosine to 5 % over the wall-clock budget (the machine is shared, so the number of
        steps the budget allows is not known in advance) or over --max-steps, whichever ends first."""
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p_steps = (step - args.warmup) / max(1, args.max_steps - args.warmup)
        t0, t1 = args.schedule_window or (t_train0, deadline)
        p_time = (time.time() - t0) / max(1.0, t1 - t0)
        p = min(1.0, max(p_steps, p_time))
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))

    t_train0 = time.time()
    step, epoch = 0, 0
    if args.init_from and args.resume:
        if "optimizer" not in ck:
            raise SystemExit(f"{args.init_from}: holds no optimizer state (only glue_latest.pt does)")
        opt.load_state_dict(ck["optimizer"])
        step = int(ck["step"])
        r = np.random.default_rng([args.seed, step])  # a new batch order: the first batches were trained on already
        log.info("resumed optimizer state at step %d", step)
    last_ckpt = last_eval = time.time()
    best = float("inf")
    hist = {"loss": [], "ctc": [], "clips": 0}
    t_log = time.time()
    done = False
    while not done:
        if epoch > 0:  # pick up shards written since
            more, new_seen = load_split("train", skip=seen)
            train += [c for c in more if c.meta["seconds"] <= args.max_clip_seconds]
            seen |= new_seen
        lengths = [c.feat.shape[0] for c in train]
        batches = make_batches(lengths, r, args.batch, args.max_frames)
        log.info("epoch %d: %d clips, %d batches", epoch, len(train), len(batches))
        for bidx in batches:
            glue.train()
            if posteriors:
                glue.ctc_head.eval()  # frozen: no dropout on the adaptor's input
            feats, hints, texts, tg, tl, sims = [], [], [], [], [], []
            n_sim = int(round(len(bidx) * args.text_fraction)) if posteriors else 0
            real = bidx[: len(bidx) - n_sim]
            items = [train[i].meta for i in real] + [text_examples.sample(r) for _ in range(n_sim)]
            for k, meta in enumerate(items):
                if k < len(real):
                    feats.append(feature_mask(train[real[k]].feat.float(), r))
                else:
                    ids = [sym[p] for p in meta["phonemes"] if p in sym]
                    p = simulate(ids, len(inventory), confusion, r)
                    feats.append(torch.zeros(p.shape[0], cfg.enc_dim))
                    sims.append((k, log_posteriors_like(p)))
                hs, _ = sample_hints(r, meta)
                hints.append(hs)
                texts.append(meta["text"])
                ids = [sym[p] for p in meta["phonemes"] if p in sym]
                tg.append(torch.tensor(ids, dtype=torch.long))
                tl.append(len(ids))
            T = max(f.shape[0] for f in feats)
            x = torch.zeros(len(feats), T, cfg.enc_dim)
            for b, f in enumerate(feats):
                x[b, : f.shape[0]] = f
            lens = torch.tensor([f.shape[0] for f in feats])
            valid = torch.arange(T)[None, :] < lens[:, None]
            logits = None
            if posteriors:
                with torch.no_grad():
                    logits = glue.ctc_head(x)
                    for k, lp in sims:
                        logits[k] = 0
                        logits[k, : lp.shape[0]] = lp
            emb = glue.embed(x, logits, valid)
            audio = [emb[b, : math.ceil(int(lens[b]) / cfg.stack)] for b in range(len(feats))]
            llm_loss, n_tok = sllm.loss(audio, hints, texts)
            if train_ctc_head:
                logp = F.log_softmax(glue.ctc_head(x).float(), dim=-1)
                ctc = F.ctc_loss(logp.transpose(0, 1), torch.cat(tg) if tg else torch.zeros(0, dtype=torch.long),
                                 lens, torch.tensor(tl), blank=0, reduction="mean", zero_infinity=True)
                loss = llm_loss + args.ctc_weight * ctc
            else:
                ctc, loss = torch.zeros(()), llm_loss
            for gp in opt.param_groups:
                gp["lr"] = lr_at(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(glue.adaptor.parameters(), 1.0)
            if train_ctc_head:
                torch.nn.utils.clip_grad_norm_(glue.ctc_head.parameters(), 1.0)
            opt.step()
            step += 1
            hist["loss"].append(float(llm_loss))
            hist["ctc"].append(float(ctc))
            hist["clips"] += len(bidx)
            if step % 20 == 0:
                dt = time.time() - t_log
                log.info("step %d epoch %d lr %.2e llm_loss %.3f ctc %.3f gnorm %.2f | %.2f s/step %.1f clips/s | %.1f min",
                         step, epoch, lr_at(step), np.mean(hist["loss"][-20:]), np.mean(hist["ctc"][-20:]), float(gn),
                         dt / 20, hist["clips"] / dt, (time.time() - t_start) / 60)
                hist["clips"] = 0
                t_log = time.time()
            now = time.time()
            final = now >= deadline or step >= args.max_steps
            if now - last_ckpt > args.ckpt_minutes * 60 or final:
                save_glue(glue, out / "glue_latest.pt", {"inventory": inventory, "step": step,
                                                         "optimizer": opt.state_dict()})
                last_ckpt = now
            if now - last_eval > args.eval_minutes * 60 or (final and not args.skip_final_eval):
                glue.eval()
                te = time.time()
                rep = {"step": step, "epoch": epoch, "minutes": round((now - t_start) / 60, 1)}
                for s in ("eval_clean", "eval_noisy", "eval_empty"):
                    lim = args.eval_limit if s != "eval_empty" else 5
                    if len(evals[s]) < lim:  # still being generated when training started
                        evals[s] = load_split(s)[0]
                    if not evals[s]:
                        continue
                    e = eval_clips(evals[s][:lim], glue, sllm, g2p, inventory)
                    rep[s] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.items() if not k.startswith("_")}
                    if s == "eval_clean":
                        rep["examples"] = [(row["ref"], row["hyp"]) for row in e["_rows"][:3]]
                jfk = eval_real(whisper, glue, sllm, g2p, inventory)
                rep["jfk"] = {k: jfk[k] for k in ("hyp", "wer", "ctc_phonemes", "ctc_per", "guard")}
                score = sum(rep[s]["wer"] for s in ("eval_clean", "eval_noisy") if s in rep)
                if score < best:
                    best = score
                    save_glue(glue, out / "glue_best.pt", {"inventory": inventory, "step": step, "eval": rep})
                save_glue(glue, out / f"glue_step{step}.pt", {"inventory": inventory, "step": step, "eval": rep})
                rep["eval_seconds"] = round(time.time() - te, 1)
                log.info("EVAL %s", json.dumps(rep))
                with open(out / "evals.jsonl", "a") as f:
                    f.write(json.dumps(rep) + "\n")
                last_eval = time.time()
                t_log = time.time()
                hist["clips"] = 0
            if final:
                done = True
                break
        epoch += 1
    log.info("done: %d steps in %.1f min; best held-out synthetic (clean+noisy WER) %.3f", step,
             (time.time() - t_start) / 60, best)


if __name__ == "__main__":
    main()
