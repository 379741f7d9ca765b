"""The README and docs/ are executable: every shell command and Python snippet in them runs here (or, where it needs
what CI lacks, is parsed), so a wrong example fails the tests.

* ``nim4asr-edge`` commands run through the CLI in a scratch directory where the files they name exist (audio as
  the JFK clip, a hotword list, the shipped bundles for bundle paths); ``export`` / ``import`` / ``mic`` / ``serve``
  (a training checkpoint, released weights, a microphone, a server that runs until stopped) are parsed with the real
  argument parser instead.
* Other shell commands (pip, benchmarks) are checked by ``bash -n``, and the scripts they name must exist.
* Python blocks run with the names they assume (``samples``, ``bundle_inventory`` ...) defined; a block preceded by
  ``<!-- doc-test: parse -->`` is compiled only.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nim4asr_edge.cli import build_parser, main
from nim4asr_edge.models import HERE as SHIPPED

from .conftest import JFK

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- doc-test: (\w+) -->\n)?```(bash|python)\n(.*?)```", re.S)
PARSE_ONLY = {"export", "import", "mic", "serve"}  # need what CI lacks, or run until stopped


def _blocks(kind: str) -> list[tuple[str, str, str]]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            if m.group(3) == kind:
                line = text[: m.start()].count("\n") + 1
                out.append((f"{doc.relative_to(ROOT)}:{line}", m.group(4), m.group(2) or "run"))
    return out


def _commands(body: str) -> list[str]:
    """Each command of a bash block: comments dropped, `&&` chains split."""
    cmds = []
    for line in body.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            cmds.extend(c.strip() for c in line.split("&&"))
    return cmds


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    """A directory with what the examples name: audio files, a hotword list, bundles."""
    monkeypatch.chdir(tmp_path)
    clip, rate = sf.read(JFK, dtype="float32")
    for name in ("call.wav", "meeting.wav"):
        sf.write(tmp_path / name, clip[: 4 * rate], rate)
    sf.write(tmp_path / "meeting.flac", clip[: 4 * rate], rate)
    (tmp_path / "names.txt").write_text("Ada Lovelace\nGrace Hopper,2.5\n# a comment\nNIO House\t1.5\n",
                                        encoding="utf-8")
    shutil.copy(tmp_path / "names.txt", tmp_path / "hotwords.txt")
    (tmp_path / "examples" / "audio").mkdir(parents=True)
    shutil.copy(JFK, tmp_path / "examples" / "audio" / "jfk.wav")
    (tmp_path / "path" / "to").mkdir(parents=True)
    (tmp_path / "path" / "to" / "bundle").symlink_to(SHIPPED / "tiny-random")
    (tmp_path / "my_bundle").symlink_to(SHIPPED / "tiny-random")
    return tmp_path


@pytest.mark.parametrize("where,body,mode", _blocks("bash"), ids=[w for w, _, _ in _blocks("bash")])
def test_shell_examples(where, body, mode, scratch, capsys):
    pytest.importorskip("espeakng_loader", reason="the examples use hotwords and the guard (g2p extra)")
    check = subprocess.run(["bash", "-n"], input=body, text=True, capture_output=True)
    assert check.returncode == 0, f"{where}: {check.stderr}"
    for cmd in _commands(body):
        argv = shlex.split(cmd)
        while argv and "=" in argv[0] and not argv[0].startswith("-"):  # VAR=value prefixes
            argv.pop(0)
        if argv[:3] == ["nice", "-n", argv[2] if len(argv) > 2 else ""]:
            argv = argv[3:]
        if argv[0] != "nim4asr-edge":
            scripts = [a for a in argv if a.endswith(".py")]
            assert all((ROOT / s).is_file() for s in scripts), f"{where}: {cmd!r} names a missing script"
            continue
        if mode == "parse" or argv[1] in PARSE_ONLY:
            build_parser().parse_args(argv[1:])  # SystemExit(2) on a wrong argument
            continue
        rc = main(argv[1:])
        out, err = capsys.readouterr()
        assert rc == 0, f"{where}: {cmd!r} failed: {err}"


@pytest.mark.parametrize("where,body,mode", _blocks("python"), ids=[w for w, _, _ in _blocks("python")])
def test_python_examples(where, body, mode, scratch):
    pytest.importorskip("espeakng_loader", reason="the examples use hotwords and the guard (g2p extra)")
    code = compile(body, where, "exec")
    if mode == "parse":
        return
    namespace = {
        "samples": (np.random.default_rng(0).standard_normal(48000) * 0.01).astype(np.float32),
        "bundle_inventory": None,
        "ctc_phonemes": ["ɐ", "d", "ə", "|", "l", "oʊ", "v", "l", "eɪ", "s"],
    }
    exec(code, namespace)
