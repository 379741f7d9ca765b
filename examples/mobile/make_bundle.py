"""Write a mobile bundle from any bundle the runtime loads.

    cd examples && python -m mobile.make_bundle --out /work/mobile_work/bundles/ref-en-mobile [--src BUNDLE]
        [--quants q4_0,q4_1,q4_k_m] [--default q4_1] [--precision int8]

What it writes (a bundle the runtime loads like any other, manifest format in docs/FORMAT.md):

* ``encoder.<precision>.ort`` (and ``encoder.stream.<precision>.ort`` where the source has a streaming graph): the
  source's ONNX graphs converted with onnxruntime's own converter
  (``onnxruntime.tools.convert_onnx_models_to_ort``, optimisation style "Fixed", level "all", target platform
  ``arm``), which onnxruntime's ``InferenceSession`` loads directly, full or minimal build;
* ``required_operators_and_types.config``: the operators (and their types) those graphs use, the input of a
  minimal onnxruntime build (``build.sh --minimal_build --include_ops_by_config FILE``);
* ``llm.<quant>.gguf`` for each quantisation, made by ``export/llama_quantize.quantize_gguf`` from the source's
  F32/F16 GGUF, or copied where the source has that quantisation (the reference model's Q4_1: the mobile LLM is then
  the desktop's, and the default); a source that ships only a quantised GGUF is first dequantised to F32 exactly
  (every weight of the quantised file is representable in F32) for the others, so they are the shipped weights
  requantised: their error adds to the source's;
* ``manifest.json``: the source manifest with these files, every file's size and sha256, and ``extra.mobile``
  (source, converter settings, the quantiser's reports with every fallback tensor, sizes).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nim4asr_edge.bundle import Bundle, resolve_file
from nim4asr_edge.errors import BundleError, ExportError
from nim4asr_edge.manifest import FileEntry

log = logging.getLogger("nim4asr_edge.mobile")

OPS_CONFIG = "required_operators_and_types.config"
MOBILE_QUANTS = ("q4_0", "q4_1", "q4_k_m")
_FLOAT_TYPES = ("F32", "F16")


def _export_quantize():
    """The repository's quantiser (``nim4asr_export.llama_quantize``; needs the ``export`` extra's gguf)."""
    from nim4asr_export.llama_quantize import quantize_gguf

    return quantize_gguf


def convert_to_ort(graphs: dict[str, Path], out_dir: Path, target_platform: str = "arm") -> dict[str, Any]:
    """Convert ONNX graphs (``{output stem: path}``) to ORT format in ``out_dir`` with onnxruntime's converter.

    Returns the converter settings and the name of the one required-operators config covering every graph."""
    import onnxruntime
    from nim4asr_export.onnx_export import graph_files
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    with tempfile.TemporaryDirectory(prefix="ort-convert-") as tmp:
        src, dst = Path(tmp) / "onnx", Path(tmp) / "ort"
        src.mkdir()
        for stem, path in graphs.items():
            shutil.copyfile(path, src / f"{stem}.onnx")
            for side in graph_files(path)[1:]:  # external weights keep their names: the graph refers to them
                shutil.copyfile(side, src / side.name)
        try:
            convert_onnx_models_to_ort(src, output_dir=dst, optimization_styles=[OptimizationStyle.Fixed],
                                       target_platform=target_platform, enable_type_reduction=True)
        except Exception as exc:  # the converter raises plain exceptions from its own tools
            raise ExportError(f"onnxruntime could not convert the encoder graphs to ORT format: {exc}") from exc
        for stem in graphs:
            made = dst / f"{stem}.ort"
            if not made.is_file():
                raise ExportError(f"onnxruntime's converter wrote no {made.name}; see its log above")
            shutil.copyfile(made, out_dir / made.name)
        configs = sorted(dst.glob("*.config"))
        if len(configs) != 1:
            raise ExportError(f"expected one required-operators config from the converter, got {configs}")
        shutil.copyfile(configs[0], out_dir / OPS_CONFIG)
    return {"converter": "onnxruntime.tools.convert_onnx_models_to_ort", "onnxruntime": onnxruntime.__version__,
            "optimization_style": "Fixed", "optimization_level": "all", "target_platform": target_platform,
            "type_reduction": True, "required_operators_config": OPS_CONFIG}


def dequantize_gguf(src: Path, dst: Path) -> Path:
    """Write ``src`` with every tensor as F32 (metadata copied; ``general.file_type`` set to F32)."""
    import gguf

    reader = gguf.GGUFReader(src)
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(dst, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    for t in reader.tensors:
        if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            data = np.asarray(t.data, dtype=np.float32)
        else:
            data = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(x) for x in reversed(t.shape))  # ggml ne0 first -> numpy row-major
        writer.add_tensor(t.name, np.ascontiguousarray(data.reshape(shape), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def _gguf_type(path: Path) -> str:
    """The dominant 2-D weight type of a GGUF ("F32", "Q4_1", ...)."""
    import gguf

    counts: dict[str, int] = {}
    for t in gguf.GGUFReader(path).tensors:
        if len(t.shape) == 2:
            name = gguf.GGMLQuantizationType(int(t.tensor_type)).name
            counts[name] = counts.get(name, 0) + int(np.prod(t.shape))
    return max(counts, key=counts.get)


def llm_source(bundle: Bundle, work: Path) -> tuple[Path, dict[str, Any]]:
    """The best GGUF to quantise from: the bundle's own F32/F16 file, else its default one dequantised to F32."""
    files = bundle.manifest.llm["files"]
    for key in ("f32", "f16"):
        if key in files:
            return bundle.llm_path(key), {"from": key, "dequantised": False}
    path = bundle.llm_path()
    qtype = _gguf_type(path)
    if qtype in _FLOAT_TYPES:
        return path, {"from": bundle.manifest.llm["default"], "dequantised": False}
    dst = work / f"{path.stem}.f32.gguf"
    log.info("dequantising %s (%s) to F32 for requantisation", path.name, qtype)
    dequantize_gguf(path, dst)
    return dst, {"from": bundle.manifest.llm["default"], "dequantised": True, "source_type": qtype}


def _slim_report(report) -> dict[str, Any]:
    d = report.to_dict()
    return {"qtype": d["qtype"], "size": d["size"], "src_size": d["src_size"], "type_counts": d["type_counts"],
            "fallback_tensors": d["fallback_tensors"]}


def make_mobile_bundle(src: str | Path | None, out: str | Path, quants: tuple[str, ...] = MOBILE_QUANTS,
                       default: str | None = None, precision: str | None = None,
                       work_dir: str | Path | None = None) -> Bundle:
    """Write the mobile bundle of ``src`` (a bundle directory; None = the default bundle) into ``out`` and return it
    loaded (fully verified).  ``quants``: llama.cpp quantisations; ``precision``: the encoder precision to convert
    (default: the source's default)."""
    source = Bundle.load(src)
    out_dir = Path(out)
    if not quants:
        raise ExportError("a mobile bundle needs at least one LLM quantisation")
    # by default the source's own quantisation where it is a mobile one: copied, so the mobile LLM is the desktop's
    default = default or (source.manifest.llm["default"] if source.manifest.llm["default"] in quants else quants[0])
    if default not in quants:
        raise ExportError(f"default quantisation {default!r} is not one of {list(quants)}")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / "manifest.json").is_file():
            raise ExportError(f"{out_dir} exists and is not a bundle: refusing to overwrite it")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    m = source.manifest
    precision = precision or m.encoder["default"]

    graphs = {f"encoder.{precision}": source.encoder_path(precision)}
    stream = m.encoder.get("streaming")
    stream_prec = None
    if stream is not None:
        stream_prec = precision if precision in stream["files"] else stream["default"]
        graphs[f"encoder.stream.{stream_prec}"] = source.streaming_encoder_path(stream_prec)
    ort_info = convert_to_ort(graphs, out_dir)
    encoder = dict(m.encoder, files={precision: f"encoder.{precision}.ort"}, default=precision)
    if stream is not None:
        encoder["streaming"] = dict(stream, files={stream_prec: f"encoder.stream.{stream_prec}.ort"},
                                    default=stream_prec)

    quantize_gguf = _export_quantize()
    reports = {}
    src_info: dict[str, Any] = {}
    todo = [q for q in quants if q not in m.llm["files"]]
    for q in quants:
        if q not in todo:  # the source already has this quantisation (made from its F16/F32 export): keep it
            shutil.copyfile(source.llm_path(q), out_dir / f"llm.{q}.gguf")
            known = m.llm.get("quantization", {}).get(q)
            reports[q] = {"qtype": q, "size": (out_dir / f"llm.{q}.gguf").stat().st_size, "copied_from_source": True,
                          "fallback_tensors": known.get("fallback_tensors", []) if known else None}
    if todo:
        with tempfile.TemporaryDirectory(prefix="mobile-llm-", dir=work_dir) as tmp:
            gguf_src, src_info = llm_source(source, Path(tmp))
            for q in todo:
                reports[q] = _slim_report(quantize_gguf(gguf_src, out_dir / f"llm.{q}.gguf", q))
    llm = {k: v for k, v in m.llm.items() if k != "quantization"}
    llm.update(files={q: f"llm.{q}.gguf" for q in quants}, default=default)

    engine_files = {*m.encoder["files"].values(), *m.llm["files"].values()}
    if stream is not None:
        engine_files |= set(stream["files"].values())
    copied = []
    for name in m.files:  # everything else the bundle holds (e.g. substitution costs) travels unchanged
        if name in engine_files or any(name.startswith(f"{g}.") for g in engine_files):  # a graph's external data
            continue
        if name.startswith("pkg:"):
            raise BundleError(f"bundle file {name} comes from a Python package; a mobile bundle must hold it itself")
        shutil.copyfile(resolve_file(source.path, name), out_dir / name)
        copied.append(name)

    names = sorted([*encoder["files"].values(), *llm["files"].values(), OPS_CONFIG, *copied]
                   + (list(encoder["streaming"]["files"].values()) if stream is not None else []))
    files = {n: FileEntry.of(out_dir / n) for n in names}
    mobile = {
        "source_bundle": m.name, "source_path": str(source.path), "encoder": ort_info,
        "llm_source": src_info, "quantization": reports,
        "sizes": {n: e.size for n, e in files.items()},
        "app_bytes": {q: sum(e.size for n, e in files.items() if n != OPS_CONFIG and not n.startswith("llm."))
                      + files[f"llm.{q}.gguf"].size for q in quants},
    }
    manifest = replace(m, name=f"{m.name}-mobile", encoder=encoder, llm=llm, files=files,
                       extra={**m.extra, "mobile": mobile})
    manifest.write(out_dir)
    return Bundle.load(out_dir)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=None, help="source bundle directory (default: the SDK's default bundle)")
    ap.add_argument("--out", required=True, help="output directory (a previous mobile bundle there is replaced)")
    ap.add_argument("--quants", default=",".join(MOBILE_QUANTS), help="llama.cpp quantisations, comma-separated")
    ap.add_argument("--default", default=None,
                    help="the manifest's default quantisation (default: the source's own if listed, else the first)")
    ap.add_argument("--precision", default=None, help="encoder precision to convert (default: the source's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bundle = make_mobile_bundle(args.src, args.out, tuple(q for q in args.quants.split(",") if q), args.default,
                                args.precision, work_dir=Path(args.out).parent)
    info = bundle.manifest.extra["mobile"]
    print(json.dumps({"bundle": str(bundle.path), "sizes": info["sizes"], "app_bytes": info["app_bytes"],
                      "fallbacks": {q: len(r["fallback_tensors"] or []) for q, r in info["quantization"].items()}},
                     indent=1))


if __name__ == "__main__":
    main()
