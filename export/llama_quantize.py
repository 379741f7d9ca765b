"""Quantise a GGUF with llama.cpp (``llama_model_quantize``) and report what it really did.

llama.cpp falls back silently for tensors whose row width is not a multiple of the quantisation block (256 for
K-quants, 32 for the legacy types) and returns 0 anyway; so the output is re-read with ``gguf.GGUFReader`` and
every tensor whose type is not one the requested scheme intends is reported as a fallback.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nim4asr_edge.errors import ExportError

__all__ = ["QTYPES", "QuantReport", "quantize_gguf"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Scheme:
    ftype: str  # llama_ftype constant name in llama_cpp.llama_cpp
    intended: frozenset[str]  # GGML types a 2-D tensor may get under this scheme (mixes and output-layer rules)


# Requested scheme -> llama_ftype and the types llama.cpp's per-tensor rules intend for 2-D weights.
# (K-quant mixes raise some tensors to Q5_K/Q6_K; the output matrix goes to Q6_K for non-Q8_0 schemes.)
QTYPES: dict[str, _Scheme] = {
    "f16": _Scheme("LLAMA_FTYPE_MOSTLY_F16", frozenset({"F16"})),
    "q8_0": _Scheme("LLAMA_FTYPE_MOSTLY_Q8_0", frozenset({"Q8_0"})),
    "q6_k": _Scheme("LLAMA_FTYPE_MOSTLY_Q6_K", frozenset({"Q6_K"})),
    "q5_k_m": _Scheme("LLAMA_FTYPE_MOSTLY_Q5_K_M", frozenset({"Q5_K", "Q6_K"})),
    "q4_k_m": _Scheme("LLAMA_FTYPE_MOSTLY_Q4_K_M", frozenset({"Q4_K", "Q5_K", "Q6_K"})),
    "q4_0": _Scheme("LLAMA_FTYPE_MOSTLY_Q4_0", frozenset({"Q4_0", "Q6_K"})),
    "q4_1": _Scheme("LLAMA_FTYPE_MOSTLY_Q4_1", frozenset({"Q4_1", "Q6_K"})),
}


@dataclass(frozen=True)
class TensorType:
    name: str
    shape: list[int]  # ggml order (ne0 = row width first)
    type: str  # GGML type name, e.g. "Q8_0"


@dataclass(frozen=True)
class QuantReport:
    """What the quantiser produced: per-tensor types and every tensor that fell back to another type."""

    src: str
    dst: str
    qtype: str
    size: int  # bytes of the output file
    src_size: int  # bytes of the input file
    tensors: list[TensorType] = field(default_factory=list)
    fallback_tensors: list[dict[str, Any]] = field(default_factory=list)  # {name, shape, wanted, got}

    @property
    def type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.tensors:
            counts[t.type] = counts.get(t.type, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type_counts"] = self.type_counts
        return d


def _tensor_types(path: Path) -> list[TensorType]:
    import gguf

    reader = gguf.GGUFReader(path)
    return [
        TensorType(t.name, [int(x) for x in t.shape], gguf.GGMLQuantizationType(int(t.tensor_type)).name)
        for t in reader.tensors
    ]


def quantize_gguf(src: str | Path, dst: str | Path, qtype: str, n_threads: int = 0) -> QuantReport:
    """Quantise ``src`` (F32/F16 GGUF) into ``dst`` with llama.cpp; ``n_threads=0`` uses every core.

    Raises :class:`ExportError` when llama.cpp fails; fallbacks do not raise, they are listed in the report.
    """
    if qtype not in QTYPES:
        raise ExportError(f"quantisation {qtype!r} is not one of {sorted(QTYPES)}")
    if not isinstance(n_threads, int) or n_threads < 0:
        raise ExportError(f"n_threads={n_threads!r} must be an int >= 0")
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_file():
        raise ExportError(f"GGUF to quantise {src_p} not found")
    if src_p.resolve() == dst_p.resolve():
        raise ExportError("quantize_gguf needs a destination different from its source")
    scheme = QTYPES[qtype]

    from nim4asr_edge import _llama  # initialises llama.cpp once and routes its logs

    _llama.ensure_backend()
    L = _llama._L
    params = L.llama_model_quantize_default_params()
    params.nthread = n_threads
    params.ftype = getattr(L, scheme.ftype)
    params.allow_requantize = False  # quantising an already-quantised file loses quality twice: refuse
    dst_p.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst_p.with_name(dst_p.name + ".partial")
    code = L.llama_model_quantize(str(src_p).encode("utf-8"), str(tmp).encode("utf-8"), ctypes.byref(params))
    if code != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise ExportError(
            f"llama.cpp failed to quantise {src_p} to {qtype} (code {code}); "
            "enable logging for 'nim4asr_edge.llama' to see why"
        )
    tmp.replace(dst_p)

    tensors = _tensor_types(dst_p)
    fallbacks = []
    for t in tensors:
        if len(t.shape) == 1:
            ok = t.type == "F32"  # 1-D norms and biases stay F32 by design
            wanted = "F32"
        else:
            ok = t.type in scheme.intended
            wanted = "|".join(sorted(scheme.intended))
        if not ok:
            fallbacks.append({"name": t.name, "shape": list(t.shape), "wanted": wanted, "got": t.type})
    if fallbacks:
        log.warning(
            "%s: %d of %d tensors fell back from %s (row widths not a multiple of the block size), e.g. %s -> %s",
            dst_p.name, len(fallbacks), len(tensors), qtype, fallbacks[0]["name"], fallbacks[0]["got"],
        )
    return QuantReport(
        src=str(src_p),
        dst=str(dst_p),
        qtype=qtype,
        size=dst_p.stat().st_size,
        src_size=src_p.stat().st_size,
        tensors=tensors,
        fallback_tensors=fallbacks,
    )
