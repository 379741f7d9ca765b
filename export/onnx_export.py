"""Export the encoder graphs (encoder + phoneme-CTC head + adaptor) to ONNX, and quantise them to int8.

The offline graph follows ``docs/FORMAT.md`` ("Encoder ONNX graph (offline)"): inputs ``features`` float32
[batch, frames, n_mels] and ``feature_lengths`` int64 [batch]; outputs ``audio_embeds``, ``audio_embed_lengths``,
``phoneme_logprobs``, ``phoneme_lengths``, with dynamic batch and time axes.  The streaming graph ("Encoder ONNX
graph (streaming)") runs one fixed-size chunk with per-layer caches in and out; every shape in it is static.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import torch

from nim4asr_edge.errors import ExportError

from .model.nim4asr import (
    ENCODER_INPUT_NAMES,
    ENCODER_OUTPUT_NAMES,
    STEM_LOOKAHEAD,
    STEM_STRIDE,
    STREAM_INPUT_NAMES,
    STREAM_OUTPUT_NAMES,
    EncoderGraph,
    Nim4AsrModel,
    StreamingEncoderGraph,
)

__all__ = [
    "DEFAULT_OPSET",
    "EXTERNAL_DATA_THRESHOLD_BYTES",
    "export_encoder_onnx",
    "export_streaming_encoder_onnx",
    "streaming_manifest_entry",
    "graph_files",
    "quantize_encoder_int8",
]

logger = logging.getLogger("nim4asr_export.onnx")

DEFAULT_OPSET = 17  # LayerNormalization is a standard op from 17 on
# Weights above 64 MiB go to a side file. onnxruntime maps a side file instead of parsing the weights out of the
# graph's protobuf: the full-size int8 encoder (0.6 GB) loads in 0.7 s and peaks at its final 0.69 GB, against
# 1.75 s and a 1.17 GB transient from one file. Small graphs stay one file.
EXTERNAL_DATA_THRESHOLD_BYTES = 64 << 20
PROTOBUF_LIMIT_BYTES = 2 << 30  # protobuf's hard limit for one graph file

_DYNAMIC_AXES = {
    "features": {0: "batch", 1: "frames"},
    "feature_lengths": {0: "batch"},
    "audio_embeds": {0: "batch", 1: "tokens"},
    "audio_embed_lengths": {0: "batch"},
    "phoneme_logprobs": {0: "batch", 1: "enc_frames"},
    "phoneme_lengths": {0: "batch"},
}


def _as_graph(model_or_graph: Nim4AsrModel | EncoderGraph) -> EncoderGraph:
    if isinstance(model_or_graph, EncoderGraph):
        return model_or_graph
    if isinstance(model_or_graph, Nim4AsrModel):
        return model_or_graph.encoder_graph()
    raise TypeError(f"expected a Nim4AsrModel or EncoderGraph, got {type(model_or_graph).__name__}")


def _weight_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def export_encoder_onnx(
    model_or_graph: Nim4AsrModel | EncoderGraph,
    out_path: str | Path,
    *,
    n_mels: int | None = None,
    opset: int = DEFAULT_OPSET,
    external_data: bool | None = None,
    example_frames: int = 203,
) -> Path:
    """Export the offline encoder graph to ``out_path`` and check it with ``onnx.checker``; returns the path.

    ``n_mels`` defaults to the model's (a different value is an ``ExportError``).  ``external_data``: ``None``
    chooses by size (weights over 1 GiB -- the full 600 M encoder is 2.4 GB in fp32 -- are written to
    ``<name>.data`` beside the graph, which onnxruntime loads from the same directory; smaller graphs are one file).
    Uses the TorchScript-based exporter (``dynamo=False``).  Both exporters give the same graph numerically
    (fp32 parity ~5e-7 either way); this one names the output axes as declared (``tokens``, ``enc_frames``; the
    dynamo exporter writes symbolic expressions there), exports in half the time and needs no shape constraints.
    """

    graph = _as_graph(model_or_graph)
    cfg_mels = graph.cfg.encoder.n_mels
    if n_mels is None:
        n_mels = cfg_mels
    elif n_mels != cfg_mels:
        raise ExportError(f"n_mels={n_mels} disagrees with the model's encoder.n_mels={cfg_mels}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if external_data is None:
        external_data = _weight_bytes(graph) > EXTERNAL_DATA_THRESHOLD_BYTES

    # Two items of different lengths so that no length is specialised into the graph.
    features = torch.randn(2, example_frames, n_mels, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([example_frames, example_frames - 37], dtype=torch.int64)
    proto = _trace(graph, (features, lengths), ENCODER_INPUT_NAMES, ENCODER_OUTPUT_NAMES, _DYNAMIC_AXES, opset,
                   out_path.parent, "encoder")
    _save(proto, out_path, external_data)
    del proto
    logger.info("exported encoder graph to %s (opset %d, external data: %s)", out_path, opset, external_data)
    return out_path


def export_streaming_encoder_onnx(
    model: Nim4AsrModel,
    out_path: str | Path,
    chunk_frames: int = 16,
    left_chunks: int = 4,
    *,
    opset: int = DEFAULT_OPSET,
    external_data: bool | None = None,
) -> Path:
    """Export the cache-carrying streaming encoder graph to ``out_path`` (checked with ``onnx.checker``).

    ``chunk_frames``: encoder frames per chunk (16 = 64 feature frames = 640 ms = 4 audio tokens; a multiple of
    the adaptor stack); ``left_chunks``: chunks of left context kept in the caches (>= 1).  The graph equals
    ``model.forward_audio(features, lengths, chunk_frames, left_chunks)`` chunk by chunk (docs/FORMAT.md,
    "Encoder ONNX graph (streaming)").  Its geometry is also written to the graph's metadata
    (``nim4asr.*`` keys), and ``streaming_manifest_entry`` gives the manifest section.  ``external_data`` as in
    ``export_encoder_onnx``.  ``quantize_encoder_int8`` works on the result.
    """
    import onnx

    if not isinstance(model, Nim4AsrModel):
        raise TypeError(f"expected a Nim4AsrModel, got {type(model).__name__}")
    try:
        graph = StreamingEncoderGraph(model, chunk_frames, left_chunks)
    except ValueError as exc:
        raise ExportError(f"cannot export a streaming encoder graph: {exc}") from exc
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if external_data is None:
        external_data = _weight_bytes(graph) > EXTERNAL_DATA_THRESHOLD_BYTES

    n_mels = model.cfg.encoder.n_mels
    # Example inputs: a mid-stream chunk (non-zero offset, random caches) so nothing first-chunk-specific is traced.
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(1, graph.window_frames, n_mels, generator=gen)
    caches = [torch.randn(shape, generator=gen) for shape in graph.cache_shapes().values()]
    inputs = (features, torch.tensor([graph.window_frames]), torch.tensor([2 * chunk_frames]), *caches)
    proto = _trace(graph, inputs, STREAM_INPUT_NAMES, STREAM_OUTPUT_NAMES, None, opset, out_path.parent,
                   "streaming encoder")
    geometry = streaming_manifest_entry(model, chunk_frames, left_chunks)
    props = {"nim4asr.graph": "encoder-streaming"}
    props.update({f"nim4asr.{k}": str(v) for k, v in geometry.items() if k != "files"})
    onnx.helper.set_model_props(proto, props)
    _save(proto, out_path, external_data)
    del proto
    logger.info(
        "exported streaming encoder graph to %s (chunk %d encoder frames, %d left chunks, opset %d)",
        out_path, chunk_frames, left_chunks, opset,
    )
    return out_path


def streaming_manifest_entry(
    model: Nim4AsrModel, chunk_frames: int = 16, left_chunks: int = 4, files: dict[str, str] | None = None
) -> dict:
    """The manifest's ``encoder.streaming`` section for a graph exported with these arguments.

    ``files``: ``{precision: file name}`` of the exported graphs (e.g. ``{"fp32": "encoder.stream.onnx",
    "int8": "encoder.stream.int8.onnx"}``); the runtime reads the geometry from the graph itself and checks it
    against these numbers.
    """
    entry: dict = {"files": dict(files or {})}
    entry.update({
        "chunk_ms": STEM_STRIDE * chunk_frames * 10,  # feature frames are 10 ms apart
        "chunk_feature_frames": STEM_STRIDE * chunk_frames,
        "chunk_encoder_frames": chunk_frames,
        "chunk_audio_tokens": chunk_frames // model.cfg.adaptor.stack,
        "lookahead_feature_frames": STEM_LOOKAHEAD,
        "left_chunks": left_chunks,
        "cache_encoder_frames": chunk_frames * left_chunks,
    })
    return entry


def _trace(module: torch.nn.Module, inputs: tuple, input_names, output_names, dynamic_axes, opset: int,
           scratch_dir: Path, what: str):
    """Trace ``module`` (in eval mode, restored afterwards) with the legacy exporter and load the ONNX proto."""
    import onnx

    was_training = module.training
    module.eval()
    # For >2 GB models the exporter writes one file per tensor beside the graph: keep them in a scratch dir.
    with tempfile.TemporaryDirectory(prefix=".onnx-export-", dir=scratch_dir) as tmp:
        tmp_path = Path(tmp) / "graph.onnx"
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarnings and the legacy exporter's deprecation notice
                torch.onnx.export(
                    module,
                    inputs,
                    str(tmp_path),
                    input_names=list(input_names),
                    output_names=list(output_names),
                    dynamic_axes=dynamic_axes,
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
        except Exception as exc:  # the exporter raises many types
            raise ExportError(f"ONNX export of the {what} failed: {exc}") from exc
        finally:
            module.train(was_training)
        return onnx.load(str(tmp_path), load_external_data=True)


def _save(proto, out_path: Path, external_data: bool) -> None:
    """Write ``proto`` as one file, or as ``out_path`` + ``<name>.data`` (all weights in one side file); check it."""
    import onnx

    data_path = out_path.with_name(out_path.name + ".data")
    data_path.unlink(missing_ok=True)  # save_model appends to an existing data file
    if not external_data and _tensor_bytes(proto) > PROTOBUF_LIMIT_BYTES - (64 << 20):
        raise ExportError(
            f"{out_path.name}: the weights exceed protobuf's 2 GiB limit; export with external_data=True (or None)"
        )
    if external_data:
        onnx.save_model(
            proto, str(out_path), save_as_external_data=True, all_tensors_to_one_file=True,
            location=data_path.name, size_threshold=1024,
        )
        data_path.chmod(out_path.stat().st_mode & 0o777)  # onnx creates the data file 0600; match the graph file
        onnx.checker.check_model(str(out_path), full_check=False)
    else:
        onnx.save_model(proto, str(out_path))
        onnx.checker.check_model(str(out_path), full_check=True)


def _tensor_bytes(proto) -> int:
    from onnx.external_data_helper import _get_all_tensors

    return sum(len(t.raw_data) for t in _get_all_tensors(proto))


def graph_files(path: str | Path) -> list[Path]:
    """The graph file and every external-data file it references (what a bundle must list and ship)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    names: list[str] = []
    for tensor in _get_all_tensors(proto):
        if uses_external_data(tensor):
            loc = next(e.value for e in tensor.external_data if e.key == "location")
            if loc not in names:
                names.append(loc)
    return [path] + [path.parent / n for n in names]


def quantize_encoder_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation of MatMul/Gemm weights (per-channel QInt8); Conv stays fp32.

    Quantising Conv as well made the encoder 2.5x slower on CPU (shared DESIGN §3), so only MatMul/Gemm are
    touched.  Returns ``dst``.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ExportError(f"{src} not found: export the fp32 encoder graph first")
    dst.parent.mkdir(parents=True, exist_ok=True)
    src_external = len(graph_files(src)) > 1
    with tempfile.TemporaryDirectory(prefix=".onnx-quant-", dir=dst.parent) as tmp:
        tmp_dst = Path(tmp) / "encoder.int8.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_dynamic(
                    str(src),
                    str(tmp_dst),
                    op_types_to_quantize=["MatMul", "Gemm"],
                    per_channel=True,
                    weight_type=QuantType.QInt8,
                    use_external_data_format=src_external,
                )
        except Exception as exc:
            raise ExportError(f"int8 quantisation of {src} failed: {exc}") from exc
        proto = onnx.load(str(tmp_dst), load_external_data=True)
    _save(proto, dst, _tensor_bytes(proto) > EXTERNAL_DATA_THRESHOLD_BYTES)
    logger.info("quantised %s -> %s (int8 MatMul/Gemm, per channel)", src, dst)
    return dst
