"""The offline Qwen tokenizer: the tokenizer.json built from llama.cpp's qwen2 vocabulary reproduces llama.cpp's own
test tokenisations, and a GGUF written with it tokenises in llama.cpp exactly as the Hugging Face tokenizer does."""

from __future__ import annotations

import unicodedata

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from nim4asr_edge.errors import ExportError  # noqa: E402
from nim4asr_edge.llm import LLMOptions, LLMSession  # noqa: E402
from nim4asr_export.config import tiny_config  # noqa: E402
from nim4asr_export.gguf_export import write_llm_gguf  # noqa: E402
from nim4asr_export.qwen_tokenizer import QWEN3_ADDED_TOKENS, qwen_tokenizer_json  # noqa: E402

from .test_tokenizer_parity import CASES  # noqa: E402

QWEN_VOCAB = 151936  # the embedding rows of every Qwen3 model (added tokens and padding after the BPE pieces)


@pytest.fixture(scope="module")
def hf(qwen_tokenizer_json):
    return tokenizers.Tokenizer.from_file(str(qwen_tokenizer_json))


@pytest.fixture(scope="module")
def llama(qwen_tokenizer_json, tmp_path_factory):
    cfg = dict(tiny_config(QWEN_VOCAB).llm, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
               num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    torch.manual_seed(0)
    model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**cfg))
    path = write_llm_gguf(model.state_dict(), cfg, qwen_tokenizer_json,
                          tmp_path_factory.mktemp("qwen-gguf") / "llm.f32.gguf", "f32")
    with LLMSession(path, LLMOptions(n_threads=1, n_ctx=256)) as sess:
        yield sess


def test_llama_cpp_reference_tokenisations(hf, qwen_vocab_gguf):
    """llama.cpp's test cases for this vocabulary (``ggml-vocab-qwen2.gguf.inp`` / ``.out``)."""
    inp = qwen_vocab_gguf.with_name(qwen_vocab_gguf.name + ".inp").read_text(encoding="utf-8")
    out = qwen_vocab_gguf.with_name(qwen_vocab_gguf.name + ".out").read_text(encoding="utf-8")
    cases = inp.split("\n__ggml_vocab_test__\n")
    expected = [[int(t) for t in line.split()] for line in out.split("\n")[: len(cases)]]
    assert len(cases) >= 40
    assert [hf.encode(c, add_special_tokens=False).ids for c in cases] == expected


@pytest.mark.parametrize("text", CASES + ["语音识别 NIO House 蔚来 ÄÖÜ ß 🎉", "<|im_start|>user\n<think>x</think>"])
def test_gguf_tokenises_like_the_hugging_face_tokenizer(hf, llama, text):
    # The release's tokenizer normalises to NFC and llama.cpp does not: equal on NFC text, different on decomposed
    # input, so a Qwen family's prompt must hand llama.cpp NFC text.
    nfc = unicodedata.normalize("NFC", text)
    assert llama.tokenize(nfc) == hf.encode(nfc, add_special_tokens=False).ids
    ids = hf.encode(nfc, add_special_tokens=False).ids
    assert llama.detokenize(ids, special=True) == hf.decode(ids, skip_special_tokens=False)


def test_added_tokens(hf, llama):
    # llama.cpp makes the fill-in-the-middle tokens control tokens whatever the file says (hidden in text, where the
    # Hugging Face decoder shows them); no speech model emits them
    fim = {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"}
    for i, (content, special) in QWEN3_ADDED_TOKENS.items():
        assert hf.token_to_id(content) == i == llama.token_id(content)
        assert (llama.token_bytes(i) == b"") == (special or content in fim)  # control tokens are hidden
    assert llama.eos_id == 151645 and llama.n_vocab == QWEN_VOCAB


def test_extra_added_tokens(qwen_vocab_gguf, tmp_path):
    path = qwen_tokenizer_json(qwen_vocab_gguf, tmp_path, {151669: ("<|audio_start|>", True),
                                                           151670: ("<asr_text>", False)})
    tok = tokenizers.Tokenizer.from_file(str(path))
    assert tok.encode("language English<asr_text>hi<|audio_start|>").ids[-3:] == [151670, 6023, 151669]
    assert tok.decode([151670, 151669], skip_special_tokens=True) == "<asr_text>"
    with pytest.raises(ExportError, match="no gaps.*151669"):
        qwen_tokenizer_json(qwen_vocab_gguf, tmp_path, {151704: ("<asr_text>", False)})


def test_qwen_family_prompts_hand_llama_cpp_nfc_text():
    from nim4asr_edge.families.fun_asr_nano import NanoPrompt
    from nim4asr_edge.families.qwen3_asr import Qwen3AsrPrompt

    for prompt in (NanoPrompt(), Qwen3AsrPrompt()):
        assert prompt.render(["Zoe\u0308 Ca\u0301ceres"]) == prompt.render(["Zoë Cáceres"])
