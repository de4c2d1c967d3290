"""The in-process llama.cpp backend on the bundled SmolLM2 GGUF: sampling, stops, prefill, the agent loop.

What an untuned 135M model says does not matter; that the backend does what the LLM interface promises,
with the prompt the transformers backend would build, does, and that under the step grammar every step
it writes parses.
"""

from __future__ import annotations

import json

import pytest

from agentdistill.agent.runtime import run_agents
from agentdistill.agent.wire import STOP_SEQUENCES, WireFormatError, parse_step
from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.llm import make_llm
from agentdistill.llm.base import GenerationRequest
from agentdistill.records import Trace
from agentdistill.tools import load_tools

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.llamacpp

STORY = [{"role": "user", "content": "Write a long story about a cat who learns to sail."}]


@pytest.fixture(scope="module")
def llm():
    from agentdistill.llm.llamacpp import LlamaCppBackend

    backend = make_llm("smollm2-135m@gguf", None, RunConfig())
    assert isinstance(backend, LlamaCppBackend)
    return backend


def greedy(llm, messages, max_tokens=24, **kw):
    (completions,) = llm.generate([GenerationRequest(messages=messages, max_tokens=max_tokens, **kw)])
    return completions[0]


def test_prompt_is_the_transformers_backends(llm):
    from agentdistill.models.registry import load_tokenizer
    from agentdistill.models.templates import render_prompt

    messages = [{"role": "system", "content": "You are an agent. Überstunden: 125%."},
                {"role": "user", "content": "What is 17 * 23?"},
                {"role": "assistant", "thought": "I should calculate.",
                 "tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]},
                {"role": "tool", "name": "calculator", "content": "391"}]
    tok = load_tokenizer("smollm2-135m")
    expected = tok(render_prompt(tok, messages, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    got = llm._sequences[0].tokenize(llm.render(messages))
    assert got == expected
    assert "<|im_start|>observation\n" in llm.render(messages)  # the project's template, not the GGUF's


def test_greedy_is_deterministic_and_stops_at_a_stop_sequence(llm):
    full = greedy(llm, STORY)
    assert full.text.strip() and greedy(llm, STORY).text == full.text
    word = full.text.split()[len(full.text.split()) // 2]  # a word from the middle of the reply
    cut = greedy(llm, STORY, stop=[word])
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(word)]


def test_n_samples_differ_and_each_honours_the_stop(llm):
    req = GenerationRequest(messages=[{"role": "user", "content": "Count from one to twenty: one, two,"}],
                            stop=["seven", "Seven"], max_tokens=24, temperature=1.0, n=3)
    (completions,) = llm.generate([req])
    assert len(completions) == 3
    assert len({c.text for c in completions}) > 1  # each sample draws its own random numbers
    for c in completions:
        assert "seven" not in c.text.lower()
        assert c.finish_reason in ("stop", "length")
        assert c.elapsed_s is not None and c.elapsed_s > 0


def test_a_batch_runs_on_parallel_sequences_in_order_with_the_same_greedy_replies():
    from agentdistill.llm.llamacpp import LlamaCppBackend

    prompts = [[{"role": "user", "content": f"Name {n} fruits."}] for n in ("two", "three", "four", "five", "six")]
    requests = [GenerationRequest(messages=m, max_tokens=12) for m in prompts]
    one = LlamaCppBackend(make_llm("smollm2-135m@gguf", None, RunConfig()).path, n_instances=1, n_threads=1)
    two = LlamaCppBackend(one.path, n_instances=2, n_threads=1)
    alone = [c[0].text for c in one.generate(requests)]
    side_by_side = [c[0].text for c in two.generate(requests)]
    assert len(two._sequences) == 2  # the batch filled both
    assert side_by_side == alone  # each reply belongs to its own request, greedy alike on either sequence
    assert len({*alone}) > 1


def test_threads_come_from_the_environment_when_set(monkeypatch):
    from agentdistill.llm.llamacpp import THREADS_ENV, default_instances, default_threads, usable_cores

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert default_threads() == max(1, usable_cores() // 2)
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_threads() == 3
    assert default_instances(usable_cores()) == 1  # one sequence already takes every core
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(UserError, match=THREADS_ENV):
        default_threads()


def test_finish_reason_is_length_at_max_tokens(llm):
    c = greedy(llm, STORY, max_tokens=5)
    assert c.finish_reason == "length"
    assert 1 <= len(llm.llama.tokenize(c.text.encode(), add_bos=False)) <= 6  # retokenizing may split one more


def test_end_of_turn_ends_the_reply(llm):
    c = greedy(llm, [{"role": "user", "content": "What is the capital of France?"}], max_tokens=64)
    assert c.finish_reason == "stop"
    assert "<|im_end|>" not in c.text and "<|im_start|>" not in c.text


def test_prefix_is_prefilled_and_continued(llm):
    full = greedy(llm, STORY, max_tokens=20)
    ids = llm.llama.tokenize(full.text.encode(), add_bos=False)
    prefix = llm.llama.detokenize(ids[:8]).decode()
    # the model continues from the prefix as it continued its own first 8 tokens: the prefix was in its prompt
    c = greedy(llm, STORY, max_tokens=12, prefix=prefix)
    assert c.text.startswith(prefix)
    assert c.text == full.text
    odd = greedy(llm, STORY, max_tokens=8, prefix="Zebra crossing report:")
    assert odd.text.startswith("Zebra crossing report:") and odd.text != full.text


def test_agent_loop_runs_through_the_backend(llm):
    cfg = RunConfig()
    tools = load_tools(cfg, None)
    questions = ["What is 17 * 23? Use the calculator.", "Convert 5 miles to km."]
    results = dict(run_agents(llm, tools, questions, max_steps=2, max_tokens=48))
    assert sorted(results) == [0, 1]
    assert any(text.strip() for r in results.values() for text in r.raw_steps)
    for i, r in results.items():
        assert r.outcome.status in {"answered", "max_steps", "loop", "parse_error"}, r.error
        assert 1 <= r.outcome.steps <= 2 and len(r.raw_steps) == r.outcome.steps
        assert r.latency_s > 0
        assert r.messages[1] == {"role": "user", "content": questions[i]}
        Trace(id=str(i), question_id=str(i), tools=tools.specs(), messages=r.messages, teacher=llm.name,
              outcome=r.outcome)


def test_make_llm_takes_a_gguf_path_relative_to_the_run(tmp_path):
    from agentdistill.llm.llamacpp import LlamaCppBackend
    from agentdistill.models.registry import gguf_path

    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "student.gguf").symlink_to(gguf_path("smollm2-135m"))
    backend = make_llm("export/student.gguf", tmp_path, RunConfig())
    assert isinstance(backend, LlamaCppBackend) and backend.name == "export/student.gguf"
    assert backend.family == "chatml"
    with pytest.raises(UserError, match="does not exist"):
        make_llm("export/missing.gguf", tmp_path, RunConfig())


def _adapter_gguf(path, **fields) -> None:
    """A GGUF with a LoRA adapter's header and one small tensor, as convert_lora_to_gguf.py writes them."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if fields:
        path.with_suffix(".json").write_text(json.dumps(fields))


def test_a_lora_gguf_runs_on_the_base_its_json_names(tmp_path):
    from agentdistill.llm.llamacpp import model_and_lora
    from agentdistill.models.registry import gguf_path

    base = tmp_path / "base.gguf"
    base.symlink_to(gguf_path("smollm2-135m"))
    assert model_and_lora(base) == (base, None)  # a model GGUF runs on its own
    _adapter_gguf(tmp_path / "agent-lora-f16.gguf", base_gguf="base.gguf")
    assert model_and_lora(tmp_path / "agent-lora-f16.gguf") == (base, tmp_path / "agent-lora-f16.gguf")


def test_a_lora_gguf_without_its_base_says_what_is_missing(tmp_path):
    from agentdistill.llm.llamacpp import model_and_lora

    _adapter_gguf(tmp_path / "alone.gguf")
    with pytest.raises(UserError, match="nothing names the base model") as err:
        model_and_lora(tmp_path / "alone.gguf")
    assert "alone.json" in err.value.hint
    _adapter_gguf(tmp_path / "moved.gguf", base_gguf="gone.gguf")
    with pytest.raises(UserError, match="gone.gguf of the LoRA adapter .* does not exist"):
        model_and_lora(tmp_path / "moved.gguf")


def test_a_truncated_gguf_is_named_as_unreadable(tmp_path):
    from agentdistill.llm.llamacpp import model_and_lora
    from agentdistill.models.registry import gguf_path

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf_path("smollm2-135m").read_bytes()[:4096])
    with pytest.raises(UserError, match="cut.gguf is not a readable GGUF file"):
        model_and_lora(cut)


def test_every_step_parses_under_the_step_grammar(llm):
    cfg = RunConfig()
    tools = load_tools(cfg, None)
    questions = ["What is 17 * 23?", "Convert 5 miles to km.", "hello"]
    results = dict(run_agents(llm, tools, questions, max_steps=2, max_tokens=200, constrain_tool_names=True,
                              constrain_arguments=True, first_thought_prefix="Thought: I"))
    assert sorted(results) == [0, 1, 2]
    for r in results.values():
        assert r.parse_errors == 0, r.raw_steps
        assert r.raw_steps[0].startswith("Thought: I")
        for text in r.raw_steps:
            step = parse_step(text)
            for call in step.tool_calls:
                assert call["name"] in tools.names()
        assert r.outcome.status in {"answered", "max_steps", "loop"}


def test_grammar_changes_what_is_decoded(llm):
    from agentdistill.agent.prompt import system_prompt
    from agentdistill.llm.grammar import step_grammar

    tools = load_tools(RunConfig(), None)
    messages = [{"role": "system", "content": system_prompt(tools)}, {"role": "user", "content": "Tell me a joke."}]
    # the untuned model answers this without the wire format; under the grammar it must write a step
    free = greedy(llm, messages, max_tokens=120, stop=list(STOP_SEQUENCES))
    bound = greedy(llm, messages, max_tokens=120, stop=list(STOP_SEQUENCES), grammar=step_grammar(tools))
    with pytest.raises(WireFormatError):
        parse_step(free.text)
    assert bound.text.startswith("Thought: ") and ("\nAction: {" in bound.text or "\nAnswer: " in bound.text)
    if bound.finish_reason == "stop":  # an answer may run on for lines until max_tokens; a finished step parses
        parse_step(bound.text)


def test_grammar_checked_after_the_pick_decodes_what_llama_cpps_grammar_sampler_decodes(llm):
    """The backend asks the grammar only about the token the model picked, and about the whole vocabulary when
    that one is refused; greedy, that must give llama.cpp's grammar-first tokens exactly, refusals included."""
    import llama_cpp

    from agentdistill.agent.prompt import system_prompt
    from agentdistill.llm import llamacpp
    from agentdistill.llm.grammar import step_grammar

    tools = load_tools(RunConfig(), None)
    grammar = step_grammar(tools)
    refused = []
    original = llamacpp.CheckedGrammarSampler._allowed

    def counted(self, tokens, logits):
        allowed = original(self, tokens, logits)
        refused.append(len(allowed) == 1 and not allowed[0])
        return allowed

    sequence = llm._sequences[0]
    vocab = sequence.llama._model.vocab
    for question in ("Tell me a joke.", "What is 17 * 23?", "How many days of leave after 2 years?"):
        messages = [{"role": "system", "content": system_prompt(tools)}, {"role": "user", "content": question}]
        prompt = sequence.tokenize(llm.render(messages))
        reference: list[int] = []
        sequence.llama.next_sampler = None  # llama-cpp-python's own chain: the grammar over every token, then greedy
        for token in sequence.llama.generate(prompt, temp=0.0, repeat_penalty=1.0,
                                             grammar=llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)):
            if llama_cpp.llama_vocab_is_eog(vocab, token) or len(reference) == 60:
                break
            reference.append(token)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(llamacpp.CheckedGrammarSampler, "_allowed", counted)
            got = greedy(llm, messages, max_tokens=60, grammar=grammar)
        assert got.text == sequence.llama.detokenize(reference).decode("utf-8", errors="ignore")
    assert any(refused), "no pick was refused: the whole-vocabulary path went untested"
