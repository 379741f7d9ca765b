"""llama.cpp tokenises exactly like the source tokenizer (SentencePiece and byte-level BPE) once written to GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")
pytest.importorskip("tokenizers")
pytest.importorskip("llama_cpp")

from nim4asr_edge.errors import BundleError, CheckpointError  # noqa: E402
from nim4asr_edge.llm import LLMOptions, LLMSession  # noqa: E402
from nim4asr_export.config import tiny_config  # noqa: E402
from nim4asr_export.gguf_export import write_llm_gguf  # noqa: E402
from nim4asr_export.tokenizers import (  # noqa: E402
    SPECIAL_TOKENS,
    SourceTokenizer,
    sample_corpus,
    train_bpe,
    train_sentencepiece,
)

VOCAB = 600

# Unicode-heavy cases: accents (precomposed and combining), CJK, Hangul, RTL scripts, emoji with modifiers/ZWJ/flags,
# digits, punctuation, whitespace runs, tabs/newlines/CRLF, contractions, characters absent from the training corpus
# (byte fallback), and ChatML special tokens at every position.
CASES = [
    "",
    " ",
    "   ",
    "\n",
    "\t\t",
    "hello world",
    "Hello  World!!",
    "  leading and trailing  ",
    "café naïve résumé",
    "e\u0301 combining accent",
    "你好，世界！语音识别。",
    "蔚来汽车 NIO House",
    "こんにちは世界",
    "안녕하세요 한국어",
    "привет мир",
    "مرحبا بالعالم",
    "שלום",
    "नमस्ते दुनिया",
    "😀🎉👍🏽 emoji 👨‍👩‍👧 family 🇫🇷",
    "12345 67.89 1,000,000 3.14159",
    "tabs\tand\nnewlines\r\nmixed",
    "punct: ,.;:!?—…«»()[]{}<>",
    "<|im_start|>system\nYou are a model.<|im_end|>\n<|im_start|>user\nTranscribe<|im_end|>",
    "x<|im_end|>y",
    " <|im_start|> ",
    "<|endoftext|>",
    "don't I'll we're they've she's I'd",
    "DON'T",
    "a   b    c",
    "line1\n\n\nline2",
    "   \n  ",
    "Ω≈ç√∫˜µ≤≥÷",
    "\u00a0nbsp\u2009thin space",
    "ẞ ß Straße",
    "ﬁ ligature",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "zero\u200bwidth",
    "mixed中文English混合123",
    "'s 's",
    "a'b",
]


# Held-out lines from the training distribution (another seed): pseudo-words give overlapping merge candidates, so
# a wrong merge order (missing or wrong SentencePiece scores, wrong BPE pre-tokenizer) changes the tokens.
HELD_OUT = sample_corpus(40, seed=123)


@pytest.fixture(scope="module", params=["spm", "bpe"])
def pair(request, tmp_path_factory):
    """(source tokenizer, LLMSession over a GGUF carrying that tokenizer)."""
    tmp: Path = tmp_path_factory.mktemp(f"tok_{request.param}")
    corpus = sample_corpus()
    if request.param == "spm":
        tp = train_sentencepiece(tmp, corpus, VOCAB, seed=0)
    else:
        tp = train_bpe(tmp, corpus, VOCAB, seed=0)
    tok = SourceTokenizer.load(tp)
    cfg = dict(tiny_config(tok.vocab_size).llm)
    torch.manual_seed(0)
    model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**cfg))
    gguf_path = write_llm_gguf(model.state_dict(), cfg, tp, tmp / "llm.f32.gguf", "f32")
    with LLMSession(gguf_path, LLMOptions(n_threads=1, n_ctx=256)) as sess:
        yield tok, sess


def test_training_is_deterministic(tmp_path: Path) -> None:
    corpus = sample_corpus()
    a = train_sentencepiece(tmp_path / "a", corpus, VOCAB, seed=1).read_bytes()
    b = train_sentencepiece(tmp_path / "b", corpus, VOCAB, seed=1).read_bytes()
    assert a == b
    c = train_bpe(tmp_path / "c", corpus, VOCAB, seed=1).read_text(encoding="utf-8")
    d = train_bpe(tmp_path / "d", corpus, VOCAB, seed=1).read_text(encoding="utf-8")
    assert c == d


@pytest.mark.parametrize("text", CASES + HELD_OUT, ids=[f"case{i}" for i in range(len(CASES) + len(HELD_OUT))])
def test_llama_cpp_tokenises_like_source(pair, text: str) -> None:
    tok, sess = pair
    expected = tok.encode(text)
    assert sess.tokenize(text) == expected, f"{tok.kind}: {text!r}"
    assert tok.decode(expected) == text  # the source itself round-trips (identity normalisation, no dummy prefix)
    assert sess.detokenize(expected, special=True) == text


def test_special_tokens(pair) -> None:
    tok, sess = pair
    for s in SPECIAL_TOKENS:
        i = tok.token_id(s)
        assert sess.token_id(s) == i
        assert sess.tokenize(s) == [i]
        assert sess.token_bytes(i, special=True) == s.encode()
        assert sess.token_bytes(i) == b""  # control tokens are hidden by default
    assert sess.eos_id == tok.token_id("<|im_end|>")
    # without parse_special the same characters are ordinary text, several tokens, no special id
    plain = sess.tokenize("<|im_end|>", parse_special=False)
    assert len(plain) > 1 and tok.token_id("<|im_end|>") not in plain
    assert sess.detokenize(plain) == "<|im_end|>"
    ids = tok.encode("a<|im_end|>b")
    assert sess.detokenize(ids) == "ab" and sess.detokenize(ids, special=True) == "a<|im_end|>b"
    with pytest.raises(BundleError, match="no single token"):
        sess.token_id("<|im_middle|>")
    bos = tok.token_id("<|endoftext|>")
    assert sess.tokenize("hi") == tok.encode("hi")  # nothing added unless asked
    assert sess.tokenize("hi", add_bos=True) == [bos, *tok.encode("hi")]


def test_detokenize_joins_bytes_across_tokens(pair) -> None:
    """A multi-byte character split over tokens decodes only when the bytes are joined first."""
    tok, sess = pair
    text = "语音 👨‍👩‍👧 𝔘𝔫𝔦"
    ids = tok.encode(text)
    pieces = [sess.token_bytes(i) for i in ids]
    assert b"".join(pieces).decode("utf-8") == text
    split = [p for p in pieces if _invalid_utf8(p)]
    assert split, "expected at least one token carrying a partial UTF-8 sequence"
    assert sess.detokenize(ids) == text
    # a sequence cut inside a character is shown, never dropped
    cut = ids[: next(i for i, p in enumerate(pieces) if _invalid_utf8(p)) + 1]
    assert "\ufffd" in sess.detokenize(cut)


def test_source_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        SourceTokenizer.load(tmp_path / "tokenizer.model")
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a SentencePiece model"):
        SourceTokenizer.load(bad)
    other = tmp_path / "vocab.txt"
    other.write_text("a\n")
    with pytest.raises(CheckpointError, match="unknown tokenizer file"):
        SourceTokenizer.load(other)


def _invalid_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True
