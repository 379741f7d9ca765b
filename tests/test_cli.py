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


@pytest.fixture(scope="module")
def reference_jfk_args():
    """The shipped reference bundle on jfk.wav: its guard withholds the model's text (confidence 0.16)."""
    from nim4asr_edge.models import HERE

    bundle = HERE / "nim4asr-ref-en"
    if not (bundle / "manifest.json").is_file():
        pytest.skip("the reference bundle is not in this install")
    return [str(JFK), "--model", str(bundle), "-t", "2", "--no-progress"]


def test_a_withheld_segment_is_visible(reference_jfk_args, capsys):
    rc, out, err = _run(capsys, "transcribe", *reference_jfk_args)
    assert rc == 0 and out == "[withheld: low confidence 0.16]\n"
    assert "1 withheld by the evidence guard (confidence 0.16" in err and "RTF" in err
    rc, out, _ = _run(capsys, "transcribe", *reference_jfk_args, "-f", "srt", "--show-withheld")
    assert out.startswith("1\n00:00:00,000 --> 00:00:11,000\n[withheld 0.16] ") and len(out) > 60
    rc, out, _ = _run(capsys, "transcribe", *reference_jfk_args, "-f", "vtt", "--withheld-placeholder", "")
    assert out == "WEBVTT\n\n"
    rc, out, _ = _run(capsys, "transcribe", *reference_jfk_args, "-f", "jsonl")
    (line,) = out.splitlines()
    assert json.loads(line)["withheld"] and json.loads(line)["confidence"] == pytest.approx(0.16, abs=0.005)
    assert _run(capsys, "transcribe", *reference_jfk_args, "--fail-if-empty")[0] == 3


def test_guard_off_prints_the_model_text(reference_jfk_args, capsys):
    rc, out, err = _run(capsys, "transcribe", *reference_jfk_args, "--guard", "off")
    assert rc == 0 and len(out.strip()) > 20 and "[withheld" not in out
    assert "1 with text" in err and "withheld" not in err


def test_stream_says_why_a_final_is_empty(reference_jfk_args, capsys):
    rc, out, err = _run(capsys, "stream", *reference_jfk_args[:-1])
    assert rc == 0, err
    finals = out.splitlines()
    assert finals and all(line.split("] ", 1)[1] for line in finals)  # never a timed line without text
    assert any("[withheld: low confidence" in line for line in finals)


def test_info_shows_where_the_bundle_came_from(reference_jfk_args, capsys):
    rc, out, _ = _run(capsys, "info", reference_jfk_args[2], "--no-verify")
    assert rc == 0 and "source    recipe: examples/reference_model" in out and "family    nim4" in out


def test_hotword_list_weights_after_a_comma_or_tab(tmp_path, capsys):
    pytest.importorskip("espeakng_loader", reason="needs the g2p extra")
    names = tmp_path / "names.txt"
    names.write_text("John F. Kennedy,2.0\nSmith, John\nNIO House\t2.5\nKennedy,2.o\n# a comment\n", encoding="utf-8")
    rc, _, err = _run(capsys, "hotwords", "build", str(names), "-o", str(tmp_path / "idx"))
    assert rc == 0, err
    assert "skipped line 4 'Kennedy': weight '2.o' is not a number" in err
    rc, _, err = _run(capsys, "hotwords", "export", str(tmp_path / "idx"), "-o", str(tmp_path / "out.txt"))
    assert rc == 0, err
    rows = sorted(line for line in (tmp_path / "out.txt").read_text(encoding="utf-8").splitlines()[1:])
    assert rows == ["John F. Kennedy\t2", "NIO House\t2.5", "Smith, John\t1"]
    rc, out, _ = _run(capsys, "hotwords", "search", str(tmp_path / "idx"), "john f kennedy")
    assert rc == 0 and json.loads(out)[0]["text"] == "John F. Kennedy"


def test_every_argument_has_help_text():
    import argparse

    from nim4asr_edge.cli import build_parser

    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(" ".join([*path, action.dest]))

    walk(build_parser(), [])
    assert missing == []
