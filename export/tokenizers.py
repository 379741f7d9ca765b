"""Tokenizers for the LLM: training tiny ones for tests, and loading the checkpoint's tokenizer file.

Two kinds are supported, both written so that llama.cpp tokenises exactly like the source library:

* SentencePiece (``tokenizer.model``), BPE model type, identity normalisation, no extra-whitespace removal,
  no dummy prefix, byte fallback, special tokens as user-defined symbols (GGUF tokenizer model ``llama``,
  ``add_space_prefix = false``).
* Hugging Face byte-level BPE (``tokenizer.json``) with the Qwen2 pre-tokenizer regex and no normaliser
  (GGUF tokenizer model ``gpt2``, pre-tokenizer ``qwen2``).
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nim4asr_edge.errors import CheckpointError, require

__all__ = [
    "SPECIAL_TOKENS",
    "QWEN2_PRETOKENIZER_REGEX",
    "SourceTokenizer",
    "sample_corpus",
    "train_bpe",
    "train_sentencepiece",
]

# ChatML special tokens; "<|im_end|>" is the end-of-turn / EOS token of the prompt.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# The Qwen2 pre-tokenizer (tokenizer.json of Qwen2/Qwen3); llama.cpp implements the same split as pre "qwen2".
QWEN2_PRETOKENIZER_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

TokenizerKind = Literal["sentencepiece", "bpe"]


def _require(module: str) -> Any:
    return require(module, "export")


# Word lists for a deterministic, unicode-heavy training corpus (accents, CJK, emoji, digits, punctuation).
_WORDS = (
    "the quick brown fox jumps over lazy dog speech recognition model hello world transcribe audio "
    "café naïve résumé façade jalapeño über straße smörgåsbord crème brûlée déjà vu "
    "привет мир γειά σου κόσμε مرحبا שלום नमस्ते "
    "你好 世界 语音 识别 模型 北京 上海 蔚来 汽车 こんにちは 世界 カタカナ 한국어 안녕하세요"
).split()
_SYLLABLES = (
    "ka ri to na mi su re lo ba de fi gu ho ja ke li mo nu pa qu sa ti vo wa xe yo zu an en in on un er or ar"
).split()
_EMOJI = ["😀", "🎉", "👍🏽", "🚗", "❤️", "🇫🇷", "👨‍👩‍👧"]
_PUNCT = [",", ".", "!", "?", ";", ":", "-", "—", "…", "(", ")", "\"", "'", "«", "»", "、", "。", "！"]


def sample_corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    """A deterministic unicode-heavy corpus for training tiny test tokenizers (no file I/O)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        parts: list[str] = []
        for _ in range(rng.randint(3, 14)):
            r = rng.random()
            if r < 0.45:
                w = rng.choice(_WORDS)
                parts.append(w.capitalize() if rng.random() < 0.15 else w)
            elif r < 0.7:  # pseudo-words: overlapping subword candidates make merge order (scores) matter
                parts.append("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
            elif r < 0.8:
                parts.append(str(rng.randint(0, 99999)))
            elif r < 0.9:
                parts.append(rng.choice(_EMOJI))
            else:
                parts.append(rng.choice(_PUNCT))
        sep = rng.choice([" ", " ", " ", "  ", "\t"])
        lines.append(sep.join(parts))
    return lines


def _shuffled(corpus: list[str], seed: int) -> list[str]:
    if not corpus or not all(isinstance(line, str) for line in corpus):
        raise ValueError("corpus must be a non-empty list of str")
    lines = list(corpus)
    random.Random(seed).shuffle(lines)
    return lines


def train_sentencepiece(out_dir: str | Path, corpus: list[str], vocab_size: int, seed: int) -> Path:
    """Train a SentencePiece BPE model that llama.cpp tokenises identically; returns ``out_dir/tokenizer.model``.

    ``seed`` seeds SentencePiece's random generator and the corpus order.
    """
    spm = _require("sentencepiece")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spm.set_random_generator_seed(seed)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_shuffled(corpus, seed)),
        model_writer=buf,
        model_type="bpe",  # llama.cpp's "llama" tokenizer is score-ordered pair merging, i.e. SentencePiece BPE
        vocab_size=vocab_size,
        character_coverage=1.0,
        normalization_rule_name="identity",  # llama.cpp does no NFKC
        remove_extra_whitespaces=False,  # llama.cpp keeps whitespace runs
        add_dummy_prefix=False,  # written as add_space_prefix = false in the GGUF
        split_digits=True,
        byte_fallback=True,  # unknown characters become <0xXX> pieces, as in llama.cpp
        user_defined_symbols=list(SPECIAL_TOKENS),
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    path = out / "tokenizer.model"
    path.write_bytes(buf.getvalue())
    return path


def train_bpe(out_dir: str | Path, corpus: list[str], vocab_size: int, seed: int) -> Path:
    """Train a byte-level BPE ``tokenizer.json`` with the Qwen2 pre-tokenizer; returns its path.

    ``seed`` fixes the corpus order (the BPE trainer itself is deterministic).
    """
    tk = _require("tokenizers")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = tk.Tokenizer(tk.models.BPE())
    tok.normalizer = None  # llama.cpp's qwen2 pre-tokenizer applies no NFC; neither may we
    tok.pre_tokenizer = tk.pre_tokenizers.Sequence(
        [
            tk.pre_tokenizers.Split(tk.Regex(QWEN2_PRETOKENIZER_REGEX), behavior="isolated", invert=False),
            tk.pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_shuffled(corpus, seed), trainer=trainer)
    path = out / "tokenizer.json"
    tok.save(str(path))
    return path


@dataclass(frozen=True)
class VocabEntry:
    """One token of a tokenizer vocabulary, as GGUF stores it."""

    text: str  # the piece as the source library spells it (SentencePiece "▁", byte-level "Ġ" ...)
    score: float  # SentencePiece score (merge priority); 0.0 for byte-level BPE
    kind: Literal["normal", "unknown", "control", "user_defined", "unused", "byte"]


class SourceTokenizer:
    """The checkpoint's tokenizer, loaded with its own library: the reference llama.cpp must match."""

    def __init__(self, kind: TokenizerKind, path: Path, impl: Any) -> None:
        self.kind: TokenizerKind = kind
        self.path = path
        self._impl = impl

    @classmethod
    def load(cls, path: str | Path) -> "SourceTokenizer":
        """Load ``tokenizer.model`` (SentencePiece) or ``tokenizer.json`` (HF byte-level BPE)."""
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"tokenizer file {p} not found (a checkpoint needs tokenizer.model or .json)")
        if p.suffix == ".model":
            spm = _require("sentencepiece")
            sp = spm.SentencePieceProcessor()
            try:
                sp.LoadFromSerializedProto(p.read_bytes())
            except Exception as exc:  # sentencepiece raises RuntimeError/OSError variants
                raise CheckpointError(f"{p} is not a SentencePiece model: {exc}") from exc
            return cls("sentencepiece", p, sp)
        if p.suffix == ".json":
            tk = _require("tokenizers")
            try:
                tok = tk.Tokenizer.from_file(str(p))
            except Exception as exc:
                raise CheckpointError(f"{p} is not a Hugging Face tokenizer.json: {exc}") from exc
            model_type = json.loads(p.read_text(encoding="utf-8"))["model"]["type"]
            if model_type != "BPE":
                raise CheckpointError(f"{p}: tokenizer model {model_type!r} is not supported (byte-level BPE only)")
            return cls("bpe", p, tok)
        raise CheckpointError(f"{p}: unknown tokenizer file (expected tokenizer.model or tokenizer.json)")

    @property
    def vocab_size(self) -> int:
        if self.kind == "sentencepiece":
            return int(self._impl.GetPieceSize())
        return int(self._impl.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special tokens written in the text are parsed; no BOS/EOS added."""
        if self.kind == "sentencepiece":
            return list(self._impl.EncodeAsIds(text))
        return list(self._impl.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``, special tokens rendered."""
        if self.kind == "sentencepiece":
            return str(self._impl.DecodeIds(list(ids)))
        return str(self._impl.decode(list(ids), skip_special_tokens=False))

    def token_id(self, piece: str) -> int:
        """Id of one vocabulary piece (e.g. a special token); ``KeyError`` if absent."""
        if self.kind == "sentencepiece":
            i = int(self._impl.PieceToId(piece))
            if self._impl.IdToPiece(i) != piece:
                raise KeyError(piece)
            return i
        i = self._impl.token_to_id(piece)
        if i is None:
            raise KeyError(piece)
        return int(i)

    def vocab(self) -> list[VocabEntry]:
        """Every token in id order, with score and kind (what the GGUF tokenizer metadata holds)."""
        if self.kind == "sentencepiece":
            pieces = _spm_proto(self._impl).pieces
            entries = []
            for piece in pieces:
                kind = _SPM_PIECE_KINDS.get(int(piece.type))
                if kind is None:
                    raise CheckpointError(f"{self.path}: piece {piece.piece!r} has unknown type {piece.type}")
                if piece.piece in SPECIAL_TOKENS:
                    kind = "control"  # parsed only with parse_special, hidden by default when detokenising
                entries.append(VocabEntry(piece.piece, float(piece.score), kind))  # type: ignore[arg-type]
            return entries
        tok = self._impl
        vocab = tok.get_vocab(with_added_tokens=True)
        by_id = {i: t for t, i in vocab.items()}
        if sorted(by_id) != list(range(len(by_id))):
            raise CheckpointError(f"{self.path}: token ids are not contiguous from 0")
        added = {a.content: a for a in tok.get_added_tokens_decoder().values()}
        entries = []
        for i in range(len(by_id)):
            text = by_id[i]
            a = added.get(text)
            kind = "normal" if a is None else ("control" if a.special else "user_defined")
            entries.append(VocabEntry(text, 0.0, kind))  # type: ignore[arg-type]
        return entries

    def merges(self) -> list[str]:
        """Byte-level BPE merges as ``"left right"`` strings, in rank order (BPE only)."""
        if self.kind != "bpe":
            raise ValueError("merges exist only for byte-level BPE tokenizers")
        model = json.loads(self.path.read_text(encoding="utf-8"))["model"]
        out = []
        for m in model.get("merges", []):
            pair = m.split(" ") if isinstance(m, str) else list(m)
            if len(pair) != 2 or any(" " in s for s in pair):
                raise CheckpointError(f"{self.path}: merge {m!r} cannot be written to GGUF (a side contains a space)")
            out.append(f"{pair[0]} {pair[1]}")
        return out


# SentencePiece ModelProto.SentencePiece.Type -> VocabEntry.kind
_SPM_PIECE_KINDS = {1: "normal", 2: "unknown", 3: "control", 4: "user_defined", 5: "unused", 6: "byte"}


def _spm_proto(sp: Any) -> Any:
    # Piece types (user-defined in particular) are only visible through the model proto.
    _require("google.protobuf")
    from sentencepiece import sentencepiece_model_pb2 as pb  # type: ignore[attr-defined]

    proto = pb.ModelProto()
    proto.ParseFromString(sp.serialized_model_proto())
    return proto
