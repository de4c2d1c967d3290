"""The offline rule teacher: routing from wording alone, grounded answers, and real runs through the runtime.

Runs use the real general tool pack (no corpus needed) and the real ReAct runtime.
"""

from __future__ import annotations

import pytest

from agentdistill.agent.runtime import run_agents
from agentdistill.agent.wire import parse_step
from agentdistill.config import RunConfig, ToolsConfig
from agentdistill.domains.uae_labour.citations import extract_citations
from agentdistill.domains.uae_labour.teacher import Call, Plan, RuleTeacher, best_sentences, route
from agentdistill.llm.base import LLM, GenerationRequest
from agentdistill.tools import load_tools


@pytest.mark.parametrize(
    ("question", "tools", "args"),
    [
        ("I earn a basic salary of AED 12,000 and have worked here for 7 years. What gratuity am I owed?",
         ["calculate_gratuity"], {"monthly_basic_salary": 12000, "length_of_service": 7, "service_unit": "years"}),
        ("What is the end-of-service gratuity for 6.5 years of service at a basic wage of AED 9,250?",
         ["calculate_gratuity"], {"monthly_basic_salary": 9250, "length_of_service": 6.5, "service_unit": "years"}),
        ("How much annual leave do I get after 9 months of service?", ["annual_leave"],
         {"length_of_service": 9, "service_unit": "months"}),
        # the service as the question states it: a figure and its unit, "2 years and 6 months" in months
        ("My basic is AED 9,000 and I have 30 months of service. What gratuity am I owed?", ["calculate_gratuity"],
         {"monthly_basic_salary": 9000, "length_of_service": 30, "service_unit": "months"}),
        ("What gratuity after 2 years and 6 months on a basic salary of AED 9,000?", ["calculate_gratuity"],
         {"monthly_basic_salary": 9000, "length_of_service": 30, "service_unit": "months"}),
        ("How much annual leave after 2 years of service?", ["annual_leave"],
         {"length_of_service": 2, "service_unit": "years"}),
        ("I worked 12 extra hours between 10 pm and 4 am on a basic salary of AED 15,500. How much overtime?",
         ["overtime_pay"], {"monthly_basic_salary": 15500, "overtime_hours": 12, "period": "night"}),
        ("How much overtime pay do I owe for 4 hours on the weekly rest day at a basic salary of AED 6,000?",
         ["overtime_pay"], {"overtime_hours": 4, "period": "rest_day"}),
        ("I have a 60-day notice in my contract, earn AED 9,000 a month and have served 10 days of it. Pay in lieu?",
         ["notice_period"], {"contract_notice_days": 60, "monthly_wage": 9000, "days_already_served": 10}),
        ("What is 18% of 4,500?", ["calculator"], {"expression": "18% of 4,500"}),
        ("What is 1,200 divided by 4?", ["calculator"], {"expression": "1,200 / 4"}),
        ("How many pounds are in 25 kg?", ["convert_units"], {"value": 25, "from_unit": "kg", "to_unit": "pounds"}),
        ("Convert 12 km to miles.", ["convert_units"], {"value": 12, "from_unit": "km", "to_unit": "miles"}),
        ("How many days are there between 2024-01-15 and 2024-06-30?", ["date_diff"],
         {"start_date": "2024-01-15", "end_date": "2024-06-30"}),
        ("What date is 30 days before 2025-06-01?", ["add_days"], {"date": "2025-06-01", "days": -30}),
        ("Show me Article 43 of the labour law.", ["get_article"], {"law": "labour law", "article": 43}),
        ("What does Cabinet Resolution 1/2022, Art. 19 say?", ["get_article"],
         {"law": "Cabinet Resolution 1/2022", "article": 19}),
        ("What is in Art. 9 of Federal Decree-Law 33/2021?", ["get_article"],
         {"law": "Federal Decree-Law 33/2021", "article": 9}),
        ("Can you explain the rules on probation period?", ["search_labour_law"], {"query": "probation period"}),
        ("What does the law say about overtime pay, and what is the pay for 3 hours on a basic salary of AED 6,000?",
         ["search_labour_law", "overtime_pay"], {"query": "overtime pay"}),
    ],
)
def test_the_tool_and_arguments_follow_from_the_wording(question, tools, args):
    plan = route(question)
    assert plan.tools == tools
    first = plan.calls[0].arguments
    assert {k: first[k] for k in args} == args


@pytest.mark.parametrize(("message", "reply"), [
    ("Hello, who am I talking to?", "greeting"), ("Thanks, that helps a lot.", "thanks"),
    ("Great, thanks for explaining the gratuity.", "thanks"), ("What is the capital of Australia?", "decline"),
    ("Could you make up a bedtime story for my kids?", "decline"),
])
def test_messages_that_need_no_tool_get_a_direct_reply(message, reply):
    plan = route(message)
    assert plan.calls == [] and plan.reply == reply


def test_a_plan_only_uses_tools_that_exist():
    q = "My basic salary is AED 8,000 and I worked 5 years; what gratuity do I get?"
    assert route(q, tool_names={"calculate_gratuity"}).tools == ["calculate_gratuity"]
    assert route(q, tool_names={"calculator"}).tools == []


def test_free_form_domain_questions_are_searched_with_their_content_words():
    plan = route("Is my employer allowed to keep my passport?")
    assert plan.tools == ["search_labour_law"]
    assert plan.calls[0].arguments["query"] == "employer allowed keep passport"


OBSERVATION = (
    "[1] Leave > Sick leave: 90 days a year (Federal Decree-Law 33/2021, Art. 31): ## Sick leave: 90 days a year "
    "A worker past probation gets up to 90 days of sick leave a year. The first 15 days are on full pay, the next 30 "
    "on half pay and the rest unpaid (Federal Decree-Law 33/2021, Art. 31). Leave must be reported within three "
    "days ...\n"
    "[2] Leave > Maternity leave (Federal Decree-Law 33/2021, Art. 30): ## Maternity leave A woman gets 60 days of "
    "maternity leave, 45 on full pay and 15 on half pay (Federal Decree-Law 33/2021, Art. 30)."
)


def test_answers_come_from_the_best_passage_and_cite_only_what_was_observed():
    text, cite = best_sentences(OBSERVATION, "sick leave pay")
    assert "full pay" in text and "half pay" in text
    assert "within three days" not in text  # the sentence the length limit cut off is never used
    observed = extract_citations(OBSERVATION)
    assert extract_citations(text + " " + cite) <= observed
    text, _ = best_sentences(OBSERVATION, "maternity leave for women")
    assert "60 days" in text


def test_a_requested_article_is_preferred_when_choosing_sentences():
    text, _ = best_sentences(OBSERVATION, "what does the law say", must_cite="FDL 33/2021 Art. 30")
    assert "FDL 33/2021 Art. 30" in extract_citations(text)


@pytest.fixture(scope="module")
def general_tools():
    return load_tools(RunConfig(tools=ToolsConfig(packs=["general"])), None)


def test_the_rule_teacher_runs_real_tools_through_the_runtime(general_tools):
    teacher = RuleTeacher(tool_names=general_tools.names())
    assert isinstance(teacher, LLM)
    questions = ["What is 18% of 4,500?", "Convert 5 miles to km.", "What date is 45 days after 2025-03-01?",
                 "Hello!", "Who painted the Mona Lisa?"]
    results = dict(run_agents(teacher, general_tools, questions, max_steps=3))
    assert all(r.outcome.status == "answered" for r in results.values())
    assert "810" in results[0].outcome.answer
    assert "8.04672" in results[1].outcome.answer
    assert "2025-04-15" in results[2].outcome.answer
    for i in (3, 4):  # no tool, one step
        assert [m["role"] for m in results[i].messages] == ["system", "user", "assistant"]
    assert "can't" in results[4].outcome.answer or "outside" in results[4].outcome.answer


def test_thoughts_are_one_sentence_and_varied(general_tools):
    teacher = RuleTeacher(tool_names=general_tools.names())
    questions = [f"What is {a} * {b}?" for a, b in [(12, 7), (140, 3), (9, 9), (31, 4), (77, 5), (16, 16)]]
    thoughts = {r.messages[2]["thought"] for _, r in run_agents(teacher, general_tools, questions, max_steps=3)}
    assert len(thoughts) >= 2
    assert all(t.count(". ") == 0 and t.endswith(".") for t in thoughts)


FIRST_STEP_QUESTIONS = [
    *(f"{who}What is the end-of-service gratuity for {n} years of service at a basic wage of AED 9,250?"
      for who, n in [("", 6), ("I'm an employer. ", 7), ("For our HR policy: ", 8)]),
    *(f"{who}How much annual leave do I get after {n} months of service?" for who, n in [("", 9), ("Hi. ", 20)]),
    *(f"{who}What is {a} * {b}?" for who, a, b in [("", 12, 7), ("Quick one: ", 140, 3), ("Please: ", 9, 9)]),
    *(f"{who}Convert {n} km to miles." for who, n in [("", 12), ("Please ", 5)]),
    *(f"{who}Show me Article {n} of the labour law." for who, n in [("", 43), ("As an employer: ", 12),
                                                                   ("For our payroll team, ", 51)]),
    *(f"{who}Can you explain the rules on probation period?" for who in ["", "I'm a nanny. ", "Quick question: "]),
    "What does the law say about overtime pay, and what is the pay for 3 hours on a basic salary of AED 6,000?",
    "Hello, who am I talking to?", "Thanks, that helps a lot.", "What is the capital of Australia?",
    "Could you make up a bedtime story for my kids?", "Great, thanks for explaining the gratuity.",
]


DOMAIN_CALCULATORS = {"calculate_gratuity", "annual_leave", "overtime_pay", "notice_period"}


def test_a_first_thought_opens_with_a_word_of_its_own_decision():
    # a student decoding greedily then decides at the thought's first token (teacher.py, _THOUGHTS); the
    # domain calculators share one word, and the topic after it picks the calculator
    teacher = RuleTeacher()
    decisions_of: dict[str, set[str]] = {}
    for question in FIRST_STEP_QUESTIONS:
        step = parse_step(teacher.next_step([{"role": "user", "content": question}]))
        tool = step.tool_calls[0]["name"] if step.tool_calls else "no tool"
        decision = "domain calculation" if tool in DOMAIN_CALCULATORS else tool
        decisions_of.setdefault(step.thought.split()[0].strip(":,;"), set()).add(decision)
    assert all(len(decisions) == 1 for decisions in decisions_of.values()), decisions_of
    # domain calculation (a two-tool question's too: it computes first), calculator, units, article, search,
    # no tool
    assert len(decisions_of) == 6


def test_a_two_tool_plan_computes_first_then_reads_and_answers_with_the_figure_first():
    # read first, the plan's calculator was the step students left out (they answered after any search);
    # computed first, its first step is every calculation's, and the figure asked for is never lost
    teacher = RuleTeacher()
    messages = [{"role": "user", "content": "What does the law say about overtime pay, and what is the pay for 3 "
                                            "hours on a basic salary of AED 6,000?"}]
    first = parse_step(teacher.next_step(messages))
    assert first.thought.startswith("Computing") and "next:" not in first.thought
    assert first.tool_calls[0]["name"] == "overtime_pay"
    assert first.tool_calls[0]["arguments"]["overtime_hours"] == 3
    computed = "Overtime pay: AED 93.75 = 3 h x hourly basic wage AED 25.00 (6,000 / 30 / 8) x 1.25."
    messages += [{"role": "assistant", "content": "..."}, {"role": "tool", "name": "overtime_pay", "content": computed}]
    second = parse_step(teacher.next_step(messages))
    assert second.thought.startswith("Another") and second.thought.endswith("next: the answer.")
    assert second.tool_calls[0]["name"] == "search_labour_law"
    passage = ("[1] Working Hours and Overtime > Overtime (Federal Decree-Law 33/2021, Art. 19): Overtime is paid "
               "at the hourly basic wage plus 25% (Federal Decree-Law 33/2021, Art. 19).")
    messages += [{"role": "assistant", "content": "..."},
                 {"role": "tool", "name": "search_labour_law", "content": passage}]
    answer = teacher.next_step(messages)
    assert answer.split("Answer: ", 1)[1].startswith("Overtime pay: AED 93.75")
    one = parse_step(teacher.next_step([{"role": "user", "content": "Can you explain the rules on probation?"}]))
    assert one.thought.startswith("Searching") and one.thought.endswith("next: the answer.")


def test_a_domain_calculation_does_not_open_with_a_word_of_its_question():
    # a question that asks to explain a topic and then compute names that topic too: a first word taken
    # from the topic ("Gratuity") sent held-out two-tool questions to the calculator before the search
    teacher = RuleTeacher()
    questions = ["What gratuity is owed for 5 years at AED 9,000 basic?",
                 "How many days of annual leave does a worker with 19 months of service get?",
                 "What overtime do we owe for 2 hours on a basic wage of AED 13,500?",
                 "My contract says 30 days notice and my monthly wage is AED 5,500. What do I owe if I leave now?"]
    for question in questions:
        step = parse_step(teacher.next_step([{"role": "user", "content": question}]))
        assert step.tool_calls[0]["name"] in DOMAIN_CALCULATORS
        assert step.thought.split()[0].strip(":,;").lower() not in question.lower(), step.thought


CALCULATION_QUESTIONS = [
    *(f"What is the end-of-service gratuity for {n} years of service at a basic wage of AED 9,250?" for n in (3, 6, 9)),
    *(f"How much annual leave do I get after {n} months of service?" for n in (9, 20, 40)),
    *(f"What overtime do we owe for {n} hours on a basic wage of AED 13,500?" for n in (2, 5, 7)),
    *(f"My contract says {n} days notice and my monthly wage is AED 5,500. What do I owe if I leave now?"
      for n in (30, 60, 90)),
    *(f"What is {a} * {b}?" for a, b in [(12, 7), (140, 3), (9, 9)]),
    *(f"Convert {n} km to miles." for n in (12, 5, 40)),
    *(f"How many days are there between 2019-11-{d} and 2022-04-12?" for d in (10, 17, 27)),
    *(f"What date is {n} days after 2025-03-01?" for n in (45, 10, 100)),
]


def test_a_calculation_thought_names_its_tool_at_once_after_words_of_its_own():
    # with frames shared across tools the student took the right first word, then another tool's frame and
    # its tool ("Counting the days between these dates is what calculate_gratuity does.")
    teacher = RuleTeacher()
    tools_after: dict[str, set[str]] = {}
    for question in CALCULATION_QUESTIONS:
        step = parse_step(teacher.next_step([{"role": "user", "content": question}]))
        tool = step.tool_calls[0]["name"]
        words = step.thought.rstrip(".").replace(",", "").split()
        assert tool in words[:5], step.thought
        tools_after.setdefault(" ".join(words[:words.index(tool)]), set()).add(tool)
    assert len(set().union(*tools_after.values())) == 8, tools_after
    assert all(len(tools) == 1 for tools in tools_after.values()), tools_after


def test_a_tool_without_thoughts_of_its_own_opens_with_its_name():
    class WeatherTeacher(RuleTeacher):
        def plan(self, question: str) -> Plan:
            return Plan(calls=[Call("get_weather", {"city": "Dubai"})], topic="the weather")

    step = parse_step(WeatherTeacher().next_step([{"role": "user", "content": "Is it hot in Dubai?"}]))
    assert step.thought.split()[0] == "get_weather"
    assert step.tool_calls[0]["name"] == "get_weather"


def test_after_a_calculation_the_thought_opens_with_a_word_that_only_answers(general_tools):
    teacher = RuleTeacher(tool_names=general_tools.names())
    questions = [f"What is {a} * {b}?" for a, b in [(12, 7), (140, 3), (9, 9), (31, 4)]] + [
        "Convert 5 miles to km.", "What date is 45 days after 2025-03-01?"]
    runs = [r for _, r in run_agents(teacher, general_tools, questions, max_steps=3)]
    first_words = {m["thought"].split()[0] for r in runs for m in r.messages if m["role"] == "assistant"}
    answering = {r.messages[-1]["thought"].split()[0] for r in runs}
    assert answering == {"Done:"}
    assert all(r.messages[-1].get("tool_calls") in (None, []) for r in runs)
    assert len(first_words) == 1 + len({r.messages[2]["tool_calls"][0]["name"] for r in runs})


def test_a_first_thought_prefix_is_continued(general_tools):
    teacher = RuleTeacher(tool_names=general_tools.names())
    prefix = "Thought: Let me decide which tool fits."
    [(_, result)] = run_agents(teacher, general_tools, ["Convert 10 kg to pounds."], max_steps=3,
                               first_thought_prefix=prefix)
    step = result.messages[2]
    assert step["thought"].startswith("Let me decide which tool fits.")
    assert step["tool_calls"][0]["name"] == "convert_units"
    assert result.outcome.status == "answered"


def test_generate_returns_n_identical_candidates():
    teacher = RuleTeacher(tool_names=["calculator"])
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "What is 2 * 3?"}]
    req = GenerationRequest(messages=messages, n=3)
    [out] = teacher.generate([req])
    assert len(out) == 3 and len({c.text for c in out}) == 1
    assert out[0].text.startswith("Thought:") and '"calculator"' in out[0].text


def _teacher_thoughts(teacher: RuleTeacher, question: str) -> list[str]:
    """The thought of every step the teacher takes on ``question``, with a stand-in observation per call."""
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": question}]
    thoughts = []
    for call in [*teacher.plan(question).calls, None]:
        thought, action = teacher.next_step(messages).split("\n", 1)
        thoughts.append(thought.removeprefix("Thought: "))
        if call is None:
            assert action.startswith("Answer:")
            break
        assert f'"{call.name}"' in action
        messages += [{"role": "assistant", "content": action},
                     {"role": "tool", "name": call.name, "content": "[1] A > B (FDL 33/2021, Art. 43): Notice."}]
    return thoughts


@pytest.mark.parametrize(("question", "next_steps"), [
    ("What does the law say about notice periods, and what is owed if the contract says 60 days notice and the wage "
     "is AED 18,250?", [None, "the answer", "the answer"]),
    ("Look up the rules on annual leave, then how many days do I get after 65 months of service?",
     [None, "the answer", "the answer"]),
    ("What does the law say about notice?", ["the answer", "the answer"]),
    ("How much annual leave do I get after 9 months of service?", [None, None]),
])
def test_a_law_step_names_the_next_step_and_the_one_after_its_observation_repeats_it(question, next_steps):
    # The decision after a search is a copy of the plan the student wrote before it; calculator steps keep
    # their plain thoughts, the first step of a two-tool plan too (it computes first).
    teacher = RuleTeacher(tool_names=["search_labour_law", "notice_period", "annual_leave"])
    thoughts = _teacher_thoughts(teacher, question)
    assert [t.rsplit("; next: ", 1)[-1].rstrip(".") if "; next: " in t else None for t in thoughts] == next_steps
    assert all(t.count(". ") == 0 and t.endswith(".") for t in thoughts)


@pytest.mark.parametrize(
    ("question", "query"),
    [
        ("Can you explain the rules on probation period?", "probation period"),
        ("hey, can u tell me about maternity leave", "maternity leave"),
        ("I'm 34 and joined my company back in 2019. What does the law say about annual leave?", "annual leave"),
        ("Article 29 of the labour law is about annual leave, right? What are the rules?",
         "Article annual leave"),
        ("Is my employer allowed to keep my passport?", "employer allowed keep passport"),
    ],
)
def test_a_search_query_is_the_questions_topic_in_the_users_words(question, query):
    from agentdistill.domains.uae_labour.teacher import search_query

    got = search_query(question)
    assert got == query
    template_words = {"texts", "way", "arrangement", "searching"}
    assert not template_words & set(got.lower().split())


def test_a_known_question_is_planned_from_what_its_writer_recorded():
    from agentdistill.domains.uae_labour.teacher import plan_from_expect

    text = "whats the EOSB on 20k basic after four and a half years?"
    asked = {"monthly_basic_salary": 20000, "length_of_service": 4.5, "service_unit": "years"}
    plan = plan_from_expect(text, ["calculate_gratuity"], {"calculate_gratuity": asked}, [])
    assert plan.calls == [Call("calculate_gratuity", asked)]
    assert route(text).tools != ["calculate_gratuity"]  # the wording alone would not have found it
    two = plan_from_expect("hey, how does overtime work here? and what is the overtime pay for 3h on 6k?",
                           ["search_labour_law", "overtime_pay"],
                           {"overtime_pay": {"monthly_basic_salary": 6000, "overtime_hours": 3}}, [])
    assert [c.name for c in two.calls] == ["search_labour_law", "overtime_pay"]
    assert "overtime" in two.calls[0].arguments["query"]
    assert plan_from_expect("thx!!", [], {}, ["thanks"]).reply == "thanks"
    assert plan_from_expect("whats the weather tmrw", [], {}, ["decline"]).reply == "decline"


def test_a_search_hint_replaces_the_typed_words_and_scoring_ignores_it():
    from agentdistill.domains.uae_labour.teacher import plan_from_expect
    from agentdistill.tools.matching import arguments_match

    text = "hey, can u tell me about doemstic worekr sick leave"
    hints = {"search_labour_law": {"query": "domestic worker sick leave"}}
    plan = plan_from_expect(text, ["search_labour_law"], {}, [], hints=hints)
    assert plan.calls == [Call("search_labour_law", {"query": "domestic worker sick leave"})]
    assert plan.topic == "domestic worker sick leave"  # what a "not covered" answer names
    typed = plan_from_expect(text, ["search_labour_law"], {}, [])
    assert "doemstic" in typed.calls[0].arguments["query"]  # without the hint: the user's words, typos and all
    # the hint is the teacher's, not the question's: a student's own query is not scored against it
    assert arguments_match({}, [{"name": "search_labour_law", "arguments": {"query": "sick leave maid"}}])


def test_the_teacher_follows_known_questions_through_the_runtime(general_tools):
    from agentdistill.records import Expect, Question

    q = Question(id="q-1", text="quick maths: what's 1,200 x 4?", persona="p", cluster=-1, kind="calculation",
                 expect=Expect(tools=["calculator"]), answer_facts=["4,800"])
    teacher = RuleTeacher(tool_names=general_tools.names())
    teacher.know([q])
    [(_, result)] = run_agents(teacher, general_tools, [q.text], max_steps=4)
    called = [c["name"] for m in result.messages if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert called == ["calculator"]
    assert "4,800" in result.outcome.answer or "4800" in result.outcome.answer


def test_a_notice_calculation_states_the_pay_in_lieu_as_well_as_the_period():
    from agentdistill.domains.uae_labour.calculators import notice_period
    from agentdistill.domains.uae_labour.teacher import answer_facts_of_calculation

    obs = notice_period(contract_notice_days=14, monthly_wage=23250, days_already_served=8)
    assert answer_facts_of_calculation("notice_period", obs) == ["30 days", "AED 17,050.00"]
    plan = Plan(calls=[Call("notice_period", {"contract_notice_days": 14, "monthly_wage": 23250})])
    answer = RuleTeacher().compose_answer(plan, "notice pay?", [("notice_period", obs)])
    assert "30 days" in answer and "AED 17,050.00" in answer


def test_a_two_tool_answer_opens_with_the_computed_figure_in_the_tools_own_sentences():
    # with quoted answers the reply may only be sentences the tools returned: an answer learnt as a paraphrase
    # of the calculator, after the passage, cannot be decoded, and the student quotes the passage alone
    from agentdistill.agent.quotes import quotable_sentences
    from agentdistill.domains.uae_labour.calculators import overtime_pay

    passage = ("[1] Working Hours and Overtime > Overtime (Federal Decree-Law 33/2021, Art. 19): Overtime is paid "
               "at the hourly basic wage plus 25% (Federal Decree-Law 33/2021, Art. 19). Night hours get 50%.")
    computed = overtime_pay(monthly_basic_salary=7750, overtime_hours=20)
    plan = Plan(calls=[Call("search_labour_law", {"query": "overtime"}),
                       Call("overtime_pay", {"monthly_basic_salary": 7750, "overtime_hours": 20})], topic="overtime")
    answer = RuleTeacher().compose_answer(plan, "overtime rules, and the pay for 20 hours on AED 7,750?",
                                          [("search_labour_law", passage), ("overtime_pay", computed)])
    result = " ".join(quotable_sentences([computed]))
    assert answer.startswith(result + " "), answer
    assert "hourly basic wage plus 25%" in answer[len(result):]


def test_the_best_sentence_is_kept_when_a_longer_one_comes_first_in_the_passage():
    long_first = ("Beyond the contract, an employer must provide what is needed to do the work, suitable "
                  "accommodation, meals, clothing, pay on time, medical care, respect, safety, the passport kept by "
                  "the worker, no costs charged and a ticket home at the end of the contract, with every other "
                  "duty the rules list for the household (Federal Decree-Law 9/2022, Art. 11).")
    cited = ("The worker must do the job carefully and respect the household's privacy "
             "(Federal Decree-Law 9/2022, Art. 12).")
    obs = f"[1] Domestic Workers > Obligations (Federal Decree-Law 9/2022, Arts. 11-12): {long_first} {cited}"
    text, _ = best_sentences(obs, "what's in Article 12 of the domestic workers law?", max_sentences=2,
                             max_chars=420, must_cite="FDL 9/2022 Art. 12")
    assert "do the job carefully" in text
