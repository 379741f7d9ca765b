"""Run the offline encoder graph (Conformer + phoneme-CTC head + adaptor) with onnxruntime.

numpy and onnxruntime only.  The graph contract is ``docs/FORMAT.md`` ("Encoder ONNX graph (offline)")::

    features [batch, frames, n_mels] float32, feature_lengths [batch] int64
      -> audio_embeds [batch, tokens, llm_hidden] float32, audio_embed_lengths [batch] int64,
         phoneme_logprobs [batch, enc_frames, n_phonemes] float32, phoneme_lengths [batch] int64

    enc_frames = ((frames - 1) // 2 - 1) // 2        tokens = ceil(enc_frames / 4)

Example::

    with EncoderSession("bundle/encoder.int8.onnx", EncoderOptions(intra_op_num_threads=2)) as enc:
        out = enc.run(features)            # features: [T, n_mels] float32, CMVN-normalised
        out.audio_embeds                   # [tokens, llm_hidden] -> the LLM
        out.phoneme_logprobs               # [enc_frames, n_phonemes] -> phoneme decoding / hotwords
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import AudioError, BundleError

__all__ = [
    "EncoderOptions",
    "EncoderOutput",
    "EncoderSession",
    "MIN_FRAMES",
    "encoder_frames",
    "audio_tokens",
]

logger = logging.getLogger("nim4asr_edge.encoder")

INPUT_NAMES = ("features", "feature_lengths")
OUTPUT_NAMES = ("audio_embeds", "audio_embed_lengths", "phoneme_logprobs", "phoneme_lengths")
_INPUT_TYPES = {"features": "tensor(float)", "feature_lengths": "tensor(int64)"}
_OUTPUT_TYPES = {
    "audio_embeds": "tensor(float)",
    "audio_embed_lengths": "tensor(int64)",
    "phoneme_logprobs": "tensor(float)",
    "phoneme_lengths": "tensor(int64)",
}
_CONTRACT = "encoder graph does not match the nim4asr-bundle v1 contract"

MIN_FRAMES = 7  # feature frames (10 ms shift) the conv2d stem needs for one 40 ms encoder frame
FRAME_SHIFT_MS = 10.0  # feature frame shift, for messages
FRAME_LENGTH_MS = 25.0  # feature window, for messages
ADAPTOR_STACK = 4  # encoder frames per audio token (docs/FORMAT.md)

_OPT_LEVELS = ("disable", "basic", "extended", "all")


def encoder_frames(n_frames: int) -> int:
    """Encoder frames (25 Hz) for ``n_frames`` feature frames (100 Hz): ``((T - 1) // 2 - 1) // 2``, >= 0."""
    return max(((n_frames - 1) // 2 - 1) // 2, 0)


def audio_tokens(n_enc_frames: int, stack: int = ADAPTOR_STACK) -> int:
    """Audio tokens (6.25 Hz) for ``n_enc_frames`` encoder frames: ``ceil(n / stack)``."""
    return -(-n_enc_frames // stack)


@dataclass(frozen=True)
class EncoderOptions:
    """How the encoder's onnxruntime session is built.  Change fields with ``dataclasses.replace``."""

    intra_op_num_threads: int = 0  # threads inside one operator; 0 = onnxruntime's default (one per core)
    inter_op_num_threads: int = 1  # threads across independent operators (the graph is sequential: 1 is right)
    providers: tuple[str, ...] = ("CPUExecutionProvider",)  # in priority order; absent ones are skipped (logged)
    graph_optimization_level: str = "all"  # "disable" | "basic" | "extended" | "all"
    enable_mem_arena: bool = True  # onnxruntime's CPU arena: faster repeated runs, memory kept between runs
    log_severity_level: int = 3  # onnxruntime's own log: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal

    def __post_init__(self) -> None:
        if isinstance(self.providers, str):
            raise ValueError("providers must be a sequence of provider names, not one string")
        object.__setattr__(self, "providers", tuple(self.providers))
        _verify_options(self)


def _verify_options(options: EncoderOptions) -> None:
    if options.intra_op_num_threads < 0 or options.inter_op_num_threads < 0:
        raise ValueError("thread counts must be >= 0 (0 = onnxruntime's default)")
    if not options.providers:
        raise ValueError("providers must name at least one onnxruntime execution provider")
    if not all(isinstance(p, str) and p for p in options.providers):
        raise ValueError(f"providers must be provider names, got {options.providers!r}")
    if options.graph_optimization_level not in _OPT_LEVELS:
        raise ValueError(
            f"graph_optimization_level must be one of {_OPT_LEVELS}, got {options.graph_optimization_level!r}"
        )
    if options.log_severity_level not in (0, 1, 2, 3, 4):
        raise ValueError(f"log_severity_level must be 0..4, got {options.log_severity_level!r}")


@dataclass(frozen=True, eq=False)
class EncoderOutput:
    """The encoder's result for one utterance (padding removed)."""

    audio_embeds: np.ndarray  # [tokens, llm_hidden] float32, LLM-ready (6.25 tokens/s)
    phoneme_logprobs: np.ndarray  # [enc_frames, n_phonemes] float32, log-softmax; blank = 0 (25 frames/s)
    n_frames: int = 0  # feature frames given
    elapsed_s: float = 0.0  # wall time of the onnxruntime run that produced it (a whole batch for run_batch)


def _resolve_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    chosen = [p for p in requested if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        logger.warning(
            "onnxruntime execution provider(s) %s not available in this onnxruntime build (available: %s); "
            "using %s",
            ", ".join(missing),
            ", ".join(available),
            ", ".join(chosen + ([] if "CPUExecutionProvider" in chosen else ["CPUExecutionProvider"])),
        )
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


class EncoderSession:
    """An onnxruntime session over an offline encoder graph; use as a context manager (or call ``close``).

    Raises ``BundleError`` when the file is missing, cannot be loaded, or its inputs/outputs are not the
    nim4asr-bundle v1 contract.  One session may be shared by threads for ``run`` (onnxruntime's ``run`` is
    thread-safe).
    """

    def __init__(self, path: str | Path, options: EncoderOptions | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.options = options if options is not None else EncoderOptions()
        if not self.path.is_file():
            raise BundleError(f"encoder graph {self.path} not found: the bundle is incomplete")
        opts = self.options
        so = ort.SessionOptions()
        so.intra_op_num_threads = opts.intra_op_num_threads
        so.inter_op_num_threads = opts.inter_op_num_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[opts.graph_optimization_level]
        so.enable_cpu_mem_arena = opts.enable_mem_arena
        so.log_severity_level = opts.log_severity_level
        providers = _resolve_providers(opts.providers, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail, ...)
            raise BundleError(
                f"cannot load encoder graph {self.path}: {str(exc).strip()}; the file is damaged or not an ONNX "
                "graph (re-export or re-download the bundle)"
            ) from exc
        self._n_mels, self._llm_hidden, self._n_phonemes = self._check_contract()
        logger.debug(
            "encoder %s: n_mels=%d llm_hidden=%d n_phonemes=%d providers=%s",
            self.path, self._n_mels, self._llm_hidden, self._n_phonemes, self.providers,
        )

    # -- contract ---------------------------------------------------------------------------------------------

    def _check_contract(self) -> tuple[int, int, int]:
        sess = self._session
        inputs = {i.name: i for i in sess.get_inputs()}
        outputs = {o.name: o for o in sess.get_outputs()}
        if set(inputs) != set(INPUT_NAMES) or set(outputs) != set(OUTPUT_NAMES):
            raise BundleError(
                f"{_CONTRACT}: {self.path} has inputs {sorted(inputs)} and outputs {sorted(outputs)}, expected "
                f"inputs {list(INPUT_NAMES)} and outputs {list(OUTPUT_NAMES)} (docs/FORMAT.md)"
            )
        for name, want in (*_INPUT_TYPES.items(), *_OUTPUT_TYPES.items()):
            arg = inputs.get(name) or outputs[name]
            if arg.type != want:
                raise BundleError(f"{_CONTRACT}: {name} is {arg.type}, expected {want}")
        ranks = {"features": 3, "feature_lengths": 1, "audio_embeds": 3, "audio_embed_lengths": 1,
                 "phoneme_logprobs": 3, "phoneme_lengths": 1}
        for name, rank in ranks.items():
            arg = inputs.get(name) or outputs[name]
            if len(arg.shape) != rank:
                raise BundleError(f"{_CONTRACT}: {name} has shape {arg.shape}, expected rank {rank}")

        def static_dim(arg) -> int:
            dim = arg.shape[-1]
            if not isinstance(dim, int) or dim < 1:
                raise BundleError(f"{_CONTRACT}: the last axis of {arg.name} must be fixed, got {arg.shape}")
            return dim

        return (
            static_dim(inputs["features"]),
            static_dim(outputs["audio_embeds"]),
            static_dim(outputs["phoneme_logprobs"]),
        )

    # -- properties -------------------------------------------------------------------------------------------

    @property
    def n_mels(self) -> int:
        return self._n_mels

    @property
    def llm_hidden(self) -> int:
        return self._llm_hidden

    @property
    def n_phonemes(self) -> int:
        return self._n_phonemes

    @property
    def providers(self) -> list[str]:
        """The execution providers onnxruntime actually uses, in priority order."""
        return list(self._live().get_providers())

    # -- running ----------------------------------------------------------------------------------------------

    def run(self, features: np.ndarray) -> EncoderOutput:
        """Encode one utterance: ``features`` [T, n_mels] float32 (CMVN-normalised, T >= 7)."""
        return self.run_batch([features])[0]

    def run_batch(self, features: Sequence[np.ndarray]) -> list[EncoderOutput]:
        """Encode several utterances in one padded batch; each result equals ``run`` on that item alone."""
        if isinstance(features, np.ndarray) or len(features) == 0:
            raise AudioError("run_batch takes a non-empty list of [frames, n_mels] arrays")
        items = [self._validate(f, i if len(features) > 1 else None) for i, f in enumerate(features)]
        lengths = np.array([f.shape[0] for f in items], dtype=np.int64)
        batch = np.zeros((len(items), int(lengths.max()), self._n_mels), dtype=np.float32)
        for i, f in enumerate(items):
            batch[i, : f.shape[0]] = f
        sess = self._live()
        t0 = time.perf_counter()
        try:
            embeds, embed_lens, logprobs, phone_lens = sess.run(
                list(OUTPUT_NAMES), {"features": batch, "feature_lengths": lengths}
            )
        except Exception as exc:
            raise BundleError(f"encoder graph {self.path} failed on a batch of shape {batch.shape}: {exc}") from exc
        elapsed = time.perf_counter() - t0
        out = []
        for i, n in enumerate(lengths.tolist()):
            n_enc, n_tok = int(phone_lens[i]), int(embed_lens[i])
            if n_enc != encoder_frames(n) or n_tok != audio_tokens(n_enc):
                raise BundleError(
                    f"{_CONTRACT}: for {n} frames it returned {n_enc} encoder frames and {n_tok} tokens, expected "
                    f"{encoder_frames(n)} and {audio_tokens(encoder_frames(n))}"
                )
            out.append(
                EncoderOutput(
                    audio_embeds=np.ascontiguousarray(embeds[i, :n_tok]),
                    phoneme_logprobs=np.ascontiguousarray(logprobs[i, :n_enc]),
                    n_frames=n,
                    elapsed_s=elapsed,
                )
            )
        return out

    def _validate(self, features: np.ndarray, index: int | None) -> np.ndarray:
        where = "" if index is None else f" (item {index})"
        if not isinstance(features, np.ndarray):
            raise AudioError(f"features{where} must be a numpy array, got {type(features).__name__}")
        if features.dtype != np.float32:
            raise AudioError(
                f"features{where} must be float32, got {features.dtype}; convert with features.astype(np.float32)"
            )
        if features.ndim != 2 or features.shape[1] != self._n_mels:
            raise AudioError(
                f"features{where} must have shape [frames, {self._n_mels}] for this encoder, got {features.shape}"
            )
        n = features.shape[0]
        if n < MIN_FRAMES:
            min_ms = (MIN_FRAMES - 1) * FRAME_SHIFT_MS + FRAME_LENGTH_MS
            raise AudioError(
                f"audio too short{where}: {n} feature frames; the encoder needs at least {MIN_FRAMES} "
                f"(about {min_ms:.0f} ms of audio)"
            )
        if not np.isfinite(features).all():
            raise AudioError(f"features{where} contain NaN or infinity; check the audio and the frontend")
        return np.ascontiguousarray(features)

    # -- lifetime ---------------------------------------------------------------------------------------------

    def _live(self):
        if self._session is None:
            raise RuntimeError(f"EncoderSession({self.path}) is closed")
        return self._session

    def close(self) -> None:
        """Release the onnxruntime session (idempotent)."""
        self._session = None

    def __enter__(self) -> "EncoderSession":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._session is None else f"n_mels={self._n_mels}, llm_hidden={self._llm_hidden}"
        return f"EncoderSession({str(self.path)!r}, {state})"
