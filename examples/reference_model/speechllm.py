"""Prompt assembly around audio embeddings, the training loss and greedy decoding with the frozen LLM."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import CONTEXT_SEP, PROMPT_PREFIX, PROMPT_SUFFIX, STOP


class SpeechLLM:
    def __init__(self, tok, llm):
        self.tok, self.llm = tok, llm
        self.embed = llm.get_input_embeddings()
        self.prefix_ids = self._ids(PROMPT_PREFIX)
        self.stop_id = tok.convert_tokens_to_ids(STOP)
        self._suffix_cache: dict[str, list[int]] = {}
        # The prefix (system turn + instruction) does not depend on the audio: its keys/values are computed once
        # and shared by every sequence (no gradient flows into it; the LLM is frozen).
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            res = llm.model(inputs_embeds=self._emb(self.prefix_ids)[None], use_cache=True)
        self._prefix_kv = [(layer.keys.detach(), layer.values.detach()) for layer in res.past_key_values.layers]
        self.n_prefix = len(self.prefix_ids)

    def _prefix_cache(self, batch: int):
        from transformers import DynamicCache

        cache = DynamicCache()
        for i, (k, v) in enumerate(self._prefix_kv):
            cache.update(k.expand(batch, -1, -1, -1).contiguous(), v.expand(batch, -1, -1, -1).contiguous(), i)
        return cache

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def suffix_ids(self, hints: list[str]) -> list[int]:
        s = PROMPT_SUFFIX.replace("{context}", CONTEXT_SEP.join(hints))
        if s not in self._suffix_cache:
            self._suffix_cache[s] = self._ids(s)
        return self._suffix_cache[s]

    def _emb(self, ids: list[int]) -> torch.Tensor:
        return self.embed(torch.tensor(ids, dtype=torch.long))

    def loss_reference(self, audio: list[torch.Tensor], hints: list[list[str]], texts: list[str]) -> torch.Tensor:
        """The same loss without the shared prefix cache (full sequences); used to test :meth:`loss`."""
        seqs, tgt_pos, tgt_ids = [], [], []
        for b, (a, h, t) in enumerate(zip(audio, hints, texts)):
            head = torch.cat([self._emb(self.prefix_ids), a.float(), self._emb(self.suffix_ids(h))])
            tids = (self._ids(t) if t else []) + [self.stop_id]
            seqs.append(torch.cat([head, self._emb(tids)]))
            tgt_pos += [(b, head.shape[0] - 1 + k) for k in range(len(tids))]
            tgt_ids += tids
        L = max(s.shape[0] for s in seqs)
        x = torch.zeros(len(seqs), L, seqs[0].shape[1])
        mask = torch.zeros(len(seqs), L, dtype=torch.long)
        for b, s in enumerate(seqs):
            x[b, : s.shape[0]] = s
            mask[b, : s.shape[0]] = 1
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hid = self.llm.model(inputs_embeds=x, attention_mask=mask).last_hidden_state
            logits = self.llm.lm_head(hid[torch.tensor([p[0] for p in tgt_pos]), torch.tensor([p[1] for p in tgt_pos])])
        return F.cross_entropy(logits.float(), torch.tensor(tgt_ids))

    def loss(self, audio: list[torch.Tensor], hints: list[list[str]], texts: list[str]) -> tuple[torch.Tensor, int]:
        """Mean cross-entropy over transcript tokens (+ the stop token); audio[i] = [n_i, H] embeddings."""
        seqs, tgt_pos, tgt_ids = [], [], []
        for b, (a, h, t) in enumerate(zip(audio, hints, texts)):
            head = torch.cat([a.float(), self._emb(self.suffix_ids(h))])
            tids = (self._ids(t) if t else []) + [self.stop_id]
            x = torch.cat([head, self._emb(tids)])
            n0 = head.shape[0]
            # hidden state at position p predicts token p+1
            tgt_pos += [(b, n0 - 1 + k) for k in range(len(tids))]
            tgt_ids += tids
            seqs.append(x)
        L = max(s.shape[0] for s in seqs)
        P = self.n_prefix
        x = torch.zeros(len(seqs), L, seqs[0].shape[1])
        mask = torch.zeros(len(seqs), P + L, dtype=torch.long)
        mask[:, :P] = 1
        for b, s in enumerate(seqs):
            x[b, : s.shape[0]] = s
            mask[b, P:P + s.shape[0]] = 1
        pos = torch.arange(P, P + L)[None].expand(len(seqs), -1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hid = self.llm.model(inputs_embeds=x, attention_mask=mask, position_ids=pos,
                                 past_key_values=self._prefix_cache(len(seqs)), use_cache=True).last_hidden_state
            bi = torch.tensor([p[0] for p in tgt_pos])
            pi = torch.tensor([p[1] for p in tgt_pos])
            logits = self.llm.lm_head(hid[bi, pi])
        return F.cross_entropy(logits.float(), torch.tensor(tgt_ids)), len(tgt_ids)

    @torch.no_grad()
    def generate(self, audio: torch.Tensor, hints: list[str] = (), max_new: int = 120) -> str:
        """Greedy transcript for one clip's audio embeddings [n, H]."""
        x = torch.cat([audio.float(), self._emb(self.suffix_ids(list(hints)))])[None]
        out: list[int] = []
        P = self.n_prefix
        with torch.autocast("cpu", dtype=torch.bfloat16):
            res = self.llm(inputs_embeds=x, past_key_values=self._prefix_cache(1), use_cache=True,
                           position_ids=torch.arange(P, P + x.shape[1])[None])
            past = res.past_key_values
            nxt = int(res.logits[0, -1].argmax())
            for _ in range(max_new):
                if nxt == self.stop_id or nxt == self.tok.eos_token_id:
                    break
                out.append(nxt)
                res = self.llm(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
                past = res.past_key_values
                nxt = int(res.logits[0, -1].argmax())
        return self.tok.decode(out, skip_special_tokens=True).strip()
