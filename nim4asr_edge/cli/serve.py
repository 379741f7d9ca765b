"""``nim4asr-edge serve [BUNDLE]``: a local transcription server (needs the ``server`` extra)."""

from __future__ import annotations

import argparse
import os

from ..server.config import ServerConfig


def register(sub: argparse._SubParsersAction) -> None:
    d = ServerConfig()
    p = sub.add_parser("serve", help="serve a bundle over HTTP and WebSocket (OpenAI-compatible; [server] extra)")
    p.add_argument("bundle", nargs="?", metavar="BUNDLE",
                   help="model bundle directory (default: $NIM4ASR_BUNDLE or the bundle shipped with the SDK)")
    p.add_argument("--host", default=d.host,
                   help="address to bind (default: %(default)s); any non-loopback address needs --token")
    p.add_argument("--port", type=int, default=d.port, help="TCP port (default: %(default)s; 0: any free port)")
    p.add_argument("--token", default=os.environ.get("NIM4ASR_TOKEN"),
                   help="bearer token every request must carry (default: $NIM4ASR_TOKEN; none on loopback)")
    p.add_argument("--hotwords", help="hotword index directory or a list file searched for every request")
    p.add_argument("--hotword-namespace", help="search only this namespace of the hotword index (default: all)")
    p.add_argument("--contexts", type=int, default=d.contexts,
                   help="LLM contexts over the shared weights: requests recognised at once (default: %(default)s)")
    p.add_argument("--queue", type=int, default=d.queue,
                   help="requests that may wait for a context; more get 429 (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb,
                   help="largest upload in MiB (default: %(default)g)")
    p.add_argument("--max-audio-s", type=float, default=d.max_audio_s,
                   help="longest audio per request or live stream, seconds (default: %(default)g)")
    p.add_argument("--cors-origin", help="an origin allowed to call from a browser (default: CORS off)")
    p.add_argument("-t", "--threads", type=int, default=0, help="CPU threads per recognition (default: up to 8)")
    p.add_argument("--guard", choices=("on", "off"), default="on", help="the evidence guard (default: on)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # the settings are checked (a non-loopback host without a token exits 2) before anything is loaded
    config = ServerConfig(host=args.host, port=args.port, token=args.token or None, contexts=args.contexts,
                          queue=args.queue, max_upload_mb=args.max_upload_mb, max_audio_s=args.max_audio_s,
                          cors_origin=args.cors_origin)
    from ..options import RecognizerOptions
    from ..recognizer import Recognizer
    from ..server import serve
    from .transcribe import _hotwords

    options = RecognizerOptions(threads=args.threads, hotword_namespace=args.hotword_namespace,
                                guard="auto" if args.guard == "on" else "off")
    with Recognizer(args.bundle, options, hotwords=_hotwords(args.hotwords)) as rec:
        serve(rec, config)
    return 0
