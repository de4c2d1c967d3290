"""A local transformers model (optionally with a LoRA adapter) as a backend, batched, on CPU or GPU.

The prompt is the model family's chat template applied to the canonical messages (models.templates),
so the student is prompted exactly as it was trained. Requests with the same sampling settings are
padded into one batch on the *left*: a decoder-only model continues from the last position, so the
padding has to come before the prompt, not between the prompt and the reply. Generation stops at the
family's end-of-turn token or at a stop sequence, whichever comes first.

Every agent prompt starts with the same system message (~450 tokens for the bundled example's tools, more than half
of a typical prompt), and on a CPU prefill dominates the cost of a step. So the prompts of a batch
are split at their longest shared token prefix: its key/value cache is computed once, kept for later
batches that start the same way, and copied under every row; each row's own suffix is padded on the
left of the suffix, between the prefix and the suffix, where the attention mask hides it. Positions
come from the mask (transformers counts only unmasked tokens), so every row sees exactly the
positions it would see alone and the output equals uncached generation.

A request with a step grammar (``GenerationRequest.grammar``, llm/grammar.py) is decoded under it: llguidance
keeps one matcher per row and the logits of the tokens the grammar refuses are set to -inf
(``GrammarProcessor``; docs/design.md, "The step grammar", gives the cost per token).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agentdistill.llm.base import Completion, GenerationRequest, cut_at_stop
from agentdistill.llm.grammar import keep_compiled
from agentdistill.models.kv_cache import cache_kwarg, output_cache
from agentdistill.models.templates import MIN_SHARED_PREFIX, shared_prefix_len


class LocalBackend:
    def __init__(self, model: str, adapter: Path | None = None, batch_size: int = 8, device: str | None = None,
                 dtype: Any = None):
        from agentdistill.models.registry import load_model
        from agentdistill.models.templates import end_of_turn

        self.model, self.tokenizer = load_model(model, adapter=adapter, device=device, dtype=dtype)
        self.model.eval()
        self.batch_size = max(1, batch_size)
        self.name = f"{model}+{Path(adapter).name}" if adapter else model
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        eot_ids = tok.convert_tokens_to_ids([end_of_turn(tok)])
        self.eos_ids = sorted({i for i in [*eot_ids, tok.eos_token_id] if i is not None and i >= 0})
        self._prefix_ids: list[int] = []
        self._prefix_cache: Any = None
        self._grammar_tokenizer: Any = None  # llguidance's view of the tokenizer, built at the first grammar
        self._grammar_matchers: dict[str, Any] = {}  # a fresh matcher per grammar, copied for each row

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        from agentdistill.models.templates import render_prompt

        prompt_ids = [self.tokenizer(render_prompt(self.tokenizer, r.messages, add_generation_prompt=True) + r.prefix,
                                     add_special_tokens=False)["input_ids"] for r in requests]
        # Only requests that sample alike can share a generate() call; keep the caller's order.
        results: list[list[Completion] | None] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, r in enumerate(requests):
            key = (r.temperature, r.max_tokens, r.n, r.logprobs, tuple(r.stop), r.grammar is not None)
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            # every row is padded to its batch's longest prompt: batch prompts of similar length together
            idx = sorted(idx, key=lambda i: len(prompt_ids[i]))
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                start_s = time.perf_counter()
                outs = self._generate_batch([requests[i] for i in chunk], [prompt_ids[i] for i in chunk])
                elapsed = time.perf_counter() - start_s
                for i, out in zip(chunk, outs, strict=True):
                    for completion in out:
                        completion.elapsed_s = elapsed
                    results[i] = out
        return [r or [] for r in results]

    def _generate_batch(self, batch: list[GenerationRequest], rows: list[list[int]]) -> list[list[Completion]]:
        import torch
        from transformers import LogitsProcessorList

        tok, first = self.tokenizer, batch[0]
        enc, cache = self._inputs(rows, first.n, first.max_tokens)
        kwargs: dict[str, Any] = {
            "max_new_tokens": first.max_tokens,
            "num_return_sequences": first.n,
            "eos_token_id": self.eos_ids,
            "pad_token_id": tok.pad_token_id,
            "return_dict_in_generate": True,
            "output_scores": first.logprobs,
        }
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if first.stop:
            kwargs.update(stop_strings=first.stop, tokenizer=tok)
        kwargs[cache_kwarg(self.model)] = cache
        if first.grammar is not None:  # generate() repeats each row n times
            grammars = [r.grammar for r in batch for _ in range(first.n)]
            processor = GrammarProcessor(self.grammar_tokenizer(), grammars, enc["input_ids"].shape[1], self.eos_ids,
                                         self._grammar_matchers)
            kwargs["logits_processor"] = LogitsProcessorList([processor])
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        prompt_len = enc["input_ids"].shape[1]
        new_tokens = out.sequences[:, prompt_len:]
        token_logprobs = None
        if first.logprobs:
            token_logprobs = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        completions: list[list[Completion]] = [[] for _ in batch]
        for row in range(new_tokens.shape[0]):
            ids = new_tokens[row].tolist()
            # generated length: up to and including the first end-of-turn token, without the padding after it
            ended = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
            length = ended + 1 if ended is not None else len(ids)
            text = batch[row // first.n].prefix + tok.decode(ids[:length], skip_special_tokens=True)
            text, cut = cut_at_stop(text, first.stop)
            logprobs = token_logprobs[row, :length].tolist() if token_logprobs is not None else None
            finish = "stop" if cut or ended is not None else "length"
            completions[row // first.n].append(Completion(text=text, finish_reason=finish, logprobs=logprobs))
        return completions

    def grammar_tokenizer(self) -> Any:
        """llguidance's view of the tokenizer (built once: about a second), with the end-of-turn tokens."""
        if self._grammar_tokenizer is None:
            import llguidance.hf

            vocab = max(len(self.tokenizer), self.model.get_output_embeddings().weight.shape[0])
            self._grammar_tokenizer = llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=vocab,
                                                                   eos_token=self.eos_ids)
        return self._grammar_tokenizer

    def _inputs(self, rows: list[list[int]], n: int, max_new_tokens: int) -> tuple[dict[str, Any], Any]:
        """input_ids and attention_mask for ``rows``, and a preallocated cache holding the shared prefix.

        Layout per row: [shared prefix][padding][own suffix], the mask 0 on the padding only.
        """
        import torch
        from transformers import StaticCache

        prefix = self._prefix_for(rows)
        p = len(prefix)
        width = max(len(r) for r in rows) - p
        pad = self.tokenizer.pad_token_id
        ids = [prefix + [pad] * (width - (len(r) - p)) + r[p:] for r in rows]
        mask = [[1] * p + [0] * (width - (len(r) - p)) + [1] * (len(r) - p) for r in rows]
        device = self.model.device
        enc = {"input_ids": torch.tensor(ids, device=device), "attention_mask": torch.tensor(mask, device=device)}
        # A growing cache concatenates every layer's keys and values at every new token: on a CPU that copy
        # took 70% of a batch-16 decode. A static one is written in place.
        cache = StaticCache(config=self.model.config, max_cache_len=p + width + max_new_tokens)
        # generate() repeats input rows for num_return_sequences but leaves a cache object as it is
        copies = len(rows) * n
        for layer, cached in zip(cache.layers, self._prefix_cache.layers if p else [], strict=False):
            layer.update(cached.keys.expand(copies, -1, -1, -1), cached.values.expand(copies, -1, -1, -1))
        return enc, cache

    def _prefix_for(self, rows: list[list[int]]) -> list[int]:
        """The shared prefix to reuse: the cached one when every row starts with it, else this batch's own
        (computed and cached now), else none when the rows share too little or there is one row."""
        import torch

        cached = self._prefix_ids
        if cached and all(len(r) > len(cached) and r[: len(cached)] == cached for r in rows):
            return cached
        # a lone row would cache its whole prompt, evicting a prefix that the next batches share
        n = shared_prefix_len(rows) if len(rows) > 1 else 0
        if n < MIN_SHARED_PREFIX:
            return []
        prefix = rows[0][:n]
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([prefix], device=self.model.device), use_cache=True)
        self._prefix_ids, self._prefix_cache = prefix, output_cache(out)
        return prefix



class GrammarProcessor:
    """A logits processor (transformers' signature) that decodes every row under its own grammar (llguidance):
    at each step it feeds each row's last token to the row's matcher and refuses the tokens the grammar does
    not allow next; once a row's grammar is complete only an end-of-turn token is allowed. A row's grammar
    covers the text generated after its prompt (a prefilled prefix is part of the prompt: llm.grammar's
    ``step_grammar(tools, prefix)``). A row that has ended its turn is left alone."""

    def __init__(self, tokenizer: Any, grammars: list[str], prompt_len: int, eos_ids: list[int],
                 compiled: dict[str, Any] | None = None):
        import llguidance
        import llguidance.torch

        self.prompt_len, self.eos_ids = prompt_len, set(eos_ids)
        # a matcher takes about 80 ms to build from a grammar and 10 µs to copy: ``compiled`` keeps one, unused,
        # per grammar across calls (the backend's), and every row gets a copy
        # (a batch may hold more grammars than the cache keeps, so this call's matchers are held apart)
        compiled = {} if compiled is None else compiled
        batch: dict[str, Any] = {}
        for g in dict.fromkeys(grammars):
            matcher = compiled.get(g)
            if matcher is None:
                matcher = llguidance.LLMatcher(tokenizer, llguidance.grammar_from("gbnf", g))
                if matcher.is_error():
                    raise ValueError(f"the grammar does not compile: {matcher.get_error()}")
                keep_compiled(compiled, g, matcher)
            batch[g] = matcher
        self.matchers = [batch[g].deep_copy() for g in grammars]
        self.live = [True] * len(grammars)
        self.bitmask = llguidance.torch.allocate_token_bitmask(len(grammars), tokenizer.vocab_size)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import llguidance.torch

        if input_ids.shape[1] > self.prompt_len:
            for row, token in enumerate(input_ids[:, -1].tolist()):
                # after its end of turn a row is padded on, or stopped by a stop string: nothing more to constrain
                if self.live[row] and (token in self.eos_ids or not self.matchers[row].consume_token(token)):
                    self.live[row] = False
        rows = [row for row, live in enumerate(self.live) if live]
        for row in rows:
            llguidance.torch.fill_next_token_bitmask(self.matchers[row], self.bitmask, row)
        if len(rows) == len(self.live):
            apply_bitmask(scores, self.bitmask)
        elif rows:
            some = scores[rows]
            apply_bitmask(some, self.bitmask[rows])
            scores[rows] = some
        return scores


def apply_bitmask(scores: Any, bitmask: Any) -> None:
    """Set to -inf, in place, every logit of ``scores`` ([rows, vocab]) whose bit in ``bitmask`` ([rows,
    ceil(vocab / 32)] int32, bit ``i % 32`` of word ``i // 32`` for token ``i``) is 0."""
    import torch

    global _BYTE_BITS
    if _BYTE_BITS is None:  # byte -> its 8 bits, low bit first (the words are little-endian in memory)
        _BYTE_BITS = (torch.arange(256).unsqueeze(1) >> torch.arange(8) & 1).bool()
    refused = ~_BYTE_BITS[bitmask.contiguous().view(torch.uint8).long()].flatten(1)[:, : scores.shape[-1]]
    scores[:, : refused.shape[1]].masked_fill_(refused.to(scores.device), float("-inf"))


_BYTE_BITS: Any = None
