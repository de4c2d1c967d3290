"""What decoding under the step grammar (llm/grammar.py) costs per token on a CPU, with xgrammar and llguidance.

The grammar is ``step_grammar`` of the UAE example's tool packs (uae_labour, general); the tokenizer is the
bundled student's (SmolLM2, 49,152 tokens). The text decoded is every tool's example step as the system prompt
shows it (agent/prompt.py, ``example_call``) and a few answers, each followed by the end-of-turn token, fed one
token at a time as a model would write them. Per token each engine computes the mask of allowed tokens and then
accepts the token; ``apply`` is the cost of setting the refused logits of one row to -inf from that mask
(llm/local.py's way, the same for both engines). ``compile`` is the one-off cost of turning the grammar into the
engine's tokenizer-specific form (cached per backend and tool set). Medians of ``--repeats`` passes.

The rows marked "no \\u" decode under the same grammar without the JSON string's ``\\uXXXX`` escape: with
it, xgrammar computes the mask of every token inside a JSON string at run time (tens of milliseconds each).

    python benchmarks/grammar_cost.py              # prints one table, writes benchmarks/results/grammar_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing
from bench_common import cpu_model  # noqa: E402

from agentdistill.agent.prompt import example_call  # noqa: E402
from agentdistill.agent.wire import render_assistant  # noqa: E402
from agentdistill.config import RunConfig  # noqa: E402
from agentdistill.llm.grammar import step_grammar  # noqa: E402
from agentdistill.models.registry import load_tokenizer  # noqa: E402
from agentdistill.models.templates import end_of_turn  # noqa: E402
from agentdistill.tools import load_tools  # noqa: E402

ANSWERS = [
    "The gratuity is AED 38,500 (Federal Decree-Law 33/2021, Art. 51).",
    "Annual leave is 30 days a year after one year of service, and 2 days a month between six months and a "
    "year (Federal Decree-Law 33/2021, Art. 29).\nLeave days may be carried over with the employer's consent.",
    "Hello! How can I help you with UAE labour law today?",
]


def steps(tools: Any) -> list[str]:
    calls = [{"role": "assistant", "thought": f"I will use {t.name}.", "tool_calls": [example_call(t)]} for t in tools]
    answers = [{"role": "assistant", "thought": "I have what I need.", "content": a} for a in ANSWERS]
    return [render_assistant(m) for m in calls + answers]


def xgrammar_engine(tok: Any, grammar: str, vocab: int, eot: int) -> tuple[float, Any]:
    import xgrammar as xg

    start = time.perf_counter()
    info = xg.TokenizerInfo.from_huggingface(tok, vocab_size=vocab, stop_token_ids=[eot])
    compiled = xg.GrammarCompiler(info, max_threads=1).compile_grammar(xg.Grammar.from_ebnf(grammar))
    compile_s = time.perf_counter() - start
    bitmask = xg.allocate_token_bitmask(1, vocab)

    def run(ids: list[int]) -> list[float]:
        matcher, times = xg.GrammarMatcher(compiled), []
        for i in ids:
            t0 = time.perf_counter()
            matcher.fill_next_token_bitmask(bitmask)
            assert bitmask[0, i // 32] >> (i % 32) & 1, "the grammar refused a token of its own example"
            matcher.accept_token(i)
            times.append(time.perf_counter() - t0)
        return times

    return compile_s, run


def llguidance_engine(tok: Any, grammar: str, vocab: int, eot: int) -> tuple[float, Any]:
    import llguidance
    import llguidance.hf
    import llguidance.torch

    start = time.perf_counter()
    lltok = llguidance.hf.from_tokenizer(tok, n_vocab=vocab, eos_token=eot)
    definition = llguidance.grammar_from("gbnf", grammar)
    llguidance.LLMatcher(lltok, definition)  # the first matcher builds the lexer
    compile_s = time.perf_counter() - start
    bitmask = llguidance.torch.allocate_token_bitmask(1, vocab)

    def run(ids: list[int]) -> list[float]:
        matcher, times = llguidance.LLMatcher(lltok, definition), []
        for i in ids:
            t0 = time.perf_counter()
            llguidance.torch.fill_next_token_bitmask(matcher, bitmask)
            assert bitmask[0, i // 32] >> (i % 32) & 1, "the grammar refused a token of its own example"
            matcher.consume_token(i)
            times.append(time.perf_counter() - t0)
        return times

    return compile_s, run


def apply_cost(vocab: int, repeats: int) -> float:
    """Seconds to apply one row's bitmask to its logits (llm/local.py's unpacking)."""
    from agentdistill.llm.local import apply_bitmask

    logits, bitmask = torch.randn(1, vocab), torch.randint(-(2**31), 2**31 - 1, (1, (vocab + 31) // 32),
                                                           dtype=torch.int32)
    times = []
    for _ in range(repeats * 50):
        t0 = time.perf_counter()
        apply_bitmask(logits, bitmask)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def decode_step_s(tokens: int = 32) -> float:
    """Seconds per generated token of the student itself (greedy, batch 1, short prompt): the scale to read
    the grammar's cost against."""
    from agentdistill.models.registry import load_model

    model, tok = load_model("smollm2-135m", device="cpu", dtype=torch.float32)
    ids = tok("Write a long story about a cat.", return_tensors="pt")
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=4, do_sample=False)  # warm-up
        t0 = time.perf_counter()
        model.generate(**ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return (time.perf_counter() - t0) / tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)

    cfg = RunConfig()
    cfg.tools.packs = ["uae_labour", "general"]
    tools = load_tools(cfg, None)
    grammar = step_grammar(tools)
    tok = load_tokenizer("smollm2-135m")
    eot = tok.convert_tokens_to_ids(end_of_turn(tok))
    vocab = len(tok)
    ids = [tok.encode(s, add_special_tokens=False) + [eot] for s in steps(tools)]
    n_tokens = sum(map(len, ids))
    apply_s = apply_cost(vocab, args.repeats)

    no_u = grammar.replace(' | "u" hex hex hex hex)', ")")
    assert no_u != grammar
    rows = []
    for name, engine, text in (("xgrammar", xgrammar_engine, grammar), ("llguidance", llguidance_engine, grammar),
                               ("xgrammar, no \\u", xgrammar_engine, no_u),
                               ("llguidance, no \\u", llguidance_engine, no_u)):
        compile_s, run = engine(tok, text, vocab, eot)
        passes = [[t for row in ids for t in run(row)] for _ in range(args.repeats)]
        per_token = [statistics.median(p) for p in passes]
        p95 = [sorted(p)[int(0.95 * len(p))] for p in passes]
        rows.append({"engine": name, "version": version(name.split(",")[0]), "compile_ms": compile_s * 1e3,
                     "mask_us": statistics.median(per_token) * 1e6,
                     "mask_mean_us": statistics.median(statistics.mean(p) for p in passes) * 1e6,
                     "mask_p95_us": statistics.median(p95) * 1e6, "apply_us": apply_s * 1e6})

    step_s = decode_step_s()
    machine = (f"{platform.processor() or platform.machine()}, {cpu_model()}, {os.cpu_count()} cores, torch "
               f"{torch.__version__}, 1 thread; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"command: python benchmarks/grammar_cost.py --repeats {args.repeats}")
    print(f"machine: {machine}")
    print(f"grammar: step_grammar of {len(tools)} tools ({len(grammar):,} characters); {n_tokens} tokens of "
          f"{len(ids)} steps; vocabulary {vocab:,} (SmolLM2)")
    print(f"the student's own decode step (greedy, batch 1, float32): {step_s * 1e3:.1f} ms/token")
    print("| engine | version | compile ms | mask+accept µs/token (median) | mean | p95 | apply µs/row |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['engine']} | {r['version']} | {r['compile_ms']:.0f} | {r['mask_us']:.1f} | "
              f"{r['mask_mean_us']:.1f} | {r['mask_p95_us']:.1f} | {r['apply_us']:.1f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    numbers = {"machine": machine, "tokens": n_tokens, "decode_step_ms": step_s * 1e3, "rows": rows}
    (args.out / "grammar_cost.json").write_text(json.dumps(numbers, indent=2))




if __name__ == "__main__":
    main()
