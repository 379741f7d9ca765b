"""Checkpoint validation and export failures: each names the problem and leaves nothing half-written."""

import json
import shutil

import pytest

from nim4asr_edge.errors import CheckpointError, ExportError

pytest.importorskip("torch", reason="needs the export extra")

from nim4asr_export.checkpoint import Checkpoint  # noqa: E402
from nim4asr_export.config import ModelConfig, full_config  # noqa: E402
from nim4asr_export.exporter import ExportOptions, export_bundle, parse_quant  # noqa: E402


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, copy)
    return copy


def _edit_json(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_valid_checkpoint_loads(ckpt):
    c = Checkpoint.open(ckpt)
    state = c.load_weights()
    assert any(k.startswith("encoder.") for k in state) and any(k.startswith("llm.") for k in state)
    assert len(c.sha256()) == 64


def test_missing_tensor(ckpt):
    from safetensors.torch import load_file, save_file

    state = load_file(str(ckpt / "model.safetensors"))
    del state["ctc_head.linear2.weight"]
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(CheckpointError, match="1 missing tensor.*ctc_head.linear2.weight"):
        Checkpoint.open(ckpt).load_weights()


def test_config_disagrees_with_weights(ckpt):
    _edit_json(ckpt / "config.json", lambda d: d["adaptor"].update(hidden=100))
    with pytest.raises(CheckpointError, match="shape mismatch.*adaptor"):
        Checkpoint.open(ckpt).load_weights()


def test_corrupt_weights(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="cannot be read"):
        Checkpoint.open(ckpt).load_weights()


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda p: (p / "config.json").unlink(), "needs config.json"),
        (lambda p: (p / "config.json").write_text("{"), "not valid JSON"),
        (lambda p: _edit_json(p / "config.json", lambda d: d.update(format_version=7)), "format_version 7"),
        (lambda p: _edit_json(p / "config.json", lambda d: d["encoder"].update(n_heads=3)), "heads"),
        (lambda p: (p / "tokenizer.json").unlink(), "exactly one of"),
        (lambda p: (p / "cmvn.json").write_text('{"mean": [0.0]}'), "cmvn.json"),
        (lambda p: (p / "phonemes.txt").write_text("<blank>\na\n"), "must agree"),
        (lambda p: (p / "model.safetensors").unlink(), "no model.safetensors"),
    ],
)
def test_bad_checkpoints(ckpt, damage, match):
    damage(ckpt)
    with pytest.raises(CheckpointError, match=match):
        Checkpoint.open(ckpt)


def test_failed_export_leaves_nothing(ckpt, tmp_path):
    _edit_json(ckpt / "config.json", lambda d: d["adaptor"].update(hidden=100))
    out = tmp_path / "bundle"
    with pytest.raises(CheckpointError):
        export_bundle(ckpt, out, progress=lambda m: None)
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")] == []


def test_existing_output_and_bad_quant(ckpt, tmp_path):
    (tmp_path / "b").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export_bundle(ckpt, tmp_path / "b", progress=lambda m: None)
    with pytest.raises(ExportError, match="unknown quantisation q3_xs"):
        parse_quant("int8,q3_xs")
    assert ExportOptions(quant="INT8, q4_k_m").quant == ("int8", "q4_k_m")


def test_config_round_trip():
    cfg = full_config()
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
