"""The same mobile bundle on x86-64 and on aarch64 (qemu-user): transcripts and phoneme hypotheses compared.

    bash examples/mobile/arm64_setup.sh            # once: arm64 tree, aarch64 wheels, llama.cpp cross-built
    cd examples && python -m mobile.arm64_check --bundle /work/mobile_work/bundles/ref-en-mobile \
        --clips /work/mobile_work/clips [--quant q4_0] [--limit 8] --out mobile/results/arm64_check.json

Three runs of one worker (``--worker``), each writing per clip the LLM's token ids and text (evidence guard off,
so the LLM's own text is compared), the CTC phoneme hypothesis, and the encoder's outputs (``.npy``):

1. ``x86_64``: this Python, onnxruntime and llama-cpp-python as installed;
2. ``aarch64``: Debian's arm64 Python 3.11 run by ``qemu-aarch64 -cpu cortex-a76 -L TREE`` with the aarch64
   wheels of numpy/onnxruntime (same versions as here) and llama.cpp from the llama-cpp-python 0.3.36 sdist
   cross-compiled for ``armv8.2-a+dotprod`` (loaded through ``LLAMA_CPP_LIB_PATH``);
3. ``aarch64_fed``: the aarch64 run with the encoder replaced by the x86 encoder's saved outputs, so any
   difference left comes from llama.cpp alone.

Reported per clip: token-identical or not (first differing position), phonemes identical or not, max |diff| of the
audio embeddings and phoneme log-probs, CTC argmax agreement. Each side's kernel set is recorded (llama.cpp's
system info, onnxruntime's version). Wall time under emulation is recorded only as how long the check took: it is
not a speed. onnxruntime's CPU-topology probe reads /proc/cpuinfo, which qemu-user passes through from the x86
host (and which makes it crash); the tree gets an ARM Cortex-A76 /proc/cpuinfo that qemu's ``-L`` prefix serves.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RATE = 16000
WORK = Path(os.environ.get("MOBILE_WORK", "/work/mobile_work"))
ARM = WORK / "arm64"
QEMU_CPU = "cortex-a76"
_A76 = ("processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
        "asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: "
        "0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n")


def worker(bundle: str, quant: str | None, clips: list[Path], out: Path, feed: Path | None, threads: int) -> dict:
    """Transcribe ``clips`` and save what the comparison needs into ``out`` (runs on either architecture)."""
    import llama_cpp
    import onnxruntime

    from nim4asr_edge import Recognizer, RecognizerOptions, load_audio
    from nim4asr_edge.encoder import EncoderOutput

    out.mkdir(parents=True, exist_ok=True)
    rec = Recognizer(bundle, RecognizerOptions(threads=threads, llm_quant=quant, guard="off"))
    engine = rec.engine
    if feed is not None:  # decode the other architecture's encoder outputs: isolates llama.cpp's differences
        current: dict = {}
        engine.encoder.run = lambda *a, **k: current["out"]
    rows = []
    for path in clips:
        audio = load_audio(path, RATE)
        stem = path.stem
        if feed is not None:
            current["out"] = EncoderOutput(np.load(feed / f"{stem}.embeds.npy"), np.load(feed / f"{stem}.logprobs.npy"))
        else:
            enc = engine.encode(audio)
            np.save(out / f"{stem}.embeds.npy", enc.audio_embeds)
            np.save(out / f"{stem}.logprobs.npy", enc.phoneme_logprobs)
        res = rec.transcribe(audio, sample_rate=RATE)
        rows.append({"clip": path.name, "text": res.unguarded_text,
                     "tokens": [int(t) for s in res.segments for t in s.tokens],
                     "phonemes": [s.phonemes for s in res.segments]})
    rec.close()
    info = {"machine": platform.machine(), "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "llama_cpp_python": llama_cpp.__version__,
            "llama_system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
            "encoder_fed_from": str(feed) if feed else None, "rows": rows}
    (out / "result.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return info


def arm_env() -> tuple[list[str], dict[str, str]]:
    """The qemu command prefix and environment of the aarch64 Python (checks the setup script's outputs)."""
    root, site, lib = ARM / "root", ARM / "site", ARM / "llama-lib"
    for need in (root / "usr/bin/python3.11", site / "onnxruntime", lib / "libllama.so"):
        if not need.exists():
            raise SystemExit(f"{need} is missing: run bash examples/mobile/arm64_setup.sh first")
    cpuinfo = root / "proc" / "cpuinfo"
    cpuinfo.parent.mkdir(exist_ok=True)
    cpuinfo.write_text("".join(_A76.format(i=i) for i in range(os.cpu_count() or 1)))
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, QEMU_CPU=QEMU_CPU, LLAMA_CPP_LIB_PATH=str(lib), PYTHONNOUSERSITE="1",
               PYTHONPATH=os.pathsep.join([str(repo / "examples"), str(repo), str(site)]))
    return ["qemu-aarch64", "-L", str(root), str(root / "usr/bin/python3.11")], env


def compare(x86: dict, arm: dict, xdir: Path, adir: Path | None) -> list[dict]:
    """Per clip: token identity (first differing index), phoneme identity, encoder output differences."""
    res = []
    for a, b in zip(x86["rows"], arm["rows"]):
        first = next((i for i, (s, t) in enumerate(zip(a["tokens"], b["tokens"])) if s != t),
                     None if len(a["tokens"]) == len(b["tokens"]) else min(len(a["tokens"]), len(b["tokens"])))
        row = {"clip": a["clip"], "tokens_identical": a["tokens"] == b["tokens"], "first_token_diff": first,
               "phonemes_identical": a["phonemes"] == b["phonemes"], "x86_text": a["text"], "arm_text": b["text"]}
        if first is not None:
            row["x86_tokens_from_diff"], row["arm_tokens_from_diff"] = a["tokens"][first:first + 5], b["tokens"][first:first + 5]
        if not row["phonemes_identical"]:
            row["x86_phonemes"], row["arm_phonemes"] = a["phonemes"], b["phonemes"]
        if adir is not None:
            stem = Path(a["clip"]).stem
            e1, e2 = np.load(xdir / f"{stem}.embeds.npy"), np.load(adir / f"{stem}.embeds.npy")
            l1, l2 = np.load(xdir / f"{stem}.logprobs.npy"), np.load(adir / f"{stem}.logprobs.npy")
            row.update(embeds_max_abs_diff=float(np.abs(e1 - e2).max()), embeds_max_abs=float(np.abs(e1).max()),
                       logprobs_max_abs_diff=float(np.abs(l1 - l2).max()),
                       ctc_argmax_agreement=float((l1.argmax(-1) == l2.argmax(-1)).mean()))
        res.append(row)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--clips", type=Path, required=True, help="clip directory with clips.json (mobile.evaluate)")
    ap.add_argument("--quant", default=None)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=WORK / "arm64_check")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "arm64_check.json")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--feed", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    jfk = Path(__file__).resolve().parents[1] / "audio" / "jfk.wav"
    clips = [jfk] + [args.clips / c["file"] for c in json.loads((args.clips / "clips.json").read_text())[: args.limit]]
    if args.worker:
        worker(args.bundle, args.quant, clips, args.worker, args.feed, args.threads)
        return
    common = ["-m", "mobile.arm64_check", "--bundle", args.bundle, "--clips", str(args.clips), "--limit",
              str(args.limit), "--threads", str(args.threads)] + (["--quant", args.quant] if args.quant else [])
    x86_dir, arm_dir, fed_dir = args.work / "x86_64", args.work / "aarch64", args.work / "aarch64_fed"
    qemu, env = arm_env()
    t0 = time.time()
    load0 = os.getloadavg()
    subprocess.run([sys.executable, *common, "--worker", str(x86_dir)], check=True)
    timings = {"x86_64_wall_s": round(time.time() - t0, 1)}
    for name, d, extra in (("aarch64", arm_dir, []), ("aarch64_fed", fed_dir, ["--feed", str(x86_dir)])):
        t = time.time()
        subprocess.run([*qemu, *common, "--worker", str(d), *extra], check=True, env=env)
        timings[f"{name}_emulated_wall_s_not_a_speed"] = round(time.time() - t, 1)
    x86, arm, fed = (json.loads((d / "result.json").read_text()) for d in (x86_dir, arm_dir, fed_dir))
    per_clip = compare(x86, arm, x86_dir, arm_dir)
    per_clip_fed = compare(x86, fed, x86_dir, None)
    out = {
        "bundle": args.bundle, "quant": args.quant, "threads": args.threads, "qemu_cpu": QEMU_CPU,
        "sides": {k: {f: v[f] for f in ("machine", "python", "onnxruntime", "llama_cpp_python", "llama_system_info")}
                  for k, v in (("x86_64", x86), ("aarch64", arm))},
        "summary": {"clips": len(per_clip), "tokens_identical": sum(r["tokens_identical"] for r in per_clip),
                    "phonemes_identical": sum(r["phonemes_identical"] for r in per_clip),
                    "tokens_identical_with_x86_encoder_outputs": sum(r["tokens_identical"] for r in per_clip_fed)},
        "per_clip": per_clip, "per_clip_llm_only": per_clip_fed, "timing_note": "emulated: not a speed",
        "timings": timings, "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
