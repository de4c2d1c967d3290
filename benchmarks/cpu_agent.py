"""CPU inference for the agent: transformers against llama.cpp on the same questions through the real agent loop.

Every variant answers the same questions, one at a time (single stream, as ``agentdistill chat`` does),
with ``agent.runtime.run_agents`` and the run's tools. Per variant it prints:

- decode tok/s: single-stream decoding speed, a 64-token reply to a short prompt (the ``x fp32`` column is
  its ratio to transformers fp32's);
- prefill tok/s: the agent's system prompt and a question read from scratch;
- agent tok/s: over the agent runs, tokens generated / seconds in the model's ``generate`` (prefill included,
  tools not);
- latency p50/p95: seconds per question (the agent's own steps and tool calls, ``AgentResult.latency_s``);
- two-step p50: the same over questions answered in exactly two steps (a tool call, then the answer);
- lockstep: with ``--lockstep``, seconds for all questions advanced together, as eval runs them (transformers
  pads each round into batches of 8; llama.cpp, one sequence, runs the round's requests one after another);
  for transformers fp32 and llama.cpp q4_k_m.

``--lora`` adds the form ``agentdistill export --lora`` writes: its base GGUF with the f16 LoRA GGUF
applied at run time, at each thread count.

The llama.cpp variants are quantized from one source GGUF with llama.cpp's own quantizer
(``llama_model_quantize``, files cached under ``--cache``): pass the f16 GGUF of ``agentdistill export`` as
``--gguf`` for variants that are each one quantization away from the model. Without it, the model's own GGUF is
the source: the bundled student is Q4_1, so its f16 and q8_0 hold Q4_1's values (the speed of f16, the quality
of Q4_1) and its q4_k_m is quantized twice (lossy).

    python benchmarks/cpu_agent.py                        # bundled student, a fixed list of 20 questions
    python benchmarks/cpu_agent.py --run runs/demo3       # the run's config, tools and dev questions
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import cpu_model

from agentdistill.agent.prompt import system_prompt
from agentdistill.agent.runtime import AgentResult, agent_options, run_agents
from agentdistill.config import RunConfig, load_run_config
from agentdistill.llm.base import LLM, Completion, GenerationRequest
from agentdistill.tools import load_tools

QUESTIONS = [
    "What is 17 * 23?",
    "Convert 5 miles to km.",
    "How many days of annual leave does a worker get after one year?",
    "what is 15% of 4,200 AED",
    "I worked 10 hours of overtime at a basic wage of 6,000 AED a month. What is my overtime pay?",
    "How long is the probation period at most?",
    "thanks!",
    "What is the notice period for ending an unlimited contract?",
    "Convert 30 degrees Celsius to Fahrenheit.",
    "Is a domestic worker entitled to a weekly rest day?",
    "What is 2 to the power of 10?",
    "My salary is 8,000 AED and I worked 6 years. How much end of service gratuity do I get?",
    "hello",
    "How many days of sick leave on full pay?",
    "What is 1,250 divided by 25?",
    "What is the maternity leave in the UAE?",
    "Convert 100 kg to pounds.",
    "Can my employer keep my passport?",
    "What is the square root of 144?",
    "What does the law say about working hours during Ramadan?",
]
QUANTS = {"f16": "LLAMA_FTYPE_MOSTLY_F16", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}


class Timed:
    """Delegates to ``llm`` and adds up the seconds of its ``generate`` calls and the tokens they generated."""

    def __init__(self, llm: LLM, count_tokens: Any, render: Any):
        self.llm, self.count_tokens, self.render, self.name = llm, count_tokens, render, llm.name
        self.seconds, self.tokens = 0.0, 0

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        start = time.perf_counter()
        out = self.llm.generate(requests)
        self.seconds += time.perf_counter() - start
        for r, completions in zip(requests, out, strict=True):
            self.tokens += sum(self.count_tokens(c.text[len(r.prefix):]) for c in completions)
        return out




def quantized(source: Path, quant: str, cache: Path) -> Path:
    """``source`` quantized to ``quant`` by llama.cpp (once; cached by source name and quant)."""
    import llama_cpp

    out = cache / f"{source.stem}.{quant}.gguf"
    if not out.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, QUANTS[quant])
        params.allow_requantize = True
        params.nthread = len(os.sched_getaffinity(0))
        tmp = out.with_suffix(".tmp")
        if llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), params) != 0:
            raise RuntimeError(f"llama.cpp could not quantize {source} to {quant}")
        tmp.replace(out)
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def raw_speed(llm: Timed, system: str, fresh: Any) -> dict[str, float]:
    """Prefill tokens/s of the agent's system prompt and a question (``fresh()`` drops any cached prompt
    first), and decode tokens/s of a 64-token reply to a short prompt, the step grammar off in both."""
    agent = [{"role": "system", "content": system}, {"role": "user", "content": "What is 17 * 23?"}]
    fresh()
    start, seconds = time.perf_counter(), llm.seconds
    llm.generate([GenerationRequest(messages=agent, max_tokens=1)])
    prefill_s = time.perf_counter() - start
    story = [{"role": "user", "content": "Write a long story about a cat who learns to sail."}]
    tokens, seconds = llm.tokens, llm.seconds
    llm.generate([GenerationRequest(messages=story, max_tokens=64)])
    return {"prefill_tok_s": llm.count_tokens(llm.render(agent)) / prefill_s,
            "decode_tok_s": (llm.tokens - tokens) / (llm.seconds - seconds)}


def measure(llm: Timed, tools: Any, questions: list[str], options: dict[str, Any], lockstep: bool,
            fresh: Any) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    speed = raw_speed(llm, system_prompt(tools), fresh)
    llm.seconds, llm.tokens = 0.0, 0
    results: list[AgentResult] = []
    for q in questions:
        results.extend(r for _, r in run_agents(llm, tools, [q], **options))
    latencies = [r.latency_s for r in results]
    row: dict[str, Any] = {
        "tokens": llm.tokens, "model_s": llm.seconds, "tok_s": llm.tokens / llm.seconds if llm.seconds else None,
        "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95),
        "two_step": [r.latency_s for r in results if r.outcome.status == "answered" and r.outcome.steps == 2],
        "answered": sum(r.outcome.status == "answered" for r in results), "n": len(results),
        "mean_steps": statistics.mean(r.outcome.steps for r in results),
    }
    row["two_step_p50_s"] = percentile(row["two_step"], 50)
    row.update(speed)
    if lockstep:
        start = time.perf_counter()
        for _ in run_agents(llm, tools, questions, **options):
            pass
        row["lockstep_s"] = time.perf_counter() - start
    row["load"] = (load_before + os.getloadavg()[0]) / 2
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="A run directory: its config, tools and dev-split questions.")
    ap.add_argument("--model", default="smollm2-135m", help="The transformers model (registry name or adapter).")
    ap.add_argument("--gguf", type=Path, help="The source GGUF of the llama.cpp variants (default: the model's).")
    ap.add_argument("--quants", default="f16,q8_0,q4_k_m", help="llama.cpp variants, from: " + ", ".join(QUANTS))
    ap.add_argument("--threads", default="1,2", help="llama.cpp thread counts to measure q4_k_m with.")
    ap.add_argument("--lora", type=Path, help="Also a LoRA GGUF of `agentdistill export --lora` on its base file.")
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--free", action="store_true",
                    help="Decode without the step grammar (the run config's agent.constrain_tool_names off).")
    ap.add_argument("--bf16", action="store_true", help="Also run transformers in bf16 where the CPU lacks it.")
    ap.add_argument("--lockstep", action="store_true", help="Also time all questions advanced together.")
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "agentdistill" / "gguf-variants")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu_agent.json")
    args = ap.parse_args()

    import torch

    from agentdistill.llm.llamacpp import LlamaCppBackend
    from agentdistill.llm.local import LocalBackend
    from agentdistill.models.precision import cpu_native_bf16
    from agentdistill.models.registry import gguf_path, split_adapter
    from agentdistill.models.templates import render_prompt

    cfg = load_run_config(args.run) if args.run else RunConfig()
    tools = load_tools(cfg, args.run)
    questions = QUESTIONS
    if args.run:
        rows = [json.loads(line) for line in (args.run / "questions.jsonl").open()]
        questions = [q["text"] for q in rows if q.get("split") == "dev"] or questions
    questions = questions[: args.questions]
    options = {**agent_options(cfg.agent), "max_steps": args.max_steps, "max_tokens": args.max_tokens}
    if args.free:
        options.update(constrain_tool_names=False, constrain_arguments=False)
    source = args.gguf or gguf_path(split_adapter(args.model)[0])
    if source is None:
        sys.exit(f"{args.model} has no GGUF; pass --gguf")

    table: list[tuple[str, dict[str, Any] | str]] = []

    def report(label: str, row: dict[str, Any] | str) -> None:
        table.append((label, row))
        print(label, row if isinstance(row, str) else {k: v for k, v in row.items() if k != "two_step"}, flush=True)

    if not args.skip_transformers:
        dtypes = [("fp32", torch.float32)]
        if cpu_native_bf16() or args.bf16:
            dtypes.append(("bf16", torch.bfloat16))
        for label, dtype in dtypes:
            local = LocalBackend(args.model, batch_size=8, device="cpu", dtype=dtype)
            count = lambda text, tok=local.tokenizer: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
            render = lambda messages, tok=local.tokenizer: render_prompt(tok, messages)  # noqa: E731
            report(f"transformers {label} ({torch.get_num_threads()} threads)",
                   measure(Timed(local, count, render), tools, questions, options, args.lockstep, lambda: None))
            del local
        if not (cpu_native_bf16() or args.bf16):
            report("transformers bf16", "not supported here: no AVX512-BF16 or AMX (emulated bf16 is slower)")
    threads = [int(t) for t in args.threads.split(",")]

    def report_llama_cpp(label: str, path: Path, n: int, lockstep: bool) -> None:
        llm = LlamaCppBackend(path, n_threads=n)
        count = lambda text, m=llm.llama: len(m.tokenize(text.encode(), add_bos=False))  # noqa: E731
        report(f"llama.cpp {label} ({n} thread{'s' if n > 1 else ''})",
               measure(Timed(llm, count, llm.render), tools, questions, options, lockstep, llm.llama.reset))

    for quant in args.quants.split(","):
        path = quantized(source, quant, args.cache)
        for n in threads if quant == "q4_k_m" else threads[:1]:
            report_llama_cpp(quant, path, n, args.lockstep and quant == "q4_k_m" and n == threads[0])
    if args.lora:  # the LoRA GGUF runs on the base its .json names (llm.llamacpp.model_and_lora)
        for n in threads:
            report_llama_cpp(f"{args.lora.name} on its base", args.lora, n, False)

    print_table(table, args, source, len(questions))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"argv": sys.argv, "cpu": cpu_model(), "rows": dict(table)}, indent=1))


def print_table(table: list[tuple[str, dict[str, Any] | str]], args: argparse.Namespace, source: Path, n: int) -> None:
    base = next((row["decode_tok_s"] for label, row in table if label.startswith("transformers fp32")
                 and isinstance(row, dict)), None)
    print()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
          f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    grammar = "off" if args.free else "the run config's (agent.constrain_tool_names)"
    print(f"questions: {n}, max_steps {args.max_steps}, max_tokens {args.max_tokens}, step grammar {grammar}; "
          f"GGUF source: {source}")
    print()
    print("| backend | decode tok/s | x fp32 | prefill tok/s | agent tok/s | p50 s | p95 s | two-step p50 s (n) "
          "| answered | mean steps | lockstep s | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, row in table:
        if isinstance(row, str):
            print(f"| {label} | {row} | | | | | | | | | | |")
            continue

        def f(v: float | None, d: int = 2) -> str:
            return "-" if v is None else f"{v:.{d}f}"

        speedup = f"{row['decode_tok_s'] / base:.1f}x" if base else "-"
        print(f"| {label} | {f(row['decode_tok_s'], 1)} | {speedup} | {f(row['prefill_tok_s'], 0)} | "
              f"{f(row['tok_s'], 1)} | {f(row['p50_s'])} | {f(row['p95_s'])} | "
              f"{f(row['two_step_p50_s'])} ({len(row['two_step'])}) | {row['answered']}/{row['n']} | "
              f"{row['mean_steps']:.2f} | {f(row.get('lockstep_s'), 1)} | {row['load']:.2f} |")


if __name__ == "__main__":
    main()
