"""``nim4asr-edge transcribe FILE...``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..formats import FORMATS, format_result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files offline")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (wav, flac, ogg, mp3)")
    p.add_argument("-m", "--model", help="model bundle directory (default: the bundle shipped with the SDK)")
    p.add_argument("-f", "--format", choices=FORMATS, default="txt", help="output format (default: txt)")
    p.add_argument("-o", "--output-dir", help="write FILE.<format> here instead of printing to stdout")
    p.add_argument("-t", "--threads", type=int, default=0, help="CPU threads (default: up to 8 cores)")
    p.add_argument("--encoder", choices=("fp32", "int8"), help="encoder precision (default: the bundle's)")
    p.add_argument("--llm", help="LLM quantisation, e.g. q8_0, q4_k_m (default: the bundle's)")
    p.add_argument("--hotwords", help="hotword index directory or a list file (one entry per line)")
    p.add_argument("--hotword-namespace", help="search only this namespace of the hotword index (default: all)")
    p.add_argument("--hint", action="append", default=[], help="a contextual hint for the LLM (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _hotwords(spec: str | None):
    if not spec:
        return None
    from ..errors import HotwordError
    from ..hotwords import HotwordIndex

    path = Path(spec)
    if path.is_dir():
        return HotwordIndex.open(path)
    if path.is_file():  # parsed like `hotwords build` lists: optional weights, comments, skipped lines reported
        return path
    raise HotwordError(f"--hotwords {spec}: neither an index directory nor a list file")


def run(args: argparse.Namespace) -> int:
    from ..options import RecognizerOptions
    from ..recognizer import Recognizer

    options = RecognizerOptions(threads=args.threads, encoder_precision=args.encoder, llm_quant=args.llm,
                                hotword_namespace=args.hotword_namespace)
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    with Recognizer(args.model, options, hotwords=_hotwords(args.hotwords)) as rec:
        for file in args.files:
            result = rec.transcribe(file, hints=args.hint, progress=_progress_bar(file, args.no_progress))
            text = format_result(result, args.format)
            for seg in result.segments:
                if seg.withheld:  # the guard's decision is visible, never silent (the text stays off stdout)
                    print(f"{file} {seg.start:.1f}-{seg.end:.1f} s: withheld (confidence {seg.confidence:.2f}): the "
                          f"model's text is not supported by the phoneme evidence", file=sys.stderr)
            if out_dir:
                (out_dir / f"{Path(file).stem}.{args.format}").write_text(text, encoding="utf-8")
            else:
                if len(args.files) > 1 and args.format == "txt":
                    text = f"{file}: {text}"
                sys.stdout.write(text)
                sys.stdout.flush()
    return 0


def _progress_bar(name: str, disabled: bool):
    """A tqdm bar in seconds of audio, shown for files longer than one segment."""
    if disabled or not sys.stderr.isatty():
        return None
    state: dict = {}

    def update(done: float, total: float) -> None:
        if total <= 30.0:
            return
        if "bar" not in state:
            from tqdm import tqdm

            state["bar"] = tqdm(total=round(total, 1), unit="s", desc=Path(name).name, leave=False)
        bar = state["bar"]
        bar.update(round(done, 1) - bar.n)
        if done >= total:
            bar.close()

    return update
