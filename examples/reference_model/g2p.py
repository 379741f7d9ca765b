"""eSpeak NG G2P for the CTC targets.

Uses the runtime's hotword G2P (``nim4asr_edge.hotwords.g2p.get_g2p("espeak-ng:en-us")``) when it exists, so the
CTC head is trained on exactly the symbols the hotword index searches for. Until then :class:`EspeakG2P` here
implements the same interface with the ``espeakng-loader`` library through ctypes: IPA per phoneme
(``espeak_TextToPhonemes`` with a separator), stress marks dropped, ``|`` between words.
"""
from __future__ import annotations

import ctypes
import threading

_STRESS = "ˈˌ"


class EspeakG2P:
    """``phonemize(texts) -> list[list[str]]``: IPA phoneme symbols with "|" between words."""

    def __init__(self, voice: str = "en-us"):
        import espeakng_loader

        self._lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self._lib.espeak_Initialize.restype = ctypes.c_int
        if self._lib.espeak_Initialize(2, 0, data, 0) < 0:  # AUDIO_OUTPUT_SYNCHRONOUS
            raise RuntimeError("espeak_Initialize failed")
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak voice {voice!r} not found")
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self._lock = threading.Lock()

    def ipa(self, text: str, separator: str | None = "_") -> str:
        """Raw eSpeak IPA, phonemes separated by ``separator`` (None: none) and words by spaces."""
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_char_p(ctypes.addressof(buf))
        out = []
        mode = 0x02 | ((ord(separator) << 8) if separator else 0)  # bit 1: IPA; bits 8-23: separator
        with self._lock:
            while ptr.value:
                res = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), 1, mode)  # espeakCHARS_UTF8
                if res:
                    out.append(res.decode("utf-8").strip())
        return " ".join(o for o in out if o)

    def phonemize(self, texts: list[str]) -> list[list[str]]:
        result = []
        for t in texts:
            seq: list[str] = []
            for word in self.ipa(t).split():
                phs = [p.strip(_STRESS) for p in word.split("_")]
                phs = [p for p in phs if p]
                if not phs:
                    continue
                if seq:
                    seq.append("|")
                seq.extend(phs)
            result.append(seq)
        return result


def get_g2p(name: str = "espeak-ng:en-us"):
    """The runtime's G2P (the same symbols as the hotword index and the CTC head's inventory)."""
    from nim4asr_edge.hotwords.g2p import get_g2p as runtime_get_g2p

    return runtime_get_g2p(name)
