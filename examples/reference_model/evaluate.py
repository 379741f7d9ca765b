"""Evaluation: WER of ours vs the Whisper peer, CTC phoneme error, hallucination on empty clips, the
never-invent guard (phoneme edit distance between G2P(LLM text) and the CTC hypothesis), entity recall with and
without the right hint, RTF and peak RSS. Prints one JSON document.

    python -m reference_model.evaluate --glue artifacts/glue.pt [--limit N]
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from .data import load_split
from .g2p import get_g2p
from .model import Glue, load_glue, load_llm, tokens_for
from .resources import ARTIFACTS, JFK_TEXT, JFK_WAV, smollm_gguf, whisper_dir
from .speechllm import SpeechLLM
from .textnorm import edit_distance, normalize, wer_counts
from .whisper_torch import CHUNK_FRAMES, greedy_decode, load_whisper, log_mel

log = logging.getLogger("refmodel.eval")


def glue_outputs(glue: Glue, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(audio embeddings [ceil(T/4), H], CTC log-probs [T, P]) for one clip's cached encoder output [T, D]."""
    with torch.no_grad():
        h = feat.float()[None]
        logits = glue.ctc_head(h)
        emb = glue.embed(h, logits)[0]
        logp = F.log_softmax(logits[0], dim=-1)
    assert emb.shape[0] == tokens_for(feat.shape[0], glue.config.stack)
    return emb, logp


def ctc_greedy(logp: torch.Tensor, inventory: list[str]) -> list[str]:
    ids = logp.argmax(-1).tolist()
    out, prev = [], -1
    for i in ids:
        if i != prev and i != 0:
            out.append(inventory[i])
        prev = i
    while out and out[0] == "|":
        out.pop(0)
    while out and out[-1] == "|":
        out.pop()
    return out


def guard_distance(g2p, text: str, ctc_phones: list[str]) -> float:
    """Normalised phoneme edit distance between G2P(text) and the CTC hypothesis (word boundaries ignored)."""
    a = [p for p in (g2p.phonemize([text])[0] if text.strip() else []) if p != "|"]
    b = [p for p in ctc_phones if p != "|"]
    if not a and not b:
        return 0.0
    return edit_distance(a, b) / max(len(a), len(b))


def encode_wav(whisper, audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept encoder frames covering the audio, full 1500-frame output for the peer decoder)."""
    feats = log_mel(audio, pad_to_frames=CHUNK_FRAMES)[:CHUNK_FRAMES]
    with torch.no_grad():
        h = whisper.encoder(torch.from_numpy(feats)[None])[0]
    return h[: ((len(audio) // 160) + 1) // 2], h


def eval_clips(clips, glue, sllm, g2p, inventory, hints_mode: str = "none", peer: bool = True) -> dict:
    """hints_mode: none | right (entity among distractors) | distractors."""
    r = np.random.default_rng(99)
    err = ref = perr = 0
    ph_err = ph_ref = 0
    guards, rows = [], []
    t_llm = 0.0
    audio_s = 0.0
    for c in clips:
        emb, logp = glue_outputs(glue, c.feat)
        hints: list[str] = []
        ents = c.meta.get("entities") or []
        if hints_mode == "right" and ents:
            from .corpus import distractors
            hints = [ents[0]] + distractors(r, 3, set(ents))
            r.shuffle(hints)
        elif hints_mode == "distractors":
            from .corpus import distractors
            hints = distractors(r, 4, set(ents))
        t0 = time.time()
        hyp = sllm.generate(emb, hints, max_new=int(6 + 4 * c.meta["seconds"]))
        t_llm += time.time() - t0
        audio_s += c.meta["seconds"]
        e, n = wer_counts(c.meta["text"], hyp)
        err, ref = err + e, ref + n
        if peer and "peer" in c.meta:
            perr += wer_counts(c.meta["text"], c.meta["peer"])[0]
        phones = ctc_greedy(logp, inventory)
        tgt = [p for p in c.meta["phonemes"]]
        ph_err += edit_distance(tgt, phones)
        ph_ref += len(tgt)
        gd = guard_distance(g2p, hyp, phones)
        guards.append(gd)
        rec = None
        if ents:
            rec = [normalize(x) in normalize(hyp) for x in ents]
        rows.append({"ref": c.meta["text"], "hyp": hyp, "peer": c.meta.get("peer"), "voice": c.meta["voice"],
                     "aug": c.meta["aug"], "wer_err": e, "n": n, "guard": round(gd, 3), "entity_hits": rec,
                     "hints": hints})
    out = {"clips": len(clips), "words": ref, "wer": err / max(ref, 1), "ctc_per": ph_err / max(ph_ref, 1),
           "guard_mean": float(np.mean(guards)) if guards else None, "llm_seconds_per_audio_second": t_llm / max(audio_s, 1e-9)}
    if peer and any("peer" in c.meta for c in clips):
        out["peer_wer"] = perr / max(ref, 1)
    ent = [h for row in rows if row["entity_hits"] for h in row["entity_hits"]]
    if ent:
        out["entity_recall"] = float(np.mean(ent))
    out["non_empty"] = sum(1 for row in rows if normalize(row["hyp"]))
    out["_rows"] = rows
    out["_guards"] = guards
    return out


def guard_table(real: list[float], synth: list[float], thresholds=(0.2, 0.3, 0.4, 0.5, 0.6)) -> list[dict]:
    return [{"threshold": t, "fires_real": float(np.mean([g > t for g in real])) if real else None,
             "fires_synthetic": float(np.mean([g > t for g in synth])) if synth else None} for t in thresholds]


def eval_real(whisper, glue, sllm, g2p, inventory) -> dict:
    audio, sr = sf.read(str(JFK_WAV), dtype="float32")
    t0 = time.time()
    kept, full = encode_wav(whisper, audio)
    t_enc = time.time() - t0
    emb, logp = glue_outputs(glue, kept)
    t0 = time.time()
    hyp = sllm.generate(emb, [], max_new=int(6 + 4 * len(audio) / sr))
    t_llm = time.time() - t0
    peer = greedy_decode(whisper, full)
    phones = ctc_greedy(logp, inventory)
    e, n = wer_counts(JFK_TEXT, hyp)
    pe, _ = wer_counts(JFK_TEXT, peer)
    ref_ph = g2p.phonemize([JFK_TEXT])[0]
    return {"file": JFK_WAV.name, "seconds": len(audio) / sr, "hyp": hyp, "wer": e / n, "peer_hyp": peer,
            "peer_wer": pe / n, "ctc_phonemes": " ".join(phones), "ctc_per": edit_distance(ref_ph, phones) / len(ref_ph),
            "guard": guard_distance(g2p, hyp, phones), "encoder_seconds": t_enc, "llm_seconds": t_llm}


def strip_private(d):
    if isinstance(d, dict):
        return {k: strip_private(v) for k, v in d.items() if not k.startswith("_")}
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue", default=str(ARTIFACTS / "glue.pt"))
    ap.add_argument("--limit", type=int, default=0, help="clips per synthetic set (0 = all)")
    ap.add_argument("--rows", default="", help="write per-clip rows as JSONL here")
    ap.add_argument("--entity-limit", type=int, default=25, help="clips with entities for the hint tests")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    t_start = time.time()
    glue, ck = load_glue(Path(args.glue))
    inventory = ck["inventory"]
    tok, llm = load_llm(smollm_gguf())
    sllm = SpeechLLM(tok, llm)
    g2p = get_g2p("espeak-ng:en-us")
    whisper = load_whisper(whisper_dir())
    res: dict = {"glue": args.glue, "step": ck.get("step"), "real": [eval_real(whisper, glue, sllm, g2p, inventory)]}
    sets = {}
    for split in ("eval_clean", "eval_noisy", "eval_empty"):
        clips, _ = load_split(split)
        if args.limit:
            clips = clips[: args.limit]
        sets[split] = clips
    from .datagen import is_heldout_voice
    for split in ("eval_clean", "eval_noisy"):
        r = eval_clips(sets[split], glue, sllm, g2p, inventory)
        seen = [c for c in sets[split] if not is_heldout_voice(c.meta["voice"])]
        unseen = [c for c in sets[split] if is_heldout_voice(c.meta["voice"])]
        r["seen_voices_wer"] = _sub_wer(r["_rows"], lambda row: not is_heldout_voice(row["voice"]))
        r["unseen_voices_wer"] = _sub_wer(r["_rows"], lambda row: is_heldout_voice(row["voice"]))
        r["seen_clips"], r["unseen_clips"] = len(seen), len(unseen)
        res[split] = r
    ents = [c for c in sets["eval_clean"] + sets["eval_noisy"] if c.meta.get("entities")][: args.entity_limit]
    res["entities_right_hint"] = strip_private(eval_clips(ents, glue, sllm, g2p, inventory, "right", peer=False))
    res["entities_distractor_hints"] = strip_private(eval_clips(ents, glue, sllm, g2p, inventory, "distractors", peer=False))
    res["eval_empty"] = eval_clips(sets["eval_empty"], glue, sllm, g2p, inventory)
    res["eval_empty"]["peer_non_empty"] = sum(1 for c in sets["eval_empty"] if normalize(c.meta.get("peer", "")))
    synth_guards = res["eval_clean"]["_guards"] + res["eval_noisy"]["_guards"]
    res["guard"] = guard_table([x["guard"] for x in res["real"]], synth_guards)
    if args.rows:
        with open(args.rows, "w") as f:
            for split in ("eval_clean", "eval_noisy", "eval_empty"):
                for row in res[split]["_rows"]:
                    f.write(json.dumps({"split": split, **row}) + "\n")
    real = res["real"][0]
    res["rtf_offline"] = (real["encoder_seconds"] + real["llm_seconds"]) / real["seconds"]
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["note_rss"] = "PyTorch evaluation process (fp32 LLM + Whisper decoder + data); not the runtime's figure"
    res["eval_seconds"] = time.time() - t_start
    print(json.dumps(strip_private(res), indent=1))


def _sub_wer(rows, pred):
    sel = [r for r in rows if pred(r)]
    n = sum(r["n"] for r in sel)
    return sum(r["wer_err"] for r in sel) / n if n else None


if __name__ == "__main__":
    main()
