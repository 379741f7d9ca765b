"""``nim4asr-edge mic``: live recognition from the default microphone (needs the `mic` extra)."""

from __future__ import annotations

import argparse
import threading

from ..errors import require
from .stream import add_stream_arguments, make_stream, show_events


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mic", help="live recognition from the microphone (needs [mic]); Ctrl-C to stop")
    add_stream_arguments(p)
    p.add_argument("--device", help="input device name or index (default: the system default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sd = require("sounddevice", "mic")
    from ..errors import AudioError

    rec, stream = make_stream(args, live=True)
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    try:
        info = sd.query_devices(device, "input")
    except Exception as exc:  # PortAudio raises its own types
        raise AudioError(f"no usable input device ({exc}); list devices with: python -m sounddevice") from exc
    rate = int(info["default_samplerate"])

    def callback(indata, frames, time_info, status) -> None:  # PortAudio thread: only queue the audio
        stream.accept_waveform(rate, indata[:, 0].copy())

    consumer = threading.Thread(target=show_events, args=(stream, args), daemon=True)
    with rec, stream:
        consumer.start()
        print(f"listening on {info['name']} at {rate} Hz; Ctrl-C to stop", flush=True)
        try:
            with sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=device, callback=callback):
                threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            stream.input_finished()
            consumer.join()
    return 0
