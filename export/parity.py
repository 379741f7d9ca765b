"""PyTorch reference of the whole recognition path, for parity checks against the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["TorchReference", "torch_greedy"]


def torch_greedy(llm, prefix_ids: Sequence[int], audio_embeds, suffix_ids: Sequence[int], max_new_tokens: int,
                 stop_ids: Sequence[int] = (), step_logits: list[np.ndarray] | None = None) -> list[int]:
    """Greedy decoding of a transformers causal LM on ``embed(prefix) ++ audio_embeds ++ embed(suffix)``.

    ``step_logits``: a list that receives each step's logits (float32 numpy) when given.
    """
    import inspect

    import torch

    # transformers >= 5.2x renamed past_key_values to cache (the old name warns, then goes away)
    key = "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"
    embed = llm.get_input_embeddings()
    with torch.no_grad():
        parts = [embed(torch.tensor(list(prefix_ids), dtype=torch.long)), torch.as_tensor(audio_embeds),
                 embed(torch.tensor(list(suffix_ids), dtype=torch.long))]
        x = torch.cat([p.to(torch.float32) for p in parts], dim=0)[None]
        out = llm(inputs_embeds=x, use_cache=True)
        tokens: list[int] = []
        for _ in range(max_new_tokens):
            last = out.logits[0, -1]
            if step_logits is not None:
                step_logits.append(last.float().numpy().copy())
            nxt = int(last.argmax())
            if nxt in stop_ids:
                break
            tokens.append(nxt)
            out = llm(input_ids=torch.tensor([[nxt]]), use_cache=True, **{key: getattr(out, key)})
    return tokens


@dataclass
class TorchReference:
    """Audio -> tokens with the checkpoint's PyTorch model and the source tokenizer (the runtime's ground truth)."""

    checkpoint: "Checkpoint"  # noqa: F821

    def __post_init__(self) -> None:
        from nim4asr_edge.frontend import make_frontend

        from .exporter import _frontend_spec
        from .tokenizers import SourceTokenizer

        self.model = self.checkpoint.build_model()
        self.tokenizer = SourceTokenizer.load(self.checkpoint.tokenizer_path)
        self.frontend = make_frontend(_frontend_spec(self.checkpoint))

    def encode(self, samples: np.ndarray):
        """(audio_embeds [N, H], phoneme_logprobs [T', P]) as numpy."""
        import torch

        feats = self.frontend(samples).values
        with torch.no_grad():
            emb, _, lp, _ = self.model.forward_audio(torch.from_numpy(feats)[None], torch.tensor([len(feats)]))
        return emb[0].numpy(), lp[0].numpy()

    def transcribe_tokens(self, samples: np.ndarray, hints: Sequence[str] = (), max_new_tokens: int = 32) -> list[int]:
        prompt = self.checkpoint.prompt
        emb, _ = self.encode(samples)
        stops = [self.tokenizer.token_id(s) for s in prompt.stop]
        return torch_greedy(self.model.llm, self.tokenizer.encode(prompt.prefix), emb,
                            self.tokenizer.encode(prompt.render_suffix(hints)), max_new_tokens, stops)
