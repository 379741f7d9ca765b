"""``nim4asr-edge export CHECKPOINT OUT_BUNDLE --quant int8,q4_k_m`` (needs the `export` extra)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a PyTorch training checkpoint to a model bundle (needs [export])")
    p.add_argument("checkpoint", help="checkpoint directory (docs/FORMAT.md)")
    p.add_argument("out_bundle", help="bundle directory to create")
    add_bundle_arguments(p, default_quant="int8,q8_0")
    p.set_defaults(func=run)


def add_bundle_arguments(p: argparse.ArgumentParser, default_quant: str) -> None:
    """What the bundle written by export or import ships, and how it is written."""
    p.add_argument("--quant", default=default_quant,
                   help="comma list of what to ship: encoder fp32,int8; LLM f32,f16,q8_0,q6_k,q5_k_m,q4_k_m,q4_0 "
                        f"(first LLM type = default; default: {default_quant})")
    p.add_argument("--name", help="bundle name (default: the directory name)")
    p.add_argument("--threads", type=int, default=2, help="threads for llama.cpp quantisation")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX-vs-PyTorch check")
    p.add_argument("--overwrite", action="store_true", help="replace the output directory if it exists")


def run(args: argparse.Namespace) -> int:
    from ..errors import require

    require("torch", "export")
    from nim4asr_export.exporter import ExportOptions, export_bundle

    options = ExportOptions(
        quant=args.quant, name=args.name, threads=args.threads, check=not args.no_check, overwrite=args.overwrite
    )
    export_bundle(args.checkpoint, args.out_bundle, options, progress=lambda m: print(m, file=sys.stderr, flush=True))
    return 0
