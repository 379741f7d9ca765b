"""Writing a model bundle: the steps every exporter and importer shares.

A :class:`BundleWriter` builds the bundle in a temporary directory beside ``OUT`` and renames it into place only
when the manifest is written, so a failed or interrupted export leaves nothing half-written::

    with BundleWriter(out, steps=5, progress=print) as w:
        enc = w.encoder_graphs("encoder", lambda p: export_fp32(p), ("fp32", "int8"), check=my_check)
        llm, reports = w.llm_gguf(llm_state, llm_config, tokenizer_json, ("q8_0", "q4_k_m"), threads=2)
        manifest = w.finish(name=..., family=..., frontend=..., encoder={"files": enc, ...}, llm={...}, ...)
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from nim4asr_edge.errors import ExportError
from nim4asr_edge.manifest import FileEntry, Manifest

__all__ = ["BundleWriter", "ENCODER_PRECISIONS", "LLM_TYPES", "Progress", "parse_quant"]

ENCODER_PRECISIONS = ("fp32", "int8")
LLM_TYPES = ("f32", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")

Progress = Callable[[str], None]


def parse_quant(spec: str | Sequence[str]) -> tuple[str, ...]:
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


def split_quant(quant: Sequence[str]) -> tuple[list[str], list[str]]:
    """(encoder precisions, LLM types) of a parsed ``quant``: fp32 / f16 when none of a kind is named."""
    return ([q for q in quant if q in ENCODER_PRECISIONS] or ["fp32"], [q for q in quant if q in LLM_TYPES] or ["f16"])


class BundleWriter:
    """A bundle being written: a private work directory, numbered progress steps, the files it will hold."""

    def __init__(self, out: str | Path, steps: int, progress: Progress = print, overwrite: bool = False) -> None:
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise ExportError(f"{self.out} already exists; choose another directory or pass --overwrite")
        self.steps = steps
        self.progress = progress
        self.files: dict[str, Path] = {}
        self._step = 0
        self.work: Path | None = None

    def __enter__(self) -> "BundleWriter":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        self.work.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.work is not None and self.work.exists():  # finish() renamed it away on success
            shutil.rmtree(self.work, ignore_errors=True)

    def say(self, message: str) -> None:
        """Report the next numbered step."""
        self._step += 1
        self.progress(f"[{self._step}/{self.steps}] {message}")

    def add(self, name: str) -> None:
        """Ship ``work/name`` (an ONNX graph brings its external-data files along)."""
        from .onnx_export import graph_files

        path = self.work / name
        for p in graph_files(path) if path.suffix == ".onnx" else [path]:
            self.files[p.name] = p

    def encoder_graphs(self, stem: str, export_fp32: Callable[[Path], Path], precisions: Sequence[str],
                       check: Callable[[Path], dict] | None = None, checks: dict | None = None) -> dict[str, str]:
        """Export one encoder graph as fp32 and (if asked) int8; returns {precision: file}. ``check(path)`` figures
        (e.g. against PyTorch) go into ``checks[f"{stem}_{precision}"]``."""
        from .onnx_export import quantize_encoder_int8

        shipped: dict[str, str] = {}
        self.say(f"exporting {stem} to ONNX (fp32)")
        fp32 = export_fp32(self.work / f"{stem}.onnx")
        if check is not None and checks is not None:
            checks[f"{stem}_fp32"] = check(fp32)
        if "fp32" in precisions:
            shipped["fp32"] = fp32.name
        if "int8" in precisions:
            self.say(f"quantising {stem} to int8 (per-channel QInt8, MatMul/Gemm)")
            int8 = quantize_encoder_int8(fp32, self.work / f"{stem}.int8.onnx")
            if check is not None and checks is not None:
                checks[f"{stem}_int8"] = check(int8)
            shipped["int8"] = int8.name
        for name in shipped.values():
            self.add(name)
        return shipped

    def llm_gguf(self, state: dict[str, Any], config: dict[str, Any], tokenizer: str | Path, types: Sequence[str],
                 threads: int = 2, name: str = "nim4asr-llm") -> tuple[dict[str, str], dict[str, Any]]:
        """The LLM as GGUF (f32 or f16 first, then each llama.cpp quantisation); ({type: file}, reports)."""
        from .gguf_export import write_llm_gguf
        from .llama_quantize import quantize_gguf

        base_type = "f32" if "f32" in types else "f16"
        self.say(f"writing LLM GGUF ({base_type}) with its tokenizer")
        base = write_llm_gguf(state, config, tokenizer, self.work / f"llm.{base_type}.gguf", base_type, name=name)
        files: dict[str, str] = {}
        reports: dict[str, Any] = {}
        for q in types:
            if q == base_type:
                files[q] = base.name
                continue
            self.say(f"quantising LLM to {q} with llama.cpp")
            report = quantize_gguf(base, self.work / f"llm.{q}.gguf", q, n_threads=threads)
            reports[q] = report.to_dict()
            for fb in report.fallback_tensors:
                self.progress(f"    fallback: {fb}")
            files[q] = f"llm.{q}.gguf"
        if base_type not in types:
            base.unlink()
        for f in files.values():
            self.add(f)
        return files, reports

    def finish(self, **manifest: Any) -> Manifest:
        """Drop scratch files, hash the shipped ones, write ``manifest.json`` and move the bundle into place.
        ``manifest``: the :class:`Manifest` fields but ``files`` and ``created``."""
        for p in list(self.work.iterdir()):  # scratch left by the exporters
            if p.name not in self.files:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        self.say("hashing files and writing manifest.json")
        result = Manifest(
            created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            files={name: FileEntry.of(path) for name, path in self.files.items()},
            **manifest,
        )
        result.write(self.work)
        if self.out.exists():
            shutil.rmtree(self.out)
        self.work.rename(self.out)
        self.work = None
        self.progress(f"bundle written to {self.out} ({sum(f.size for f in result.files.values()) / 1e6:.1f} MB)")
        return result
