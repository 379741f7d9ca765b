"""Fun-ASR-Nano (FunAudioLLM/Fun-ASR-Nano-2512): FunASR's LFR fbank (60 ms rows of 560 values), a SenseVoice SAN-M
encoder and a Transformer adaptor (one ONNX graph emitting the ``ceil(T_lfr / 8)`` embeddings the reference feeds
the LLM, ~2.1 tokens/s), Qwen3-0.6B with the reference's ChatML prompt (plain, with a hotword list, with a forced
language), plain-text answers with FunASR's post-processing. The release has no trained CTC weights, so the evidence
is the G2P of the first pass (hotwords found there bring a second pass with the model's own hotword prompt);
streaming re-encodes a bounded window (the encoder has no cache-carrying graph).

The prompt is reproduced from ``funasr/models/fun_asr_nano/model.py`` (funasr 1.4.16: ``get_prompt``,
``generate_chatml``, ``data_load_speech``); ``tests/test_fun_asr_nano_parity.py`` compares the token ids.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import BundleError
from ..evidence import EvidenceSource, HypothesisEvidence
from ..frontend import FRONTENDS
from ..lfr_fbank import FRONTEND_TYPE, build_lfr_fbank
from ..prompt import PromptParts, check_language
from .base import ModelFamily, Transcript

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = ["FunAsrNanoFamily", "NanoPrompt", "audio_token_count", "NANO_LANGUAGES", "MLT_NANO_LANGUAGES"]

FAMILY = "fun-asr-nano"
EXTRA_KEY = "fun_asr_nano"  # the manifest's ``extra`` section this family reads

FRONTENDS.setdefault(FRONTEND_TYPE, build_lfr_fbank)

# What the reference's ``language=`` takes (Fun-ASR README): the word goes into the prompt as given.
NANO_LANGUAGES = ("中文", "英文", "日文")
MLT_NANO_LANGUAGES = (
    "中文", "英文", "粤语", "日文", "韩文", "越南语", "印尼语", "泰语", "马来语", "菲律宾语", "阿拉伯语", "印地语",
    "保加利亚语", "克罗地亚语", "捷克语", "丹麦语", "荷兰语", "爱沙尼亚语", "芬兰语", "希腊语", "匈牙利语",
    "爱尔兰语", "拉脱维亚语", "立陶宛语", "马耳他语", "波兰语", "葡萄牙语", "罗马尼亚语", "斯洛伐克语",
    "斯洛文尼亚语", "瑞典语",
)  # fmt: skip
# English names accepted for the three Nano languages (RecognizerOptions(language="English") is less surprising)
_ALIASES = {"Chinese": "中文", "English": "英文", "Japanese": "日文"}

_HOTWORD_HEADER = ("请结合上下文信息，更加准确地完成语音转写任务。如果没有相关信息，我们会留空。\n\n\n"
                   "**上下文信息：**\n\n\n")


def audio_token_count(n_rows: int) -> int:
    """Adaptor frames the reference feeds the LLM for ``n_rows`` LFR rows (``data_load_speech`` with
    ``use_low_frame_rate``): two stride-2 "convolutions" (kernel 3, padding 1) and one more halving, i.e.
    ``ceil(n_rows / 8)``. Feeding all ``n_rows`` adaptor frames makes the LLM loop."""
    olens = 1 + (n_rows - 3 + 2 * 1) // 2
    olens = 1 + (olens - 3 + 2 * 1) // 2
    return (olens - 1) // 2 + 1


@dataclass(frozen=True)
class NanoPrompt:
    """The reference prompt: ``<|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{instruction}`` +
    speech + ``<|im_end|>\\n<|im_start|>assistant\\n`` (+ an empty think block when ``do_think`` is false)."""

    system: str = "You are a helpful assistant."
    languages: tuple[str, ...] = NANO_LANGUAGES  # forced-language words the model knows (+ English aliases)
    itn: bool = True  # False adds "，不进行文本规整" (no inverse text normalisation) to the instruction
    do_think: bool = True  # config.yaml dataset_conf.do_think (reference default True: no think block)
    sys_prompt: bool = True  # config.yaml dataset_conf.sys_prompt (False drops the system turn)
    stop: tuple[str, ...] = ("<|im_end|>",)  # the LLM config's eos token(s)

    def __post_init__(self) -> None:
        aliases = tuple(a for a, word in _ALIASES.items() if word in self.languages and a not in self.languages)
        object.__setattr__(self, "languages", tuple(self.languages) + aliases)

    def instruction(self, hints: Sequence[str] = (), language: str | None = None) -> str:
        """``FunASRNano.get_prompt``: the hotword list, then ``语音转写`` (``语音转写成{language}``) and ``：``."""
        # NFC: the release's tokenizer normalises its input and llama.cpp does not (tests/test_qwen_tokenizer.py)
        words = ", ".join(unicodedata.normalize("NFC", h) for h in hints)
        prompt = _HOTWORD_HEADER + f"热词列表：[{words}]\n" if hints else ""
        prompt += "语音转写" if language is None else f"语音转写成{_ALIASES.get(language, language)}"
        if not self.itn:
            prompt += "，不进行文本规整"
        return prompt + "："

    def render(self, hints: Sequence[str] = (), language: str | None = None) -> PromptParts:
        check_language(self, language)
        user = f"<|im_start|>user\n{self.instruction(hints, language)}"
        before = f"<|im_start|>system\n{self.system}<|im_end|>\n{user}" if self.sys_prompt else user
        after = "<|im_end|>\n<|im_start|>assistant\n" + ("" if self.do_think else "<think>\n\n</think>\n\n")
        return PromptParts(before, after)

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system, "languages": [x for x in self.languages if x not in _ALIASES],
                "itn": self.itn, "do_think": self.do_think, "sys_prompt": self.sys_prompt, "stop": list(self.stop)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NanoPrompt":
        try:
            return cls(system=str(data["system"]), languages=tuple(str(x) for x in data["languages"]),
                       itn=bool(data.get("itn", True)), do_think=bool(data.get("do_think", True)),
                       sys_prompt=bool(data.get("sys_prompt", True)), stop=tuple(str(s) for s in data["stop"]))
        except (KeyError, TypeError) as exc:
            raise BundleError(f"manifest extra.{EXTRA_KEY}.prompt is malformed: missing or invalid {exc}") from exc


_SPACES = re.compile(r"\s+")


class FunAsrNanoFamily(ModelFamily):
    name = FAMILY

    def _section(self, manifest: "Manifest") -> Mapping[str, Any]:
        section = manifest.extra.get(EXTRA_KEY)
        if not isinstance(section, Mapping):
            raise BundleError(f"a {FAMILY} bundle needs the manifest section extra.{EXTRA_KEY} (re-import it with "
                              "nim4asr-edge import fun-asr-nano)")
        return section

    def prompt(self, manifest: "Manifest") -> NanoPrompt:
        prompt = self._section(manifest).get("prompt")
        if not isinstance(prompt, Mapping):
            raise BundleError(f"manifest extra.{EXTRA_KEY} lacks the prompt section")
        return NanoPrompt.from_dict(prompt)

    def token_rate_hz(self, manifest: "Manifest") -> float:
        return float(manifest.encoder.get("token_rate_hz", 1000.0 / 480.0))  # one token per 8 rows of 60 ms

    def parse_output(self, text: str, language: str | None = None) -> Transcript:
        """FunASR's post-processing: ``/sil`` -> space, whitespace runs -> one space (and trimmed here)."""
        return Transcript(_SPACES.sub(" ", text.replace("/sil", " ")).strip(), language)

    def evidence(self, manifest: "Manifest", g2p: Callable[[], object]) -> EvidenceSource:
        return HypothesisEvidence(g2p())

    def streaming_mode(self, manifest: "Manifest") -> str:
        return "windowed"
