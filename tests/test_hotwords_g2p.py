"""G2P: real eSpeak NG through ctypes, the English inventory, text checks."""

from __future__ import annotations

import random
import sys

import pytest

from nim4asr_edge.errors import HotwordError, MissingDependencyError
from nim4asr_edge.hotwords import g2p as g2p_mod
from nim4asr_edge.hotwords.g2p import ENGLISH_INVENTORY, EspeakG2P, get_g2p

pytest.importorskip("espeakng_loader", reason="eSpeak NG backend (extra 'g2p') not installed")


@pytest.fixture(scope="module")
def g2p() -> EspeakG2P:
    return EspeakG2P("en-us")


def test_inventory_shape():
    assert ENGLISH_INVENTORY[0] == "<blank>" and ENGLISH_INVENTORY[1] == "|"
    assert len(set(ENGLISH_INVENTORY)) == len(ENGLISH_INVENTORY)
    assert all(s and " " not in s for s in ENGLISH_INVENTORY)


def test_known_pronunciations(g2p):
    assert g2p.phonemize(["hello world"]) == [["h", "ə", "l", "oʊ", "|", "w", "ɜː", "l", "d"]]
    church, street = g2p.phonemize(["Church", "Church Street"])
    assert street[: len(church)] == church and street[len(church)] == "|"
    # affricates and diphthongs are single symbols, stress marks are gone
    assert "tʃ" in church
    assert not any("ˈ" in p or "ˌ" in p for p in street)


def test_inventory_covers_espeak_output(g2p):
    """Every symbol eSpeak en-us emits for varied English-looking text maps into the inventory, none reported."""
    rng = random.Random(0)
    onsets = "b c d f g h j k l m n p qu r s t v w x z ch sh th ph gh wh kn wr sc str spl".split()
    vowels = "a e i o u y ai ea ee oo ou ie ei au aw ow oy ar er ir or ur eau ue".split()
    words = ["".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(1, 4))).capitalize()
             for _ in range(3000)]
    words += list("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + ["0 1 2 3 4 5 6 7 8 9 10 11 12 13 20 100 1000 1999", "3.14",
              "Dvořák Zürich naïve café résumé Ñandú Straße genre loch Bach croissant bottle button", "O'Brien",
              "McDonald's", "AT&T", "$5 100% #1 @home", "fire hour tower choir lawyer poor pure"]
    inv = set(ENGLISH_INVENTORY)
    for word, pron in zip(words, g2p.pronounce(words)):
        assert pron.problem is None, (word, pron.problem)
        assert set(pron.phonemes) <= inv, (word, set(pron.phonemes) - inv)
        assert "<blank>" not in pron.phonemes


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("   \u200b ", "empty"),
        ("...", "no letters"),
        ("北京饭店", "CJK"),
        ("Pizza 🍕 Palace", "SLICE OF PIZZA"),
        ("Москва", "CYRILLIC"),
        ("x" * 250, "too long"),
    ],
)
def test_rejected_texts_have_reasons(g2p, text, reason):
    (pron,) = g2p.pronounce([text])
    assert pron.phonemes == ()
    assert reason in pron.problem
    assert g2p.phonemize([text]) == [[]]


def test_cache_and_batch(g2p):
    a = g2p.pronounce(["Kingsford Park", "Kingsford Park"])
    assert a[0] is a[1]  # the second came from the cache
    with pytest.raises(TypeError):
        g2p.pronounce("a single string")


def test_get_g2p():
    g = get_g2p("espeak-ng:en-us")
    assert g.name == "espeak-ng:en-us"
    with pytest.raises(HotwordError, match="unknown G2P"):
        get_g2p("pinyin:zh")
    with pytest.raises(HotwordError, match="no voice"):
        EspeakG2P("xx-notalanguage")


def test_missing_backend_names_the_extra(monkeypatch):
    monkeypatch.setattr(g2p_mod, "_ESPEAK_LIB", None)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'nim4asr-edge\[g2p\]'"):
        EspeakG2P()
