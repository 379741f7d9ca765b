"""``nim4asr-edge info BUNDLE``"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show what a model bundle holds (and verify it)")
    p.add_argument("bundle", nargs="?", help="bundle directory (default: the bundle shipped with the SDK)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument("--no-verify", action="store_true", help="check sizes only, skip sha256")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bundle import Bundle

    bundle = Bundle.load(args.bundle, verify="size" if args.no_verify else "full")
    m = bundle.manifest
    if args.json:
        print(json.dumps(m.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"bundle    {m.name}  ({bundle.path})")
    print(f"family    {m.family}")
    print(f"created   {m.created}")
    for key, value in m.source.items():  # where the bundle came from: checkpoint hash, recipe, exporter, weights
        print(f"source    {key}: {str(value)[:100]}")
    print(f"frontend  {m.frontend['type']}, {m.frontend.get('num_mel_bins')} mels @ {m.frontend['sample_rate']} Hz")
    for section in ("encoder", "llm"):
        info = getattr(m, section)
        for key, name in info["files"].items():
            mark = "*" if key == info["default"] else " "
            print(f"{section:9s}{mark}{key:8s} {name}  {m.files[name].size / 1e6:.1f} MB")
    print(f"phonemes  {len(m.phonemes['inventory'])} symbols, g2p {m.phonemes.get('g2p', '-')}")
    mode = bundle.family.streaming_mode(m)
    if mode == "blocks":
        blocks = bundle.family.encoder_blocks(m)
        seconds = blocks.frames * m.frontend.get("hop_length", 160) / m.frontend["sample_rate"]
        print(f"streaming {seconds:g}-s encoder blocks: finished ones cached, the open one re-encoded")
    else:
        print(f"streaming {'cache-carrying encoder graph' if mode == 'cache' else 'windowed re-encoding'}")
    print("verified  " + ("sizes" if args.no_verify else "sha256 of every file"))
    return 0
