"""``nim4asr-edge batch INPUT -o OUT``: a resumable, exactly-once batch job (local processes, or Ray with --ray)."""

from __future__ import annotations

import argparse
import json
import sys

from .transcribe import add_guard_arguments, withheld_style

EXIT_FAILED = 4  # the job finished but some files failed (listed in OUT/errors.jsonl)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="transcribe a directory, manifest or glob of audio files (resumable)",
                       description="Transcribe many files into OUT; running the same command again continues the "
                                   "job. Files that cannot be read are listed in OUT/errors.jsonl.")
    p.add_argument("input", metavar="INPUT",
                   help="a directory (scanned recursively), a manifest (one path per line, or JSON lines with "
                        "'audio' and optional 'name'), an audio file, or a glob pattern (quote it; ** recurses)")
    p.add_argument("-o", "--output-dir", required=True, metavar="OUT",
                   help="where outputs, transcripts.jsonl, errors.jsonl and the job's ledger go")
    p.add_argument("-m", "--bundle", "--model", dest="bundle",
                   help="model bundle directory (default: the bundle shipped with the SDK)")
    p.add_argument("-w", "--workers", type=int, default=1,
                   help="worker processes (or Ray actors), each with its own loaded bundle (default: 1)")
    p.add_argument("-t", "--threads", type=int, default=0,
                   help="threads per worker (default: the machine's cores divided by --workers, at least 1)")
    p.add_argument("-f", "--formats", default="txt,json",
                   help="per-file outputs, comma separated, from txt,json,srt,vtt (default: txt,json)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: join the cluster at ADDRESS, or start a local one when no address is given "
                        "(pip install 'nim4asr-edge[batch]')")
    p.add_argument("--encoder", choices=("fp32", "int8"), help="encoder precision (default: the bundle's)")
    p.add_argument("--llm", help="LLM quantisation, e.g. q8_0 (default: the bundle's)")
    p.add_argument("--hotwords", help="hotword index directory or a list file (one entry per line)")
    p.add_argument("--hint", action="append", default=[], help="a contextual hint for every file (repeatable)")
    p.add_argument("--language", help="force the output language, for models whose prompt has a form for it")
    add_guard_arguments(p)
    p.add_argument("--force", action="store_true",
                   help="start the job over when OUT holds a job with other inputs, bundle or options")
    p.add_argument("--retry-failed", action="store_true", help="try the files that failed in earlier runs again")
    p.add_argument("--max-failures", type=int, default=3,
                   help="times a file may be lost to a dying worker before it counts as failed (default: 3)")
    p.add_argument("--summary-json", action="store_true", help="print the run's figures as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..batch import BatchOptions, WorkerSpec, run_batch
    from ..errors import BatchError
    from ..options import RecognizerOptions

    if args.workers < 1 or args.threads < 0 or args.max_failures < 1:
        raise BatchError("--workers and --max-failures must be >= 1 and --threads >= 0")
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    options = RecognizerOptions(threads=args.threads, encoder_precision=args.encoder, llm_quant=args.llm,
                                language=args.language, guard="auto" if args.guard == "on" else "off")
    spec = WorkerSpec(bundle=args.bundle, options=options, hotwords=args.hotwords, hints=tuple(args.hint),
                      formats=formats, withheld=withheld_style(args))
    batch = BatchOptions(workers=args.workers, threads=args.threads, max_failures=args.max_failures,
                         force=args.force, retry_failed=args.retry_failed, ray=args.ray is not None,
                         ray_address=args.ray or None, progress=not args.no_progress)
    summary = run_batch(args.input, args.output_dir, spec, batch)
    print(f"nim4asr-edge batch: {summary.line()}", file=sys.stderr)
    if summary.failed:
        print(f"nim4asr-edge batch: {summary.failed} file(s) failed; see {summary.out_dir}/errors.jsonl "
              "(--retry-failed tries them again)", file=sys.stderr)
    if args.summary_json:
        print(json.dumps(summary.to_dict()))
    return EXIT_FAILED if summary.failed else 0
