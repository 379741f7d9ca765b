"""The command line: real runs, one-line errors, non-zero exits."""

import json
import subprocess
import sys

import pytest

from nim4asr_edge.cli import main

from .conftest import JFK


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_transcribe_json_and_srt(tiny_bundle, capsys, tmp_path):
    rc, out, err = _run(capsys, "transcribe", str(JFK), "--model", str(tiny_bundle), "--format", "json", "-t", "2")
    assert rc == 0, err
    data = json.loads(out)
    assert data["duration"] == pytest.approx(11.0)
    assert data["segments"][0]["phonemes"] and data["timings"]["encoder"] > 0
    rc, out, err = _run(capsys, "transcribe", str(JFK), "--model", str(tiny_bundle), "-f", "srt", "-o", str(tmp_path))
    assert rc == 0 and out == ""
    assert (tmp_path / "jfk.srt").read_text().startswith("1\n00:00:00,000 --> 00:00:11,000\n")


def test_info(tiny_bundle, capsys):
    rc, out, _ = _run(capsys, "info", str(tiny_bundle))
    assert rc == 0
    assert "encoder  *int8" in out and "sha256 of every file" in out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["transcribe", "missing.wav"], "audio file not found: missing.wav"),
        (["info", "/nonexistent/bundle"], "model bundle not found"),
    ],
)
def test_errors_are_one_line(tiny_bundle, capsys, argv, match):
    if argv[0] == "transcribe":
        argv = argv + ["--model", str(tiny_bundle)]
    rc, out, err = _run(capsys, *argv)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("nim4asr-edge: error: ") and match in err


def test_corrupt_audio_one_line(tiny_bundle, capsys, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + b"\x01" * 200)
    rc, _, err = _run(capsys, "transcribe", str(bad), "--model", str(tiny_bundle))
    assert rc == 2 and "cannot decode" in err and err.count("\n") == 1


def test_export_cli(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "b"
    rc, _, err = _run(capsys, "export", str(tiny_checkpoint), str(out), "--quant", "int8,q4_k_m")
    assert rc == 0, err
    assert "[1/8] reading checkpoint" in err and "fallback" in err  # tiny widths are not multiples of 256
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["llm"]["default"] == "q4_k_m"
    assert manifest["llm"]["quantization"]["q4_k_m"]["fallback_tensors"]
    rc, _, err = _run(capsys, "export", str(tiny_checkpoint), str(out))
    assert rc == 2 and "already exists" in err


def test_console_entry_point_runs(tiny_bundle):
    proc = subprocess.run(
        [sys.executable, "-m", "nim4asr_edge", "info", str(tiny_bundle), "--no-verify"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "tiny" in proc.stdout


def test_stream_cli_json(tiny_bundle, capsys):
    rc, out, err = _run(capsys, "stream", str(JFK), "--model", str(tiny_bundle), "--json", "--feed-ms", "50")
    assert rc == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["kind"] for e in events]
    assert "partial" in kinds and kinds.count("final") == kinds.count("endpoint") >= 1


def test_mic_without_extra_or_device_is_one_line(capsys, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("sounddevice") is not None:
        pytest.skip("sounddevice is installed; this checks the message when it is not")
    rc, _, err = _run(capsys, "mic")
    assert rc == 2 and "pip install 'nim4asr-edge[mic]'" in err and err.count("\n") == 1
