"""Grapheme-to-phoneme conversion for hotwords: a pluggable interface, the eSpeak NG backend and the English inventory.

A G2P turns hotword text into phoneme symbols of a bundle's phoneme inventory, with ``"|"`` between words. The
reference English inventory is :data:`ENGLISH_INVENTORY`; :class:`EspeakG2P` maps everything eSpeak NG ``en-us``
emits onto it (stress marks dropped, length marks, affricates and diphthongs kept as single symbols, compound
eSpeak phonemes such as ``ɑːɹ`` split, rare foreign ones mapped to the closest symbol, anything else reported).

eSpeak NG is GPL-3.0. It is not a dependency of the runtime: ``libespeak-ng`` is loaded at run time, through
ctypes, from the optional ``espeakng-loader`` package (``pip install 'nim4asr-edge[g2p]'``).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..errors import HotwordError, require

__all__ = [
    "BLANK",
    "ENGLISH_INVENTORY",
    "G2P",
    "WORD_BOUNDARY",
    "BaseG2P",
    "EspeakG2P",
    "Pronunciation",
    "get_g2p",
    "normalize_text",
]

log = logging.getLogger("nim4asr_edge.hotwords")

BLANK = "<blank>"
WORD_BOUNDARY = "|"

# The reference English phoneme inventory (CTC blank first, word boundary second). Order is part of the format:
# the phoneme-CTC head's class i is ENGLISH_INVENTORY[i]. Never reorder; append only with a new inventory name.
ENGLISH_VOWELS = [
    "i", "iː", "ɪ", "ᵻ", "eɪ", "ɛ", "æ", "ɐ", "ə", "ɚ", "ɜː", "ʌ",
    "ɑː", "ɔː", "oʊ", "ʊ", "uː", "aɪ", "aʊ", "ɔɪ",
]  # fmt: skip
ENGLISH_CONSONANTS = [
    "p", "b", "t", "d", "ɾ", "k", "ɡ", "ʔ", "tʃ", "dʒ", "f", "v", "θ", "ð",
    "s", "z", "ʃ", "ʒ", "x", "h", "m", "n", "ŋ", "l", "ɹ", "w", "j",
]  # fmt: skip
ENGLISH_INVENTORY: list[str] = [BLANK, WORD_BOUNDARY, *ENGLISH_VOWELS, *ENGLISH_CONSONANTS]

# eSpeak NG phonemes that are not inventory symbols, and the closest symbol sequence for each. Compound r-coloured
# vowels and syllabic consonants are split; foreign vowels/consonants (from loanwords or other voices) map to the
# nearest English one. Matching is greedy longest-first over these keys and the inventory symbols.
_ESPEAK_FALLBACK: dict[str, tuple[str, ...]] = {
    "ɑːɹ": ("ɑː", "ɹ"), "ɔːɹ": ("ɔː", "ɹ"), "ɪɹ": ("ɪ", "ɹ"), "ɛɹ": ("ɛ", "ɹ"), "ʊɹ": ("ʊ", "ɹ"),
    "aɪɚ": ("aɪ", "ɚ"), "aɪə": ("aɪ", "ə"), "aʊɚ": ("aʊ", "ɚ"), "aʊə": ("aʊ", "ə"), "iə": ("i", "ə"),
    "əl": ("ə", "l"), "oːɹ": ("ɔː", "ɹ"), "ææ": ("æ",), "ɛː": ("ɛ",), "ɔ": ("ɔː",), "ɑ": ("ɑː",), "ɒ": ("ɑː",),
    "a": ("æ",), "aː": ("ɑː",), "e": ("ɛ",), "eː": ("eɪ",), "o": ("oʊ",), "oː": ("oʊ",), "u": ("uː",),
    "y": ("uː",), "yː": ("uː",), "ø": ("ɜː",), "øː": ("ɜː",), "œ": ("ɜː",), "ɜ": ("ɜː",), "ɯ": ("uː",),
    "ɨ": ("ᵻ",), "ʉ": ("uː",), "ɵ": ("ə",), "ɘ": ("ə",), "ɤ": ("ʌ",), "ʏ": ("ʊ",), "ɐː": ("ɑː",), "ɪː": ("iː",),
    "ʊː": ("uː",), "əː": ("ɜː",), "r": ("ɹ",), "ɹ̩": ("ɚ",), "ʁ": ("ɹ",), "ʀ": ("ɹ",), "ɽ": ("ɾ",), "ɫ": ("l",),
    "ɬ": ("l",), "ɭ": ("l",), "ʎ": ("l", "j"), "ɲ": ("n", "j"), "ɳ": ("n",), "ɴ": ("ŋ",), "β": ("v",),
    "ɸ": ("f",), "ʋ": ("v",), "c": ("k",), "ɟ": ("ɡ",), "ɣ": ("ɡ",), "χ": ("x",), "ħ": ("h",), "ɦ": ("h",),
    "ç": ("h",), "ʈ": ("t",), "ɖ": ("d",), "ʂ": ("ʃ",), "ʐ": ("ʒ",), "ɕ": ("ʃ",), "ʑ": ("ʒ",), "ts": ("t", "s"),
    "dz": ("d", "z"), "g": ("ɡ",), "q": ("k",), "ʕ": ("h",), "ɰ": ("w",), "ɥ": ("j",),
}  # fmt: skip
_STRESS_MARKS = "ˈˌ"
_DROPPED_MARKS = "ˑ‿"  # half-length, linking

# Text checks for the English G2P: Latin letters (any diacritics), digits, and these punctuation/symbol characters.
_ALLOWED_PUNCT = set(" \t.,'’‘-‐–—&+/@%$#!?():;\"“”_*")
MAX_TEXT_CHARS = 200  # longer entries are refused: no real hotword is a paragraph


@dataclass(frozen=True)
class Pronunciation:
    """The result of converting one hotword text."""

    text: str  # the normalised text that was converted
    phonemes: tuple[str, ...]  # inventory symbols with "|" between words; empty when `problem` is set
    problem: str | None = None  # why the text could not be converted (then `phonemes` is empty)


@runtime_checkable
class G2P(Protocol):
    """Text -> phoneme symbols. Implementations are deterministic and batched, with a cache."""

    name: str  # spec string, e.g. "espeak-ng:en-us"; recorded in the hotword store

    def phonemize(self, texts: Sequence[str]) -> list[list[str]]:
        """Phonemes of each text ("|" between words); an empty list for a text that cannot be pronounced."""
        ...

    def pronounce(self, texts: Sequence[str]) -> list[Pronunciation]:
        """Like :meth:`phonemize`, with the reason for each text that cannot be pronounced."""
        ...


def normalize_text(text: str) -> str:
    """NFKC, zero-width/control characters removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc") or ch in " \t")
    return " ".join(text.split())


class BaseG2P:
    """Batching, caching and progress for a G2P; subclasses implement :meth:`_convert` for one normalised text.

    `_convert` returns the phoneme list, or raises ``ValueError(reason)`` for a text it cannot pronounce.
    """

    name = "base"

    def __init__(self, cache_size: int = 200_000):
        self._cache: OrderedDict[str, Pronunciation] = OrderedDict()
        self._cache_size = cache_size  # entries kept (LRU); 0 disables the cache
        self._lock = threading.Lock()

    def _convert(self, text: str) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def pronounce(self, texts: Sequence[str], progress: bool = False) -> list[Pronunciation]:
        if isinstance(texts, str):
            raise TypeError("pronounce() takes a sequence of texts, not a single string")
        out: list[Pronunciation] = []
        it = texts
        if progress:
            from tqdm import tqdm

            it = tqdm(texts, desc=f"G2P {self.name}", unit="entry", mininterval=1.0)
        for raw in it:
            text = normalize_text(raw)
            hit = self._cache.get(text)
            if hit is None:
                hit = self._pronounce_one(text)
                if self._cache_size:
                    with self._lock:
                        self._cache[text] = hit
                        if len(self._cache) > self._cache_size:
                            self._cache.popitem(last=False)
            out.append(hit)
        return out

    def phonemize(self, texts: Sequence[str], progress: bool = False) -> list[list[str]]:
        return [list(p.phonemes) for p in self.pronounce(texts, progress=progress)]

    def _pronounce_one(self, text: str) -> Pronunciation:
        if not text:
            return Pronunciation(text, (), "empty text")
        if len(text) > MAX_TEXT_CHARS:
            return Pronunciation(text, (), f"too long ({len(text)} characters, at most {MAX_TEXT_CHARS})")
        try:
            phonemes = self._convert(text)
        except ValueError as exc:
            return Pronunciation(text, (), str(exc))
        # Tidy word boundaries: none at the ends, never two in a row.
        tidy: list[str] = []
        for p in phonemes:
            if p == WORD_BOUNDARY and (not tidy or tidy[-1] == WORD_BOUNDARY):
                continue
            tidy.append(p)
        while tidy and tidy[-1] == WORD_BOUNDARY:
            tidy.pop()
        if not tidy:
            return Pronunciation(text, (), "unpronounceable: the G2P produced no phonemes")
        return Pronunciation(text, tuple(tidy))


# ----------------------------------------------------------------------------------------------------- eSpeak NG

_AUDIO_OUTPUT_RETRIEVAL = 1  # espeak_AUDIO_OUTPUT: no sound device
_INITIALIZE_DONT_EXIT = 0x8000  # espeakINITIALIZE_DONT_EXIT: return an error instead of exit()
_CHARS_UTF8 = 1  # espeakCHARS_UTF8
_PHONEMES_IPA = 0x02  # espeakPHONEMES_IPA
_SEPARATOR = "_"  # phoneme separator requested through bits 8-23 of phonememode
_ESPEAK_LOCK = threading.Lock()  # libespeak-ng keeps global state: one call at a time, process-wide
_ESPEAK_LIB = None
_ESPEAK_VOICE: str | None = None


def _espeak_lib():
    """Load and initialise libespeak-ng once per process (from espeakng-loader)."""
    global _ESPEAK_LIB
    if _ESPEAK_LIB is not None:
        return _ESPEAK_LIB
    loader = require("espeakng_loader", "g2p")
    try:
        lib = ctypes.CDLL(loader.get_library_path())
        data = loader.get_data_path()
    except (OSError, RuntimeError) as exc:
        raise HotwordError(f"could not load libespeak-ng from espeakng-loader: {exc}; reinstall "
                           "'nim4asr-edge[g2p]'") from exc
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_RETRIEVAL, 0, data.encode(), _INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise HotwordError(f"espeak_Initialize failed (returned {rate}) with data at {data}")
    _ESPEAK_LIB = lib
    return lib


class EspeakG2P(BaseG2P):
    """eSpeak NG through ctypes (espeak_TextToPhonemes, IPA with a phoneme separator), mapped onto an inventory.

    Text is first checked: only Latin-script letters, digits and common punctuation are accepted for English
    voices; other scripts and emoji are reported (eSpeak would otherwise spell them out as "chinese letter" or
    "grinning face", which is never what a hotword means). Output phonemes that are neither inventory symbols nor
    in the fallback table are reported, never dropped.
    """

    def __init__(self, voice: str = "en-us", inventory: Sequence[str] | None = None, cache_size: int = 200_000):
        super().__init__(cache_size)
        self.voice = voice
        self.name = f"espeak-ng:{voice}"
        inv = list(ENGLISH_INVENTORY if inventory is None else inventory)
        self._symbols = {s for s in inv if s not in (BLANK, WORD_BOUNDARY)}
        keys = set(self._symbols) | set(_ESPEAK_FALLBACK)
        self._max_key = max(len(k) for k in keys)
        self._keys = keys
        self._lib = _espeak_lib()
        self._set_voice()

    def _set_voice(self) -> None:
        global _ESPEAK_VOICE
        if _ESPEAK_VOICE == self.voice:
            return
        if self._lib.espeak_SetVoiceByName(self.voice.encode()) != 0:
            raise HotwordError(f"eSpeak NG has no voice {self.voice!r}")
        _ESPEAK_VOICE = self.voice

    def _check_chars(self, text: str) -> None:
        if not any(ch.isalnum() for ch in text):
            raise ValueError("unpronounceable: no letters or digits")
        for ch in text:
            if ch in _ALLOWED_PUNCT or ch.isdigit() and ch.isascii():
                continue
            cat = unicodedata.category(ch)
            if cat[0] in "LM" and unicodedata.name(ch, "").startswith(("LATIN", "COMBINING")):
                continue
            name = unicodedata.name(ch, "unnamed character")
            raise ValueError(f"contains {ch!r} (U+{ord(ch):04X} {name}), which {self.name} cannot pronounce")

    def _raw(self, text: str) -> str:
        mode = _PHONEMES_IPA | (ord(_SEPARATOR) << 8)
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        clauses: list[str] = []
        with _ESPEAK_LOCK:
            self._set_voice()
            while ptr.value:
                res = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, mode)
                if res:
                    clauses.append(res.decode("utf-8"))  # eSpeak returns valid UTF-8; a failure here is a bug
        return " ".join(clauses)

    def _map_token(self, token: str) -> list[str]:
        for mark in _STRESS_MARKS + _DROPPED_MARKS:
            token = token.replace(mark, "")
        out: list[str] = []
        i = 0
        while i < len(token):
            for size in range(min(self._max_key, len(token) - i), 0, -1):
                piece = token[i : i + size]
                if piece in self._keys:
                    out.extend((piece,) if piece in self._symbols else _ESPEAK_FALLBACK[piece])
                    i += size
                    break
            else:
                ch = token[i]
                if unicodedata.combining(ch):  # a diacritic with no mapping of its own (nasal, syllabic ...)
                    i += 1
                    continue
                raise ValueError(f"eSpeak produced phoneme {token!r} containing {ch!r} (U+{ord(ch):04X}), "
                                 "which has no symbol in the inventory")
        return out

    def _convert(self, text: str) -> list[str]:
        self._check_chars(text)
        raw = self._raw(text)
        if "(" in raw:  # eSpeak switched language, e.g. "(fr)...(en-us)": phonemes of another language
            raise ValueError(f"eSpeak switched language while reading it ({raw!r}); not an {self.voice} word")
        phonemes: list[str] = []
        for word in raw.split():
            if phonemes:
                phonemes.append(WORD_BOUNDARY)
            for token in word.split(_SEPARATOR):
                if token:
                    phonemes.extend(self._map_token(token))
        return phonemes


def get_g2p(spec: str, inventory: Sequence[str] | None = None) -> G2P:
    """A G2P from a bundle's spec string, e.g. ``"espeak-ng:en-us"``."""
    backend, _, arg = spec.partition(":")
    if backend == "espeak-ng":
        return EspeakG2P(voice=arg or "en-us", inventory=inventory)
    raise HotwordError(f"unknown G2P {spec!r}; known: 'espeak-ng:<voice>' (e.g. 'espeak-ng:en-us')")
