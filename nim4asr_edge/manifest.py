"""``manifest.json`` of a model bundle: the one reader and writer (format in docs/FORMAT.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import BundleError
from .prompt import PromptTemplate

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "FileEntry", "Manifest", "sha256_file"]

BUNDLE_FORMAT = "nim4asr-bundle"
BUNDLE_VERSION = 2  # 2: the manifest names the model family
READABLE_VERSIONS = (1, 2)  # a version 1 manifest is a NIM4 bundle
MANIFEST_NAME = "manifest.json"


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int

    @classmethod
    def of(cls, path: str | Path) -> "FileEntry":
        return cls(sha256=sha256_file(path), size=Path(path).stat().st_size)


@dataclass(frozen=True)
class Manifest:
    name: str
    frontend: dict[str, Any]  # nim4asr_edge.frontend.make_frontend spec
    encoder: dict[str, Any]  # files {precision: name}, default, frame_rate_hz, token_rate_hz, llm_hidden, streaming
    phonemes: dict[str, Any]  # inventory, blank, word_boundary, g2p
    llm: dict[str, Any]  # files {quant: name}, default, architecture, n_embd, quantization reports
    prompt: PromptTemplate
    files: dict[str, FileEntry]
    source: dict[str, Any] = field(default_factory=dict)  # checkpoint hash, exporter version
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, e.g. evaluation figures
    family: str = "nim4"  # the model family (nim4asr_edge.families): frontend, prompt, parser, evidence, streaming

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "family": self.family,
            "name": self.name,
            "created": self.created,
            "source": self.source,
            "frontend": self.frontend,
            "encoder": self.encoder,
            "phonemes": self.phonemes,
            "llm": self.llm,
            "prompt": self.prompt.to_dict(),
            "files": {k: {"sha256": v.sha256, "size": v.size} for k, v in sorted(self.files.items())},
            "extra": self.extra,
        }

    def write(self, bundle_dir: str | Path) -> Path:
        path = Path(bundle_dir) / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Manifest":
        if data.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"not a {BUNDLE_FORMAT} manifest (format={data.get('format')!r})")
        version = data.get("format_version")
        if version not in READABLE_VERSIONS:
            raise BundleError(
                f"bundle format_version {version!r} is not supported by this runtime (it reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade nim4asr-edge or re-export the bundle"
            )
        if version >= 2 and not isinstance(data.get("family"), str):
            raise BundleError("manifest is malformed: format_version 2 needs a 'family' name")
        try:
            manifest = cls(
                name=str(data["name"]),
                frontend=dict(data["frontend"]),
                encoder=dict(data["encoder"]),
                phonemes=dict(data["phonemes"]),
                llm=dict(data["llm"]),
                prompt=PromptTemplate.from_dict(data["prompt"]),
                files={k: FileEntry(str(v["sha256"]), int(v["size"])) for k, v in data["files"].items()},
                source=dict(data.get("source", {})),
                created=str(data.get("created", "")),
                extra=dict(data.get("extra", {})),
                family=str(data.get("family", "nim4")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"manifest is malformed: missing or invalid {exc}") from exc
        manifest._check()
        return manifest

    def _check(self) -> None:
        sections = [("encoder", self.encoder), ("llm", self.llm)]
        if self.encoder.get("streaming") is not None:
            sections.append(("encoder.streaming", self.encoder["streaming"]))
        for section, key in sections:
            files = key.get("files")
            if not isinstance(files, dict) or not files:
                raise BundleError(f"manifest {section}.files must list at least one file")
            if key.get("default") not in files:
                raise BundleError(f"manifest {section}.default {key.get('default')!r} is not one of {sorted(files)}")
            for name in files.values():
                if name not in self.files:
                    raise BundleError(f"manifest {section} file {name!r} has no entry (sha256, size) in 'files'")
        inv = self.phonemes.get("inventory")
        if not isinstance(inv, list) or len(inv) < 2:
            raise BundleError("manifest phonemes.inventory must list the blank and at least one phoneme")
        costs = self.phonemes.get("substitution_costs")
        if costs is not None and costs not in self.files:
            raise BundleError(f"manifest phonemes.substitution_costs {costs!r} has no entry (sha256, size) in 'files'")

    @classmethod
    def read(cls, bundle_dir: str | Path) -> "Manifest":
        path = Path(bundle_dir) / MANIFEST_NAME
        if not path.is_file():
            raise BundleError(f"{bundle_dir} is not a model bundle: {MANIFEST_NAME} not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path} is damaged (not valid JSON: {exc}); re-export or re-install the bundle") from exc
        if not isinstance(data, dict):
            raise BundleError(f"{path} is damaged (top level is not an object)")
        return cls.from_dict(data)
