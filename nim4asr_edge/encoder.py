"""Run the offline encoder graph (encoder + adaptor, and a phoneme-CTC head where the model has one) with
onnxruntime.  The cache-carrying streaming graph is in ``streaming_encoder.py``.

numpy and onnxruntime only.  The graph contract is ``docs/FORMAT.md`` ("Encoder ONNX graph (offline)")::

    features [batch, frames, n_mels] float32, feature_lengths [batch] int64
      -> audio_embeds [batch, tokens, llm_hidden] float32, audio_embed_lengths [batch] int64,
         and, for a model family with a phoneme head (NIM4):
         phoneme_logprobs [batch, enc_frames, n_phonemes] float32, phoneme_lengths [batch] int64

    enc_frames = ((frames - 1) // 2 - 1) // 2        tokens = ceil(enc_frames / 4)

Example::

    with EncoderSession("bundle/encoder.int8.onnx", EncoderOptions(intra_op_num_threads=2)) as enc:
        out = enc.run(features)            # features: [T, n_mels] float32, CMVN-normalised
        out.audio_embeds                   # [tokens, llm_hidden] -> the LLM
        out.phoneme_logprobs               # [enc_frames, n_phonemes] -> phoneme decoding / hotwords
        enc.run(padded, n_valid=n)         # e.g. Whisper's 30-s padding: equals enc.run(padded[:n])

A graph whose encoder attends within windows may take an overridable ``attention_window`` input (float32 ``[W]``; its
length is the window in audio tokens, its initializer the default): ``enc.run(features, window=26)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import AudioError, BundleError
from .frontend import Features
from .process_memory import return_freed_heap

__all__ = [
    "EncoderOptions",
    "EncoderOutput",
    "EncoderSession",
    "MIN_FRAMES",
    "WINDOW_INPUT",
    "encoder_frames",
    "audio_tokens",
]

logger = logging.getLogger("nim4asr_edge.encoder")

INPUT_NAMES = ("features", "feature_lengths")
WINDOW_INPUT = "attention_window"  # optional overridable initializer: its length is the attention window (tokens)
OUTPUT_NAMES = ("audio_embeds", "audio_embed_lengths", "phoneme_logprobs", "phoneme_lengths")
_INPUT_TYPES = {"features": "tensor(float)", "feature_lengths": "tensor(int64)"}
_OUTPUT_TYPES = {
    "audio_embeds": "tensor(float)",
    "audio_embed_lengths": "tensor(int64)",
    "phoneme_logprobs": "tensor(float)",
    "phoneme_lengths": "tensor(int64)",
}
PHONEME_OUTPUTS = ("phoneme_logprobs", "phoneme_lengths")
_CONTRACT = "encoder graph does not match the nim4asr-bundle v1 contract"  # graph contract: unchanged by manifest v2

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
    # onnxruntime's CPU arena, emptied after every run: it reuses buffers within a run (full-size int8, 30 s: 1.2 s
    # instead of 2.0 s) and holds little between runs (a 10 s run peaked 15-25 MB above the floor, vs 55-62 MB
    # through malloc). Off: every buffer goes through malloc.
    enable_mem_arena: bool = True
    allow_spinning: bool = False  # busy-wait between ops: a little faster alone, much slower beside other load
    prepack_weights: bool = True  # onnxruntime's pre-packed weight copies: faster, but ~0.3 GB more at full size
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

    audio_embeds: np.ndarray  # [tokens, llm_hidden] float32, LLM-ready (NIM4: 6.25 tokens/s)
    phoneme_logprobs: np.ndarray | None  # [enc_frames, n_phonemes] float32, log-softmax, blank 0 (None: no head)
    n_frames: int = 0  # feature frames given


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


def _open_session(path: Path, opts: EncoderOptions):
    """An onnxruntime ``InferenceSession`` over ``path`` built from ``opts``; ``BundleError`` if missing/damaged."""
    import onnxruntime as ort

    if not path.is_file():
        raise BundleError(f"encoder graph {path} not found: the bundle is incomplete")
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
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if opts.allow_spinning else "0")
    if not opts.prepack_weights:
        so.add_session_config_entry("session.disable_prepacking", "1")
    so.log_severity_level = opts.log_severity_level
    providers = _resolve_providers(opts.providers, ort.get_available_providers())
    try:
        session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail, ...)
        if path.suffix == ".ort":  # ORT format (mobile bundles): onnxruntime reads only the format versions it knows
            raise BundleError(
                f"cannot load ORT-format encoder graph {path} with onnxruntime {ort.__version__}: "
                f"{str(exc).strip()}; the file is damaged or was converted by an onnxruntime this one cannot read "
                "(rebuild the mobile bundle with this onnxruntime: examples/mobile/make_bundle.py)"
            ) from exc
        raise BundleError(
            f"cannot load encoder graph {path}: {str(exc).strip()}; the file is damaged or not an ONNX "
            "graph (re-export or re-download the bundle)"
        ) from exc
    return_freed_heap()
    return session


def run_options(opts: EncoderOptions):
    """The onnxruntime ``RunOptions`` for every run of a session built from ``opts``: the arena (when on) gives
    back what the run no longer holds, so a long input's buffers do not stay resident after it."""
    import onnxruntime as ort

    ro = ort.RunOptions()
    if opts.enable_mem_arena:
        ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return ro


def _check_features(features: np.ndarray, n_mels: int, where: str = "") -> None:
    """Type, dtype, shape ``[frames, n_mels]`` and finiteness of a feature array (``AudioError`` otherwise)."""
    if not isinstance(features, np.ndarray):
        raise AudioError(f"features{where} must be a numpy array, got {type(features).__name__}")
    if features.dtype != np.float32:
        raise AudioError(
            f"features{where} must be float32, got {features.dtype}; convert with features.astype(np.float32)"
        )
    if features.ndim != 2 or features.shape[1] != n_mels:
        raise AudioError(f"features{where} must have shape [frames, {n_mels}] for this encoder, got {features.shape}")
    if not np.isfinite(features).all():
        raise AudioError(f"features{where} contain NaN or infinity; check the audio and the frontend")


class _OrtSession:
    """Lifetime of one onnxruntime session: ``close()`` (idempotent) releases it; usable as a context manager."""

    path: Path
    _session: object

    def _live(self):
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__}({self.path}) is closed")
        return self._session

    def close(self) -> None:
        """Release the onnxruntime session (idempotent); a closed session refuses further runs."""
        self._session = None

    # Graph facts read by the subclasses' contract checks.
    _n_mels: int
    _llm_hidden: int
    _n_phonemes: int

    @property
    def n_mels(self) -> int:
        return self._n_mels

    @property
    def llm_hidden(self) -> int:
        return self._llm_hidden

    @property
    def n_phonemes(self) -> int:
        """Classes of the phoneme-CTC head (0: the graph has none)."""
        return self._n_phonemes

    @property
    def providers(self) -> list[str]:
        """The execution providers onnxruntime actually uses, in priority order."""
        return list(self._live().get_providers())

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class EncoderSession(_OrtSession):
    """An onnxruntime session over an offline encoder graph; use as a context manager (or call ``close``).

    Raises ``BundleError`` when the file is missing, cannot be loaded, or its inputs/outputs are not the bundle
    contract.  ``phonemes``: whether the graph must have the phoneme-CTC outputs (the model family says; NIM4 does)
    or must not.  One session may be shared by threads for ``run`` (onnxruntime's ``run`` is thread-safe).
    """

    def __init__(self, path: str | Path, options: EncoderOptions | None = None, phonemes: bool = True):
        self.path = Path(path)
        self.options = options if options is not None else EncoderOptions()
        self._outputs = OUTPUT_NAMES if phonemes else tuple(n for n in OUTPUT_NAMES if n not in PHONEME_OUTPUTS)
        self._session = _open_session(self.path, self.options)
        self._run_options = run_options(self.options)
        self._n_mels, self._llm_hidden, self._n_phonemes = self._check_contract()
        # whether the graph takes an attention window (its default, the graph's own window, is in the manifest)
        self.takes_window = any(i.name == WINDOW_INPUT for i in self._session.get_overridable_initializers())
        logger.debug(
            "encoder %s: n_mels=%d llm_hidden=%d n_phonemes=%d providers=%s",
            self.path, self._n_mels, self._llm_hidden, self._n_phonemes, self.providers,
        )

    # -- contract ---------------------------------------------------------------------------------------------

    def _check_contract(self) -> tuple[int, int, int]:
        sess = self._session
        inputs = {i.name: i for i in sess.get_inputs()}
        outputs = {o.name: o for o in sess.get_outputs()}
        if set(inputs) != set(INPUT_NAMES) or set(outputs) != set(self._outputs):
            raise BundleError(
                f"{_CONTRACT}: {self.path} has inputs {sorted(inputs)} and outputs {sorted(outputs)}, expected "
                f"inputs {list(INPUT_NAMES)} and outputs {list(self._outputs)} (docs/FORMAT.md)"
            )
        for name, want in (*_INPUT_TYPES.items(), *_OUTPUT_TYPES.items()):
            arg = inputs.get(name) or outputs.get(name)
            if arg is not None and arg.type != want:
                raise BundleError(f"{_CONTRACT}: {name} is {arg.type}, expected {want}")
        ranks = {"features": 3, "feature_lengths": 1, "audio_embeds": 3, "audio_embed_lengths": 1,
                 "phoneme_logprobs": 3, "phoneme_lengths": 1}
        for name, rank in ranks.items():
            arg = inputs.get(name) or outputs.get(name)
            if arg is None:
                continue
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
            static_dim(outputs["phoneme_logprobs"]) if "phoneme_logprobs" in outputs else 0,
        )

    # -- running ----------------------------------------------------------------------------------------------

    def run(self, features: np.ndarray | Features, n_valid: int | None = None,
            window: int | None = None) -> EncoderOutput:
        """Encode one utterance: ``features`` [T, n_mels] float32 (CMVN-normalised, T >= 7), or a frontend's
        :class:`~nim4asr_edge.frontend.Features` (values and ``n_valid`` together, so padding is never encoded).

        ``n_valid``: how many leading frames are speech when ``features`` is already padded (e.g. Whisper's 30-s
        window); the graph gets ``feature_lengths = n_valid`` (default ``T``) and masks the rest, so the result
        equals running ``features[:n_valid]`` alone.  The padding must still be finite.
        ``window``: the attention window in tokens, for a graph with a window input (default: the graph's own).
        """
        if isinstance(features, Features):
            features, n_valid = features.values, features.n_valid
        if n_valid is None:
            return self.run_batch([features], window)[0]
        _check_features(features, self._n_mels)
        if isinstance(n_valid, (bool, np.bool_)) or not isinstance(n_valid, (int, np.integer)):
            raise AudioError(f"n_valid must be an int, got {type(n_valid).__name__}")
        if not MIN_FRAMES <= n_valid <= features.shape[0]:
            raise AudioError(
                f"n_valid={n_valid} must be between {MIN_FRAMES} (the encoder's shortest input) and the "
                f"{features.shape[0]} frames given"
            )
        feats = np.ascontiguousarray(features)
        return self._run_padded(feats[None], np.array([n_valid], dtype=np.int64), window)[0]

    def run_batch(self, features: Sequence[np.ndarray], window: int | None = None) -> list[EncoderOutput]:
        """Encode several utterances in one padded batch; each result equals ``run`` on that item alone."""
        if isinstance(features, np.ndarray) or len(features) == 0:
            raise AudioError("run_batch takes a non-empty list of [frames, n_mels] arrays")
        items = [self._validate(f, i if len(features) > 1 else None) for i, f in enumerate(features)]
        lengths = np.array([f.shape[0] for f in items], dtype=np.int64)
        batch = np.zeros((len(items), int(lengths.max()), self._n_mels), dtype=np.float32)
        for i, f in enumerate(items):
            batch[i, : f.shape[0]] = f
        return self._run_padded(batch, lengths, window)

    def _run_padded(self, batch: np.ndarray, lengths: np.ndarray, window: int | None = None) -> list[EncoderOutput]:
        """Run ``batch`` [B, T, n_mels] with valid ``lengths`` [B]; slice every output to its returned length."""
        sess = self._live()
        feeds = {"features": batch, "feature_lengths": lengths}
        if window is not None:
            if not self.takes_window:
                raise BundleError(f"encoder graph {self.path} has no {WINDOW_INPUT} input: re-import the bundle to "
                                  "stream with short attention windows")
            if window < 1:
                raise ValueError(f"attention window of {window} tokens")
            feeds[WINDOW_INPUT] = np.zeros(window, np.float32)
        try:
            results = sess.run(list(self._outputs), feeds, self._run_options)
        except Exception as exc:
            raise BundleError(f"encoder graph {self.path} failed on a batch of shape {batch.shape}: {exc}") from exc
        embeds, embed_lens = results[:2]
        logprobs, phone_lens = results[2:] if self._n_phonemes else (None, embed_lens)
        out = []
        for i, n in enumerate(lengths.tolist()):
            n_enc, n_tok = int(phone_lens[i]), int(embed_lens[i])
            # Any subsampling is allowed (NIM4's conformer gives encoder_frames(n), a Whisper encoder (n+1)//2);
            # what every encoder must satisfy is that it subsamples and never returns more than it was given.
            if not (0 < n_tok <= n_enc and n_enc < n):
                raise BundleError(
                    f"{_CONTRACT}: for {n} frames it returned {n_enc} encoder frames and {n_tok} tokens "
                    f"(need 0 < tokens <= encoder frames < {n})"
                )
            out.append(
                EncoderOutput(
                    audio_embeds=np.ascontiguousarray(embeds[i, :n_tok]),
                    phoneme_logprobs=None if logprobs is None else np.ascontiguousarray(logprobs[i, :n_enc]),
                    n_frames=n,
                )
            )
        return out

    def _validate(self, features: np.ndarray, index: int | None) -> np.ndarray:
        where = "" if index is None else f" (item {index})"
        if isinstance(features, np.ndarray) and features.ndim == 2 and features.shape[0] < MIN_FRAMES:
            min_ms = (MIN_FRAMES - 1) * FRAME_SHIFT_MS + FRAME_LENGTH_MS
            raise AudioError(
                f"audio too short{where}: {features.shape[0]} feature frames; the encoder needs at least "
                f"{MIN_FRAMES} (about {min_ms:.0f} ms of audio)"
            )
        _check_features(features, self._n_mels, where)
        return np.ascontiguousarray(features)

    def __repr__(self) -> str:
        state = "closed" if self._session is None else f"n_mels={self._n_mels}, llm_hidden={self._llm_hidden}"
        return f"EncoderSession({str(self.path)!r}, {state})"
