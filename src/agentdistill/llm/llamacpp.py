"""A GGUF model run in process by llama.cpp (llama-cpp-python), the fast path on a CPU.

The prompt is rendered exactly as the transformers backend renders it: the project's chat template
for the model's family (models.templates), observation role included, not the template inside the
GGUF (which may have no observation role). It is tokenized by the GGUF's own tokenizer with special
tokens parsed, so ``<|im_start|>`` is one token as in training.

llama-cpp-python's high-level ``Llama`` holds one sequence, so requests run one after another, each
sample of a request in turn. What makes that fast is its prompt cache: ``Llama.generate`` keeps the
key/value cache of the tokens it evaluated last and re-evaluates only from the first token where the
new prompt differs. Every agent prompt starts with the same system message, so that prefix is
computed once; the n samples of one request share the whole prompt; and a conversation's next step
(its previous prompt, its reply, an observation) reuses everything up to its newest turn when it runs
alone, as in ``agentdistill chat``.

Generation stops at the family's end-of-turn token (or any end-of-generation token of the GGUF), at a
stop sequence, or after ``max_tokens``. A request's step grammar (GBNF of the text after its prefix,
llm.grammar) is applied by llama.cpp's grammar sampler, which masks every token that would leave the
grammar. Per-token logprobs are not returned (they need llama.cpp to keep every position's logits).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from agentdistill.errors import UserError
from agentdistill.llm.base import BackendError, Completion, GenerationRequest, cut_at_stop

# Enough for an agent conversation of several steps with long observations; the KV cache it reserves is
# small for the models this runs on a CPU (about 23 kB per token for SmolLM2-135M at f16).
DEFAULT_N_CTX = 8192


def default_threads() -> int:
    """Half the cores this process may run on, at least one.

    llama.cpp's threads meet at a barrier after every operation and spin while they wait, so a thread
    that loses its core stalls all the others: on 2 cores shared with other work, 2 threads decoded
    SmolLM2-135M at 5 tokens/s and 1 thread at 27. Half the cores also leaves SMT siblings idle.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // 2)


class LlamaCppBackend:
    def __init__(self, model_path: str | Path, *, name: str | None = None, family: str | None = None,
                 n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None, lora_path: str | Path | None = None,
                 seed: int = 0):
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise UserError("a .gguf model needs llama-cpp-python, which is not installed.",
                            hint="pip install llama-cpp-python (it compiles llama.cpp; see README.md).") from e
        from agentdistill.models.registry import resolve
        from agentdistill.models.templates import END_OF_TURN

        path = Path(model_path).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"GGUF model {path} does not exist.", hint="Pass the path of a .gguf file.")
        self.path = path
        self.name = name or str(model_path)
        self.family = family or resolve(str(path)).family
        threads = n_threads or default_threads()
        self.llama = Llama(str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                           lora_path=str(lora_path) if lora_path else None, seed=seed, verbose=False)
        eot = self.llama.tokenize(END_OF_TURN[self.family].encode(), add_bos=False, special=True)
        self._end_ids = set(eot) if len(eot) == 1 else set()
        self._rng = random.Random(seed)  # a fresh seed per sample: llama.cpp reseeds every generate() alike
        self._grammars: dict[str, Any] = {}

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        out: list[list[Completion]] = []
        for r in requests:
            start_s = time.perf_counter()
            prompt = self._prompt_ids(r)
            completions = [self._sample(prompt, r) for _ in range(r.n)]
            elapsed = time.perf_counter() - start_s
            for c in completions:
                c.elapsed_s = elapsed
            out.append(completions)
        return out

    def render(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text of ``messages``, ending with the assistant header: the transformers backend's."""
        from transformers.utils.chat_template_utils import render_jinja_template

        from agentdistill.models.templates import template_text, to_chat_messages

        rendered, _ = render_jinja_template([to_chat_messages(messages)], chat_template=template_text(self.family),
                                            add_generation_prompt=True)
        return rendered[0]

    def _prompt_ids(self, r: GenerationRequest) -> list[int]:
        # the template writes its BOS itself where the family has one, so none is added here
        return self.llama.tokenize((self.render(r.messages) + r.prefix).encode("utf-8"), add_bos=False, special=True)

    def _sample(self, prompt: list[int], r: GenerationRequest) -> Completion:
        import llama_cpp

        room = self.llama.n_ctx() - len(prompt)
        if room <= 0:
            raise BackendError(f"the prompt has {len(prompt)} tokens, more than the context of {self.llama.n_ctx()}.")
        if r.temperature > 0:
            self.llama.set_seed(self._rng.randrange(2**31))
        sampling = ({"temp": r.temperature, "top_k": 0, "top_p": 1.0, "min_p": 0.0} if r.temperature > 0
                    else {"temp": 0.0})
        vocab = self.llama._model.vocab
        ids: list[int] = []
        text, finish = "", "length"
        for token in self.llama.generate(prompt, repeat_penalty=1.0, grammar=self._grammar(r), **sampling):
            if token in self._end_ids or llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            ids.append(token)
            # a multi-byte character may end in a later token: an incomplete one is left out until it does
            text, cut = cut_at_stop(self.llama.detokenize(ids).decode("utf-8", errors="ignore"), r.stop)
            if cut:
                finish = "stop"
                break
            if len(ids) >= min(r.max_tokens, room):
                break
        return Completion(text=r.prefix + text, finish_reason=finish)

    def _grammar(self, r: GenerationRequest) -> Any:
        """The step grammar of ``r`` for llama.cpp (one object per grammar text), or None."""
        if not r.grammar:
            return None
        if r.grammar not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[r.grammar] = LlamaGrammar.from_string(r.grammar, verbose=False)
        return self._grammars[r.grammar]
