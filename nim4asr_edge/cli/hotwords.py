"""``nim4asr-edge hotwords``: build, add to, remove from, search and describe a hotword index directory."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import HotwordError

DEFAULT_G2P = "espeak-ng:en-us"


def register(subparsers) -> None:
    p = subparsers.add_parser("hotwords", help="manage a hotword store and its search index",
                              description="Manage a hotword store (SQLite) and its exact + HNSW search index.")
    sub = p.add_subparsers(dest="hotwords_command", required=True, metavar="ACTION")

    b = sub.add_parser("build", help="create an index directory from a txt/csv list")
    b.add_argument("list", help="hotword list: one per line, optional weight after a tab or a comma "
                                "(NIO House,2.5), '#' comments; or .csv with columns text,weight")
    b.add_argument("-o", "--output", required=True, help="new index directory")
    b.add_argument("--g2p", default=DEFAULT_G2P, help=f"G2P spec (default {DEFAULT_G2P})")
    b.add_argument("--namespace", default="default", help="namespace of the imported entries (default: default)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing index directory")
    b.set_defaults(func=_build)

    a = sub.add_parser("add", help="add hotwords (texts or --file) to an index")
    a.add_argument("index", help="index directory")
    a.add_argument("texts", nargs="*", help="hotwords to add")
    a.add_argument("--file", help="txt/csv list to import (the format of 'build')")
    a.add_argument("--namespace", default="default", help="namespace to add to (default: default)")
    a.set_defaults(func=_add)

    r = sub.add_parser("remove", help="remove hotwords by text")
    r.add_argument("index", help="index directory")
    r.add_argument("texts", nargs="+", help="hotwords to remove (exact stored text)")
    r.add_argument("--namespace", default="default", help="namespace to remove from (default: default)")
    r.set_defaults(func=_remove)

    s = sub.add_parser("search", help="phonemise TEXT and print the hotword hits as JSON")
    s.add_argument("index", help="index directory")
    s.add_argument("text", help="text to phonemise and search (as if it had been heard)")
    s.add_argument("-k", "--top-k", type=int, default=10, help="most hits to print (default 10)")
    s.add_argument("--namespace", default=None, help="search only this namespace (default: all)")
    s.add_argument("--exact-only", action="store_true", help="skip the approximate (HNSW) stage")
    s.set_defaults(func=_search)

    t = sub.add_parser("stats", help="print index statistics as JSON")
    t.add_argument("index", help="index directory")
    t.set_defaults(func=_stats)

    e = sub.add_parser("export", help="write the stored hotwords as a txt list")
    e.add_argument("index", help="index directory")
    e.add_argument("-o", "--output", required=True, help="txt list to write (text<TAB>weight per line)")
    e.add_argument("--namespace", default=None, help="export only this namespace (default: all)")
    e.set_defaults(func=_export)


def _report(report) -> None:
    for s in report.skipped:
        print(f"skipped line {s.line} {s.text!r}: {s.reason}", file=sys.stderr)
    print(report.summary(), file=sys.stderr)


def _build(args: argparse.Namespace) -> int:
    from ..hotwords import HotwordIndex, get_g2p

    g2p = get_g2p(args.g2p)
    inventory = _inventory_for(args.g2p)
    with HotwordIndex.build(args.list, args.output, g2p, inventory, namespace=args.namespace,
                            progress=sys.stderr.isatty(), overwrite=args.overwrite) as idx:
        _report(idx.import_report)
        if idx.import_report.added == 0:
            raise HotwordError(f"no usable hotword in {args.list} (see the skipped lines above)")
    return 0


def _inventory_for(spec: str) -> list[str]:
    from ..hotwords import ENGLISH_INVENTORY

    if spec.startswith("espeak-ng:en"):
        return list(ENGLISH_INVENTORY)
    raise HotwordError(f"no built-in phoneme inventory for G2P {spec!r}; build the index through the Python API "
                       "with the bundle's inventory")


def _add(args: argparse.Namespace) -> int:
    from ..hotwords import HotwordIndex

    if not args.texts and not args.file:
        raise HotwordError("nothing to add: give hotword texts or --file LIST")
    with HotwordIndex.open(args.index) as idx:
        if args.texts:
            _report(idx.add(args.texts, namespace=args.namespace))
        if args.file:
            _report(idx.add(args.file, namespace=args.namespace, progress=sys.stderr.isatty()))
    return 0


def _remove(args: argparse.Namespace) -> int:
    from ..hotwords import HotwordIndex

    with HotwordIndex.open(args.index) as idx:
        rep = idx.remove(args.texts, namespace=args.namespace)
    for m in rep.missing:
        print(f"not found in namespace {args.namespace!r}: {m!r}", file=sys.stderr)
    print(f"removed {rep.removed}", file=sys.stderr)
    return 1 if rep.missing else 0


def _search(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..hotwords import HotwordIndex, SearchOptions

    with HotwordIndex.open(args.index) as idx:
        opt = SearchOptions(approximate=False) if args.exact_only else None
        hits = idx.search_text(args.text, top_k=args.top_k, namespace=args.namespace, options=opt)
    print(json.dumps([asdict(h) for h in hits], ensure_ascii=False, indent=1))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from ..hotwords import HotwordIndex

    with HotwordIndex.open(args.index) as idx:
        print(json.dumps(idx.stats(), ensure_ascii=False, indent=1))
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..hotwords import HotwordIndex

    with HotwordIndex.open(args.index) as idx:
        n = idx.export(args.output, namespace=args.namespace)
    print(f"exported {n}", file=sys.stderr)
    return 0
