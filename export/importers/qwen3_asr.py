"""``nim4asr-edge import qwen3-asr SRC OUT``: a released Qwen3-ASR directory (0.6B or 1.7B, as the hub publishes it)
-> a ``qwen3-asr`` bundle.

The release (docs/qwen3-asr.md): ``config.json`` (``model_type`` ``qwen3_asr``, ``thinker_config.audio_config`` /
``text_config``), ``model.safetensors`` or shards with ``model.safetensors.index.json``, and the Qwen tokenizer as
``vocab.json`` + ``merges.txt`` + ``tokenizer_config.json`` (a ``tokenizer.json`` is used when it ships). Out:

* the audio encoder (``thinker.audio_tower.*``) -> ``encoder.onnx`` (fp32) and ``encoder.int8.onnx``, through our
  PyTorch re-implementation (``nim4asr_export.model.qwen3_asr_audio``: chunked convolutions, windowed attention as
  the official inference runs it), checked against PyTorch on a random input, with the offline 8-s windows and with
  the streaming window: the graph's overridable ``attention_window`` input (its length is the window in tokens)
  lets streams run the same weights with ``ImportOptions.stream_window_s`` windows (2 s by default; manifest
  ``encoder.stream_window_tokens``), committing each finished window's embeddings to the LLM's cache and
  re-encoding only the open window for a partial;
* the LLM (``thinker.model.*``, ``thinker.lm_head.weight``; the interleaved MRoPE of an audio+text prompt has three
  equal position rows, i.e. plain RoPE) -> a ``qwen3`` GGUF (f32 or f16, then llama.cpp quantisations) with the
  Qwen tokenizer; ``<asr_text>`` is written as a user-defined token so it stays in the decoded answer;
* ``manifest.json`` with ``family: qwen3-asr`` and the ``qwen3_asr_logmel`` frontend.

Every problem with the release is one ``ExportError`` naming the file or tensor; the bundle is written in a
temporary directory and renamed into place only at the end (``BundleWriter``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nim4asr_edge.encoder import WINDOW_INPUT
from nim4asr_edge.errors import ExportError
from nim4asr_edge.manifest import Manifest

from .. import __version__
from ..bundle_writer import BundleWriter, Progress, split_quant
from . import ImportOptions

__all__ = ["KNOWN_SIZES", "Release", "import_bundle", "read_release", "release_tokenizer_json"]

MODEL_TYPE = "qwen3_asr"
AUDIO_PREFIX = "thinker.audio_tower."
LLM_PREFIX = "thinker."
# (audio d_model, audio layers, text hidden, text layers) -> released size
KNOWN_SIZES = {(896, 18, 1024, 28): "0.6B", (1024, 24, 2048, 28): "1.7B"}
ASR_TOKENS = {"<|audio_start|>": True, "<|audio_end|>": True, "<|audio_pad|>": True, "<asr_text>": False}


@dataclass
class Release:
    """A checked release directory: its configs, where each tensor lives, and the tokenizer files."""

    path: Path
    config: dict[str, Any]
    audio_config: dict[str, Any]
    text_config: dict[str, Any]
    tensors: dict[str, tuple[Path, tuple[int, ...], str]]  # name -> (file, shape, dtype)
    size: str  # "0.6B", "1.7B" or "custom"

    def load(self, names: list[str]) -> dict[str, Any]:
        """The named tensors as torch tensors (one file opened at a time)."""
        from safetensors import safe_open

        by_file: dict[Path, list[str]] = {}
        for n in names:
            by_file.setdefault(self.tensors[n][0], []).append(n)
        out = {}
        for file, group in by_file.items():
            try:
                with safe_open(str(file), framework="pt") as f:
                    for n in group:
                        out[n] = f.get_tensor(n)
            except Exception as exc:  # safetensors raises its own error types
                raise ExportError(f"{file.name}: cannot read tensor data ({exc}); the file is damaged or truncated") \
                    from exc
        return out


def _json(path: Path) -> Any:
    if not path.is_file():
        raise ExportError(f"{path.parent.name}/{path.name} is missing: not a complete Qwen3-ASR release")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path.name} is damaged (not valid JSON: {exc})") from exc


def _headers(file: Path) -> dict[str, tuple[Path, tuple[int, ...], str]]:
    """Tensor name -> (file, shape, dtype) from a safetensors header; a truncated file is refused here."""
    import struct

    if not file.is_file():
        raise ExportError(f"{file.name} is missing from the release (listed by the weight index or expected)")
    size = file.stat().st_size
    try:
        with open(file, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n <= 0 or 8 + n > size:
                raise ValueError("header length exceeds the file")
            header = json.loads(f.read(n).decode("utf-8"))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"{file.name} is not a safetensors file or is truncated ({exc})") from exc
    out = {}
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        out[name] = (file, tuple(int(d) for d in info["shape"]), str(info["dtype"]))
        end = max(end, int(info["data_offsets"][1]))
    if 8 + n + end > size:
        raise ExportError(f"{file.name} is truncated: its header describes {8 + n + end} bytes, the file has {size}")
    return out


def read_release(src: Path) -> Release:
    """Check ``src`` is a complete Qwen3-ASR release and index its tensors (no tensor data is read)."""
    config = _json(src / "config.json")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != MODEL_TYPE:
        hint = " (Fun-ASR-Nano: use `nim4asr-edge import fun-asr-nano`)" if (src / "config.yaml").exists() else ""
        raise ExportError(f"config.json: model_type is {model_type!r}, not {MODEL_TYPE!r}: {src} is not a Qwen3-ASR "
                          f"release{hint}")
    thinker = config.get("thinker_config")
    if not isinstance(thinker, dict) or not isinstance(thinker.get("audio_config"), dict) \
            or not isinstance(thinker.get("text_config"), dict):
        raise ExportError("config.json lacks thinker_config.audio_config / thinker_config.text_config")
    audio, text = thinker["audio_config"], thinker["text_config"]

    index = src / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ExportError("model.safetensors.index.json has no weight_map")
        files = sorted(set(weight_map.values()))
    elif (src / "model.safetensors").is_file():
        weight_map, files = None, ["model.safetensors"]
    else:
        raise ExportError(f"{src} has no model.safetensors (nor model.safetensors.index.json with its shards)")
    tensors: dict[str, tuple[Path, tuple[int, ...], str]] = {}
    for name in files:
        tensors.update(_headers(src / name))
    if weight_map is not None:
        missing = [n for n, f in weight_map.items() if n not in tensors]
        if missing:
            raise ExportError(f"tensor {missing[0]!r} is listed in model.safetensors.index.json for "
                              f"{weight_map[missing[0]]} but is not in it")
    stray = [n for n in tensors if not n.startswith(LLM_PREFIX)]
    if stray:
        raise ExportError(f"tensor {stray[0]!r} is not part of a Qwen3-ASR thinker (no mapping; refusing to drop it)")
    if audio.get("output_dim") != text.get("hidden_size"):
        raise ExportError(f"config.json: audio_config.output_dim {audio.get('output_dim')} differs from "
                          f"text_config.hidden_size {text.get('hidden_size')} (the encoder feeds the LLM directly)")
    key = (audio.get("d_model"), audio.get("encoder_layers"), text.get("hidden_size"), text.get("num_hidden_layers"))
    return Release(src, config, audio, text, tensors, KNOWN_SIZES.get(key, "custom"))


def _check_shapes(release: Release, expected: dict[str, tuple[int, ...]], what: str) -> None:
    for name, shape in expected.items():
        got = release.tensors.get(name)
        if got is None:
            raise ExportError(f"tensor {name!r} ({what}) is missing from the release")
        if got[1] != shape:
            raise ExportError(f"tensor {name!r} has shape {list(got[1])}, config.json implies {list(shape)} "
                              f"(a checkpoint of another size?)")


# -- tokenizer ----------------------------------------------------------------------------------------------------------


def release_tokenizer_json(src: Path, out_dir: Path) -> Path:
    """A ``tokenizer.json`` for the GGUF writer from what the release ships: ``tokenizer.json`` as is, or
    ``vocab.json`` + ``merges.txt`` + ``tokenizer_config.json`` (added tokens from ``added_tokens_decoder``). Ids
    between added tokens that the release does not name become ``[PAD{id}]`` control tokens (as llama.cpp's
    converter does); ``<asr_text>`` is made non-special, so it stays in decoded text, as the reference's parser
    needs."""
    from ..tokenizers import QWEN2_PRETOKENIZER_REGEX

    shipped = src / "tokenizer.json"
    if shipped.is_file():
        doc = _json(shipped)
        vocab, merges = doc["model"]["vocab"], doc["model"]["merges"]
        added = {int(a["id"]): (a["content"], bool(a.get("special", True))) for a in doc.get("added_tokens", [])}
    else:
        vocab = _json(src / "vocab.json")
        merges_file = src / "merges.txt"
        if not merges_file.is_file():
            raise ExportError("merges.txt is missing from the release (the Qwen tokenizer needs vocab.json and "
                              "merges.txt)")
        merges = [line for line in merges_file.read_text(encoding="utf-8").splitlines()
                  if line and not line.startswith("#version")]
        cfg = _json(src / "tokenizer_config.json")
        decoder = cfg.get("added_tokens_decoder") or {}
        added = {int(i): (a["content"], bool(a.get("special", True))) for i, a in decoder.items()}
    if not isinstance(vocab, dict) or not merges:
        raise ExportError("the release's tokenizer has no vocabulary or no merges")
    names = {content: i for i, (content, _) in added.items()}
    for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", *ASR_TOKENS):
        if token not in names:
            raise ExportError(f"the release's tokenizer lacks {token!r} (tokenizer_config.json added_tokens_decoder)")
    for token, special in ASR_TOKENS.items():
        added[names[token]] = (token, special)
    vocab = {piece: i for piece, i in vocab.items() if i not in added}  # some releases repeat added tokens there
    first = len(vocab)
    if min(added) < first or sorted(vocab.values()) != list(range(first)):
        raise ExportError("the release's tokenizer ids are not the BPE pieces 0..n-1 followed by the added tokens")
    for i in range(first, max(added) + 1):
        added.setdefault(i, (f"[PAD{i}]", True))
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    doc = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": s} for i, (c, s) in sorted(added.items())],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PRETOKENIZER_REGEX}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": byte_level, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    out = out_dir / "tokenizer.json"
    out.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return out


# -- LLM ----------------------------------------------------------------------------------------------------------------


def llm_config(text: dict[str, Any], tied: bool) -> dict[str, Any]:
    """The text config as the qwen3 GGUF writer reads it. The interleaved MRoPE sections are dropped: audio and text
    positions are equal on all three rows, so MRoPE is plain RoPE here."""
    cfg = dict(text)
    scaling = dict(cfg.get("rope_scaling") or {})
    for k in ("mrope_section", "mrope_interleaved", "interleaved"):
        scaling.pop(k, None)
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ("default", "mrope"):
        raise ExportError(f"config.json text_config.rope_scaling type {kind!r} is not supported")
    cfg["rope_scaling"] = None
    cfg["tie_word_embeddings"] = tied
    return cfg


# -- import -------------------------------------------------------------------------------------------------------------


def _encoder_check(model, cfg, stream_window: int | None = None) -> Callable[[Path], dict]:
    """ONNX vs PyTorch on random features: a batch with a partial chunk, a short item and more than one window; with
    ``stream_window``, also with that attention window fed."""
    import numpy as np
    import torch

    def check(path: Path) -> dict:
        import onnxruntime as ort

        gen = torch.Generator().manual_seed(0)
        frames = 930
        feats = torch.randn(2, frames, cfg.num_mel_bins, generator=gen)
        lengths = torch.tensor([frames, 63])
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        figures = {"frames": [frames, 63]}
        for window in (None, stream_window) if stream_window else (None,):
            spec = None if window is None else torch.zeros(window)
            feeds = {"features": feats.numpy(), "feature_lengths": lengths.numpy()}
            if spec is not None:
                feeds[WINDOW_INPUT] = spec.numpy()
            with torch.no_grad():
                ref, ref_len = model(feats, lengths, spec)
            out, out_len = sess.run(None, feeds)
            if out_len.tolist() != ref_len.tolist():
                raise ExportError(f"{path.name}: token lengths {out_len.tolist()} != PyTorch {ref_len.tolist()}")
            diff = max(float(np.abs(out[i, :n] - ref[i, :n].numpy()).max()) for i, n in enumerate(ref_len.tolist()))
            figures["max_abs_diff" if window is None else "stream_window_max_abs_diff"] = diff
        return figures

    return check


def export_encoder(model, out_path: Path, stream_window: bool = False, opset: int = 17) -> Path:
    """Trace the encoder to ``out_path`` (dynamic batch and frames); external data above 1 GiB of weights.

    ``stream_window``: the graph also takes ``attention_window`` (float32 ``[W]``, only its length counts: the
    attention window in tokens), an initializer of the config's window length that a caller may override: one graph,
    one copy of the weights, for offline decoding and for short-window streaming partials."""
    import numpy as np
    import onnx
    import onnx.numpy_helper
    import torch

    from ..onnx_export import EXTERNAL_DATA_THRESHOLD_BYTES, _save, _trace

    n_mels = model.cfg.num_mel_bins
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 250, n_mels, generator=gen)
    lengths = torch.tensor([250, 171])
    axes = {"features": {0: "batch", 1: "frames"}, "feature_lengths": {0: "batch"},
            "audio_embeds": {0: "batch", 1: "tokens"}, "audio_embed_lengths": {0: "batch"}}
    inputs, names = (features, lengths), ["features", "feature_lengths"]
    if stream_window:
        inputs, names = (*inputs, torch.zeros(model.cfg.chunk_tokens)), [*names, WINDOW_INPUT]
        axes[WINDOW_INPUT] = {0: "window"}
    proto = _trace(model, inputs, names, ("audio_embeds", "audio_embed_lengths"), axes, opset, out_path.parent,
                   "Qwen3-ASR audio encoder")
    if stream_window:  # an input with an initializer of the same name: overridable, defaulting to the offline window
        default = onnx.numpy_helper.from_array(np.zeros(model.cfg.window_tokens, np.float32), WINDOW_INPUT)
        proto.graph.initializer.append(default)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    _save(proto, out_path, weights > EXTERNAL_DATA_THRESHOLD_BYTES)
    return out_path


def build_encoder(release: Release):
    """Our PyTorch encoder with the release's audio-tower weights (fp32)."""
    import torch

    from ..model.qwen3_asr_audio import AudioEncoderConfig, Qwen3AsrAudioEncoder

    try:
        cfg = AudioEncoderConfig.from_dict(release.audio_config)
        model = Qwen3AsrAudioEncoder(cfg)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"config.json thinker_config.audio_config: {exc}") from exc
    expected = {AUDIO_PREFIX + k: tuple(v.shape) for k, v in model.state_dict().items()}
    _check_shapes(release, expected, "audio encoder")
    extra = [n for n in release.tensors if n.startswith(AUDIO_PREFIX) and n not in expected]
    if extra:
        raise ExportError(f"tensor {extra[0]!r} is not part of the Qwen3-ASR audio encoder this importer knows")
    state = {k[len(AUDIO_PREFIX):]: v.to(torch.float32) for k, v in release.load(list(expected)).items()}
    model.load_state_dict(state, strict=True)
    return model.eval(), cfg


def llm_state(release: Release) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the LLM state dict without ``thinker.``, its GGUF config)."""
    import torch

    text = release.text_config
    names = [n for n in release.tensors if n.startswith(LLM_PREFIX) and not n.startswith(AUDIO_PREFIX)]
    hidden, vocab = int(text.get("hidden_size", 0)), int(text.get("vocab_size", 0))
    _check_shapes(release, {"thinker.model.embed_tokens.weight": (vocab, hidden)}, "LLM")
    state = {n[len(LLM_PREFIX):]: t for n, t in release.load(names).items()}
    head = state.get("lm_head.weight")
    # tied: the GGUF writer drops lm_head and llama.cpp reuses token_embd
    tied = head is None or torch.equal(head, state["model.embed_tokens.weight"])
    return state, llm_config(text, tied)


def stream_window_tokens(cfg, seconds: int) -> int:
    """Audio tokens of a ``seconds``-long attention window for streaming partials (whole seconds below the offline
    window; the AuT encoder is trained with windows of 1 to 8 s)."""
    offline = cfg.n_window_infer // 100
    if not isinstance(seconds, int) or not 1 <= seconds < offline or cfg.chunk_frames != 100:
        raise ExportError(f"stream window of {seconds!r} s: give whole seconds from 1 to {offline - 1} (the offline "
                          f"window is {offline} s), or 0 for none")
    return seconds * cfg.chunk_tokens


def import_bundle(src: Path, out: Path, options: ImportOptions, progress: Progress = print) -> Manifest:
    """Import the Qwen3-ASR release ``src`` into the bundle ``out`` (see the module docstring)."""
    from nim4asr_edge.families.qwen3_asr import FAMILY, LANGUAGES, Qwen3AsrLogMel
    from nim4asr_edge.hotwords import ENGLISH_INVENTORY
    from nim4asr_edge.prompt import PromptTemplate

    from ..model.qwen3_asr_audio import token_rate_hz

    release = read_release(src)
    enc_precisions, llm_types = split_quant(options.quant)
    base = "f32" if "f32" in llm_types else "f16"
    steps = 4 + ("int8" in enc_precisions) + len([t for t in llm_types if t != base])
    with BundleWriter(out, steps=steps, progress=progress, overwrite=options.overwrite) as w:
        w.say(f"reading the Qwen3-ASR release {src} ({release.size}, {len(release.tensors)} tensors)")
        tokenizer = release_tokenizer_json(src, w.work)  # checked before the long steps
        encoder, cfg = build_encoder(release)
        stream = stream_window_tokens(cfg, options.stream_window_s) if options.stream_window_s else None
        checks: dict[str, Any] = {}
        enc_files = w.encoder_graphs("encoder", lambda p: export_encoder(encoder, p, stream is not None),
                                     enc_precisions, checks=checks,
                                     check=_encoder_check(encoder, cfg, stream) if options.check else None)
        encoder = None  # free the fp32 weights before the LLM is read
        state, llm_cfg = llm_state(release)
        llm_files, reports = w.llm_gguf(state, llm_cfg, tokenizer, llm_types, threads=options.threads,
                                        name=f"qwen3-asr-{release.size}")
        del state
        manifest = w.finish(
            name=options.name or out.name,
            family=FAMILY,
            source={"release": src.name, "size": release.size, "importer": f"nim4asr-export {__version__}",
                    "model_type": MODEL_TYPE},
            frontend=Qwen3AsrLogMel(num_mel_bins=cfg.num_mel_bins).to_manifest(),
            encoder={"files": enc_files, "default": "int8" if "int8" in enc_files else "fp32",
                     "frame_rate_hz": token_rate_hz(cfg), "token_rate_hz": token_rate_hz(cfg),
                     "llm_hidden": cfg.output_dim, "streaming": None, "stream_window_tokens": stream,
                     "window_tokens": cfg.window_tokens, "chunk_frames": cfg.chunk_frames},
            phonemes={"inventory": list(ENGLISH_INVENTORY), "blank": 0, "word_boundary": "|",
                      "g2p": "espeak-ng:en-us"},
            llm={"files": llm_files, "default": llm_types[0], "architecture": "qwen3",
                 "n_embd": int(release.text_config["hidden_size"]), "quantization": reports},
            # unused by this family (its prompt is code: nim4asr_edge.families.qwen3_asr); kept valid for readers
            prompt=PromptTemplate(prefix="", suffix="{context}", stop=("<|im_end|>", "<|endoftext|>")),
            extra={"qwen3_asr": {"languages": list(LANGUAGES), "context_separator": ", "}, "checks": checks},
        )
    return manifest


# -- random releases (tests and benchmarks: the real weights are not needed to check the import) -------------------

_ROPE = {"rope_type": "default", "interleaved": True, "mrope_interleaved": True}
_AUDIO_COMMON = {"num_mel_bins": 128, "downsample_hidden_size": 480, "n_window": 50, "n_window_infer": 800,
                 "conv_chunksize": 500, "max_source_positions": 1500, "activation_function": "gelu",
                 "scale_embedding": False, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0}
_TEXT_COMMON = {"vocab_size": 151936, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
                "head_dim": 128, "hidden_act": "silu", "max_position_embeddings": 65536, "rms_norm_eps": 1e-6,
                "rope_theta": 1000000.0, "attention_bias": False}
# The released shapes (MODELS.md B3/B4; the 1.7B tie flag is unconfirmed: written untied, so both GGUF paths run).
# "tiny" (tests) is untied: a tied random LLM tends to repeat its last input token, an untied one writes words.
RELEASE_CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "0.6B": ({**_AUDIO_COMMON, "d_model": 896, "encoder_layers": 18, "encoder_attention_heads": 14,
              "encoder_ffn_dim": 3584, "output_dim": 1024},
             {**_TEXT_COMMON, "hidden_size": 1024, "intermediate_size": 3072, "tie_word_embeddings": True,
              "rope_scaling": {**_ROPE, "mrope_section": [24, 20, 20]}}),
    "1.7B": ({**_AUDIO_COMMON, "d_model": 1024, "encoder_layers": 24, "encoder_attention_heads": 16,
              "encoder_ffn_dim": 4096, "output_dim": 2048},
             {**_TEXT_COMMON, "hidden_size": 2048, "intermediate_size": 6144, "tie_word_embeddings": False,
              "rope_scaling": {**_ROPE, "mrope_section": [24, 20, 20]}}),
    "tiny": ({**_AUDIO_COMMON, "d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2,
              "encoder_ffn_dim": 64, "output_dim": 64, "downsample_hidden_size": 8},
             {**_TEXT_COMMON, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "tie_word_embeddings": False,
              "rope_scaling": {**_ROPE, "mrope_section": [4, 2, 2]}}),
}
AUDIO_TOKEN_IDS = {151669: "<|audio_start|>", 151670: "<|audio_end|>", 151676: "<|audio_pad|>", 151704: "<asr_text>"}

# A stand-in for the release's chat_template.json (not available here), written to give the prompt the reference
# builds (MODELS.md B5: system turn with the context, user turn with the audio, generation prompt).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}<|audio_start|><|audio_pad|><|audio_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def asr_added_tokens() -> dict[int, tuple[str, bool]]:
    """Qwen3-ASR's added tokens after Qwen3's (151669..151704; the unnamed ones as reserved specials)."""
    out = {i: (f"<|reserved_{i}|>", True) for i in range(151669, 151705)}
    out.update({i: (t, ASR_TOKENS[t]) for i, t in AUDIO_TOKEN_IDS.items()})
    return out


def with_asr_tokens(tokenizer_json: Path, out_dir: Path) -> Path:
    """``out_dir/tokenizer.json``: a Qwen3 ``tokenizer.json`` plus Qwen3-ASR's added tokens (:func:`asr_added_tokens`)."""
    doc = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    have = {int(a["id"]) for a in doc["added_tokens"]}
    for i, (content, special) in sorted(asr_added_tokens().items()):
        if i not in have:
            doc["added_tokens"].append({"id": i, "content": content, "single_word": False, "lstrip": False,
                                        "rstrip": False, "normalized": False, "special": special})
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "tokenizer.json"
    out.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return out


def _random_state(audio: dict[str, Any], text: dict[str, Any], seed: int) -> dict[str, Any]:
    import torch

    from ..model.qwen3_asr_audio import AudioEncoderConfig, Qwen3AsrAudioEncoder

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    state = {AUDIO_PREFIX + k: v.to(torch.bfloat16) for k, v in
             Qwen3AsrAudioEncoder(AudioEncoderConfig.from_dict(audio)).state_dict().items()}
    h, f, hd = text["hidden_size"], text["intermediate_size"], text["head_dim"]
    q, kv = text["num_attention_heads"] * hd, text["num_key_value_heads"] * hd

    def rnd(*shape, std=0.05, mean=0.0):
        return (torch.randn(*shape, generator=gen) * std + mean).to(torch.bfloat16)

    state["thinker.model.embed_tokens.weight"] = rnd(text["vocab_size"], h, std=0.5)
    for i in range(text["num_hidden_layers"]):
        p = f"thinker.model.layers.{i}."
        state.update({
            p + "input_layernorm.weight": rnd(h, std=0.1, mean=1.0),
            p + "post_attention_layernorm.weight": rnd(h, std=0.1, mean=1.0),
            p + "self_attn.q_proj.weight": rnd(q, h), p + "self_attn.k_proj.weight": rnd(kv, h),
            p + "self_attn.v_proj.weight": rnd(kv, h), p + "self_attn.o_proj.weight": rnd(h, q),
            p + "self_attn.q_norm.weight": rnd(hd, std=0.1, mean=1.0),
            p + "self_attn.k_norm.weight": rnd(hd, std=0.1, mean=1.0),
            p + "mlp.gate_proj.weight": rnd(f, h), p + "mlp.up_proj.weight": rnd(f, h),
            p + "mlp.down_proj.weight": rnd(h, f),
        })
    state["thinker.model.norm.weight"] = rnd(h, std=0.1, mean=1.0)
    state["thinker.lm_head.weight"] = (state["thinker.model.embed_tokens.weight"] if text["tie_word_embeddings"]
                                       else rnd(text["vocab_size"], h, std=0.05))
    return state


def write_random_release(out: Path, size: str, tokenizer_json: Path, seed: int = 0, shards: int = 1) -> Path:
    """A release directory laid out as the hub's (config.json, model.safetensors or ``shards`` shards + index,
    vocab.json, merges.txt, tokenizer_config.json, preprocessor_config.json, chat_template.json,
    generation_config.json) with random bf16 weights of ``size`` ("0.6B", "1.7B" or "tiny") and the tokenizer of
    ``tokenizer_json`` (a Qwen3 tokenizer.json holding Qwen3-ASR's added tokens)."""
    from safetensors.torch import save_file

    from nim4asr_edge.families.qwen3_asr import LANGUAGES

    audio, text = RELEASE_CONFIGS[size]
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["Qwen3ASRForConditionalGeneration"], "model_type": MODEL_TYPE,
        "thinker_config": {"audio_config": dict(audio), "text_config": dict(text), "audio_token_id": 151676,
                           "audio_start_token_id": 151669, "user_token_id": 872, "model_type": "qwen3_asr_thinker"},
        "support_languages": list(LANGUAGES), "torch_dtype": "bfloat16",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [151645, 151643],
                                                            "pad_token_id": 151643, "do_sample": False}))
    doc = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    (out / "vocab.json").write_text(json.dumps(doc["model"]["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    added = {str(a["id"]): {"content": a["content"], "lstrip": False, "normalized": False, "rstrip": False,
                            "single_word": False, "special": a["special"]} for a in doc["added_tokens"]}
    (out / "tokenizer_config.json").write_text(json.dumps({
        "added_tokens_decoder": added, "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "errors": "replace", "model_max_length": 131072, "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "clean_up_tokenization_spaces": False,
        "extra_special_tokens": {"audio_token": "<|audio_pad|>", "audio_bos_token": "<|audio_start|>",
                                 "audio_eos_token": "<|audio_end|>"},
        "processor_class": "Qwen3ASRProcessor"}, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": audio["num_mel_bins"],
        "sampling_rate": 16000, "hop_length": 160, "n_fft": 400, "chunk_length": 30, "n_samples": 480000,
        "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True,
        "dither": 0.0, "processor_class": "Qwen3ASRProcessor"}, indent=1))
    (out / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))

    state = _random_state(audio, text, seed)
    if text["tie_word_embeddings"]:
        state["thinker.lm_head.weight"] = state["thinker.lm_head.weight"].clone()
    names = list(state)
    if shards <= 1:
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        per = -(-len(names) // shards)
        for s in range(shards):
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: state[n] for n in names[s * per:(s + 1) * per]}
            save_file(part, str(out / file), metadata={"format": "pt"})
            weight_map.update({n: file for n in part})
        (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out
