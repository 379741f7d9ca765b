"""Shared fixtures: one seeded tiny checkpoint and its exported bundle per test session."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

JFK = Path(__file__).parents[1] / "examples" / "audio" / "jfk.wav"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def run_stream(rec, audio: np.ndarray, options=None, timeout: float = 300) -> list:
    """Feed ``audio`` (16 kHz) to a new stream of ``rec`` at once, finish it, and return every event (a partial for
    every chunk unless ``options`` says otherwise)."""
    from nim4asr_edge import StreamOptions

    with rec.create_stream(options or StreamOptions(skip_late_partials=False)) as stream:
        stream.accept_waveform(16000, audio)
        stream.input_finished()
        return list(stream.events(timeout=timeout))


def hub_cache(root: Path, repo_id: str, files: dict[str, bytes] | None = None, source: Path | None = None,
              commit: str = "0" * 40) -> Path:
    """A hub cache holding one snapshot of ``repo_id`` (``models--ORG--NAME/{refs/main, snapshots/COMMIT/...}``) with
    ``files`` ({name: bytes}) or a copy of the directory ``source``; returns the snapshot directory."""
    import shutil

    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    if source is not None:
        shutil.copytree(source, snap)
    for name, data in (files or {}).items():
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).write_bytes(data)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def import_from_hub_cache(cache: Path, family: str, repo_id: str, out: Path, *args: str):
    """``nim4asr-edge import FAMILY OUT --from-hub REPO_ID ARGS`` in a subprocess, offline against ``cache``."""
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "nim4asr_edge", "import", family, str(out), "--from-hub", repo_id,
                           *args], env=env, capture_output=True, text=True, timeout=600)


def checked_final(events: list, min_partials: int = 3):
    """The first final of a stream's events, after the checks every stream must pass: partials whose text extends
    their stable prefix, and one endpoint after each final."""
    kinds = [e.kind for e in events]
    assert kinds.count("partial") >= min_partials and kinds.count("final") == kinds.count("endpoint") >= 1
    assert all(e.text.startswith(e.stable) for e in events if e.kind == "partial")
    return next(e for e in events if e.kind == "final")


def first_pass_phonemes(rec, clip: np.ndarray, most: int = 12) -> tuple[list[str], str]:
    """(up to ``most`` phonemes of the first-pass evidence, the first-pass text): a random model's own words, to be
    made into a hotword it will find."""
    first = rec.transcribe(clip, sample_rate=16000).segments[0]
    return [s for s in first.phonemes.split() if s != "|"][:most], first.text


def offline_segment_of(rec, audio: np.ndarray, event):
    """The offline segment of the audio a streaming final covers (the final must equal it)."""
    start, end = int(round(event.start * 16000)), int(round(event.end * 16000))
    return rec.transcribe(audio[start:end], sample_rate=16000).segments[0]


@pytest.fixture(scope="session")
def jfk() -> np.ndarray:
    x, rate = sf.read(JFK, dtype="float32")
    assert rate == 16000
    return x


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="needs the export extra")
    from nim4asr_export.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint, tmp_path_factory) -> Path:
    from nim4asr_export.exporter import ExportOptions, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export_bundle(tiny_checkpoint, out, ExportOptions(quant=("int8", "fp32", "q8_0", "f32")), progress=lambda m: None)
    return out


@pytest.fixture(scope="session")
def one_word_index():
    """A factory: an index holding one hotword, "Zorblax", pronounced as the given phonemes (a random model's
    hypothesis can then contain a hotword)."""
    from nim4asr_edge.hotwords import HotwordIndex
    from nim4asr_edge.hotwords.g2p import BaseG2P

    def make(phonemes, inventory):
        class OneWord(BaseG2P):
            name = "dict:zorblax"

            def _convert(self, text):
                if text.lower() != "zorblax":
                    raise ValueError(f"no pronunciation for {text!r}")
                return list(phonemes)

        return HotwordIndex.from_words(["Zorblax"], g2p=OneWord(), inventory=inventory)

    return make


@pytest.fixture(scope="session")
def qwen_vocab_gguf() -> Path:
    """llama.cpp's ggml-vocab-qwen2.gguf, from the llama-cpp-python source distribution (fetched with pip from the
    package registry on first use and cached; a failed fetch skips, except in CI where it fails)."""
    pytest.importorskip("gguf", reason="needs the export extra")
    from nim4asr_edge.errors import ExportError
    from nim4asr_export.qwen_tokenizer import fetch_qwen2_vocab

    try:
        return fetch_qwen2_vocab()
    except ExportError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the Qwen2 vocabulary could not be fetched: {exc}")


@pytest.fixture(scope="session")
def qwen_tokenizer_json(qwen_vocab_gguf, tmp_path_factory) -> Path:
    """A Qwen3 tokenizer.json (the Qwen2 BPE and Qwen3's added tokens), built offline once per test session."""
    from nim4asr_export.qwen_tokenizer import qwen_tokenizer_json as build

    return build(qwen_vocab_gguf, tmp_path_factory.mktemp("qwen-tokenizer"))


@pytest.fixture(scope="session")
def nano_release(qwen_tokenizer_json, tmp_path_factory) -> Path:
    """A directory laid out like the Fun-ASR-Nano release: tiny random encoder/adaptor/Qwen3 (the real vocabulary),
    bf16 weights in model.pt under a ``state_dict`` key, config.yaml, Qwen3-0.6B/{config,tokenizer}.json."""
    pytest.importorskip("torch", reason="needs the export extra")
    from nim4asr_export.importers.fun_asr_nano import write_random_release

    return write_random_release(tmp_path_factory.mktemp("nano") / "Fun-ASR-Nano-2512", qwen_tokenizer_json, seed=0)


@pytest.fixture(scope="session")
def nano_bundle(nano_release, tmp_path_factory) -> Path:
    """``nano_release`` imported (fp32 + int8 encoder graphs, F32 GGUF)."""
    from nim4asr_export.importers import ImportOptions, import_model

    out = tmp_path_factory.mktemp("nano-bundle") / "bundle"
    import_model("fun-asr-nano", nano_release, out, ImportOptions(quant=("fp32", "int8", "f32")),
                 progress=lambda m: None)
    return out


@pytest.fixture(scope="session")
def qwen3_asr_tokenizer(qwen_tokenizer_json, tmp_path_factory) -> Path:
    """The Qwen3 tokenizer.json with Qwen3-ASR's added tokens (audio start/end/pad, <asr_text>)."""
    pytest.importorskip("torch", reason="needs the export extra")
    from nim4asr_export.importers.qwen3_asr import with_asr_tokens

    return with_asr_tokens(qwen_tokenizer_json, tmp_path_factory.mktemp("qwen3-asr-tokenizer"))


@pytest.fixture(scope="session")
def qwen3_asr_release(qwen3_asr_tokenizer, tmp_path_factory) -> Path:
    """A tiny random Qwen3-ASR release directory laid out as the hub's (its tokenizer from the Qwen2 vocabulary)."""
    from nim4asr_export.importers.qwen3_asr import write_random_release

    return write_random_release(tmp_path_factory.mktemp("qwen3-asr") / "release", "tiny", qwen3_asr_tokenizer, seed=0)


@pytest.fixture(scope="session")
def qwen3_asr_bundle(qwen3_asr_release, tmp_path_factory) -> Path:
    """That release imported (encoder fp32 + int8, LLM f32)."""
    from nim4asr_export.importers import ImportOptions, import_model

    out = tmp_path_factory.mktemp("qwen3-asr-bundle") / "bundle"
    import_model("qwen3-asr", qwen3_asr_release, out, ImportOptions(quant=("fp32", "int8", "f32")),
                 progress=lambda m: None)
    return out
