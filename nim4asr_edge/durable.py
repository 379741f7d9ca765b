"""Durable writes: flush a file's data, or a directory's entries (a rename into it), to disk."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["fsync_dir", "fsync_file"]


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename into it) durable, where the platform can fsync a directory."""
    with contextlib.suppress(OSError):
        fsync_file(path)
