"""The step grammar (llm/grammar.py): every step the wire format renders for the tools is in it, what the
tools' schemas forbid is not, and every step a backend decodes under it (the local transformers backend, a
real llama.cpp server) parses with agent/wire.py and validates against its tool's schema."""

from __future__ import annotations

import llguidance
import pytest
import torch
from fault_server import MODEL, fault_server

from agentdistill.agent.figures import figure_values, named_units, stated_figures, without_units
from agentdistill.agent.prompt import example_call, system_prompt
from agentdistill.agent.runtime import run_agents
from agentdistill.agent.wire import STOP_SEQUENCES, parse_step, render_action, render_assistant
from agentdistill.config import RunConfig, ToolsConfig
from agentdistill.llm import make_llm
from agentdistill.llm.base import GenerationRequest
from agentdistill.llm.grammar import MAX_GRAMMARS, step_grammar
from agentdistill.llm.local import GrammarProcessor
from agentdistill.llm.openai_http import OpenAIBackend
from agentdistill.tools import load_tools

QUESTIONS = ["How much gratuity after 5 years on AED 10,000 a month?", "What is 17 * 23?", "Hello!",
             "How many days of annual leave do I get after 2 years?"]


@pytest.fixture(scope="module")
def tools():
    # the UAE example's tools: enums, defaults, integers and numbers
    return load_tools(RunConfig(tools=ToolsConfig(packs=["uae_labour", "general"])), None)


@pytest.fixture(scope="module")
def llm():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one intra-op thread: the machine is shared
    cfg = RunConfig()
    cfg.models.generation_bf16 = False
    yield make_llm("student", None, cfg, batch_size=4, device="cpu")
    torch.set_num_threads(threads)


def in_grammar(llm, grammar: str, text: str, complete: bool = True) -> bool:
    """Whether ``text``, tokenized by the student, is in ``grammar`` (with ``complete``: a whole step, after which
    the turn may end), as the local backend's matcher reads it."""
    matcher = llguidance.LLMatcher(llm.grammar_tokenizer(), llguidance.grammar_from("gbnf", grammar))
    ids = llm.tokenizer.encode(text, add_special_tokens=False)
    return matcher.consume_tokens(ids) and (not complete or matcher.is_accepting())


def steps_of(tools) -> list[str]:
    calls = [{"role": "assistant", "thought": f"I will use {t.name}.", "tool_calls": [example_call(t)]} for t in tools]
    answers = [{"role": "assistant", "thought": "Done.", "content": a} for a in
               ["The gratuity is AED 38,500 (Federal Decree-Law 33/2021, Art. 51).",
                "Two lines:\nthe second one is part of the answer.", "Hello! How can I help?"]]
    return [render_assistant(m) for m in calls + answers]


def test_every_step_the_wire_format_renders_for_the_tools_is_in_the_grammar(llm, tools):
    grammar = step_grammar(tools)
    for step in steps_of(tools):
        assert in_grammar(llm, grammar, step), step


def test_arguments_may_come_in_any_order(llm, tools):
    grammar = step_grammar(tools)
    call = {"name": "overtime_pay", "arguments": {"period": "night", "overtime_hours": 2,
                                                  "monthly_basic_salary": 9000, "shift_worker": False}}
    assert in_grammar(llm, grammar, "Thought: t\n" + render_action(call))


@pytest.mark.parametrize("step", [
    'Thought: t\nAction: {"name": "calculate_overtime_pay", "arguments": {}}',  # no such tool
    'Thought: t\nAction: {"name": "annual_leave", "arguments": {"length_of_service": "24"}}',  # a string for a number
    'Thought: t\nAction: {"name": "annual_leave", "arguments": {"overtime_pay": 25}}',  # another tool's argument
    'Thought: t\nAction: {"name": "calculate_gratuity", "arguments": {"length_of_service": 4.5}}',  # salary missing
    'Thought: t\nAction: {"name": "get_article", "arguments": {"law": "FDL", "article": 5.5}}',  # no integer
    'Thought: t\nAction: {"name": "annual_leave", "arguments": {"length_of_service": 2, "length_of_service": 3}}',
    'Thought: t\nAction: {"name": "overtime_pay", "arguments": {"monthly_basic_salary": 1, "overtime_hours": 2, '
    '"period": "weekend"}}',  # not one of the enum's values
    'Thought: t\nAction: {"name": "annual_leave", "arguments": {"length_of_service": 2, "service_unit": "weeks"}}',
    'Thought: t\nAction: 25 percent and 50 percent at night',  # not an action object
    "Thought: t\nAnswer: ",  # an empty answer
    "Thought: I have what I need.",  # a thought and no action or answer after it
    "Thought: t\nAnswer: 30 days.\nThought: and then",  # an answer that runs on into another step
    "Answer: 30 days.",  # no thought
])
def test_the_grammar_refuses_what_the_wire_format_or_the_schema_forbids(llm, tools, step):
    assert not in_grammar(llm, step_grammar(tools), step)


def test_a_step_holds_one_action_unless_more_are_allowed(llm, tools):
    one = 'Action: {"name": "annual_leave", "arguments": {"length_of_service": 24}}'
    two = f"Thought: t\n{one}\n{one}"
    assert not in_grammar(llm, step_grammar(tools), two)
    assert in_grammar(llm, step_grammar(tools, max_actions=2), two)
    assert not in_grammar(llm, step_grammar(tools, max_actions=2), f"{two}\n{one}")


def test_without_answer_a_step_must_call_a_tool(llm, tools):
    call, greeting = steps_of(tools)[0], "Thought: A greeting.\nAnswer: Hello! How can I help?"
    assert in_grammar(llm, step_grammar(tools, answer=False), call)
    assert not in_grammar(llm, step_grammar(tools, answer=False), greeting)
    assert in_grammar(llm, step_grammar(tools), greeting)


def test_without_argument_schemas_any_object_is_an_action_of_a_registered_tool(llm, tools):
    loose = step_grammar(tools, arguments=False)
    assert in_grammar(llm, loose, 'Thought: t\nAction: {"name": "annual_leave", "arguments": {"months": "24"}}')
    assert not in_grammar(llm, loose, 'Thought: t\nAction: {"name": "leave", "arguments": {}}')


def test_the_grammar_after_a_prefix_continues_the_thought_line(llm, tools):
    assert in_grammar(llm, step_grammar(tools, "Thought: I should"), " answer.\nAnswer: Hello!")
    assert in_grammar(llm, step_grammar(tools, "Tho"), "ught: t\nAnswer: Hello!")
    assert not in_grammar(llm, step_grammar(tools, "Thought: I should"), " go on.\nThought: t", complete=False)
    for prefix in ("Thought: t\n", "Answer:", "I think"):
        with pytest.raises(ValueError, match="prefix"):
            step_grammar(tools, prefix)


QUOTES = ["A worker earns 30 days a year (Federal Decree-Law 33/2021, Art. 29).", 'It is called "annual leave".',
          "Overtime pay: AED 93.75 for 3 hours."]


def test_with_quotes_an_answer_is_one_to_three_of_them_verbatim(llm, tools):
    quoting = step_grammar(tools, quotes=QUOTES)
    assert in_grammar(llm, quoting, f"Thought: t\nAnswer: {QUOTES[2]}")
    assert in_grammar(llm, quoting, f"Thought: t\nAnswer: {QUOTES[0]} {QUOTES[1]} {QUOTES[2]}")
    calculation = render_action({"name": "calculator", "arguments": {"expression": "1"}})
    assert in_grammar(llm, quoting, "Thought: t\n" + calculation)
    assert not in_grammar(llm, quoting, "Thought: t\nAnswer: A worker earns 30 days of leave a year.")  # a paraphrase
    assert not in_grammar(llm, quoting, "Thought: t\nAnswer: Overtime pay: AED 93.00 for 3 hours.")  # another figure
    assert not in_grammar(llm, quoting, f"Thought: t\nAnswer: {QUOTES[2]} " + " ".join(QUOTES))  # four
    assert not in_grammar(llm, quoting, f"Thought: t\nAnswer: {QUOTES[2]} I hope this helps.")
    one = step_grammar(tools, quotes=QUOTES, max_quotes=1)  # a reply of the nearest training questions is one
    assert in_grammar(llm, one, f"Thought: t\nAnswer: {QUOTES[1]}")
    assert not in_grammar(llm, one, f"Thought: t\nAnswer: {QUOTES[1]} {QUOTES[2]}")


def test_with_a_lead_a_quoted_answer_opens_with_one_of_its_sentences(llm, tools):
    leading = step_grammar(tools, quotes=QUOTES, lead=QUOTES[2:])
    assert in_grammar(llm, leading, f"Thought: t\nAnswer: {QUOTES[2]}")
    assert in_grammar(llm, leading, f"Thought: t\nAnswer: {QUOTES[2]} {QUOTES[0]}")
    assert not in_grammar(llm, leading, f"Thought: t\nAnswer: {QUOTES[0]} {QUOTES[2]}")  # the figure second
    assert not in_grammar(llm, leading, f"Thought: t\nAnswer: {QUOTES[0]}")


def action(name: str, **arguments) -> str:
    return "Thought: t\n" + render_action({"name": name, "arguments": arguments})


def test_with_figures_a_number_argument_is_one_the_conversation_stated(llm, tools):
    grammar = step_grammar(tools, figures=stated_figures(["2 years and 6 months on a basic of 5.5k: my gratuity?"]))
    assert in_grammar(llm, grammar, action("calculate_gratuity", monthly_basic_salary=5500, length_of_service=30,
                                           service_unit="months"))
    assert in_grammar(llm, grammar, action("calculate_gratuity", length_of_service=2.5, monthly_basic_salary=5500))
    assert not in_grammar(llm, grammar, action("calculate_gratuity", monthly_basic_salary=55000,
                                               length_of_service=30))  # a figure nobody stated
    assert not in_grammar(llm, grammar, action("annual_leave", length_of_service=24))
    assert in_grammar(llm, grammar, action("calculate_gratuity", monthly_basic_salary=5500, length_of_service=30,
                                           unpaid_absence_days=0))  # an optional number at its default
    assert in_grammar(llm, grammar, action("search_labour_law", query="gratuity for 30 months"))  # strings are free


def test_by_unit_a_figure_goes_only_to_an_argument_of_its_unit(llm, tools):
    said = ["Gratuity for 4.5 yrs of service and 28,750 AED basic, no unpaid leave?"]
    grammar = step_grammar(tools, figures=stated_figures(said), units=named_units(said, stated_figures(said)))
    right = dict(monthly_basic_salary=28750, length_of_service=4.5, service_unit="years")
    assert in_grammar(llm, grammar, action("calculate_gratuity", **right))
    assert in_grammar(llm, grammar, action("calculate_gratuity", **right, unpaid_absence_days=0))  # its default
    assert not in_grammar(llm, grammar, action("calculate_gratuity", **{**right, "monthly_basic_salary": 4.5}))
    assert not in_grammar(llm, grammar, action("calculate_gratuity", **{**right, "length_of_service": 28750}))
    assert not in_grammar(llm, grammar, action("calculate_gratuity", **{**right, "service_unit": "months"}))
    assert not in_grammar(llm, grammar, action("calculate_gratuity", **right, unpaid_absence_days=4.5))
    night = ["My basic salary is AED 38,750. What is my overtime pay for 1h between 10 pm and 4 am?"]
    grammar = step_grammar(tools, figures=stated_figures(night), units=named_units(night, stated_figures(night)))
    one_hour = action("overtime_pay", overtime_hours=1, monthly_basic_salary=38750, period="night")
    assert in_grammar(llm, grammar, one_hour)
    assert not in_grammar(llm, grammar, action("overtime_pay", overtime_hours=10, monthly_basic_salary=38750))
    bare = step_grammar(tools, figures=without_units(stated_figures(night)))  # the rule off: any stated figure
    assert in_grammar(llm, bare, action("overtime_pay", overtime_hours=10, monthly_basic_salary=38750))


def test_with_no_figures_stated_a_tool_that_needs_one_cannot_be_called(llm, tools):
    grammar = step_grammar(tools, figures=[])
    assert not in_grammar(llm, grammar, action("overtime_pay", overtime_hours=36, monthly_basic_salary=1800))
    assert not in_grammar(llm, grammar, action("get_article", law="Federal Decree-Law 33/2021", article=29))
    assert in_grammar(llm, grammar, action("search_labour_law", query="overtime pay on a rest day"))
    assert in_grammar(llm, grammar, "Thought: t\nAnswer: Hello!")


def test_with_no_figures_stated_a_tool_that_computes_on_figures_alone_cannot_be_called_with_its_defaults(llm, tools):
    # notice_period requires nothing: every number has a default, so "how fast must they pay my final dues?" was sent
    # to it; a search, whose number (top_k) is optional beside a required query, is still offered
    none = step_grammar(tools, figures=[])
    assert not in_grammar(llm, none, action("notice_period", contract_notice_days=30, monthly_wage=0))
    assert not in_grammar(llm, none, action("notice_period"))
    assert in_grammar(llm, none, action("search_labour_law", query="final dues", top_k=3))
    stated = step_grammar(tools, figures=stated_figures(["my contract says 60 days notice"]))
    assert in_grammar(llm, stated, action("notice_period", contract_notice_days=60))
    assert in_grammar(llm, step_grammar(tools, figures=None), action("notice_period"))  # the rule off
    # a date is a figure too: "how many days is the weekly rest day?" was sent to date_diff with two made-up dates
    assert not in_grammar(llm, none, action("date_diff", start_date="2022-01-01", end_date="2022-01-12"))
    dated = step_grammar(tools, figures=stated_figures(["days from 1 March 2024 to 2024-06-30?"]))
    assert in_grammar(llm, dated, action("date_diff", start_date="2024-03-01", end_date="2024-06-30"))


def test_a_refused_figure_is_not_offered_to_that_argument_of_that_tool(llm, tools):
    figures = stated_figures(["I'm on 8,500 basic, about 6 years. what's my EOSB?"])
    refused = step_grammar(tools, figures=figures, refused={"calculate_gratuity": {"unpaid_absence_days": {8500}}})
    again = action("calculate_gratuity", monthly_basic_salary=8500, length_of_service=6, unpaid_absence_days=8500)
    assert in_grammar(llm, step_grammar(tools, figures=figures), again)
    assert not in_grammar(llm, refused, again)
    assert in_grammar(llm, refused, action("calculate_gratuity", monthly_basic_salary=8500, length_of_service=6))
    assert in_grammar(llm, refused, action("convert_units", value=8500, from_unit="AED", to_unit="USD"))


def test_a_batch_may_hold_more_grammars_than_the_backend_keeps(llm, tools):
    # quoted answers give every conversation at its answer step a grammar of its own
    grammars = [step_grammar(tools, quotes=[f"Sentence {i}."]) for i in range(MAX_GRAMMARS + 2)]
    kept: dict[str, object] = {}
    processor = GrammarProcessor(llm.grammar_tokenizer(), grammars, 0, llm.eos_ids, kept)
    assert len(processor.matchers) == len(grammars) and len(kept) == MAX_GRAMMARS
    answer = llm.tokenizer.encode("Thought: t\nAnswer: Sentence 17.", add_special_tokens=False)
    assert [m.consume_tokens(answer) for m in processor.matchers] == [False] * 17 + [True]


def test_llama_cpp_reads_the_grammar(tools):
    llama_cpp = pytest.importorskip("llama_cpp")
    assert llama_cpp.LlamaGrammar.from_string(step_grammar(tools), verbose=False) is not None
    assert llama_cpp.LlamaGrammar.from_string(step_grammar(tools, quotes=QUOTES), verbose=False) is not None
    figures = stated_figures(["2 years and 6 months on a basic of 5.5k"])
    assert llama_cpp.LlamaGrammar.from_string(step_grammar(tools, figures=figures), verbose=False) is not None


# Phrasings a person writes: figures nobody wrote as digits ("20k", "four and a half years"), which the retired
# rule that took numbers only from the user's text refused, and a service in a unit other than the tool's default.
# The grammar constrains the type, and with the figures stated only to those, read as people write them.
NATURAL = [
    ("My salary is 20k and I worked 11 years, what's my end of service?",
     "calculate_gratuity", {"monthly_basic_salary": 20000, "length_of_service": 11, "service_unit": "years"}),
    ("I'm resigning after four and a half years on AED12,000",
     "calculate_gratuity", {"monthly_basic_salary": 12000, "length_of_service": 4.5, "service_unit": "years"}),
    ("How much vacation after 2 years?", "annual_leave", {"length_of_service": 2, "service_unit": "years"}),
]


@pytest.mark.parametrize("figures", [None, "bare", "by unit"])
@pytest.mark.parametrize(("question", "tool", "arguments"), NATURAL)
def test_natural_phrasing_decodes_into_the_right_arguments(llm, tools, question, tool, arguments, figures):
    """Force-feed the right reply through the logits processor the local backend builds: no token of it is
    refused, and the turn may end after it."""
    reply = f"Thought: I will compute it with {tool}.\n" + render_action({"name": tool, "arguments": arguments})
    ids = llm.tokenizer.encode(reply, add_special_tokens=False)
    stated = stated_figures([question])
    by_unit = figures == "by unit"
    grammar = step_grammar(tools, figures=None if figures is None else stated if by_unit else without_units(stated),
                           units=named_units([question], stated) if by_unit else None)
    processor = GrammarProcessor(llm.grammar_tokenizer(), [grammar], 0, llm.eos_ids)
    vocab = llm.model.get_output_embeddings().weight.shape[0]
    for k in range(len(ids) + 1):
        scores = processor(torch.tensor([ids[:k]]), torch.zeros(1, vocab))
        if k < len(ids):
            assert scores[0, ids[k]] == 0, (llm.tokenizer.decode(ids[:k]), llm.tokenizer.decode([ids[k]]))
    assert all(scores[0, i] == 0 for i in llm.eos_ids)  # the turn may end here
    assert torch.isinf(scores[0]).sum() == vocab - len(llm.eos_ids)  # and only end
    assert parse_step(reply).tool_calls == [{"name": tool, "arguments": arguments}]


def check_step(llm, grammar: str, tools, text: str, finish: str) -> None:
    """A finished step parses and its action validates; one cut by the token limit is a start of a step."""
    if finish == "length":
        assert in_grammar(llm, grammar, text, complete=False), text
        return
    step = parse_step(text)
    assert text.startswith("Thought:"), text
    for call in step.tool_calls:
        assert tools.validate(call["name"], call["arguments"]) is None, text


def test_every_step_the_local_student_decodes_under_the_grammar_parses_and_validates(llm, tools):
    grammar = step_grammar(tools)
    system = {"role": "system", "content": system_prompt(tools)}
    greedy = [GenerationRequest(messages=[system, {"role": "user", "content": q}], stop=list(STOP_SEQUENCES),
                                max_tokens=64, grammar=grammar) for q in QUESTIONS]
    sampled = [GenerationRequest(messages=[system, {"role": "user", "content": q}], stop=list(STOP_SEQUENCES),
                                 max_tokens=64, grammar=grammar, temperature=0.7, n=2) for q in QUESTIONS[:2]]
    torch.manual_seed(0)
    outs = llm.generate(greedy + sampled)
    completions = [c for out in outs for c in out]
    for c in completions:
        check_step(llm, grammar, tools, c.text, c.finish_reason)
    assert sum(c.finish_reason == "stop" for c in completions) >= 3  # whole steps among them: not checked vacuously


def test_the_runtime_decodes_every_step_of_a_conversation_under_the_grammar(llm, tools):
    results = dict(run_agents(llm, tools, QUESTIONS[:2], max_steps=2, max_tokens=64, constrain_tool_names=True,
                              constrain_arguments=True, first_thought_prefix="Thought: I"))
    for result in results.values():
        assistant = [m for m in result.messages if m["role"] == "assistant"]
        assert assistant and result.raw_steps[0].startswith("Thought: I")  # the prefilled prefix, then the grammar
        for m in assistant:
            for call in m.get("tool_calls", []):
                assert tools.validate(call["name"], call["arguments"]) is None


def test_with_figures_from_the_conversation_every_number_the_runtime_passes_was_stated(llm, tools):
    results = dict(run_agents(llm, tools, [QUESTIONS[0], QUESTIONS[3]], max_steps=2, max_tokens=64,
                              constrain_tool_names=True, constrain_arguments=True, figures_from_conversation=True,
                              first_thought_prefix="Thought: I"))
    defaults = {spec["name"]: {k: p.get("default") for k, p in spec["parameters"]["properties"].items()}
                for spec in tools.specs()}
    numbers = []
    for result in results.values():
        said = [m["content"] for m in result.messages if m["role"] in ("user", "tool")]
        for m in result.messages:
            for call in m.get("tool_calls", []):
                for key, value in call["arguments"].items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        numbers.append(value)
                        allowed = [*figure_values(stated_figures(said)), defaults[call["name"]][key]]
                        assert value in allowed, (call, said[0])
    assert numbers  # the untuned student does call a tool with figures: not checked vacuously


def test_a_server_that_is_not_llama_cpp_is_sent_no_grammar(tools):
    # an unknown field is an error to some servers (OpenAI's own); this one answers neither /openapi.json nor /props
    with fault_server(["text:Thought: t\nAnswer: a"]) as server:
        backend = OpenAIBackend(server.url, MODEL, max_retries=0)
        backend.generate([GenerationRequest(messages=[{"role": "user", "content": "Hi"}], grammar=step_grammar(tools))])
        assert backend._takes_grammar is False and "grammar" not in server.requests[0]


@pytest.mark.llamacpp
def test_every_step_a_llama_cpp_server_decodes_under_the_grammar_parses_and_validates(llamacpp_server, llm, tools):
    server = make_llm(llamacpp_server.url, None, RunConfig(), served_model=llamacpp_server.model)
    grammar = step_grammar(tools)
    system = {"role": "system", "content": system_prompt(tools)}
    requests = [GenerationRequest(messages=[system, {"role": "user", "content": q}], stop=list(STOP_SEQUENCES),
                                  max_tokens=48, grammar=grammar) for q in QUESTIONS]
    constrained = server.generate(requests)
    assert server._takes_grammar is True  # the backend saw a llama.cpp server and sent the grammar
    for (c,) in constrained:
        check_step(llm, grammar, tools, c.text, c.finish_reason)
    for r in requests:
        r.grammar = None
    free = [c.text for (c,) in server.generate(requests)]
    assert free != [c.text for (c,) in constrained]  # the grammar changed what the server wrote
