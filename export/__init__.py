"""nim4asr_export: turn a NIM4-ASR PyTorch training checkpoint into a model bundle (needs the `export` extra)."""

__version__ = "0.1.0"
