"""Offline speech synthesis engines for training data, each returning 16 kHz mono float32.

* ``piper``   Piper en_US-joe-medium (VITS, ONNX) through onnxruntime on eSpeak IPA phoneme ids.
* ``flite``   Debian flite built-in voices (kal, kal16, awb, rms, slt).
* ``festival`` Debian festival voices (cmu_us_slt_arctic_hts, kal_diphone, ked_diphone) via text2wave.
* ``espeak``  Debian espeak-ng with voice variants, speed and pitch.

Every engine takes ``(text, rng)`` and draws its own prosody parameters from ``rng`` so one seed reproduces a clip.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SR = 16000


def _to16k(audio: np.ndarray, sr: int) -> np.ndarray:
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    audio = audio.astype(np.float32)
    if sr != SR:
        audio = soxr.resample(audio, sr, SR).astype(np.float32)
    return audio


def _read_wav_bytes(data: bytes) -> np.ndarray:
    audio, sr = sf.read(io.BytesIO(data), dtype="float32")
    return _to16k(audio, sr)


@dataclass(frozen=True)
class Voice:
    engine: str  # "piper" | "flite" | "festival" | "espeak"
    name: str  # engine-specific voice name

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}"


class PiperEngine:
    engine = "piper"

    def __init__(self, onnx_path: Path, json_path: Path, threads: int = 1):
        import onnxruntime as ort

        from .g2p import EspeakG2P

        cfg = json.loads(Path(json_path).read_text())
        self.sr = cfg["audio"]["sample_rate"]
        self.idmap = cfg["phoneme_id_map"]
        self.inf = cfg["inference"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.g2p = EspeakG2P(cfg["espeak"]["voice"])

    def voices(self) -> list[Voice]:
        return [Voice("piper", "en_US-joe-medium")]

    def phoneme_ids(self, text: str) -> list[int]:
        # clauses keep their punctuation (Piper was trained on eSpeak output that keeps it)
        parts = re.findall(r"[^.,;:!?]+[.,;:!?]*", text)
        ids = list(self.idmap["^"])
        pad = self.idmap["_"]
        for part in parts:
            punct = re.sub(r"[^.,;:!?]", "", part)[:1]
            ph = self.g2p.ipa(part, separator=None) + (punct or "") + " "
            for ch in ph:
                if ch in self.idmap:
                    ids.extend(self.idmap[ch])
                    ids.extend(pad)
        ids.extend(self.idmap["$"])
        return ids

    def synth(self, voice: Voice, text: str, rng: np.random.Generator) -> np.ndarray:
        ids = np.array([self.phoneme_ids(text)], dtype=np.int64)
        scales = np.array([self.inf["noise_scale"] * rng.uniform(0.6, 1.2),
                           self.inf["length_scale"] * rng.uniform(0.8, 1.3),
                           self.inf["noise_w"] * rng.uniform(0.6, 1.2)], dtype=np.float32)
        out = self.sess.run(None, {"input": ids, "input_lengths": np.array([ids.shape[1]], np.int64),
                                   "scales": scales})[0]
        return _to16k(out.reshape(-1), self.sr)


class FliteEngine:
    engine = "flite"
    VOICES = ("kal", "kal16", "awb", "rms", "slt")  # awb_time is a limited-domain (clock) voice: excluded

    def voices(self) -> list[Voice]:
        return [Voice("flite", v) for v in self.VOICES]

    def synth(self, voice: Voice, text: str, rng: np.random.Generator) -> np.ndarray:
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={rng.uniform(0.8, 1.3):.2f}",
                   "--setf", f"int_f0_target_mean={rng.uniform(85, 210):.0f}", "-t", text, "-o", f.name]
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            audio, sr = sf.read(f.name, dtype="float32")
        return _to16k(audio, sr)


class FestivalEngine:
    engine = "festival"
    VOICES = ("cmu_us_slt_arctic_hts", "kal_diphone", "ked_diphone")

    def voices(self) -> list[Voice]:
        return [Voice("festival", v) for v in self.VOICES]

    def synth(self, voice: Voice, text: str, rng: np.random.Generator) -> np.ndarray:
        stretch = rng.uniform(0.8, 1.3)
        ev = f"(begin (voice_{voice.name}) (Parameter.set 'Duration_Stretch {stretch:.2f}))"
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            subprocess.run(["text2wave", "-eval", ev, "-o", f.name], input=text.encode(), check=True,
                           capture_output=True, timeout=120)
            audio, sr = sf.read(f.name, dtype="float32")
        return _to16k(audio, sr)


class EspeakEngine:
    engine = "espeak"
    BASES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")

    def __init__(self):
        out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
        self.variants = sorted({ln.split()[3].split("/")[-1] for ln in out.splitlines()[1:] if len(ln.split()) > 3})

    def voices(self) -> list[Voice]:
        return [Voice("espeak", f"{b}+{v}") for b in self.BASES for v in self.variants]

    def synth(self, voice: Voice, text: str, rng: np.random.Generator) -> np.ndarray:
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(rng.uniform(130, 210))), "-p",
               str(int(rng.uniform(25, 75))), "-a", "120", "--stdout", text]
        res = subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return _read_wav_bytes(res.stdout)


def all_engines(piper_paths: tuple[Path, Path] | None) -> dict[str, object]:
    eng: dict[str, object] = {"flite": FliteEngine(), "festival": FestivalEngine(), "espeak": EspeakEngine()}
    if piper_paths is not None:
        eng["piper"] = PiperEngine(*piper_paths)
    return eng
