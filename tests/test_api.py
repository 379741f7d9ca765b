"""The public surface: what the package root exports, option conflicts, old bundles, and the runtime's module shape."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nim4asr_edge
from nim4asr_edge.bundle import Bundle
from nim4asr_edge.encoder import EncoderOptions
from nim4asr_edge.llm import LLMOptions
from nim4asr_edge.models import HERE as SHIPPED

PACKAGE = Path(nim4asr_edge.__file__).parent


def test_headline_names_import_from_the_root():
    from nim4asr_edge import HotwordIndex, Recognizer, SearchOptions, Stream, StreamEvent, StreamOptions  # noqa: F401
    from nim4asr_edge import errors

    for name in errors.__all__:
        assert getattr(nim4asr_edge, name) is getattr(errors, name)
    assert issubclass(nim4asr_edge.StreamError, nim4asr_edge.Nim4AsrError)
    assert all(hasattr(nim4asr_edge, n) for n in nim4asr_edge.__all__)


@pytest.mark.parametrize("kwargs,match", [
    ({"threads": 2, "llm": LLMOptions(n_threads=4)}, "threads=2 contradicts llm.n_threads=4"),
    ({"threads": 2, "encoder": EncoderOptions(intra_op_num_threads=1)}, "contradicts encoder.intra_op_num_threads"),
    ({"n_ctx": 2048, "llm": LLMOptions(n_ctx=1024)}, "n_ctx=2048 contradicts llm.n_ctx=1024"),
])
def test_conflicting_options_raise(kwargs, match):
    with pytest.raises(nim4asr_edge.OptionsError, match=match):
        nim4asr_edge.RecognizerOptions(**kwargs)


def test_advanced_options_are_used_as_given():
    o = nim4asr_edge.RecognizerOptions(llm=LLMOptions(n_threads=3, n_ctx=1024, flash_attn=False))
    llm = o.llm_options(needed_ctx=4096)
    assert (llm.n_threads, llm.n_ctx, llm.flash_attn) == (3, 1024, False)
    assert not o.tunes_decode_threads  # an explicit thread count is not re-tuned
    same = nim4asr_edge.RecognizerOptions(threads=3, n_ctx=1024, llm=LLMOptions(n_threads=3, n_ctx=1024))
    assert same.llm_options(4096).n_ctx == 1024
    plain = nim4asr_edge.RecognizerOptions(threads=2)
    assert (plain.llm_options(4096).n_threads, plain.llm_options(4096).n_ctx) == (2, 4096)
    assert plain.encoder_options().intra_op_num_threads == 2


def test_bundles_exported_before_families_load_as_nim4():
    path = SHIPPED / "tiny-random"
    assert json.loads((path / "manifest.json").read_text())["format_version"] == 1
    bundle = Bundle.load(path)
    assert bundle.manifest.family == "nim4" and bundle.family.name == "nim4"
    assert bundle.manifest.to_dict()["format_version"] == 2


def _runtime_imports() -> dict[str, set[str]]:
    """Module -> runtime modules it imports (at any level, lazily too)."""
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        mods[".".join(rel.parts).removesuffix(".__init__")] = f
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for f in PACKAGE.rglob("*.c"):  # compiled extension modules: leaves
        edges[".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts)] = set()
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in edges]
                for cand in subs if (subs and not node.module) else [target, *subs]:
                    if cand in edges and cand != m:
                        edges[m].add(cand)
    return edges


@pytest.mark.parametrize("env,policy", [({}, ("None", "10000")), ({"OMP_WAIT_POLICY": "ACTIVE"}, ("ACTIVE", "None")),
                                        ({"GOMP_SPINCOUNT": "500"}, ("None", "500"))])
def test_openmp_spins_briefly_unless_the_environment_chose(env, policy):
    """Set before llama.cpp's libgomp starts: a short spin by default, a user's policy or spin count kept as given."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import os, nim4asr_edge._llama; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True, text=True, check=True)
    assert tuple(out.stdout.split()) == policy


def test_no_import_cycles_and_small_modules():
    edges = _runtime_imports()

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            for n in edges[todo.pop()] - seen:
                if n == b:
                    return True
                seen.add(n)
                todo.append(n)
        return False

    cycles = [(a, b) for a in edges for b in edges[a] if reaches(b, a)]
    assert cycles == []
    assert not reaches("nim4asr_edge.stream", "nim4asr_edge.recognizer")  # Stream depends on the engine alone
    sizes = {str(f.relative_to(PACKAGE)): len(f.read_text().splitlines()) for f in PACKAGE.rglob("*.py")}
    long = {name: n for name, n in sizes.items() if n > 500}
    assert long == {}
