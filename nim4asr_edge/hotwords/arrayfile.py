"""A file of named numpy arrays that opens by memory-mapping, not reading (the exact matcher and the entry table).

Layout, all little-endian: the 8-byte magic ``N4HWARR1``; a uint64 header length ``h``; ``h`` bytes of UTF-8 JSON
``{"kind": str, "meta": {...}, "arrays": {name: {"dtype": "<u8", "shape": [n, ...], "offset": int}}}``; then the
arrays' raw bytes, each starting at its ``offset`` from the file's start (a multiple of 64). :func:`map_arrays`
maps the file read-only and returns views into the mapping, so opening costs no time or anonymous memory in
proportion to the arrays: the kernel pages in what a search touches, and may drop those pages again under
memory pressure. No pickled objects: loading runs no code.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import HotwordError

__all__ = ["MAGIC", "map_arrays", "write_arrays"]

MAGIC = b"N4HWARR1"
_ALIGN = 64
_DTYPES = {"|u1", "|b1", "<i2", "<i4", "<i8", "<u2", "<u4", "<u8", "<f4", "<f8"}


def write_arrays(f, kind: str, arrays: Mapping[str, np.ndarray], meta: dict | None = None) -> None:
    """Write ``arrays`` (and the JSON-able ``meta``) to the open binary file ``f`` at its current position 0."""
    specs: dict[str, dict] = {}
    prepared = {}
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt.str not in _DTYPES:
            raise HotwordError(f"array {name!r} has dtype {a.dtype}, which the index file cannot hold")
        prepared[name] = a.astype(dt, copy=False)
        specs[name] = {"dtype": dt.str, "shape": list(a.shape), "offset": 0}
    # the header's length depends on the offsets' digits: fix the offsets with a generous header size first
    head_room = len(json.dumps({"kind": kind, "meta": meta or {}, "arrays": specs})) + 32 * len(specs) + 64
    pos = -(-(16 + head_room) // _ALIGN) * _ALIGN
    for name, a in prepared.items():
        specs[name]["offset"] = pos
        pos = -(-(pos + a.nbytes) // _ALIGN) * _ALIGN
    header = json.dumps({"kind": kind, "meta": meta or {}, "arrays": specs}).encode("utf-8")
    header += b" " * (head_room - len(header))
    f.write(MAGIC + len(header).to_bytes(8, "little") + header)
    written = 16 + len(header)
    for name, a in prepared.items():
        f.write(b"\0" * (specs[name]["offset"] - written))
        f.write(memoryview(a.reshape(-1).view(np.uint8)) if a.nbytes else b"")
        written = specs[name]["offset"] + a.nbytes


def map_arrays(path: str | os.PathLike, kind: str) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays (read-only views of a memory mapping) and meta of a file :func:`write_arrays` wrote.

    HotwordError if it is not such a file, holds another ``kind``, or its arrays do not fit in it.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(16)
            if len(head) < 16 or head[:8] != MAGIC:
                raise HotwordError(f"{p.name} is not a nim4asr index array file (no {MAGIC.decode()} magic)")
            hlen = int.from_bytes(head[8:], "little")
            size = os.fstat(f.fileno()).st_size
            if hlen > size - 16:
                raise HotwordError(f"{p.name} is truncated (header)")
            header = json.loads(f.read(hlen).decode("utf-8"))
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except OSError as exc:
        raise HotwordError(f"cannot read {p.name}: {exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise HotwordError(f"{p.name} has an unreadable header ({exc})") from exc
    if not isinstance(header, dict) or header.get("kind") != kind:
        raise HotwordError(f"{p.name} holds {header.get('kind') if isinstance(header, dict) else '?'!r}, "
                           f"not {kind!r}")
    out = {}
    try:
        for name, spec in header["arrays"].items():
            if spec["dtype"] not in _DTYPES:
                raise HotwordError(f"{p.name}: array {name!r} has an unknown dtype {spec['dtype']!r}")
            dt = np.dtype(spec["dtype"])
            shape = tuple(int(x) for x in spec["shape"])
            count = int(np.prod(shape)) if shape else 1
            off = int(spec["offset"])
            if off < 16 + hlen or off + count * dt.itemsize > size:
                raise HotwordError(f"{p.name} is truncated or damaged (array {name!r} lies outside the file)")
            a = np.frombuffer(mm, dt, count, off) if count else np.zeros(0, dt)
            out[name] = a.reshape(shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise HotwordError(f"{p.name} has an inconsistent header ({exc})") from exc
    return out, header.get("meta", {})
