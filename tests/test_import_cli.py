"""`nim4asr-edge import`: arguments, the importer registry, and --from-hub against a local directory laid out like
the hub's cache (never the network)."""

from __future__ import annotations

import pytest

from nim4asr_edge.cli import main
from nim4asr_edge.errors import ExportError

pytest.importorskip("torch", reason="importers need the `export` extra")
hub = pytest.importorskip("huggingface_hub", reason="--from-hub needs the `hub` extra")

from nim4asr_export.importers import ImportOptions, import_model  # noqa: E402
from nim4asr_export.importers.hub import fetch_model_dir  # noqa: E402

from .conftest import hub_cache, import_from_hub_cache  # noqa: E402


def test_from_hub_reads_the_hub_cache(tmp_path):
    snap = hub_cache(tmp_path, "Org/Tiny", {"config.json": b"{}", "sub/model.pt": b"x"})
    got = fetch_model_dir("Org/Tiny", cache_dir=tmp_path, offline=True)
    assert got == snap and (got / "sub" / "model.pt").read_bytes() == b"x"
    with pytest.raises(ExportError, match="cannot get 'Org/Missing' in the local hub cache"):
        fetch_model_dir("Org/Missing", cache_dir=tmp_path, offline=True)
    with pytest.raises(ExportError, match="repository id like 'Org/Model'"):
        fetch_model_dir("not-a-repo", cache_dir=tmp_path, offline=True)


@pytest.mark.parametrize("argv,match", [
    (["import", "martian", "src", "out"], "unknown model family 'martian'"),
    (["import", "fun-asr-nano", "src", "out", "--from-hub", "Org/Model"], "with --from-hub give only OUT"),
    (["import", "fun-asr-nano", "only-one"], "give SRC and OUT"),
    (["import", "qwen3-asr", "/nonexistent/dir", "out"], "is not a directory"),
    (["import", "qwen3-asr", ".", "out", "--quant", "int3"], "unknown quantisation int3"),
])
def test_cli_refuses_bad_arguments(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_import_model_names_the_family():
    with pytest.raises(ExportError, match="known: fun-asr-nano, qwen3-asr"):
        import_model("whisper", ".", "out", ImportOptions())


def test_cli_from_hub_goes_through_the_hub_cache(tmp_path):
    hub_cache(tmp_path / "cache", "Org/NotAModel", {"README.md": b"hello"})
    out = tmp_path / "bundle"
    run = import_from_hub_cache(tmp_path / "cache", "fun-asr-nano", "Org/NotAModel", out)
    assert run.returncode == 2, run.stderr
    assert "snapshots" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists() and not list(tmp_path.glob(".bundle.*"))
