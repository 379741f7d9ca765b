"""The prompt around the speech embeddings.

Every model family's prompt is a :class:`PromptFormat`: given the contextual hints and an optional forced language,
it renders the text before and after the speech embeddings. The decoder caches whatever leading tokens stay the
same between decodes, so a static opening is evaluated once whichever part the hints go into.

:class:`PromptTemplate` is the NIM4 form, stored in the bundle as data (see docs/FORMAT.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from .errors import BundleError, OptionsError

__all__ = ["NIM4_PROMPT", "PromptFormat", "PromptParts", "PromptTemplate", "check_language"]


@dataclass(frozen=True)
class PromptParts:
    before: str  # text before the speech embeddings
    after: str  # text after them, never empty: the answer is generated from its last token


class PromptFormat(Protocol):
    """What the decoder needs of a family's prompt."""

    stop: tuple[str, ...]  # special tokens that end the transcript
    languages: tuple[str, ...]  # languages that may be forced (empty: the prompt has no forced-language form)

    def render(self, hints: Sequence[str] = (), language: str | None = None) -> PromptParts:
        """The prompt text around the speech for these hints (plain when empty) and forced language (or None)."""


def check_language(prompt: PromptFormat, language: str | None) -> None:
    """``OptionsError`` unless ``language`` is None or one the prompt can force."""
    if language is None or language in prompt.languages:
        return
    if not prompt.languages:
        raise OptionsError(f"this model's prompt cannot force a language (asked for {language!r}); leave it unset")
    raise OptionsError(f"unknown forced language {language!r}; this model knows: {', '.join(prompt.languages)}")


@dataclass(frozen=True)
class PromptTemplate:
    """Bundle-data prompt: ``prefix`` + speech + ``suffix`` with the hints joined into ``{context}``."""

    prefix: str  # text before the speech embeddings (system turn and the start of the user turn)
    suffix: str  # text after the speech; "{context}" is replaced by the joined contextual hints
    context_separator: str = ", "  # joins hint texts inside {context}
    stop: tuple[str, ...] = ("<|im_end|>",)  # special tokens that end the transcript
    languages: tuple[str, ...] = ()  # the NIM4 prompt has no forced-language form

    def render(self, hints: Sequence[str] = (), language: str | None = None) -> PromptParts:
        check_language(self, language)
        return PromptParts(self.prefix, self.render_suffix(hints))

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
