"""Build the shipped ``tiny-random`` bundle: a seeded random-init checkpoint exported through the real pipeline.

    python examples/make_tiny_bundle.py [OUT_DIR]

Its transcripts are meaningless; it exists so that every stage of the runtime runs out of the box.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from nim4asr_export.exporter import ExportOptions, export_bundle
from nim4asr_export.tiny import make_tiny_checkpoint

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "nim4asr_edge" / "models" / "tiny-random"


def main(out: Path = DEFAULT_OUT) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_tiny_checkpoint(Path(tmp) / "ckpt", seed=0)
        export_bundle(ckpt, out, ExportOptions(quant=("int8", "fp32", "q8_0", "f32"), name="tiny-random", overwrite=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
