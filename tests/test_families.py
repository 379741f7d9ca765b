"""Model families: a family defined only here (another frontend, a 10 Hz encoder without a phoneme head, hints in the
system message before the speech, a forced-language form, a tagged answer, first-pass evidence) runs offline and
streaming through the same engine as NIM4, without any change to the engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="building the test family's encoder graph needs the `export` extra (onnx)")
pytest.importorskip("espeakng_loader", reason="the test family's evidence is the G2P of its first pass (g2p extra)")

from nim4asr_edge import OptionsError, Recognizer, RecognizerOptions  # noqa: E402
from nim4asr_edge.engine import merge_hints  # noqa: E402
from nim4asr_edge.errors import BundleError  # noqa: E402
from nim4asr_edge.evidence import EvidenceSource, HypothesisEvidence  # noqa: E402
from nim4asr_edge.families import ModelFamily, Transcript, get_family, register_family  # noqa: E402
from nim4asr_edge.guard import GuardOptions  # noqa: E402
from nim4asr_edge.hotwords import ENGLISH_INVENTORY  # noqa: E402
from nim4asr_edge.manifest import FileEntry, Manifest  # noqa: E402
from nim4asr_edge.models import HERE as SHIPPED  # noqa: E402
from nim4asr_edge.prompt import PromptParts, PromptTemplate, check_language  # noqa: E402

from .conftest import checked_final, first_pass_phonemes, offline_segment_of, run_stream  # noqa: E402

STACK = 10  # feature frames (10 ms) per audio token: 10 tokens/s, where NIM4 has 6.25
N_MELS = 80
HIDDEN = 64  # the shipped tiny LLM's width


class TaggedPrompt:
    """Qwen3-ASR-like: hints in the system message (before the speech), the forced language opens the answer."""

    stop = ("<|im_end|>",)
    languages = ("English", "German")

    def render(self, hints=(), language=None) -> PromptParts:
        check_language(self, language)
        context = "Context: " + "; ".join(hints) if hints else ""
        answer = f"language {language}<asr_text>" if language else ""
        return PromptParts(f"<|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\naudio:",
                           f"<|im_end|>\n<|im_start|>assistant\n{answer}")


class TaggedFamily(ModelFamily):
    name = "test-tagged"

    def prompt(self, manifest) -> TaggedPrompt:
        return TaggedPrompt()

    def parse_output(self, text: str, language: str | None = None) -> Transcript:
        head, sep, rest = text.partition("<asr_text>")
        if not sep:
            return Transcript(text.strip(), language)
        return Transcript(rest.strip(), language or head.removeprefix("language").strip() or None)

    def evidence(self, manifest, g2p) -> EvidenceSource:
        return HypothesisEvidence(g2p())


FAMILY = register_family(TaggedFamily(), replace=True)


def _encoder_graph(path: Path, seed: int = 0) -> None:
    """features [B, T, 80] -> zero-pad T to a multiple of 10, stack 10 frames, tanh(x W): 10 tokens/s."""
    from onnx import TensorProto, helper, numpy_helper

    w = (np.random.default_rng(seed).standard_normal((STACK * N_MELS, HIDDEN)) * 0.05).astype(np.float32)

    def const(name, values):
        return numpy_helper.from_array(np.asarray(values, np.int64), name)

    nodes = [
        helper.make_node("Shape", ["features"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["frames"]),
        helper.make_node("Mod", ["frames", "stack"], ["rest"]),
        helper.make_node("Sub", ["stack", "rest"], ["short"]),
        helper.make_node("Mod", ["short", "stack"], ["pad"]),
        helper.make_node("Concat", ["zeros4", "pad", "zero1"], ["pads"], axis=0),
        helper.make_node("Pad", ["features", "pads"], ["padded"]),
        helper.make_node("Reshape", ["padded", "stacked_shape"], ["stacked"]),
        helper.make_node("MatMul", ["stacked", "w"], ["hidden"]),
        helper.make_node("Tanh", ["hidden"], ["audio_embeds"]),
        helper.make_node("Add", ["feature_lengths", "stack_minus_one"], ["rounded"]),
        helper.make_node("Div", ["rounded", "stack"], ["audio_embed_lengths"]),
    ]
    inits = [const("one", [1]), const("stack", [STACK]), const("zeros4", [0, 0, 0, 0]), const("zero1", [0]),
             const("stacked_shape", [0, -1, STACK * N_MELS]), const("stack_minus_one", [STACK - 1]),
             numpy_helper.from_array(w, "w")]
    graph = helper.make_graph(
        nodes, "tagged-encoder",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", "frames", N_MELS]),
         helper.make_tensor_value_info("feature_lengths", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("audio_embeds", TensorProto.FLOAT, ["batch", "tokens", HIDDEN]),
         helper.make_tensor_value_info("audio_embed_lengths", TensorProto.INT64, ["batch"])],
        inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture(scope="module")
def tagged_bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tagged") / "bundle"
    out.mkdir()
    _encoder_graph(out / "encoder.onnx")
    shutil.copy(SHIPPED / "tiny-random" / "llm.f32.gguf", out / "llm.f32.gguf")
    manifest = Manifest(
        name="tagged-test", family=FAMILY.name,
        frontend={"type": "whisper_logmel", "sample_rate": 16000, "num_mel_bins": N_MELS},
        encoder={"files": {"fp32": "encoder.onnx"}, "default": "fp32", "token_rate_hz": 10.0, "llm_hidden": HIDDEN,
                 "streaming": None},
        phonemes={"inventory": list(ENGLISH_INVENTORY), "blank": 0, "g2p": "espeak-ng:en-us"},
        llm={"files": {"f32": "llm.f32.gguf"}, "default": "f32", "n_embd": HIDDEN},
        prompt=PromptTemplate(prefix="", suffix="{context}"),  # unused by this family: its prompt is code
        files={name: FileEntry.of(out / name) for name in ("encoder.onnx", "llm.f32.gguf")},
    )
    manifest.write(out)
    return out


OPTS = RecognizerOptions(threads=1, max_tokens_per_second=3.0, min_new_tokens=6, tune_decode_threads=False)


@pytest.fixture(scope="module")
def rec(tagged_bundle):
    with Recognizer(tagged_bundle, OPTS) as r:
        yield r


def test_the_family_runs_offline_through_the_engine(rec, jfk):
    engine = rec.engine
    assert engine.family is FAMILY and engine.streaming_mode == "windowed" and engine.streaming_encoder is None
    clip = jfk[: 3 * 16000]
    out = engine.encode(clip)
    assert out.phoneme_logprobs is None
    assert len(out.audio_embeds) == -(-(len(clip) // 160) // STACK)  # 10 tokens per second of audio
    result = rec.transcribe(clip, sample_rate=16000)
    (seg,) = result.segments
    assert seg.passes == 1 and seg.hints == ()
    assert seg.confidence is None and seg.withheld == ""  # no acoustic evidence: nothing to guard with
    assert result.options["family"] == "test-tagged" and result.options["guard_status"] == "no acoustic evidence"
    assert seg.phonemes == HypothesisEvidence(rec.bundle.g2p()).from_text(seg.text).text()
    assert len(seg.tokens) <= OPTS.min_new_tokens + 3 * OPTS.max_tokens_per_second


def test_hints_before_the_speech_decode_as_a_fresh_prompt(rec, jfk):
    """The decoder keeps what the prompts share cached and re-evaluates the speech after a changed system message:
    the tokens equal one fresh generate() over the whole prompt."""
    engine = rec.engine
    embeds = engine.encode(jfk[: 2 * 16000]).audio_embeds
    decoder = engine.new_decoder()
    try:
        decoder.set_speech(embeds)
        plain = decoder.decode([], 8)
        hinted = decoder.decode(["Ada Lovelace", "NIO House"], 8)
        again = decoder.decode([], 8)
        assert again.tokens == plain.tokens
        llm = decoder.llm
        for hints, got in (((), plain), (("Ada Lovelace", "NIO House"), hinted)):
            parts = TaggedPrompt().render(hints)
            ref = llm.generate(llm.tokenize(parts.before), embeds, llm.tokenize(parts.after), max_new_tokens=8,
                               stop_ids=decoder.stop_ids)
            assert tuple(ref.tokens) == got.tokens
    finally:
        decoder.llm.close()


def test_a_tentative_tail_of_the_speech_decodes_as_a_fresh_prompt(rec, jfk):
    """Streaming by encoder blocks: committed speech, a tail the next partial replaces, hints before the speech that
    change between partials; every decode equals one fresh generate() over the whole prompt."""
    engine = rec.engine
    embeds = engine.encode(jfk[: 3 * 16000]).audio_embeds
    a, b, c, d = embeds[:10], embeds[10:16], embeds[10:20], embeds[20:]
    decoder = engine.new_decoder()
    llm = decoder.llm

    def fresh(hints, speech):
        parts = TaggedPrompt().render(hints)
        return tuple(llm.generate(llm.tokenize(parts.before), speech, llm.tokenize(parts.after), max_new_tokens=8,
                                  stop_ids=decoder.stop_ids).tokens)

    try:
        decoder.append_speech(a)
        decoder.set_tail(b)
        assert decoder.n_speech == 16
        got = decoder.decode(["Ada Lovelace"], 8).tokens  # the hints re-evaluate the committed speech and the tail
        assert got == fresh(["Ada Lovelace"], np.concatenate([a, b]))
        decoder.set_tail(c)  # replaces b
        assert decoder.n_speech == 20
        assert decoder.decode([], 8).tokens == fresh([], np.concatenate([a, c]))
        decoder.append_speech(np.concatenate([c, d]))  # commits, dropping the tail
        decoder.set_tail(embeds[:0])
        assert decoder.n_speech == len(embeds)
        assert decoder.decode([], 8).tokens == fresh([], embeds)
    finally:
        llm.close()


def test_forced_language_and_the_answer_parser(tagged_bundle, jfk):
    assert FAMILY.parse_output("language German<asr_text> Hallo Welt ") == Transcript("Hallo Welt", "German")
    assert FAMILY.parse_output("no tag here") == Transcript("no tag here", None)
    with Recognizer(tagged_bundle, RecognizerOptions(threads=1, language="German", min_new_tokens=4,
                                                     tune_decode_threads=False)) as rec:
        assert rec.engine.decoder.prompt.render((), "German").after.endswith("language German<asr_text>")
        result = rec.transcribe(jfk[:16000], sample_rate=16000)
    assert result.language == "German" == result.segments[0].language
    with pytest.raises(OptionsError, match="unknown forced language 'Klingon'.*English, German"):
        Recognizer(tagged_bundle, RecognizerOptions(language="Klingon"))
    with pytest.raises(OptionsError, match="cannot force a language"):
        Recognizer(SHIPPED / "tiny-random", RecognizerOptions(language="English"))


def test_first_pass_hotwords_bring_a_second_pass(tagged_bundle, rec, jfk, one_word_index):
    """No phoneme head: the first pass's transcript (through the G2P) is searched, and a hotword found there is
    decoded again as a hint. The random model's words are made into the hotword."""
    clip = jfk[: 3 * 16000]
    heard, first_text = first_pass_phonemes(rec, clip)
    assert len(heard) >= 3, f"unusable first pass for this check: {first_text!r}"

    with one_word_index(heard, ENGLISH_INVENTORY) as index:
        with Recognizer(tagged_bundle, OPTS, hotwords=index) as hot:
            seg = hot.transcribe(clip, sample_rate=16000).segments[0]
            assert seg.passes == 2 and seg.hints == ("Zorblax",)
            assert hot.transcribe(clip, sample_rate=16000, hints=["Zorblax"]).segments[0].passes == 1  # no new hint
            events = run_stream(hot, clip)
    assert [e.kind for e in events].count("final") >= 1



def test_the_family_streams_through_the_engine(rec, jfk):
    events = run_stream(rec, jfk)
    final = checked_final(events)
    offline = offline_segment_of(rec, jfk, final)
    assert (final.text, final.tokens, final.confidence, final.withheld, final.passes) == (
        offline.text, offline.tokens, offline.confidence, offline.withheld, offline.passes)


def test_a_guard_needs_acoustic_evidence(tagged_bundle):
    with pytest.raises(OptionsError, match="no.*acoustic evidence|has none"):
        Recognizer(tagged_bundle, RecognizerOptions(guard=GuardOptions()))


def test_unknown_family_and_registry(tagged_bundle, tmp_path):
    assert get_family("nim4").name == "nim4"
    with pytest.raises(ValueError, match="already registered"):
        register_family(TaggedFamily())
    copy = tmp_path / "b"
    shutil.copytree(tagged_bundle, copy)
    text = (copy / "manifest.json").read_text().replace('"family": "test-tagged"', '"family": "martian"')
    (copy / "manifest.json").write_text(text)
    with pytest.raises(BundleError, match="model family 'martian' is unknown"):
        Recognizer(copy)


def test_one_hint_rule():
    assert merge_hints(["Ada", "nio house"], ["ADA", "NIO House", "Grace"]) == ["Ada", "nio house", "Grace"]
