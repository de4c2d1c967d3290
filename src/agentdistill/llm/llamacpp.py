"""A GGUF model run in process by llama.cpp (llama-cpp-python), the fast path on a CPU.

The prompt is rendered exactly as the transformers backend renders it: the project's chat template
for the model's family (models.templates), observation role included, not the template inside the
GGUF (which may have no observation role). It is tokenized by the GGUF's own tokenizer with special
tokens parsed, so ``<|im_start|>`` is one token as in training.

llama-cpp-python's high-level ``Llama`` holds one sequence, so one ``Llama`` runs its requests one
after another, each sample of a request in turn. What makes that fast is its prompt cache:
``Llama.generate`` keeps the key/value cache of the tokens it evaluated last and re-evaluates only from
the first token where the new prompt differs. Every agent prompt starts with the same system message,
so that prefix is computed once; the n samples of one request share the whole prompt; and a
conversation's next step (its previous prompt, its reply, an observation) reuses everything up to its
newest turn when it runs alone, as in ``agentdistill chat``.

A batch of requests (an eval's round, concurrent requests to ``serve``) is spread over several ``Llama``
instances of the same file, each in its own thread: llama.cpp releases the GIL while it computes, the
weights are memory-mapped once and shared, and each instance keeps its own prompt cache. Independent
sequences on separate cores scale where more threads on one sequence do not (see ``default_threads``).

Generation stops at the family's end-of-turn token (or any end-of-generation token of the GGUF), at a
stop sequence, or after ``max_tokens``. A request's step grammar (GBNF of the text after its prefix,
llm.grammar) is applied by llama.cpp's grammar sampler, asked first only about the token the model
picked and about the whole vocabulary when it refuses that one (``CheckedGrammarSampler``): the tokens are
those of masking first, at a fraction of the cost. Per-token logprobs are not returned (they need
llama.cpp to keep every position's logits).

A LoRA GGUF (written by ``agentdistill export --lora``) runs on its base: the model file is the base GGUF
that ``<lora>.json`` names, and llama.cpp adds the adapter's low-rank update to each adapted layer as it
computes, in f16, on the base's own (4-bit) weights.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from agentdistill.errors import UserError
from agentdistill.llm.base import BackendError, Completion, GenerationRequest, cut_at_stop
from agentdistill.llm.grammar import keep_compiled

# Enough for an agent conversation of several steps with long observations; the KV cache it reserves is
# small for the models this runs on a CPU (about 23 kB per token for SmolLM2-135M at f16).
DEFAULT_N_CTX = 8192
# Sequences decoded side by side in one batch (see the module docstring); more than a few only adds memory.
MAX_INSTANCES = 4
THREADS_ENV = "AGENTDISTILL_LLAMA_THREADS"
# The key of <lora>.json (written beside a LoRA GGUF by `agentdistill export --lora`) naming its base GGUF.
LORA_BASE_KEY = "base_gguf"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_threads() -> int:
    """The threads of one sequence: ``AGENTDISTILL_LLAMA_THREADS`` if set, else half the cores this process
    may run on, at least one.

    llama.cpp's threads meet at a barrier after every operation and spin while they wait, so a thread
    that loses its core stalls all the others: on 2 cores shared with other work, 2 threads decoded
    SmolLM2-135M at 5 tokens/s and 1 thread at 27. Half the cores also leaves SMT siblings idle. Where the
    cores are free, all of them answer one question sooner (benchmarks/README.md), hence the variable.
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise UserError(f"{THREADS_ENV}={value!r} is not a positive whole number.",
                            hint=f"Set it to the threads one sequence may use (this machine has {usable_cores()} "
                                 "usable cores), or unset it.")
        return int(value)
    return max(1, usable_cores() // 2)


def default_instances(threads: int) -> int:
    """How many sequences run side by side in a batch: as many as fill the usable cores with ``threads``
    each, at most ``MAX_INSTANCES`` (each holds its own key/value cache and compute buffers)."""
    return max(1, min(MAX_INSTANCES, usable_cores() // threads))


def model_and_lora(path: Path) -> tuple[Path, Path | None]:
    """``(model GGUF, LoRA GGUF or None)`` for the file ``path``: a LoRA GGUF (``general.type`` adapter) runs on
    the base GGUF that ``<lora>.json`` beside it names, a model GGUF on its own."""
    import gguf

    try:
        kind = gguf.GGUFReader(path, "r").get_field(gguf.Keys.General.TYPE)
    except (ValueError, OSError) as e:
        raise UserError(f"{path} is not a readable GGUF file ({e}).",
                        hint="Export it again (agentdistill export --to gguf) or pass another .gguf file.") from e
    if kind is None or kind.contents() != "adapter":
        return path, None
    meta = path.with_suffix(".json")
    try:
        base_name = json.loads(meta.read_text(encoding="utf-8")).get(LORA_BASE_KEY)
    except (OSError, ValueError, AttributeError):
        base_name = None
    if not isinstance(base_name, str) or not base_name:
        raise UserError(f"{path} is a LoRA adapter, and nothing names the base model it applies to.",
                        hint=f"`agentdistill export --lora` writes {meta.name} beside it with "
                             f'{{"{LORA_BASE_KEY}": "<base>.gguf"}}; write one, or export again.')
    base = path.parent / base_name
    if not base.is_file():
        raise UserError(f"the base model {base} of the LoRA adapter {path} does not exist.",
                        hint="Keep the base GGUF that export wrote beside the adapter, or export again.")
    return base, path


class LlamaCppBackend:
    def __init__(self, model_path: str | Path, *, name: str | None = None, family: str | None = None,
                 n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None, n_instances: int | None = None,
                 lora_path: str | Path | None = None, seed: int = 0):
        try:
            import llama_cpp  # noqa: F401
        except ImportError as e:
            raise UserError("a .gguf model needs llama-cpp-python, which is not installed.",
                            hint="pip install llama-cpp-python (it compiles llama.cpp; see README.md).") from e
        from agentdistill.models.registry import resolve

        path = Path(model_path).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"GGUF model {path} does not exist.", hint="Pass the path of a .gguf file.")
        if lora_path is None:
            path, lora_path = model_and_lora(path)
        self.path = path
        self.lora_path = lora_path
        self.name = name or str(model_path)
        self.family = family or resolve(str(path)).family
        self.threads = n_threads or default_threads()
        self.max_instances = n_instances or default_instances(self.threads)
        self._settings = {"n_ctx": n_ctx, "lora_path": str(lora_path) if lora_path else None, "seed": seed}
        # one sequence now (a bad file fails here); the others when a batch first needs them
        self._sequences = [self._new_sequence(0)]

    @property
    def llama(self) -> Any:
        """The first sequence's ``llama_cpp.Llama`` (its tokenizer is every sequence's)."""
        return self._sequences[0].llama

    def _new_sequence(self, index: int) -> _Sequence:
        return _Sequence(self.path, self.family, threads=self.threads, n_ctx=self._settings["n_ctx"],
                         lora_path=self._settings["lora_path"], seed=self._settings["seed"] + index)

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        """Each request's completions; request i runs on sequence i mod the pool's size, the sequences side by side."""
        width = min(self.max_instances, len(requests))
        while len(self._sequences) < width:
            self._sequences.append(self._new_sequence(len(self._sequences)))
        if width <= 1:
            return [self._run(self._sequences[0], r) for r in requests]
        lanes = [list(range(i, len(requests), width)) for i in range(width)]
        out: list[list[Completion]] = [[] for _ in requests]

        def run_lane(lane: int) -> None:
            for i in lanes[lane]:
                out[i] = self._run(self._sequences[lane], requests[i])

        with ThreadPoolExecutor(max_workers=width) as pool:
            for done in [pool.submit(run_lane, lane) for lane in range(width)]:
                done.result()  # a lane's error is raised here
        return out

    def _run(self, sequence: _Sequence, r: GenerationRequest) -> list[Completion]:
        start_s = time.perf_counter()
        prompt = sequence.tokenize(self.render(r.messages) + r.prefix)
        completions = [sequence.sample(prompt, r) for _ in range(r.n)]
        elapsed = time.perf_counter() - start_s
        for c in completions:
            c.elapsed_s = elapsed
        return completions

    def render(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text of ``messages``, ending with the assistant header: the transformers backend's."""
        from transformers.utils.chat_template_utils import render_jinja_template

        from agentdistill.models.templates import template_text, to_chat_messages

        rendered, _ = render_jinja_template([to_chat_messages(messages)], chat_template=template_text(self.family),
                                            add_generation_prompt=True)
        return rendered[0]


@functools.cache
def _llama_class() -> type:
    from llama_cpp import Llama

    class Llama_(Llama):
        """``Llama`` whose ``generate`` samples with ``next_sampler`` (set before each call) instead of the
        sampler chain it would build from its arguments, where one is set."""

        next_sampler: Any = None

        def _init_sampler(self, **kwargs: Any) -> Any:
            return self.next_sampler if self.next_sampler is not None else super()._init_sampler(**kwargs)

    return Llama_


class _Sequence:
    """One ``Llama`` of the file: a key/value cache, its prompt cache, its sampler seeds and grammars.
    Used by one thread at a time."""

    def __init__(self, path: Path, family: str, *, threads: int, n_ctx: int, lora_path: str | None, seed: int):
        from agentdistill.models.templates import END_OF_TURN

        self.llama = _llama_class()(str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                                    lora_path=lora_path, seed=seed, verbose=False)
        eot = self.llama.tokenize(END_OF_TURN[family].encode(), add_bos=False, special=True)
        self._end_ids = set(eot) if len(eot) == 1 else set()
        self._rng = random.Random(seed)  # seeds each sample's draws, so that n samples of one prompt differ
        self._grammars: dict[str, _Grammar] = {}

    def tokenize(self, text: str) -> list[int]:
        # the template writes its BOS itself where the family has one, so none is added here
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def sample(self, prompt: list[int], r: GenerationRequest) -> Completion:
        import llama_cpp

        room = self.llama.n_ctx() - len(prompt)
        if room <= 0:
            raise BackendError(f"the prompt has {len(prompt)} tokens, more than the context of {self.llama.n_ctx()}.")
        self.llama.next_sampler = CheckedGrammarSampler(self._grammar(r), r.temperature, self._rng,
                                                        self.llama.n_vocab())
        vocab = self.llama._model.vocab
        ids: list[int] = []
        text, finish = "", "length"
        for token in self.llama.generate(prompt, repeat_penalty=1.0):
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

    def _grammar(self, r: GenerationRequest) -> _Grammar | None:
        """The step grammar of ``r`` as llama.cpp's grammar sampler (one per grammar text, reset before each
        use), or None."""
        if not r.grammar:
            return None
        grammar = self._grammars.get(r.grammar)
        if grammar is None:
            grammar = _Grammar(self.llama._model.vocab, r.grammar)
            keep_compiled(self._grammars, r.grammar, grammar)
        grammar.reset()
        return grammar


class _Grammar:
    """llama.cpp's grammar sampler of one GBNF text, freed with this object."""

    def __init__(self, vocab: Any, text: str):
        import llama_cpp

        self._free = llama_cpp.llama_sampler_free  # kept: at interpreter exit the module may be gone
        self.sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
        if not self.sampler:
            raise BackendError("llama.cpp could not parse the step grammar.")

    def reset(self) -> None:
        import llama_cpp

        llama_cpp.llama_sampler_reset(self.sampler)

    def __del__(self) -> None:
        if getattr(self, "sampler", None):
            self._free(self.sampler)


class CheckedGrammarSampler:
    """Picks the next token from the model's logits and asks the grammar only whether that token is allowed;
    the whole vocabulary goes through the grammar only when it is not, as llama.cpp's own command-line
    sampler does (common/sampling.cpp).

    Why: llama.cpp's grammar sampler tests every token of the vocabulary against the grammar at every step,
    about 8 ms a token for SmolLM2's 49,152 tokens on a 2-core CPU, a third of an agent step's time; the
    model's own choice is allowed at nearly every step. The result is the grammar-first one: for greedy
    decoding the best allowed token is the best token whenever that is allowed; with a temperature, a draw
    from the whole distribution that is kept when allowed and otherwise replaced by a draw from the allowed
    tokens is a draw from the allowed tokens (rejection sampling).
    """

    def __init__(self, grammar: _Grammar | None, temperature: float, rng: random.Random, n_vocab: int):
        self.grammar = grammar
        self.n_vocab = n_vocab
        self.temperature = temperature
        self._rng = np.random.default_rng(rng.randrange(2**32)) if temperature > 0 else None

    def sample(self, ctx: Any, idx: int) -> int:
        """The token after the position ``idx`` of the batch last decoded in ``ctx`` (llama-cpp-python's
        ``LlamaSampler.sample``), accepted by the grammar."""
        import llama_cpp

        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, idx), shape=(self.n_vocab,))
        token = self._pick(logits)
        if self.grammar is not None:
            if not self._allowed([token], logits)[0]:
                allowed = self._allowed(range(self.n_vocab), logits)
                if not allowed.any():
                    raise BackendError("the step grammar allows no token here.")
                token = self._pick(np.where(allowed, logits, -np.inf))
            llama_cpp.llama_sampler_accept(self.grammar.sampler, token)
        return token

    def _pick(self, logits: np.ndarray) -> int:
        if self._rng is None:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / self.temperature
        p = np.exp(z - z.max())
        return int(self._rng.choice(len(p), p=p / p.sum()))

    def _allowed(self, tokens: Any, logits: np.ndarray) -> np.ndarray:
        """Which of ``tokens`` the grammar allows next (it sets the logit of the others to -inf)."""
        import llama_cpp

        ids = np.fromiter(tokens, dtype=np.intc)
        data = (llama_cpp.llama_token_data * len(ids))()
        view = np.ctypeslib.as_array(data)
        view["id"], view["logit"], view["p"] = ids, logits[ids], 0.0
        array = llama_cpp.llama_token_data_array(data=data, size=len(ids), selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(self.grammar.sampler, ctypes.byref(array))
        return np.isfinite(view["logit"])
