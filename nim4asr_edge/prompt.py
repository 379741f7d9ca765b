"""The prompt around the speech embeddings: bundle data, not code (see docs/FORMAT.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import BundleError

__all__ = ["PromptTemplate", "NIM4_PROMPT"]


@dataclass(frozen=True)
class PromptTemplate:
    prefix: str  # text before the speech embeddings (system turn and the start of the user turn)
    suffix: str  # text after the speech; "{context}" is replaced by the joined contextual hints
    context_separator: str = ", "  # joins hint texts inside {context}
    stop: tuple[str, ...] = ("<|im_end|>",)  # special tokens that end the transcript

    def render_suffix(self, hints: Sequence[str] = ()) -> str:
        """The suffix with the contextual hints filled in (empty when there are none)."""
        return self.suffix.replace("{context}", self.context_separator.join(hints))

    def to_dict(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "suffix": self.suffix, "context_separator": self.context_separator,
                "stop": list(self.stop)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PromptTemplate":
        try:
            template = cls(prefix=str(data["prefix"]), suffix=str(data["suffix"]),
                           context_separator=str(data.get("context_separator", ", ")),
                           stop=tuple(str(s) for s in data.get("stop", ("<|im_end|>",))))
        except KeyError as exc:
            raise BundleError(f"prompt template lacks {exc}") from exc
        if "{context}" not in template.suffix:
            raise BundleError("prompt suffix must contain '{context}' (where contextual hints go)")
        if not template.stop:
            raise BundleError("prompt template needs at least one stop token")
        return template


# The NIM4-ASR prompt (ChatML), as in the paper.
NIM4_PROMPT = PromptTemplate(
    prefix=(
        "<|im_start|>system\nYou are a Multilingual Speech Recognition Model.<|im_end|>\n"
        "<|im_start|>user\nTranscribe the speech into text "
    ),
    suffix=". Contextual hints: {context}.<|im_end|>\n<|im_start|>assistant\n",
)
