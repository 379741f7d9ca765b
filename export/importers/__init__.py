"""Importers: a released open model's directory (as its hub publishes it) -> a model bundle.

Each family's importer is one module here with ``import_bundle(src, out, options, progress) -> Manifest``; this
registry maps ``nim4asr-edge import FAMILY`` names to them (imported on use: each needs the `export` extra).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from nim4asr_edge.errors import ExportError
from nim4asr_edge.manifest import Manifest

from ..bundle_writer import Progress, parse_quant

__all__ = ["IMPORTERS", "ImportOptions", "import_model"]

# family name on the command line -> module in this package
IMPORTERS: dict[str, str] = {
    "fun-asr-nano": "fun_asr_nano",
    "qwen3-asr": "qwen3_asr",
}


@dataclass(frozen=True)
class ImportOptions:
    # What the bundle ships (as for export): encoder fp32/int8, LLM f32/f16/q8_0/q4_k_m/...; the first LLM type is
    # the bundle's default. An importer may narrow this to what its model supports and says so in its docstring.
    quant: tuple[str, ...] = ("int8", "q4_k_m")
    name: str | None = None  # bundle name (default: the output directory's name)
    threads: int = 2  # llama.cpp quantisation threads
    check: bool = True  # compare the ONNX encoder with the PyTorch reference on a random input, record the figures
    overwrite: bool = False  # replace an existing output directory
    # qwen3-asr: the attention window, in whole seconds below the offline 8 s, that streaming partials run the encoder
    # graph with (through its attention_window input); 0: none (partials re-encode the open 8-s window)
    stream_window_s: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "quant", parse_quant(self.quant))


def import_model(family: str, src: str | Path, out: str | Path, options: ImportOptions = ImportOptions(),
                 progress: Progress = print) -> Manifest:
    """Import the released model directory ``src`` of ``family`` into the bundle directory ``out``."""
    module = IMPORTERS.get(family)
    if module is None:
        raise ExportError(f"unknown model family {family!r} to import; known: {', '.join(sorted(IMPORTERS))}")
    src = Path(src)
    if not src.is_dir():
        raise ExportError(f"{src} is not a directory: give the model directory as released (or --from-hub REPO_ID)")
    return importlib.import_module(f"{__name__}.{module}").import_bundle(src, Path(out), options, progress)
