"""Import Fun-ASR-Nano (``FunAudioLLM/Fun-ASR-Nano-2512``, directory exactly as released) into a bundle.

The release::

    SRC/
      config.yaml          FunASR model config: model FunASRNano, SenseVoiceEncoderSmall + Transformer adaptor
                           shapes, WavFrontend settings, llm_conf.init_param_path (the Qwen3 folder), dataset_conf
      model.pt             one torch pickle (maybe wrapped in a ``state_dict`` key), bf16: audio_encoder.*,
                           audio_adaptor.*, llm.* (a Qwen3ForCausalLM state dict), ctc_decoder.* / ctc.* (unused)
      Qwen3-0.6B/          config.json + tokenizer.json (+ tokenizer_config.json ...), no weights
      am.mvn               only where frontend_conf.cmvn_file names one (the Nano release has none)

What the bundle gets:

* ``encoder.onnx`` / ``encoder.int8.onnx``: encoder + adaptor (our re-implementation, ``model/sensevoice.py``, with
  the released weights), emitting the ``ceil(T_lfr / 8)`` embeddings the reference feeds the LLM;
* ``llm.<type>.gguf``: Qwen3 (F16, Q8_0, Q4_K_M ... as asked) with the Qwen tokenizer and its special tokens;
* the frontend (``lfr_fbank``: Kaldi fbank, Hamming window, x32768, LFR 7/6, CMVN from the release if any) and the
  prompt settings (``extra.fun_asr_nano``) in the manifest.

Anything missing, unexpected, mis-shaped or unreadable is an ``ExportError`` naming the file or tensor; the bundle
is written by :class:`~nim4asr_export.bundle_writer.BundleWriter`, so a failure leaves nothing in ``OUT``.
:func:`write_random_release` writes a directory laid out like the release with random weights (tests, benchmarks).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nim4asr_edge.errors import ExportError
from nim4asr_edge.families.fun_asr_nano import EXTRA_KEY, FAMILY, NANO_LANGUAGES, NanoPrompt
from nim4asr_edge.hotwords.g2p import ENGLISH_INVENTORY
from nim4asr_edge.lfr_fbank import LfrFbank, parse_kaldi_mvn
from nim4asr_edge.manifest import Manifest, sha256_file
from nim4asr_edge.prompt import PromptTemplate

from .. import __version__
from ..bundle_writer import BundleWriter, Progress, split_quant
from . import ImportOptions

__all__ = ["NanoRelease", "import_bundle", "export_nano_encoder_onnx", "write_random_release"]

MODEL_CLASS = "FunASRNano"
ENCODER_CLASS = "SenseVoiceEncoderSmall"
ADAPTOR_CLASS = "Transformer"
FRONTEND_CLASS = "WavFrontend"
LFR_ROW_MS = 60.0  # one LFR row: 6 fbank frames of 10 ms
TOKEN_RATE_HZ = 1000.0 / (8 * LFR_ROW_MS)  # one audio token per 8 rows
_IGNORED_PREFIXES = ("ctc_decoder.", "ctc.")  # the release's CTC branch has no trained weights (not shipped)
_AUDIO_PREFIXES = ("audio_encoder.", "audio_adaptor.")


def _need(mapping: dict, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping or mapping[key] is None:
        raise ExportError(f"{where} lacks {key!r}")
    return mapping[key]


class NanoRelease:
    """The released directory, read and checked (no weights loaded until :meth:`load_state`)."""

    def __init__(self, src: Path) -> None:
        import yaml

        self.src = Path(src)
        self.config_path = self.src / "config.yaml"
        self.weights_path = self.src / "model.pt"
        if not self.config_path.is_file():
            raise ExportError(f"{self.config_path} not found: not a Fun-ASR-Nano release directory (it needs "
                              "config.yaml, model.pt and the Qwen3 folder)")
        if not self.weights_path.is_file():
            raise ExportError(f"{self.weights_path} not found: the release's weights are missing")
        try:
            cfg = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ExportError(f"{self.config_path} is not valid YAML: {exc}") from exc
        if not isinstance(cfg, dict):
            raise ExportError(f"{self.config_path} is not a FunASR model config (top level is not a mapping)")
        self.config = cfg
        where = str(self.config_path)
        model = cfg.get("model")
        if model != MODEL_CLASS:
            raise ExportError(f"{where} says model {model!r}: this importer reads {MODEL_CLASS} (Fun-ASR-Nano); "
                              "the directory holds another model")
        for key, want in (("audio_encoder", ENCODER_CLASS), ("audio_adaptor", ADAPTOR_CLASS),
                          ("frontend", FRONTEND_CLASS)):
            got = cfg.get(key)
            if got != want:
                raise ExportError(f"{where}: {key} is {got!r}, this importer supports {want!r} only")
        self.frontend = self._frontend(cfg.get("frontend_conf") or {})
        enc = cfg.get("audio_encoder_conf") or {}
        ada = cfg.get("audio_adaptor_conf") or {}
        if enc.get("hub"):
            raise ExportError(f"{where}: audio_encoder_conf.hub={enc['hub']!r} (an encoder fetched from a hub) is "
                              "not supported; the release embeds its encoder")
        if enc.get("selfattention_layer_type", "sanm") != "sanm" or not enc.get("normalize_before", True) \
                or enc.get("concat_after", False):
            raise ExportError(f"{where}: audio_encoder_conf describes a SenseVoice variant this importer does not "
                              "know (needs selfattention_layer_type sanm, normalize_before, no concat_after)")
        if not ada.get("use_low_frame_rate", False):
            raise ExportError(f"{where}: audio_adaptor_conf.use_low_frame_rate is not true; the released model "
                              "feeds ceil(T/8) audio tokens and only that mode is supported")
        llm_conf = cfg.get("llm_conf") or {}
        if llm_conf.get("use_lora"):
            raise ExportError(f"{where}: llm_conf.use_lora is set; fold the LoRA weights into the LLM first")
        qwen_dir = str(llm_conf.get("init_param_path") or "Qwen3-0.6B")
        self.llm_dir = self.src / Path(qwen_dir).name  # the release names the folder beside config.yaml
        self.llm_config_path = self.llm_dir / "config.json"
        self.tokenizer_path = self.llm_dir / "tokenizer.json"
        for path, what in ((self.llm_config_path, "the LLM's config"), (self.tokenizer_path, "the Qwen tokenizer")):
            if not path.is_file():
                raise ExportError(f"{path} not found ({what}; llm_conf.init_param_path is {qwen_dir!r})")
        try:
            self.llm_config = json.loads(self.llm_config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ExportError(f"{self.llm_config_path} is not valid JSON: {exc}") from exc
        arch = self.llm_config.get("model_type")
        if arch != "qwen3":
            raise ExportError(f"{self.llm_config_path}: model_type {arch!r}, expected 'qwen3'")
        self.llm_hidden = int(_need(self.llm_config, "hidden_size", str(self.llm_config_path)))
        from ..model.sensevoice import NanoAudioConfig

        self.audio = NanoAudioConfig(
            input_size=self.frontend.n_mels,
            output_size=int(enc.get("output_size", 256)),
            attention_heads=int(enc.get("attention_heads", 4)),
            linear_units=int(enc.get("linear_units", 2048)),
            num_blocks=int(enc.get("num_blocks", 6)),
            tp_blocks=int(enc.get("tp_blocks", 0)),
            kernel_size=int(enc.get("kernel_size", 11)),
            sanm_shfit=int(enc.get("sanm_shfit", 0)),
            adaptor_downsample_rate=int(ada.get("downsample_rate", 2)),
            adaptor_ffn_dim=int(ada.get("ffn_dim", 2048)),
            llm_dim=self.llm_hidden,
            adaptor_layers=int(ada.get("n_layer", 2)),
            adaptor_heads=int(ada.get("attention_heads", 8)),
        )
        dataset = cfg.get("dataset_conf") or {}
        eos = self.llm_config.get("eos_token_id", 151645)
        self.eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos])]
        self.prompt_settings = {"do_think": bool(dataset.get("do_think", True)),
                                "sys_prompt": bool(dataset.get("sys_prompt", True))}
        self.stop = _stop_tokens(self)  # reads the tokenizer now: a broken one fails before any work

    def _frontend(self, conf: dict) -> LfrFbank:
        where = f"{self.config_path} frontend_conf"
        for key, want in (("fs", 16000), ("snip_edges", True), ("upsacle_samples", True)):
            if conf.get(key, want) != want:
                raise ExportError(f"{where}: {key}={conf[key]!r} is not supported (needs {want!r})")
        for key in ("filter_length_min", "filter_length_max"):
            if conf.get(key, -1) != -1:
                raise ExportError(f"{where}: {key} is set; length filtering is a training option, not supported")
        cmvn_file = conf.get("cmvn_file")
        shift = scale = None
        if cmvn_file:
            path = self.src / Path(str(cmvn_file)).name
            if not path.is_file():
                raise ExportError(f"{path} not found: config.yaml names the CMVN file {cmvn_file!r}")
            try:
                shift, scale = parse_kaldi_mvn(path.read_text(encoding="utf-8"), str(path))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ExportError(str(exc)) from exc
        n_mels, lfr_m = int(conf.get("n_mels", 80)), int(conf.get("lfr_m", 1))
        if shift is not None and len(shift) != n_mels * lfr_m:
            raise ExportError(f"{path} has {len(shift)} CMVN values; the frontend gives {n_mels * lfr_m}")
        try:
            return LfrFbank(num_mel_bins=n_mels, frame_length_ms=float(conf.get("frame_length", 25)),
                            frame_shift_ms=float(conf.get("frame_shift", 10)),
                            window=str(conf.get("window", "hamming")), lfr_m=lfr_m,
                            lfr_n=int(conf.get("lfr_n", 1)),
                            cmvn_shift=None if shift is None else tuple(shift),
                            cmvn_scale=None if scale is None else tuple(scale))
        except Exception as exc:  # BundleError from the frontend's own checks
            raise ExportError(f"{where}: {exc}") from exc

    def load_state(self) -> dict[str, Any]:
        """Every tensor of ``model.pt`` (unwrapped like FunASR's ``normalize_checkpoint_state``)."""
        import pickle
        import zipfile

        import torch

        try:
            state = torch.load(self.weights_path, map_location="cpu", weights_only=True, mmap=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
            raise ExportError(f"{self.weights_path} cannot be read (truncated, damaged or not a torch checkpoint): "
                              f"{str(exc).strip().splitlines()[0]}") from exc
        while isinstance(state, dict):
            inner = next((state[k] for k in ("state_dict", "model_state_dict", "model")
                          if isinstance(state.get(k), dict)), None)
            if inner is None:
                break
            state = inner
        if not isinstance(state, dict) or not state:
            raise ExportError(f"{self.weights_path} holds no state dict")
        state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
        bad = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
        if bad is not None:
            raise ExportError(f"{self.weights_path}: entry {bad!r} is not a tensor")
        if not any(k.startswith("audio_adaptor.") for k in state) or not any(k.startswith("llm.") for k in state):
            raise ExportError(f"{self.weights_path} has no audio_adaptor.* or llm.* tensors: it is not a "
                              "Fun-ASR-Nano checkpoint")
        unexpected = [k for k in state if not k.startswith((*_AUDIO_PREFIXES, "llm.", *_IGNORED_PREFIXES))]
        if unexpected:
            raise ExportError(f"{self.weights_path}: unexpected tensor {unexpected[0]!r} ({len(unexpected)} outside "
                              "audio_encoder / audio_adaptor / llm / ctc)")
        return state

    def audio_graph(self, state: dict[str, Any]):
        """Our encoder + adaptor module with the released weights (fp32); every tensor checked by name and shape."""
        import torch

        from ..model.sensevoice import NanoEncoderGraph

        graph = NanoEncoderGraph(self.audio)
        want = graph.state_dict()
        got = {k: v for k, v in state.items() if k.startswith(_AUDIO_PREFIXES)}
        missing = [k for k in want if k not in got]
        if missing:
            raise ExportError(f"{self.weights_path} lacks tensor {missing[0]!r} ({len(missing)} missing) that "
                              f"{self.config_path.name} implies")
        extra = [k for k in got if k not in want]
        if extra:
            raise ExportError(f"{self.weights_path}: unexpected tensor {extra[0]!r} ({len(extra)} not in the "
                              f"architecture {self.config_path.name} describes)")
        for k, t in want.items():
            if tuple(got[k].shape) != tuple(t.shape):
                raise ExportError(f"tensor {k!r} in {self.weights_path.name} has shape {list(got[k].shape)}, "
                                  f"{self.config_path.name} implies {list(t.shape)}")
            if not torch.is_floating_point(got[k]):
                raise ExportError(f"tensor {k!r} has dtype {got[k].dtype}, expected a floating-point weight")
        graph.load_state_dict({k: v.to(torch.float32) for k, v in got.items()})
        for k, p in graph.state_dict().items():
            if not torch.isfinite(p).all():
                raise ExportError(f"tensor {k!r} in {self.weights_path.name} contains NaN or Inf")
        return graph.eval()

    def llm_state(self, state: dict[str, Any]) -> dict[str, Any]:
        llm = {k[len("llm."):]: v for k, v in state.items() if k.startswith("llm.")}
        embed = llm.get("model.embed_tokens.weight")
        if embed is None:
            raise ExportError(f"{self.weights_path} lacks tensor 'llm.model.embed_tokens.weight'")
        if embed.shape[-1] != self.llm_hidden or embed.shape[0] != int(self.llm_config.get("vocab_size", -1)):
            raise ExportError(f"tensor 'llm.model.embed_tokens.weight' has shape {list(embed.shape)}; "
                              f"{self.llm_config_path} says vocab_size {self.llm_config.get('vocab_size')} and "
                              f"hidden_size {self.llm_hidden}")
        if self.llm_config.get("tie_word_embeddings") and "lm_head.weight" in llm:
            import torch

            if not torch.equal(llm["lm_head.weight"], embed):
                raise ExportError("tie_word_embeddings is true but tensor 'llm.lm_head.weight' differs from "
                                  "'llm.model.embed_tokens.weight'")
            del llm["lm_head.weight"]  # tied: llama.cpp reuses token_embd
        return llm

    def sha256(self) -> str:
        return sha256_file(self.weights_path)


def export_nano_encoder_onnx(graph, out_path: str | Path, example_rows: int = 83) -> Path:
    """Export :class:`~nim4asr_export.model.sensevoice.NanoEncoderGraph` to ONNX (features [B, T, 560] ->
    audio_embeds [B, N, llm], audio_embed_lengths [B]); weights over 1 GiB go to a side file."""
    import torch

    from ..onnx_export import DEFAULT_OPSET, EXTERNAL_DATA_THRESHOLD_BYTES, _save, _trace, _weight_bytes

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    feats = torch.randn(2, example_rows, graph.cfg.input_size, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([example_rows, example_rows - 29], dtype=torch.int64)
    axes = {"features": {0: "batch", 1: "frames"}, "feature_lengths": {0: "batch"},
            "audio_embeds": {0: "batch", 1: "tokens"}, "audio_embed_lengths": {0: "batch"}}
    proto = _trace(graph, (feats, lengths), ("features", "feature_lengths"),
                   ("audio_embeds", "audio_embed_lengths"), axes, DEFAULT_OPSET, out_path.parent, "Nano encoder")
    _save(proto, out_path, _weight_bytes(graph) > EXTERNAL_DATA_THRESHOLD_BYTES)
    return out_path


def _check_graph(graph, onnx_path: Path, rows: int = 167) -> dict[str, float]:
    """ONNX vs our PyTorch module on one seeded random input (10 s of rows): max abs diff of the embeddings."""
    import torch

    from nim4asr_edge.encoder import EncoderSession

    feats = np.random.default_rng(0).standard_normal((rows, graph.cfg.input_size)).astype(np.float32)
    with torch.no_grad():
        ref, n = graph(torch.from_numpy(feats)[None], torch.tensor([rows]))
    with EncoderSession(onnx_path, phonemes=False) as session:
        got = session.run(feats).audio_embeds
    ref = ref[0, : int(n[0])].numpy()
    return {"rows": rows, "tokens": int(n[0]), "audio_embeds_max_abs_diff": float(np.abs(got - ref).max()),
            "audio_embeds_max_abs": float(np.abs(ref).max())}


def import_bundle(src: Path, out: Path, options: ImportOptions, progress: Progress) -> Manifest:
    """Import the released Fun-ASR-Nano directory ``src`` into the bundle ``out`` (see the module docstring)."""
    import torch

    enc_wanted, llm_wanted = split_quant(options.quant)
    base_type = "f32" if "f32" in llm_wanted else "f16"
    steps = 4 + ("int8" in enc_wanted) + len([q for q in llm_wanted if q != base_type])
    t0 = time.perf_counter()
    with BundleWriter(out, steps, progress, options.overwrite) as w:
        w.say(f"reading the Fun-ASR-Nano release {src}")
        release = NanoRelease(src)
        state = release.load_state()
        graph = release.audio_graph(state)
        checks: dict[str, Any] = {}
        check = (lambda path: _check_graph(graph, path)) if options.check else None
        with torch.no_grad():
            enc_files = w.encoder_graphs("encoder", lambda p: export_nano_encoder_onnx(graph, p), enc_wanted,
                                         check, checks)
        graph = check = None
        llm_state = release.llm_state(state)
        del state
        llm_files, reports = w.llm_gguf(llm_state, release.llm_config, release.tokenizer_path, llm_wanted,
                                        options.threads, name="fun-asr-nano-llm")
        del llm_state
        stop = release.stop
        prompt = NanoPrompt(languages=NANO_LANGUAGES, stop=stop, **release.prompt_settings)
        return w.finish(
            name=options.name or Path(out).name,
            family=FAMILY,
            source={"checkpoint_sha256": release.sha256(), "importer": f"nim4asr-export {__version__}",
                    "release": str(Path(src).name)},
            frontend=release.frontend.to_manifest(),
            encoder={"files": enc_files, "default": "int8" if "int8" in enc_files else "fp32",
                     "frame_rate_hz": 1000.0 / LFR_ROW_MS, "token_rate_hz": TOKEN_RATE_HZ,
                     "llm_hidden": release.llm_hidden, "streaming": None},
            phonemes={"inventory": list(ENGLISH_INVENTORY), "blank": 0, "word_boundary": "|",
                      "g2p": "espeak-ng:en-us"},
            llm={"files": llm_files, "default": llm_wanted[0], "architecture": "qwen3",
                 "n_embd": release.llm_hidden, "quantization": reports},
            # unused by this family (its prompt is extra.fun_asr_nano.prompt); kept for the manifest's schema
            prompt=PromptTemplate(prefix="", suffix="{context}", stop=stop),
            extra={EXTRA_KEY: {"prompt": prompt.to_dict(), "audio": release.audio.to_dict()},
                   "export_checks": checks, "export_seconds": round(time.perf_counter() - t0, 1)},
        )


def _stop_tokens(release: NanoRelease) -> tuple[str, ...]:
    """The LLM config's eos ids as token strings (read from the release's tokenizer.json)."""
    from nim4asr_edge.errors import CheckpointError

    from ..tokenizers import SourceTokenizer

    try:
        tok = SourceTokenizer.load(release.tokenizer_path)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc
    by_id = {e: tok._impl.id_to_token(e) for e in release.eos_ids}
    missing = [i for i, t in by_id.items() if t is None]
    if missing:
        raise ExportError(f"{release.tokenizer_path} has no token {missing[0]} ({release.llm_config_path.name}'s "
                          "eos_token_id)")
    return tuple(by_id.values())


# -- a directory laid out like the release, with random weights ----------------------------------------------------

def tiny_llm_config(vocab_size: int = 151936) -> dict[str, Any]:
    """A small Qwen3 (2 layers, width 64) with Qwen3-0.6B's vocabulary and conventions."""
    return {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": vocab_size,
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "hidden_act": "silu", "max_position_embeddings": 40960,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000, "rope_scaling": None, "tie_word_embeddings": True,
            "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
            "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False, "sliding_window": None,
            "max_window_layers": 28}


def released_llm_config() -> dict[str, Any]:
    """Qwen3-0.6B's config.json (the stock values)."""
    return {**tiny_llm_config(), "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
            "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128}


def release_config_yaml(audio, llm_dir: str = "Qwen3-0.6B", dataset_conf: dict | None = None) -> dict[str, Any]:
    """config.yaml as the release's (the fields the reference reads; shapes from ``audio``)."""
    return {
        "model": MODEL_CLASS,
        "model_conf": {"lsm_weight": 0.1, "length_normalized_loss": True},
        "audio_encoder": ENCODER_CLASS,
        "audio_encoder_conf": {"output_size": audio.output_size, "attention_heads": audio.attention_heads,
                               "linear_units": audio.linear_units, "num_blocks": audio.num_blocks,
                               "tp_blocks": audio.tp_blocks, "dropout_rate": 0.1, "positional_dropout_rate": 0.1,
                               "attention_dropout_rate": 0.1, "input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder",
                               "normalize_before": True, "kernel_size": audio.kernel_size,
                               "sanm_shfit": audio.sanm_shfit, "selfattention_layer_type": "sanm", "freeze": True},
        "llm": "Qwen3-0.6b",
        "llm_conf": {"hub": "hf", "freeze": True, "llm_dtype": "bf16", "init_param_path": llm_dir,
                     "use_lora": False},
        "audio_adaptor": ADAPTOR_CLASS,
        "audio_adaptor_conf": {"downsample_rate": audio.adaptor_downsample_rate, "use_low_frame_rate": True,
                               "ffn_dim": audio.adaptor_ffn_dim, "llm_dim": audio.llm_dim,
                               "encoder_dim": audio.output_size, "n_layer": audio.adaptor_layers, "freeze": False},
        "frontend": FRONTEND_CLASS,
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                          "lfr_m": 7, "lfr_n": 6, "cmvn_file": None},
        "dataset_conf": dict(dataset_conf or {}),
    }


def write_random_release(out: str | Path, tokenizer_json: str | Path, audio=None, llm_config: dict | None = None,
                         seed: int = 0, weight_std: float = 0.3, embed_std: float = 2.0,
                         wrap: bool = True, dataset_conf: dict | None = None) -> Path:
    """A directory laid out like the Fun-ASR-Nano release with seeded random weights (bf16, as released).

    ``audio``: a :class:`~nim4asr_export.model.sensevoice.NanoAudioConfig` (default: the tiny one);
    ``llm_config``: the Qwen3 config.json (default :func:`tiny_llm_config`). The LLM's matrices get std
    ``weight_std`` and its tied embedding ``embed_std`` (both at width 64, scaled down for wider models) so that
    greedy argmax margins are clear (token-exact parity is meaningful). ``wrap``: store the weights under a ``state_dict`` key (both forms exist in FunASR releases).
    """
    import shutil

    import torch
    import yaml
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from ..model.sensevoice import NanoEncoderGraph, tiny_audio_config

    llm_config = dict(llm_config or tiny_llm_config())
    audio = audio or tiny_audio_config(llm_config["hidden_size"])
    if audio.llm_dim != llm_config["hidden_size"]:
        audio = replace(audio, llm_dim=llm_config["hidden_size"])
    out = Path(out)
    (out / "Qwen3-0.6B").mkdir(parents=True, exist_ok=True)
    graph = NanoEncoderGraph.build(audio, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        llm = Qwen3ForCausalLM(Qwen3Config(**{k: v for k, v in llm_config.items() if k != "architectures"}))
        with torch.no_grad():
            for name, p in llm.named_parameters():
                if p.ndim == 2:
                    p.normal_(0.0, weight_std / math.sqrt(p.shape[1] / 64.0))
            # std ``embed_std`` at width 64, scaled by sqrt(64 / width): tied logits keep a realistic spread (std
            # ~16) at every width instead of growing with it
            llm.get_input_embeddings().weight.normal_(0.0, embed_std * math.sqrt(64.0 / llm_config["hidden_size"]))
    state = {f"{k}": v.to(torch.bfloat16) for k, v in graph.state_dict().items()}
    state.update({f"llm.{k}": v.to(torch.bfloat16) for k, v in llm.state_dict().items()})
    if llm_config.get("tie_word_embeddings"):
        state["llm.lm_head.weight"] = state["llm.model.embed_tokens.weight"]
    torch.save({"state_dict": state} if wrap else state, out / "model.pt")
    (out / "config.yaml").write_text(yaml.safe_dump(release_config_yaml(audio, dataset_conf=dataset_conf),
                                                    allow_unicode=True, sort_keys=False), encoding="utf-8")
    (out / "configuration.json").write_text(json.dumps({"framework": "pytorch", "task": "auto-speech-recognition",
                                                        "model": {"type": "funasr"}}), encoding="utf-8")
    qwen = out / "Qwen3-0.6B"
    (qwen / "config.json").write_text(json.dumps(llm_config, indent=2), encoding="utf-8")
    shutil.copy(tokenizer_json, qwen / "tokenizer.json")
    (qwen / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": None, "add_bos_token": False, "add_prefix_space": False,
        "errors": "replace", "model_max_length": 131072, "clean_up_tokenization_spaces": False,
        "split_special_tokens": False}), encoding="utf-8")
    (qwen / "generation_config.json").write_text(json.dumps({"bos_token_id": 151643, "eos_token_id": [151645, 151643],
                                                             "pad_token_id": 151643}), encoding="utf-8")
    return out
