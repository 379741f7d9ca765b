"""Bundles shipped inside the package.

Until the reference model lands, the only shipped bundle is ``tiny-random``: a seeded random-init model built
by ``examples/make_tiny_bundle.py``. It exercises every stage of the runtime, but its output is meaningless.
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
                    "(the trained reference model has not landed yet); pass --model BUNDLE for real recognition",
                    name,
                )
            return path
    raise BundleError(f"no bundle is shipped in {HERE}; pass a bundle path (--model BUNDLE or Recognizer(path))")
