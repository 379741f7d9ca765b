"""The evidence guard: text must agree with the phoneme-CTC evidence (real eSpeak NG G2P)."""

import pytest

from nim4asr_edge.guard import EvidenceGuard, GuardOptions
from nim4asr_edge.phonemes import edit_distance

pytest.importorskip("espeakng_loader", reason="needs the g2p extra")

from nim4asr_edge.hotwords import get_g2p  # noqa: E402


@pytest.fixture(scope="module")
def guard():
    return EvidenceGuard(get_g2p("espeak-ng:en-us"), GuardOptions(max_phoneme_error=0.5))


def _noisy(symbols, every):
    """Substitute every n-th symbol: a CTC hypothesis with errors."""
    return [("ə" if i % every == 0 and s != "|" else s) for i, s in enumerate(symbols)]


def test_supported_text_is_accepted(guard):
    heard = _noisy(guard.g2p.phonemize(["ask not what your country can do for you"])[0], 6)
    ev = guard.check("Ask not what your country can do for you.", heard)
    assert ev.accepted and 0.7 < ev.confidence < 1.0


def test_fluent_fiction_is_rejected(guard):
    heard = guard.g2p.phonemize(["ask not what your country can do for you"])[0]
    ev = guard.check("The restaurant is very interesting.", heard)
    assert not ev.accepted and ev.phoneme_error > 0.5


def test_text_without_evidence_is_rejected(guard):
    assert not guard.check("hello there", []).accepted
    assert guard.check("", []).accepted  # nothing said, nothing to withhold


def test_edit_distance():
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert edit_distance([], list("abc")) == 3
    assert edit_distance(["tʃ", "iː"], ["tʃ", "iː"]) == 0


def test_guard_withholds_in_the_recognizer(tiny_bundle, jfk):
    """The tiny model's text is random: with a guard, it is withheld, flagged and kept for inspection."""
    from nim4asr_edge.recognizer import Recognizer, RecognizerOptions

    opts = RecognizerOptions(guard=GuardOptions(max_phoneme_error=0.5), max_tokens_per_second=3.0)
    with Recognizer(tiny_bundle, opts) as rec:
        result = rec.transcribe(jfk[: 16000 * 3], sample_rate=16000)
    (seg,) = result.segments
    assert seg.withheld and seg.text == "" and result.text == ""
    assert result.confidence is not None and result.confidence < 0.5
    assert result.unguarded_text == seg.withheld  # kept for inspection


def test_plain_hotword_list_reports_skips_and_cleans_up(tiny_bundle, caplog):
    import logging

    from nim4asr_edge.recognizer import Recognizer

    with caplog.at_level(logging.WARNING, logger="nim4asr_edge.recognizer"):
        rec = Recognizer(tiny_bundle, hotwords=["Ada Lovelace", "北京", "Ada Lovelace"])
    index = rec.hotwords
    assert index.stats()["entries"] == 1
    assert "北京" in caplog.text  # skipped entries are reported, never silently lost
    tmp = index.directory
    rec.close()
    assert not tmp.exists()  # the recognizer's temporary index is removed with it


def test_hotword_list_file_is_parsed_like_the_cli_build(tiny_bundle, tmp_path):
    """A Path to a txt list: weights and comments are parsed, not taken as part of the hotword."""
    from pathlib import Path

    from nim4asr_edge.recognizer import Recognizer

    names = Path(tmp_path / "names.txt")
    names.write_text("# team\nAda Lovelace\t2\n\nGrace Hopper\n", encoding="utf-8")
    with Recognizer(tiny_bundle, hotwords=names) as rec:
        assert {(e.text, e.weight) for e in rec.hotwords.list()} == {("Ada Lovelace", 2.0), ("Grace Hopper", 1.0)}
