"""Checkpoint -> model bundle: ONNX encoder (+ int8), GGUF LLM (+ llama.cpp quantisations), manifest."""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nim4asr_edge.errors import ExportError
from nim4asr_edge.frontend import make_frontend
from nim4asr_edge.manifest import FileEntry, Manifest

from . import __version__
from .checkpoint import Checkpoint

__all__ = ["ExportOptions", "export_bundle", "parse_quant", "ENCODER_PRECISIONS", "LLM_TYPES"]

ENCODER_PRECISIONS = ("fp32", "int8")
LLM_TYPES = ("f32", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")

Progress = Callable[[str], None]


def parse_quant(spec: str | tuple[str, ...]) -> tuple[str, ...]:
    """Split ``"int8,q4_k_m"`` into known precision names (encoder and LLM kinds may be mixed)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = tuple(dict.fromkeys(s.strip().lower() for s in items if s.strip()))
    unknown = [n for n in names if n not in ENCODER_PRECISIONS + LLM_TYPES]
    if unknown:
        raise ExportError(
            f"unknown quantisation {', '.join(unknown)}; encoder: {', '.join(ENCODER_PRECISIONS)}; "
            f"LLM: {', '.join(LLM_TYPES)}"
        )
    return names


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
    from .gguf_export import write_llm_gguf
    from .llama_quantize import quantize_gguf
    from .onnx_export import (
        export_encoder_onnx,
        export_streaming_encoder_onnx,
        graph_files,
        quantize_encoder_int8,
        streaming_manifest_entry,
    )

    out = Path(out_dir)
    if out.exists() and not options.overwrite:
        raise ExportError(f"{out} already exists; choose another directory or pass --overwrite")
    enc_wanted = [q for q in options.quant if q in ENCODER_PRECISIONS] or ["fp32"]
    llm_wanted = [q for q in options.quant if q in LLM_TYPES] or ["f16"]
    base_type = "f32" if "f32" in llm_wanted else "f16"
    # read, (fp32 ONNX, int8?) per graph kind, GGUF, one per extra LLM type, manifest
    graph_kinds = 2 if options.streaming else 1
    steps = 3 + graph_kinds * (1 + ("int8" in enc_wanted)) + len([q for q in llm_wanted if q != base_type])
    step = iter(range(1, steps + 1))

    def say(msg: str) -> None:
        progress(f"[{next(step)}/{steps}] {msg}")

    t0 = time.perf_counter()
    say(f"reading checkpoint {checkpoint}")
    ckpt = Checkpoint.open(checkpoint)
    state = ckpt.load_weights()
    frontend = _frontend_spec(ckpt)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    work.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        files: dict[str, Path] = {}
        checks: dict[str, Any] = {}
        model = ckpt.build_model(state, with_llm=False)

        def encoder_graphs(stem: str, export_fp32: Callable[[Path], Path], check: bool) -> dict[str, str]:
            """Export one encoder graph kind as fp32 and (if asked) int8; returns {precision: file}."""
            shipped: dict[str, str] = {}
            say(f"exporting {stem} to ONNX (fp32)")
            fp32 = export_fp32(work / f"{stem}.onnx")
            if check and options.check:
                checks[f"{stem}_fp32"] = _check_encoder(model, fp32)
            if "fp32" in enc_wanted:
                shipped["fp32"] = fp32.name
            if "int8" in enc_wanted:
                say(f"quantising {stem} to int8 (per-channel QInt8, MatMul/Gemm)")
                int8 = quantize_encoder_int8(fp32, work / f"{stem}.int8.onnx")
                if check and options.check:
                    checks[f"{stem}_int8"] = _check_encoder(model, int8)
                shipped["int8"] = int8.name
            for name in shipped.values():
                files.update({p.name: p for p in graph_files(work / name)})
            return shipped

        enc_files = encoder_graphs("encoder", lambda p: export_encoder_onnx(model, p), check=True)
        streaming = None
        if options.streaming:
            chunk, left = options.streaming_chunk_frames, options.streaming_left_chunks
            stream_files = encoder_graphs(
                "encoder.stream", lambda p: export_streaming_encoder_onnx(model, p, chunk, left), check=False
            )
            streaming = streaming_manifest_entry(model, chunk, left, stream_files)
            streaming["default"] = "int8" if "int8" in stream_files else "fp32"
        model = None  # free the encoder before the LLM is written

        say(f"writing LLM GGUF ({base_type}) with its tokenizer")
        llm_state = {k[len("llm."):]: v for k, v in state.items() if k.startswith("llm.")}
        del state
        base = write_llm_gguf(llm_state, ckpt.config.llm, ckpt.tokenizer_path, work / f"llm.{base_type}.gguf", base_type)
        del llm_state
        llm_files: dict[str, str] = {}
        reports: dict[str, Any] = {}
        for q in llm_wanted:
            if q == base_type:
                llm_files[q] = base.name
                continue
            say(f"quantising LLM to {q} with llama.cpp")
            report = quantize_gguf(base, work / f"llm.{q}.gguf", q, n_threads=options.threads)
            reports[q] = report.to_dict()
            for fb in report.fallback_tensors:
                progress(f"    fallback: {fb}")
            llm_files[q] = f"llm.{q}.gguf"
        if base_type not in llm_wanted:
            base.unlink()
        for name in llm_files.values():
            files[name] = work / name
        for p in list(work.iterdir()):  # scratch left by the exporters
            if p.name not in files:
                shutil.rmtree(p) if p.is_dir() else p.unlink()

        say("hashing files and writing manifest.json")
        manifest = Manifest(
            name=options.name or out.name,
            created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
            files={name: FileEntry.of(path) for name, path in files.items()},
            extra={"export_checks": checks, "export_seconds": round(time.perf_counter() - t0, 1)},
        )
        manifest.write(work)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    progress(f"bundle written to {out} ({sum(f.size for f in manifest.files.values()) / 1e6:.1f} MB)")
    return manifest


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
