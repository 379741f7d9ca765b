"""What a batch job reads: a directory, a manifest or a glob expanded to audio files with stable output names."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import BatchError

__all__ = ["AUDIO_SUFFIXES", "InputFile", "expand_inputs", "name_key", "unique_name"]

# what a directory scan picks up (manifest and glob entries are taken as given; what cannot be read is reported)
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64"})
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    source: str  # absolute path of the audio file (the ledger's key)
    name: str  # output name relative to the output directory, "/"-separated, without extension


def name_key(name: str) -> str:
    """The form two names collide in (case-insensitive file systems)."""
    return name.casefold()


def unique_name(name: str, source: str, taken: set[str]) -> str:
    """``name``, or when another file has it, the name with the source's extension and then a counter appended."""
    candidates = [name, f"{name}{Path(source).suffix}"] if Path(source).suffix else [name]
    for cand in candidates:
        if name_key(cand) not in taken:
            return cand
    n = 2
    while name_key(f"{candidates[-1]}~{n}") in taken:
        n += 1
    return f"{candidates[-1]}~{n}"


def _check_name(name: str, where: str) -> str:
    parts = PurePosixPath(name.replace(os.sep, "/")).parts
    if not name or name.startswith("/") or any(p in ("..", ".", "") for p in parts) or parts[0].startswith("."):
        raise BatchError(f"{where}: output name {name!r} must be a relative path inside the output directory "
                         "(no '..', not hidden)")
    return "/".join(parts)


def _stem(rel: Path) -> str:
    return rel.with_suffix("").as_posix() if rel.suffix else rel.as_posix()


def _scan_dir(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames
                     if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_SUFFIXES)
    return sorted(found)


def _read_manifest(path: Path) -> list[tuple[Path, str | None]]:
    """(audio path, explicit output name or None) per entry. JSON lines: ``{"audio": PATH, "name": NAME}``
    ("path" or "file" are taken for "audio"); otherwise one path per line, ``#`` starting a comment."""
    entries: list[tuple[Path, str | None]] = []
    base = path.parent
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchError(f"cannot read the manifest {path}: {exc}") from exc
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = None
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            try:
                obj = json.loads(line)
                audio = next(obj[k] for k in ("audio", "path", "file") if k in obj)
            except (ValueError, StopIteration, TypeError) as exc:
                raise BatchError(f"{path}:{no}: expected a JSON object with an 'audio' path") from exc
            name = obj.get("name")
            line = str(audio)
        entries.append(((base / line) if not os.path.isabs(line) else Path(line), name))
    return entries


def _common_root(paths: list[Path]) -> Path:
    parents = [str(p.parent) for p in paths]
    return Path(os.path.commonpath(parents)) if parents else Path(".")


def expand_inputs(spec: str | os.PathLike) -> list[InputFile]:
    """The audio files of ``spec`` with their output names, sorted by source.

    ``spec`` is a directory (scanned recursively for audio files; names are paths relative to it), a manifest
    (``.txt``/``.lst``/... one path per line, or ``.jsonl`` objects; relative paths are relative to the manifest),
    a single audio file, or a glob pattern (``**`` recurses). Names drop the audio extension; files whose names
    collide (also case-insensitively) keep their extension, then get ``~2``, ``~3``.
    """
    text = os.fspath(spec)
    path = Path(text).expanduser()
    explicit: dict[str, str] = {}
    if path.is_dir():
        root = path.resolve()
        files = _scan_dir(root)
    elif path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
        files = [path.resolve()]
        root = files[0].parent
    elif path.is_file():
        entries = _read_manifest(path)
        files = [p.resolve() for p, _ in entries]
        explicit = {str(p.resolve()): _check_name(n, str(path)) for p, n in entries if n}
        root = _common_root(files)
    elif _GLOB_CHARS & set(text):
        files = sorted(Path(p).resolve() for p in glob.glob(os.path.expanduser(text), recursive=True)
                       if os.path.isfile(p))
        root = _common_root(files)
    else:
        raise BatchError(f"input {text!r} is neither a directory, a file nor a glob pattern that matches")
    if not files:
        raise BatchError(f"input {text!r} holds no audio files")
    out: list[InputFile] = []
    taken: set[str] = set()
    seen: set[str] = set()
    for f in sorted(files):
        source = str(f)
        if source in seen:
            continue
        seen.add(source)
        name = explicit.get(source) or _check_name(_stem(f.relative_to(root)), text)
        name = unique_name(name, source, taken)
        taken.add(name_key(name))
        out.append(InputFile(source, name))
    return out
