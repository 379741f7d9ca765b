"""The ``nim4asr-edge`` command line: one module per subcommand, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from ..errors import Nim4AsrError

# Subcommand modules; each defines register(subparsers) which adds a parser whose default `func` runs it.
_COMMANDS = ("transcribe", "stream", "mic", "info", "export", "import_model", "hotwords", "serve", "batch")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="nim4asr-edge", description="Offline LLM speech recognition.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except Nim4AsrError as exc:
        print(f"nim4asr-edge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nim4asr-edge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
