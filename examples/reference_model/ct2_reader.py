"""Reader for CTranslate2 ``model.bin`` files (binary format version 6), numpy only.

Layout (little-endian), as written by ``ctranslate2.specs.model_spec.ModelSpec.save``:

    u32 binary_version            (this reader accepts 5 and 6)
    str spec_name                 (u16 byte length incl. NUL, then bytes)
    u32 spec_revision
    u32 n_variables
    n_variables x { str name; u8 rank; u32 dims[rank]; u8 dtype; u32 n_bytes; bytes data }
    u32 n_aliases
    n_aliases x { str alias; str target }
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ctranslate2 DataType enum order (include/ctranslate2/types.h)
_CT2_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
}


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model.bin this reader understands."""


@dataclass
class CT2Model:
    spec_name: str  # e.g. "WhisperSpec"
    spec_revision: int
    binary_version: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)  # name -> array (aliases resolved)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> target


class _Cursor:
    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise CT2FormatError(f"truncated file: need {n} bytes at offset {self.pos}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        n = self.u16()
        raw = self.take(n)
        if not raw.endswith(b"\0"):
            raise CT2FormatError(f"string at offset {self.pos - n} is not NUL-terminated")
        return raw[:-1].decode("utf-8")


def read_ct2(path: str | Path) -> CT2Model:
    """Read every variable of a CTranslate2 model.bin into numpy arrays (copies, native dtype)."""
    buf = Path(path).read_bytes()
    c = _Cursor(buf)
    version = c.u32()
    if version not in (5, 6):
        raise CT2FormatError(f"{path}: binary version {version} not supported (expected 5 or 6)")
    spec = c.string()
    revision = c.u32()
    n_vars = c.u32()
    variables: dict[str, np.ndarray] = {}
    for _ in range(n_vars):
        name = c.string()
        rank = c.u8()
        dims = [c.u32() for _ in range(rank)]
        code = c.u8()
        if code not in _CT2_DTYPES:
            raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype code {code}")
        n_bytes = c.u32()
        dt = np.dtype(_CT2_DTYPES[code])
        expect = int(np.prod(dims, dtype=np.int64)) * dt.itemsize if dims else dt.itemsize
        if n_bytes != expect:
            raise CT2FormatError(f"{path}: variable {name!r} has {n_bytes} bytes, shape {dims} needs {expect}")
        arr = np.frombuffer(c.take(n_bytes), dtype=dt).copy()
        variables[name] = arr.reshape(dims) if dims else arr.reshape(())
    aliases: dict[str, str] = {}
    if c.pos < len(buf):
        for _ in range(c.u32()):
            alias = c.string()
            target = c.string()
            aliases[alias] = target
            variables[alias] = variables[target]
    if c.pos != len(buf):
        raise CT2FormatError(f"{path}: {len(buf) - c.pos} trailing bytes")
    return CT2Model(spec, revision, version, variables, aliases)
