"""Model families: the registry from a manifest's ``family`` name to the class that knows that kind of model.

Adding a family is one module with a :class:`ModelFamily` subclass, registered here (or, for a family of your own,
with :func:`register_family` before loading its bundles).
"""

from __future__ import annotations

from ..errors import BundleError
from .base import ModelFamily, Transcript
from .fun_asr_nano import FunAsrNanoFamily
from .nim4 import Nim4Family
from .qwen3_asr import Qwen3AsrFamily

__all__ = ["ModelFamily", "Transcript", "family_names", "get_family", "register_family"]

_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily, *, replace: bool = False) -> ModelFamily:
    """Make ``family`` loadable by name; a second family of the same name is refused unless ``replace``."""
    if not isinstance(family, ModelFamily) or not family.name:
        raise TypeError("register_family takes a ModelFamily instance with a name")
    if family.name in _FAMILIES and not replace:
        raise ValueError(f"a model family named {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> ModelFamily:
    """The registered family ``name`` (``BundleError`` for an unknown one)."""
    family = _FAMILIES.get(name)
    if family is None:
        raise BundleError(f"the bundle's model family {name!r} is unknown to this runtime (it knows "
                          f"{', '.join(sorted(_FAMILIES))}); upgrade nim4asr-edge")
    return family


def family_names() -> list[str]:
    return sorted(_FAMILIES)


register_family(Nim4Family())
register_family(FunAsrNanoFamily())
register_family(Qwen3AsrFamily())
