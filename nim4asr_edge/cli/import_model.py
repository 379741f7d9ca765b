"""``nim4asr-edge import FAMILY SRC OUT`` / ``import FAMILY OUT --from-hub REPO_ID``: a released open model's
directory to a bundle (needs the `export` extra; ``--from-hub`` also the `hub` extra)."""

from __future__ import annotations

import argparse
import sys

from .export import add_bundle_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a released open model (fun-asr-nano, qwen3-asr) into a bundle "
                                      "(needs [export])")
    p.add_argument("family", help="model family: fun-asr-nano | qwen3-asr")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="the model directory as released and the bundle directory to create (OUT alone with "
                        "--from-hub)")
    p.add_argument("--from-hub", metavar="REPO_ID", help="download the model from the Hugging Face hub first "
                                                        "(needs [hub] and a network)")
    p.add_argument("--stream-window", type=int, default=2, metavar="SECONDS",
                   help="qwen3-asr: the encoder's attention window for streaming partials, SECONDS from 1 to 7; 0: "
                        "the offline 8 s (default 2)")
    add_bundle_arguments(p, default_quant="int8,q4_k_m")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ExportError, require

    want = 1 if args.from_hub else 2
    if len(args.paths) != want:
        raise ExportError("give SRC and OUT" if want == 2 else "with --from-hub give only OUT (the bundle to create)")
    require("torch", "export")
    from nim4asr_export.importers import ImportOptions, import_model

    if args.from_hub:
        from nim4asr_export.importers.hub import fetch_model_dir

        src = fetch_model_dir(args.from_hub)
    else:
        src = args.paths[0]
    options = ImportOptions(quant=args.quant, name=args.name, threads=args.threads, check=not args.no_check,
                            overwrite=args.overwrite, stream_window_s=args.stream_window)
    import_model(args.family, src, args.paths[-1], options, progress=lambda m: print(m, file=sys.stderr, flush=True))
    return 0
