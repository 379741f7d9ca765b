"""``nim4asr-edge transcribe FILE...``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..formats import FORMATS, Withheld, format_result

EXIT_EMPTY = 3  # with --fail-if-empty: no file gave any text


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
    p.add_argument("--language", help="force the output language, for models whose prompt has a form for it")
    add_guard_arguments(p)
    p.add_argument("--fail-if-empty", action="store_true",
                   help=f"exit with status {EXIT_EMPTY} when no file gave any text (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_guard_arguments(p: argparse.ArgumentParser) -> None:
    """The evidence guard switches, shared by transcribe and stream."""
    p.add_argument("--guard", choices=("on", "off"), default="on",
                   help="the evidence guard: withhold text the audio does not support (default: on, where the "
                        "bundle has a calibrated guard)")
    p.add_argument("--show-withheld", action="store_true",
                   help="print withheld text, marked '[withheld CONFIDENCE]', instead of the placeholder")
    p.add_argument("--withheld-placeholder", default=Withheld.placeholder, metavar="TEXT",
                   help="what stands for a withheld segment in txt/srt/vtt; {confidence} is replaced "
                        "(default: %(default)r; '' hides it)")


def withheld_style(args: argparse.Namespace) -> Withheld:
    return Withheld(show_text=args.show_withheld, placeholder=args.withheld_placeholder)


def run(args: argparse.Namespace) -> int:
    from ..hotwords import open_hotwords
    from ..options import RecognizerOptions
    from ..recognizer import Recognizer

    options = RecognizerOptions(threads=args.threads, encoder_precision=args.encoder, llm_quant=args.llm,
                                hotword_namespace=args.hotword_namespace, language=args.language,
                                guard="auto" if args.guard == "on" else "off")
    style = withheld_style(args)
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    any_text = False
    with Recognizer(args.model, options, hotwords=open_hotwords(args.hotwords)) as rec:
        for file in args.files:
            result = rec.transcribe(file, hints=args.hint, progress=_progress_bar(file, args.no_progress))
            any_text = any_text or bool(result.text)
            text = format_result(result, args.format, style)
            if out_dir:
                target = out_dir / f"{Path(file).stem}.{args.format}"
                target.write_text(text, encoding="utf-8")
            else:
                if len(args.files) > 1 and args.format == "txt":
                    text = f"{file}: {text}"
                sys.stdout.write(text)
                sys.stdout.flush()
            print(summary(file, result, None if not out_dir else target), file=sys.stderr)
    return EXIT_EMPTY if args.fail_if_empty and not any_text else 0


def summary(file: str, result, written: Path | None) -> str:
    """One stderr line: what was recognised, what was withheld and why, where it went."""
    segs = result.segments
    withheld = [s for s in segs if s.withheld]
    spoken = [s for s in segs if s.text]
    parts = [f"{file}: {result.duration:.1f} s of audio, {len(segs)} segment{'s' * (len(segs) != 1)}",
             f"{len(spoken)} with text"]
    if withheld:
        lows = ", ".join(f"{s.confidence:.2f}" for s in withheld if s.confidence is not None)
        parts.append(f"{len(withheld)} withheld by the evidence guard (confidence {lows}; the model's text is not "
                     "supported by the phoneme evidence: --show-withheld prints it)")
    elif not spoken:
        parts.append("no speech recognised")
    parts.append(f"RTF {result.rtf:.2f}")
    if written is not None:
        parts.append(f"written to {written}")
    return "; ".join(parts)


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
