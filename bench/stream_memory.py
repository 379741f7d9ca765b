"""Resident memory of a recognizer that transcribes and then streams, per bundle, in fresh processes; JSON out.

    python bench/stream_memory.py --bundle /work/fullsize_cache/bundle --bundle /work/fullsize_ext [--rounds 2]
        [--out bench/results/stream_memory.json]
    python bench/stream_memory.py --external-copy /work/fullsize_cache/bundle /work/fullsize_ext  # make the 2nd

Each child loads a ``Recognizer`` (int8 encoder + Q4_K_M, 2 threads), transcribes 10 s of speech (jfk.wav repeated;
decoding forced to 3 tokens per second), then opens a stream (which loads the streaming encoder graph and a forked
LLM context) and feeds the same 10 s: the process's peak (VmHWM) and current (VmRSS) resident memory after each step,
and the load times. ``--external-copy SRC DST`` writes a copy of bundle SRC whose int8 encoder graphs keep their
weights in side files (what the exporter now writes for graphs above 64 MiB; every other file is a symlink), so an
existing bundle can be compared with its re-export without rebuilding it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from llm_overhead import finish, machine, spread

JFK = HERE.parent / "examples" / "audio" / "jfk.wav"


def _mem() -> dict:
    from nim4asr_edge import ProcessMemory

    m = ProcessMemory.now()
    return {"peak_gb": round(m.peak_rss_bytes / 1e9, 3), "rss_gb": round(m.rss_bytes / 1e9, 3)}


def child(bundle: str) -> dict:
    import numpy as np

    from nim4asr_edge import Recognizer, RecognizerOptions
    from nim4asr_edge.audio import load_audio
    from nim4asr_edge.bundle import Bundle

    t = time.perf_counter()
    rec = Recognizer(Bundle.load(bundle, verify="none"), RecognizerOptions(
        threads=2, encoder_precision="int8", llm_quant="q4_k_m", verify="none", max_tokens_per_second=3.0))
    out: dict = {"load_s": round(time.perf_counter() - t, 2), "after_load": _mem()}
    x = load_audio(str(JFK), 16000)
    x = np.tile(x, 2)[:160000]
    rec.engine.decoder.stop_ids = []
    rec.transcribe(x, sample_rate=16000)
    out["after_offline_10s"] = _mem()
    t = time.perf_counter()
    stream = rec.create_stream()
    out["stream_open_s"] = round(time.perf_counter() - t, 2)
    for i in range(0, len(x), 10240):
        stream.accept_waveform(16000, x[i : i + 10240])
    stream.input_finished()
    out["stream_events"] = len(list(stream.events(timeout=300)))
    stream.close()
    out["after_stream_10s"] = _mem()
    rec.close()
    return out


def external_copy(src: Path, dst: Path) -> None:
    import onnx

    from nim4asr_edge.bundle import Bundle
    from nim4asr_edge.manifest import FileEntry

    bundle = Bundle.load(src, verify="none")
    graphs = [bundle.manifest.encoder["files"]["int8"], bundle.manifest.encoder["streaming"]["files"]["int8"]]
    dst.mkdir(parents=True, exist_ok=True)
    files = dict(bundle.manifest.files)
    for name in os.listdir(src):
        if name not in graphs and name != "manifest.json" and not (dst / name).exists():
            os.symlink(src / name, dst / name)
    for g in graphs:
        onnx.save_model(onnx.load(str(src / g)), str(dst / g), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=f"{g}.data", size_threshold=1024)
        files[g], files[f"{g}.data"] = FileEntry.of(dst / g), FileEntry.of(dst / f"{g}.data")
    dataclasses.replace(bundle.manifest, files=files).write(dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--external-copy", nargs=2, type=Path, metavar=("SRC", "DST"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child)))
        return
    if a.external_copy:
        external_copy(*a.external_copy)
        return
    t0 = time.perf_counter()
    res: dict = {"benchmark": "bench/stream_memory.py", "argv": sys.argv[1:], "machine": machine(), "runs": {}}
    for _ in range(a.rounds):
        for b in a.bundle:  # alternating, a fresh process each
            p = subprocess.run([sys.executable, __file__, "--child", b], capture_output=True, text=True, check=True)
            res["runs"].setdefault(b, []).append(json.loads(p.stdout.strip().splitlines()[-1]))
    res["summary"] = {
        b: {key: spread([r[key] if key == "load_s" else r[key]["peak_gb"] for r in runs])
            for key in ("load_s", "after_load", "after_offline_10s", "after_stream_10s")}
        for b, runs in res["runs"].items()}
    finish(res, t0, a.out)


if __name__ == "__main__":
    main()
