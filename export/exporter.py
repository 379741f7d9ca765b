"""Checkpoint -> model bundle: ONNX encoder (+ int8), GGUF LLM (+ llama.cpp quantisations), manifest."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nim4asr_edge.frontend import make_frontend
from nim4asr_edge.manifest import Manifest

from . import __version__
from .bundle_writer import ENCODER_PRECISIONS, LLM_TYPES, BundleWriter, Progress, parse_quant, split_quant
from .checkpoint import Checkpoint

__all__ = ["ExportOptions", "export_bundle", "parse_quant", "ENCODER_PRECISIONS", "LLM_TYPES"]


@dataclass(frozen=True)
class ExportOptions:
    # What the bundle ships. The encoder ships fp32 when no encoder precision is named; the LLM ships f16 when no
    # LLM type is named. The first LLM type named is the bundle's default (int8 is the encoder default if shipped).
    quant: tuple[str, ...] = ("int8", "q8_0")
    name: str | None = None  # bundle name (default: the output directory's name)
    threads: int = 2  # llama.cpp quantisation threads
    check: bool = True  # compare the ONNX encoder with PyTorch on a random input and record the figures
    streaming: bool = True  # also export the cache-carrying streaming encoder graph
    streaming_chunk_frames: int = 16  # encoder frames per streaming chunk (16 = 640 ms)
    streaming_left_chunks: int = 4  # chunks of left context kept in the streaming caches
    overwrite: bool = False  # replace an existing output directory

    def __post_init__(self) -> None:
        object.__setattr__(self, "quant", parse_quant(self.quant))


def export_bundle(
    checkpoint: str | Path, out_dir: str | Path, options: ExportOptions = ExportOptions(), progress: Progress = print
) -> Manifest:
    """Export ``checkpoint`` into the bundle directory ``out_dir`` (written to a temporary dir, then renamed)."""
    from .onnx_export import export_encoder_onnx, export_streaming_encoder_onnx, streaming_manifest_entry

    enc_wanted, llm_wanted = split_quant(options.quant)
    base_type = "f32" if "f32" in llm_wanted else "f16"
    # read, (fp32 ONNX, int8?) per graph kind, GGUF, one per extra LLM type, manifest
    graph_kinds = 2 if options.streaming else 1
    steps = 3 + graph_kinds * (1 + ("int8" in enc_wanted)) + len([q for q in llm_wanted if q != base_type])
    t0 = time.perf_counter()
    with BundleWriter(out_dir, steps, progress, options.overwrite) as w:
        w.say(f"reading checkpoint {checkpoint}")
        ckpt = Checkpoint.open(checkpoint)
        state = ckpt.load_weights()
        frontend = _frontend_spec(ckpt)
        checks: dict[str, Any] = {}
        model = ckpt.build_model(state, with_llm=False)
        check = (lambda path: _check_encoder(model, path)) if options.check else None
        enc_files = w.encoder_graphs("encoder", lambda p: export_encoder_onnx(model, p), enc_wanted, check, checks)
        streaming = None
        if options.streaming:
            chunk, left = options.streaming_chunk_frames, options.streaming_left_chunks
            stream_files = w.encoder_graphs(
                "encoder.stream", lambda p: export_streaming_encoder_onnx(model, p, chunk, left), enc_wanted)
            streaming = streaming_manifest_entry(model, chunk, left, stream_files)
            streaming["default"] = "int8" if "int8" in stream_files else "fp32"
        model = check = None  # free the encoder before the LLM is written

        llm_state = {k[len("llm."):]: v for k, v in state.items() if k.startswith("llm.")}
        del state
        llm_files, reports = w.llm_gguf(llm_state, ckpt.config.llm, ckpt.tokenizer_path, llm_wanted, options.threads)
        del llm_state
        return w.finish(
            name=options.name or Path(out_dir).name,
            source={"checkpoint_sha256": ckpt.sha256(), "exporter": f"nim4asr-export {__version__}"},
            frontend=frontend,
            encoder={
                "files": enc_files,
                "default": "int8" if "int8" in enc_files else "fp32",
                "frame_rate_hz": 25.0,
                "token_rate_hz": 25.0 / ckpt.config.adaptor.stack,
                "llm_hidden": ckpt.config.llm_hidden,
                "streaming": streaming,
            },
            phonemes={"inventory": ckpt.phonemes, "blank": 0, "word_boundary": "|",
                      "g2p": ckpt.frontend.get("g2p", "espeak-ng:en-us")},
            llm={
                "files": llm_files,
                "default": llm_wanted[0],
                "architecture": "qwen3",
                "n_embd": ckpt.config.llm_hidden,
                "quantization": reports,
            },
            prompt=ckpt.prompt,
            family="nim4",
            extra={"export_checks": checks, "export_seconds": round(time.perf_counter() - t0, 1)},
        )


def _frontend_spec(ckpt: Checkpoint) -> dict[str, Any]:
    spec = {k: v for k, v in ckpt.frontend.items() if k != "g2p"}
    if spec.get("type", "kaldi_fbank") == "kaldi_fbank":
        spec["cmvn"] = {"mean": ckpt.cmvn["mean"], "istd": ckpt.cmvn["istd"]}
    return make_frontend(spec).to_manifest()  # validates, and writes every parameter explicitly


def _check_encoder(model, onnx_path: Path, frames: int = 301) -> dict[str, float]:
    """ONNX vs PyTorch on one seeded random input: max abs diffs and phoneme argmax agreement."""
    import torch

    from nim4asr_edge.encoder import EncoderSession

    rng = np.random.default_rng(0)
    feats = rng.standard_normal((frames, model.cfg.encoder.n_mels)).astype(np.float32)
    with torch.no_grad():
        emb, _, lp, _ = model.forward_audio(torch.from_numpy(feats)[None], torch.tensor([frames]))
    with EncoderSession(onnx_path) as session:
        got = session.run(feats)
    emb, lp = emb[0].numpy(), lp[0].numpy()
    return {
        "frames": frames,
        "audio_embeds_max_abs_diff": float(np.abs(got.audio_embeds - emb).max()),
        "phoneme_logprobs_max_abs_diff": float(np.abs(got.phoneme_logprobs - lp).max()),
        "phoneme_argmax_agreement": float((got.phoneme_logprobs.argmax(1) == lp.argmax(1)).mean()),
    }
