"""Render bench/fullsize.py's JSON as the README's Markdown results table.

    python bench/fullsize_table.py fullsize.json > table.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _f(x, fmt="{:.2f}"):
    return "n/a" if x is None else fmt.format(x)


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _met(t: dict | None) -> str:
    if not t:
        return ""
    return "**met**" if t.get("met") else "**missed**"


def render(r: dict) -> str:
    m = r["machine"]
    tg = r.get("targets", {})
    rows: list[tuple[str, str, str, str]] = []  # figure, ours, baseline / ratio, target

    def add(name, ours, base="", target=""):
        rows.append((name, ours, base, target))

    ld = r.get("load", {})
    if ld:
        add("load, cold / warm, mmap on (s)", f"{_f(ld['cold_mmap'].get('load_s'))} / {_f(ld['warm_mmap'].get('load_s'))}")
        add("load, cold / warm, mmap off (s)",
            f"{_f(ld['cold_nommap'].get('load_s'))} / {_f(ld['warm_nommap'].get('load_s'))}")
    e2e = r.get("e2e", {})
    if e2e:
        on, off = e2e.get("int8_q4_k_m_mmap", {}), e2e.get("int8_q4_k_m_nommap", {})
        t = tg.get("peak_rss_le_1.8_GB")
        add("peak RSS, load + 5/10/30 s, mmap on / off (GB)",
            f"{_f(on.get('peak_rss_gb'))} / {_f(off.get('peak_rss_gb'))}",
            f"load only: {_f(ld.get('warm_mmap', {}).get('peak_rss_gb'))} / "
            f"{_f(ld.get('warm_nommap', {}).get('peak_rss_gb'))}" if ld else "", f"≤ 1.8 GB: {_met(t)}")
    for key, label in (("mmap", "mmap on"), ("nommap", "mmap off"), ("mmap_kv_q8_0", "mmap on, KV cache q8_0")):
        mem = r.get("memory", {}).get(key)
        if not mem or "error" in mem or "recognizer_loaded" not in mem:
            continue
        parts = [v for k, v in mem.items() if k.startswith("llm_model_and_context")]
        add(f"peak RSS, Recognizer load + 10 s transcription, {label} (GB)", _f(mem["peak_rss_gb"]),
            f"int8 encoder alone {_f(mem['encoder_session_int8_alone']['rss_gb'])}, Q4_K_M + context alone "
            f"{_f(parts[0]['rss_gb']) if parts else '?'}; files {mem['weights_on_disk_gb']['encoder_int8']:.2f} + "
            f"{mem['weights_on_disk_gb']['llm_q4_k_m']:.2f} GB", f"≤ 1.8 GB: {_met({'met': mem['peak_rss_gb'] <= 1.8})}")
    enc = r.get("encoder", {})
    if enc:
        for p in ("fp32", "int8"):
            e = enc[p]
            add(f"encoder {p}, s per s of audio", _f(e["s_per_audio_s"], "{:.3f}"),
                f"bare ORT {_f(e['bare_s_per_audio_s'], '{:.3f}')} (ours/bare time {_f(e['ours_over_bare_time'], '{:.3f}')})")
        if enc.get("int8_bare_no_spinning_s_per_audio_s"):
            add("encoder int8, bare ORT with intra-op spinning off, s per s of audio",
                _f(enc["int8_bare_no_spinning_s_per_audio_s"], "{:.3f}"), "(the SDK default since: EncoderOptions.allow_spinning=False)")
        add("encoder int8 speed-up over fp32", f"{_f(enc['int8_speedup_vs_fp32'])}x", "",
            f"≥ 1.5x: {_met(tg.get('int8_encoder_ge_1.5x_fp32'))}")
        add("phoneme-CTC argmax agreement int8 vs fp32 (jfk.wav)", _pct(enc["phoneme_argmax_agreement_int8_vs_fp32"]),
            "", f"≥ 99 %: {_met(tg.get('int8_argmax_agreement_ge_99pct'))}")
    for q, row in r.get("llm", {}).items():
        if "error" in row:
            add(f"LLM {q}", f"error: {row['error']}")
            continue
        tp = tg.get("prefill_ge_95pct_of_raw") if q == "q4_k_m" else None
        td = tg.get("decode_ge_95pct_of_raw") if q == "q4_k_m" else None
        add(f"{q}: audio-embedding prefill ({row['prefill_tokens']} tok), tok/s", _f(row["ours_prefill_tok_s"], "{:.1f}"),
            f"raw llama.cpp {_f(row['raw_prefill_tok_s'], '{:.1f}')} (ours {_pct(row['prefill_ours_over_raw'])})",
            f"≥ 95 %: {_met(tp)}" if tp else "")
        add(f"{q}: decode, tok/s", _f(row["ours_decode_tok_s"], "{:.1f}"),
            f"raw llama.cpp {_f(row['raw_decode_tok_s'], '{:.1f}')} (ours {_pct(row['decode_ours_over_raw'])})",
            f"≥ 95 %: {_met(td)}" if td else "")
        c = r.get("ceiling", {}).get(q)
        if c:
            add(f"{q}: decode vs bandwidth ceiling", _pct(c["fraction_of_ceiling"]),
                f"{r['bandwidth']['ceiling_GBps']} GB/s ÷ {c['bytes_per_token'] / 1e9:.2f} GB/token = "
                f"{c['ceiling_tok_s']:.1f} tok/s")
    if e2e:
        vs = e2e.get("int8_q4_k_m_vs_raw", {})
        for cfg, label in (("int8_q4_k_m_mmap", "int8 + Q4_K_M"), ("fp32_q8_0_mmap", "fp32 + Q8_0")):
            row = e2e.get(cfg, {})
            if "error" in row or not row:
                continue
            for d in ("5s", "10s", "30s"):
                x = row.get(d)
                if not x:
                    continue
                base = ""
                target = ""
                if cfg == "int8_q4_k_m_mmap":
                    y = vs.get(d, {})
                    if y.get("ours_over_raw_time"):
                        base = f"raw stack RTF {_f(y['raw_rtf'], '{:.3f}')} (ours/raw time {_f(y['ours_over_raw_time'], '{:.3f}')}, same process)"
                    target = f"≤ 0.5: {'**met**' if x['rtf'] <= 0.5 else '**missed**'}"
                add(f"end-to-end RTF {d}, {label}, {x['generated_tokens']} tokens", _f(x["rtf"], "{:.3f}"), base, target)
    s = r.get("streaming")
    if s and "error" not in s:
        o, w = s["ours"], s["raw"]
        add(f"streaming, per {s['chunk_ms']} ms chunk (mean over {s['chunks']} chunks of {s['stream_s']:.0f} s), ms",
            f"{_f(o['chunk_total_ms_mean'], '{:.0f}')} (p90 {_f(o['chunk_total_ms_p90'], '{:.0f}')})",
            f"raw {_f(w['chunk_total_ms_mean'], '{:.0f}')} (ours/raw {_f(s['ours_over_raw_time'], '{:.3f}')})",
            f"real time if < {s['chunk_ms']}")
        add("streaming chunk: encoder step / LLM append / partial decode (median ms)",
            f"{o['encoder_step_ms']:.0f} / {o['llm_append_ms']:.0f} / {o['partial_decode_ms']:.0f}",
            f"raw {w['encoder_step_ms']:.0f} / {w['llm_append_ms']:.0f} / {w['partial_decode_ms']:.0f}")
    sw = r.get("sweep")
    if sw:
        for name, row in sw.get("configs", {}).items():
            if name.startswith("baseline"):
                continue
            if "error" in row:
                add(f"option {name}", "error", row["error"][:80])
                continue
            add(f"option {name}: prefill / decode vs default", f"{_f(row['prefill_vs_baseline'])} / {_f(row['decode_vs_baseline'])}",
                f"{row['prefill_tok_s']:.1f} / {row['decode_tok_s']:.1f} tok/s")
        omp = sw.get("omp_wait_policy", {})
        spin = omp.get("ACTIVE") or omp.get("unset")  # "unset" in runs before the SDK defaulted to PASSIVE
        if spin and omp.get("PASSIVE") and "error" not in spin:
            u, p = spin, omp["PASSIVE"]
            add("OpenMP wait policy: decode tok/s at 1 / 2 threads, spinning (ACTIVE)",
                f"{_f(u['threads=1']['decode_tok_s'])} / {_f(u['threads=2']['decode_tok_s'])}",
                f"OMP_WAIT_POLICY=PASSIVE: {_f(p['threads=1']['decode_tok_s'])} / {_f(p['threads=2']['decode_tok_s'])}")
        eb = sw.get("extra_buffers_on", {})
        if eb:
            add("option extra_buffers=True (AMX repack)", eb.get("error") or f"decode {eb.get('decode_tok_s')} tok/s")
        g = sw.get("gpu", {})
        if g:
            add("GPU offload", "none on this machine",
                f"llama.cpp GPU offload: {g.get('llama_supports_gpu_offload')}; ORT providers used: "
                f"{', '.join(g.get('encoder_used_providers', []))}")

    head = (f"Machine: {m['cpu']}, {m['cores']} cores ({m['threads_used']} threads used), {m['memory_gb']} GB RAM, "
            f"no GPU; shared (load average {m['loadavg_at_start'][0]} at start, {m.get('loadavg_at_end', ['?'])[0]} "
            f"at end). Date: {r['date']}. llama-cpp-python {m['llama_cpp_python']}, onnxruntime {m['onnxruntime']}. "
            f"Random weights, exact full shape; decoding forced to 3 tokens per second of speech.")
    bw = r.get("bandwidth")
    if bw:
        add("memory bandwidth (numpy read, best of 1/2 threads), GB/s", _f(bw["ceiling_GBps"]), f"copy {bw['copy_1t_GBps']}")
    st = r.get("settings", {})
    head += f" Measuring processes ran with nice {st.get('nice', '?')} and OMP_WAIT_POLICY={st.get('OMP_WAIT_POLICY', '?')}."
    lines = [head, "", "| figure | ours | baseline (same run) | target |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", type=Path)
    args = ap.parse_args()
    print(render(json.loads(args.json.read_text())))


if __name__ == "__main__":
    main()
