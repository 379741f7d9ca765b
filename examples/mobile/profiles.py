"""Run the full pipeline, offline and streaming, under device profiles; JSON plus a PNG chart per profile.

    cd examples && python -m mobile.profiles --bundle /work/mobile_work/bundles/ref-en-mobile \
        --clips /work/mobile_work/clips [--profiles low,mid,high] [--quant q4_0] [--out mobile/results]

Each profile runs in a fresh child process (``throttle.run_limited``): its memory budget is enforced by an RSS
watchdog that kills the run (``MemoryBudgetError``), its slower cores by a CPU quota. Speed of a phone core is an
assumption stated per profile (``core_speed``: the share of one core of this host that one phone core is taken to
equal); the quota is ``cores x core_speed`` host cores. Where that exceeds the host's cores it cannot be emulated:
the run gets every host core and the figures are pessimistic for that profile (the JSON says so). Threads are
``min(profile cores, host cores)``: on a 2-core host, 4 threads would measure oversubscription, not a 4-core phone.

Workload (the child): load the bundle; offline, transcribe every clip; streaming, feed jfk.wav and a stream of the
synthetic clips (1 s silence between) in 100-ms blocks at real time and time every event. Reported: load time, RTF,
offline final latency, time to first partial, partial latency p50/p95 (``StreamEvent.latency``: arrival of the
newest audio a partial covers -> the partial), final latency, peak RSS (anon/file split), CPU-seconds per
audio-second (host CPU), artifact size, and the host's load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .throttle import CpuLimit, MemoryBudgetError, run_limited

RATE = 16000
JFK = Path(__file__).resolve().parents[1] / "audio" / "jfk.wav"
PARTIAL_P95_TARGET_MS = 500.0
DEDICATED_SHARES = 1024 * 64  # cgroup weight of a profile run: the phone's cores are the app's, not shared


@dataclass(frozen=True)
class Profile:
    name: str
    cores: int  # phone CPU cores the app may use (the thread count an app would configure)
    memory_mb: float  # the app's memory budget (resident set)
    core_speed: float  # one phone core as a share of one host core (an assumption, see INTEGRATION.md)
    phone_class: str

    def host_plan(self, host_cores: int) -> dict:
        """What this host can emulate: threads, CPU quota in host cores, and whether the quota had to be capped."""
        want = self.cores * self.core_speed
        return {"threads": min(self.cores, host_cores), "quota_cores": round(min(want, host_cores), 3),
                "wanted_quota_cores": round(want, 3), "capped": want > host_cores,
                "oversubscribed_threads": self.cores > host_cores}


PROFILES = {
    "low": Profile("low", 2, 1536, 0.3, "entry-level: Cortex-A53/A55-class cores, 2-3 GB RAM (Android Go)"),
    "mid": Profile("mid", 4, 3072, 0.5, "mid-range: Cortex-A76/A78-class big cores, 4-6 GB RAM"),
    "high": Profile("high", 6, 6144, 0.8, "flagship: Cortex-X/A7x big cores or Apple A-series, 8-12 GB RAM"),
}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def _stream(rec, samples, block_ms: int = 100) -> dict:
    """Feed ``samples`` at real time; every event with its arrival (seconds since the first block)."""
    import numpy as np

    block = RATE * block_ms // 1000
    got: list[dict] = []
    with rec.create_stream() as stream:
        t0 = time.perf_counter()

        def feed() -> None:
            for i in range(0, len(samples), block):
                delay = t0 + i / RATE - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                stream.accept_waveform(RATE, np.asarray(samples[i : i + block], np.float32))
            stream.input_finished()

        producer = threading.Thread(target=feed)
        producer.start()
        for e in stream.events(timeout=600):
            got.append({"kind": e.kind, "at": time.perf_counter() - t0, "latency": e.latency, "end": e.end,
                        "text": e.text})
        producer.join()
    return {"audio_s": len(samples) / RATE, "events": got}


def child(spec: dict) -> dict:
    """The profiled workload (runs in the limited child process)."""
    import numpy as np

    from nim4asr_edge import Recognizer, RecognizerOptions, load_audio
    from nim4asr_edge.encoder import EncoderOptions

    t0 = time.perf_counter()
    lean = {"encoder": EncoderOptions(prepack_weights=False)} if spec.get("lean") else {}  # no pre-packed copies
    rec = Recognizer(spec["bundle"], RecognizerOptions(threads=spec["threads"], llm_quant=spec["quant"], **lean))
    load_s = time.perf_counter() - t0
    clips = [str(JFK)] + [str(Path(spec["clips"]) / c["file"]) for c in spec["clip_index"]]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    offline, audio_s = [], 0.0
    for path in clips:
        audio = load_audio(path, RATE)
        t = time.perf_counter()
        res = rec.transcribe(audio, sample_rate=RATE)
        offline.append({"clip": Path(path).name, "audio_s": res.duration, "final_latency_s": time.perf_counter() - t,
                        "text": res.text})
        audio_s += res.duration
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    gap = np.zeros(RATE, np.float32)
    synth = np.concatenate([x for p in clips[1:] for x in (load_audio(p, RATE), gap)]) if len(clips) > 1 else None
    streams = [_stream(rec, load_audio(str(JFK), RATE))] + ([_stream(rec, synth)] if synth is not None else [])
    ru2 = resource.getrusage(resource.RUSAGE_SELF)
    rec.close()
    cpu = lambda a, b: (b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)
    stream_audio = sum(s["audio_s"] for s in streams)
    partials = [e for s in streams for e in s["events"] if e["kind"] == "partial"]
    finals = [e for s in streams for e in s["events"] if e["kind"] == "final"]
    firsts = [next((e["at"] for e in s["events"] if e["kind"] == "partial"), None) for s in streams]
    lat = [1000 * e["latency"] for e in partials]
    return {
        "load_s": round(load_s, 3),
        "offline": {"audio_s": round(audio_s, 2), "rtf": round(sum(o["final_latency_s"] for o in offline) / audio_s, 4),
                    "final_latency_s": {o["clip"]: round(o["final_latency_s"], 3) for o in offline},
                    "cpu_s_per_audio_s": round(cpu(ru0, ru1) / audio_s, 4),
                    "texts": {o["clip"]: o["text"] for o in offline}},
        "streaming": {"audio_s": round(stream_audio, 2), "partials": len(partials), "finals": len(finals),
                      "time_to_first_partial_s": [round(f, 3) if f is not None else None for f in firsts],
                      "partial_latency_ms": {"p50": _pct(lat, 0.5), "p95": _pct(lat, 0.95), "max": max(lat, default=None)},
                      "final_latency_ms": [round(1000 * e["latency"], 1) for e in finals],
                      "cpu_s_per_audio_s": round(cpu(ru1, ru2) / stream_audio, 4),
                      "final_texts": [e["text"] for e in finals]},
    }


def run_profile(profile: Profile, bundle: str, quant: str | None, clips: str | None, clip_limit: int = 8,
                timeout_s: float = 1800, force_duty_cycle: bool = False, shares: int = DEDICATED_SHARES,
                lean: bool = False) -> dict:
    """One profile: the child workload under the profile's limits, measured from outside; raises
    ``MemoryBudgetError`` when the run went over its budget. ``shares``: the child's cgroup CPU weight (default:
    high, so other load on the host cannot take the profile's quota; 0 = an ordinary process's)."""
    from nim4asr_edge.bundle import Bundle

    host = os.cpu_count() or 1
    plan = profile.host_plan(host)
    b = Bundle.load(bundle, verify="size")
    quant = quant or b.manifest.llm["default"]
    index = json.loads((Path(clips) / "clips.json").read_text())[:clip_limit] if clips else []
    spec = {"bundle": bundle, "quant": quant, "threads": plan["threads"], "clips": clips, "clip_index": index,
            "lean": lean}
    sizes = {n: e.size for n, e in b.manifest.files.items()}
    artifact = sum(v for n, v in sizes.items() if not n.endswith(".config") and not n.startswith("llm.")
                   and n not in b.manifest.llm["files"].values()) + sizes[b.manifest.llm["files"][quant]]
    path = os.pathsep.join(x for x in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")) if x)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=path)
    load0 = os.getloadavg()
    run = run_limited([sys.executable, "-m", "mobile.profiles", "--child", json.dumps(spec)], profile.memory_mb,
                      CpuLimit(plan["quota_cores"], plan["threads"], shares), timeout_s, env, force_duty_cycle)
    if run.returncode != 0:
        raise RuntimeError(f"profile {profile.name} child failed ({run.returncode}):\n{run.stderr[-3000:]}")
    work = json.loads(run.stdout.strip().splitlines()[-1])
    return {
        "profile": asdict(profile), "host_plan": plan, "cpu_method": run.cpu_method, "cpu_shares": shares,
        "encoder_prepack": not lean,
        "bundle": b.manifest.name,
        "bundle_path": bundle, "quant": quant, "artifact_bytes": artifact, "host_cores": host,
        "memory": {"budget_mb": profile.memory_mb, "peak_rss_mb": run.peak_rss_mb,
                   "peak_rss_anon_mb": run.peak_rss_anon_mb, "peak_rss_file_mb": run.peak_rss_file_mb,
                   "vm_hwm_mb": run.hwm_mb, "within_budget": run.hwm_mb <= profile.memory_mb},
        "child_cpu_s": round(run.cpu_s, 2), "wall_s": round(run.wall_s, 1),
        "cpu_obtained_cores": round(run.cpu_s / run.wall_s, 3),  # below quota_cores: other load took the rest
        **work,
        "targets": {"partial_p95_ms": PARTIAL_P95_TARGET_MS,
                    "partial_p95_met": (work["streaming"]["partial_latency_ms"]["p95"] or 1e9) <= PARTIAL_P95_TARGET_MS},
        "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "rss_trace": run.rss_trace,
    }


def chart(result: dict, path: Path) -> Path:
    """PNG: resident set over the run against the budget, and the latency figures against the 500-ms target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    t = [x for x, _ in result["rss_trace"]]
    a.plot(t, [y for _, y in result["rss_trace"]], label="resident set")
    a.axhline(result["memory"]["budget_mb"], color="red", linestyle="--", label="budget")
    a.set_xlabel("seconds since start")
    a.set_ylabel("MB")
    a.set_ylim(0, result["memory"]["budget_mb"] * 1.1)
    a.set_title(f"memory: peak {result['memory']['peak_rss_mb']:.0f} MB of {result['memory']['budget_mb']:.0f} MB")
    a.legend(loc="lower right")
    s, o = result["streaming"], result["offline"]
    finals = s["final_latency_ms"]
    bars = {"partial p50": s["partial_latency_ms"]["p50"], "partial p95": s["partial_latency_ms"]["p95"],
            "final (mean)": statistics.mean(finals) if finals else None,
            "first partial\n(from start)": 1000 * s["time_to_first_partial_s"][0] if s["time_to_first_partial_s"][0]
            else None, "offline jfk\n(11 s clip)": 1000 * o["final_latency_s"]["jfk.wav"]}
    names = [k for k, v in bars.items() if v is not None]
    b.bar(names, [bars[k] for k in names], color="tab:blue")
    for i, k in enumerate(names):
        b.text(i, bars[k], f"{bars[k]:.0f}", ha="center", va="bottom", fontsize=9)
    b.axhline(PARTIAL_P95_TARGET_MS, color="red", linestyle="--", label="500 ms partial p95 target")
    b.set_ylabel("ms")
    b.legend(loc="upper left")
    plan = result["host_plan"]
    b.set_title(f"RTF {o['rtf']:.2f} offline; CPU-s/audio-s {o['cpu_s_per_audio_s']:.2f} offline, "
                f"{s['cpu_s_per_audio_s']:.2f} streaming", fontsize=9)
    fig.suptitle(f"{result['bundle']} ({result['quant']}, {result['artifact_bytes'] / 1e6:.0f} MB) on profile "
                 f"'{result['profile']['name']}': {plan['threads']} threads, {plan['quota_cores']} host cores "
                 f"({result['cpu_method']}){' CAPPED' if plan['capped'] else ''}, obtained "
                 f"{result.get('cpu_obtained_cores', result['child_cpu_s'] / result['wall_s']):.2f}; load "
                 f"{result['loadavg_before'][0]:.1f}->{result['loadavg_after'][0]:.1f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--bundle")
    ap.add_argument("--clips", default=None, help="clip directory with clips.json (mobile.evaluate --clips-out)")
    ap.add_argument("--clip-limit", type=int, default=8)
    ap.add_argument("--profiles", default="low,mid,high")
    ap.add_argument("--quant", default=None)
    ap.add_argument("--tag", default="", help="suffix of the result files (e.g. _fullsize)")
    ap.add_argument("--lean", action="store_true", help="encoder without pre-packed weight copies (less memory)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--replot", action="store_true", help="only redraw the PNGs of the JSON files in --out")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child)), ensure_ascii=False))
        return
    if args.replot:  # redraw the charts of existing result files
        for path in sorted(args.out.glob("profile_*.json")):
            result = json.loads(path.read_text())
            if "failed" not in result:
                chart(result, path.with_suffix(".png"))
        return
    if not args.bundle:
        ap.error("--bundle is required")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.profiles.split(","):
        try:
            result = run_profile(PROFILES[name], args.bundle, args.quant, args.clips, args.clip_limit,
                                 lean=args.lean)
        except MemoryBudgetError as exc:
            result = {"profile": asdict(PROFILES[name]), "bundle_path": args.bundle, "failed": str(exc)}
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
        stem = f"profile_{name}{args.tag}"
        (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        if "failed" not in result:
            chart(result, args.out / f"{stem}.png")
            print(f"{name}: rtf {result['offline']['rtf']}, partial p95 "
                  f"{result['streaming']['partial_latency_ms']['p95']} ms, peak {result['memory']['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
