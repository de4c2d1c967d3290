"""Agent metrics on hand-built conversations whose right scores are known."""

from __future__ import annotations

import pytest

from agentdistill.citations import GENERIC
from agentdistill.domains.uae_labour.citations import STYLE as LAW_CITATIONS
from agentdistill.evaluate.metrics import aggregate, bootstrap_ci, score_question
from agentdistill.records import Expect, Question

SPECS = [
    {"name": "calculate_gratuity", "description": "Gratuity.",
     "parameters": {"type": "object", "properties": {"monthly_basic_salary": {"type": "number"},
                                                     "years_of_service": {"type": "number"}},
                    "required": ["monthly_basic_salary", "years_of_service"], "additionalProperties": False}},
    {"name": "search_labour_law", "description": "Search.",
     "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}},
]
GRATUITY_OBS = "Gratuity: AED 17,500 for 5 years (Federal Decree-Law 33/2021, Art. 51)."


def q(qid: str, tools: list[str] | None, arguments: dict | None = None, persona: str = "employee",
      kind: str = "calculation", text: str = "question?") -> Question:
    expect = None if tools is None else Expect(tools=tools, arguments=arguments)
    return Question(id=qid, text=text, persona=persona, cluster=0, expect=expect, split="test", kind=kind)


def call(name: str, **arguments) -> dict:
    return {"role": "assistant", "thought": "t", "tool_calls": [{"name": name, "arguments": arguments}]}


def obs(name: str, content: str) -> dict:
    return {"role": "tool", "name": name, "content": content}


def answer(text: str) -> dict:
    return {"role": "assistant", "thought": "t", "content": text}


def conv(*turns: dict) -> list[dict]:
    return [{"role": "system", "content": "tools..."}, {"role": "user", "content": "question?"}, *turns]


def score(question: Question, messages: list[dict], status: str = "answered", corpus: set[str] | None = None):
    steps = sum(m["role"] == "assistant" for m in messages) + sum(m.get("name") == "format_error" for m in messages)
    return score_question(question, messages, status, steps, 1.0, SPECS, corpus_citations=corpus, style=LAW_CITATIONS)


GRATUITY_ARGS = {"calculate_gratuity": {"monthly_basic_salary": 10000, "years_of_service": 5}}


def test_a_perfect_calculation_scores_everything():
    s = score(q("a", ["calculate_gratuity"], GRATUITY_ARGS),
              conv(call("calculate_gratuity", monthly_basic_salary=10000.0, years_of_service=5),
                   obs("calculate_gratuity", GRATUITY_OBS),
                   answer("You get AED 17,500 (Federal Decree-Law 33/2021, Art. 51).")))
    assert (s.format_valid, s.tool_selection, s.exact_tool_match, s.argument_match, s.task_success) == (1, 1, 1, 1, 1)
    assert (s.n_calls, s.n_valid_calls, s.cites, s.ungrounded, s.hallucinated) == (1, 1, 1, [], [])
    assert s.citations == ["FDL 33/2021 Art. 51"]


def test_wrong_argument_value_fails_the_task_but_not_the_schema():
    s = score(q("a", ["calculate_gratuity"], GRATUITY_ARGS),
              conv(call("calculate_gratuity", monthly_basic_salary=1000, years_of_service=5),
                   obs("calculate_gratuity", "AED 1,750"), answer("AED 1,750.")))
    assert (s.tool_selection, s.n_valid_calls, s.argument_match, s.task_success) == (1, 1, 0, 0)


def test_schema_violations_and_unknown_tools_are_invalid_calls():
    s = score(q("a", ["calculate_gratuity"]),
              conv(call("calculate_gratuity", monthly_basic_salary="ten thousand", years_of_service=5),
                   obs("calculate_gratuity", "Error: ..."), call("gratuity_calc", salary=1),
                   obs("gratuity_calc", "Error: no such tool"), answer("Sorry.")))
    assert (s.n_calls, s.n_valid_calls) == (2, 0)
    assert s.invalid_calls[0].startswith("calculate_gratuity:") and "no such tool" in s.invalid_calls[1]
    assert (s.tool_selection, s.exact_tool_match, s.task_success) == (0, 0, 0)


def test_extra_or_repeated_calls_break_exact_match_only_as_defined():
    search_then_calc = conv(call("search_labour_law", query="gratuity"), obs("search_labour_law", GRATUITY_OBS),
                            call("calculate_gratuity", monthly_basic_salary=10000, years_of_service=5),
                            obs("calculate_gratuity", GRATUITY_OBS), answer("AED 17,500."))
    s = score(q("a", ["calculate_gratuity"]), search_then_calc)
    assert (s.tool_selection, s.exact_tool_match, s.task_success) == (0, 0, 0)  # an extra tool is a wrong choice
    retried = conv(call("calculate_gratuity", monthly_basic_salary=10000, years_of_service=5),
                   obs("calculate_gratuity", GRATUITY_OBS),
                   call("calculate_gratuity", monthly_basic_salary=10000, years_of_service=5.0),
                   obs("calculate_gratuity", GRATUITY_OBS), answer("AED 17,500."))
    s = score(q("a", ["calculate_gratuity"]), retried)
    assert (s.tool_selection, s.exact_tool_match, s.task_success) == (1, 0, 1)


def test_format_errors_and_loops():
    fmt = conv({"role": "tool", "name": "format_error", "content": "Error: expected 'Action:'"},
               answer("Hello."))
    s = score(q("a", []), fmt)
    assert (s.format_valid, s.no_tool_correct, s.task_success) == (0, 1, 1)  # recovered, but the format slipped
    s = score(q("a", []), conv(), status="parse_error")
    assert (s.format_valid, s.no_tool_correct, s.task_success) == (0, 0, 0)
    looped = conv(call("search_labour_law", query="x"), obs("search_labour_law", "nothing"),
                  call("search_labour_law", query="x"))
    s = score(q("a", ["search_labour_law"]), looped, status="loop")
    assert (s.loop, s.tool_selection, s.exact_tool_match, s.task_success) == (1, 1, 0, 0)


def test_citations_not_shown_by_any_observation_are_ungrounded_and_unknown_ones_hallucinated():
    corpus = {"FDL 33/2021 Art. 51", "FDL 33/2021 Art. 29"}
    msgs = conv(call("search_labour_law", query="gratuity"), obs("search_labour_law", GRATUITY_OBS),
                answer("See Federal Decree-Law 33/2021, Arts. 51 and 29, and Cabinet Resolution 1/2022, Art. 99."))
    s = score(q("a", ["search_labour_law"]), msgs, corpus=corpus)
    assert s.citations == ["CR 1/2022 Art. 99", "FDL 33/2021 Art. 29", "FDL 33/2021 Art. 51"]
    assert s.ungrounded == ["CR 1/2022 Art. 99", "FDL 33/2021 Art. 29"]
    assert s.hallucinated == ["CR 1/2022 Art. 99"]  # Art. 29 exists, it just was not looked up
    assert (s.ungrounded_answer, s.hallucinated_answer, s.task_success) == (1, 1, 0)
    without_corpus = score(q("a", ["search_labour_law"]), msgs)
    assert without_corpus.hallucinated == without_corpus.ungrounded


def test_an_answer_written_after_the_tool_failed_is_not_a_success():
    failed = conv(call("search_labour_law", query="gratuity"),
                  obs("search_labour_law", "Error: tool 'search_labour_law' failed (ImportError: no index)."),
                  answer("Gratuity is 21 days per year."))
    s = score(q("a", ["search_labour_law"]), failed)
    assert (s.tool_selection, s.n_tool_errors, s.task_success) == (1, 1, 0)
    retried = conv(call("search_labour_law", query=""), obs("search_labour_law", "Error: query is empty."),
                   call("search_labour_law", query="gratuity"), obs("search_labour_law", GRATUITY_OBS),
                   answer("21 days per year (Federal Decree-Law 33/2021, Art. 51)."))
    s = score(q("a", ["search_labour_law"]), retried)
    assert (s.n_tool_errors, s.task_success) == (1, 1)  # a recovered error is fine
    m = aggregate([q("a", ["search_labour_law"])] * 2, [score(q("a", ["search_labour_law"]), failed), s], n_boot=10)
    assert m["tool_error_rate"] == pytest.approx(2 / 3) and m["task_success_rate"] == 0.5


def test_no_tool_question_answered_with_a_tool_is_wrong():
    s = score(q("a", []), conv(call("search_labour_law", query="hi"), obs("search_labour_law", "x"), answer("Hi.")))
    assert (s.expects_no_tool, s.no_tool_correct, s.task_success, s.expects_tools) == (1, 0, 0, 0)


def test_aggregate_over_a_known_mix():
    questions = [q("ok", ["calculate_gratuity"], GRATUITY_ARGS, persona="hr"),
                 q("badargs", ["calculate_gratuity"], GRATUITY_ARGS, persona="hr"),
                 q("hello", [], persona="employee", kind="no_tool"),
                 q("loop", ["search_labour_law"], persona="employee", kind="lookup")]
    msgs = [
        conv(call("calculate_gratuity", monthly_basic_salary=10000, years_of_service=5),
             obs("calculate_gratuity", GRATUITY_OBS), answer("AED 17,500 (Federal Decree-Law 33/2021, Art. 51).")),
        conv(call("calculate_gratuity", monthly_basic_salary=10, years_of_service="5"),
             obs("calculate_gratuity", "Error"), answer("AED 17,500 (Federal Decree-Law 33/2021, Art. 52).")),
        conv(answer("Hello!")),
        conv(call("search_labour_law", query="x"), obs("search_labour_law", "x"), call("search_labour_law", query="x")),
    ]
    statuses = ["answered", "answered", "answered", "loop"]
    scores = [score(qq, m, st) for qq, m, st in zip(questions, msgs, statuses, strict=True)]
    m = aggregate(questions, scores, n_boot=200)
    assert m["n"] == 4
    assert m["format_valid_rate"] == 1.0
    assert m["tool_selection_accuracy"] == 1.0  # 3 tool questions, each chose the expected set
    assert m["exact_tool_match"] == pytest.approx(2 / 3)  # the loop repeated its call
    assert m["argument_validity"] == pytest.approx(3 / 4)  # "5" is not a number
    assert m["argument_match"] == 0.5
    assert m["task_success_rate"] == 0.5  # ok + hello
    assert m["no_tool_accuracy"] == 1.0 and m["loop_rate"] == 0.25
    assert m["hallucinated_citation_rate"] == 0.5  # two answers cite; the second cites an unseen article
    assert m["mean_steps"] == pytest.approx((2 + 2 + 1 + 2) / 4) and m["mean_latency_s"] == 1.0
    assert m["statuses"] == {"answered": 3, "loop": 1}
    assert m["per_persona"]["hr"]["task_success_rate"] == 0.5 and m["per_persona"]["employee"]["n"] == 2
    assert m["per_kind"]["no_tool"]["task_success_rate"] == 1.0
    gt = m["per_tool"]["calculate_gratuity"]
    assert (gt["n_expected"], gt["n_calls"], gt["recall"], gt["argument_validity"]) == (2, 2, 1.0, 0.5)
    lo, hi = m["ci95"]["task_success_rate"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    assert m["ci95"]["format_valid_rate"] == [1.0, 1.0]


def test_bootstrap_interval_narrows_with_more_questions_and_is_seeded():
    def scores_of(n: int):
        qs = [q(str(i), []) for i in range(n)]
        return [score(qq, conv(answer("hi")) if i % 2 else conv(call("search_labour_law", query="x"),
                                                                 obs("search_labour_law", "x"), answer("x")))
                for i, qq in enumerate(qs)]

    small, large = bootstrap_ci(scores_of(20), 500)["task_success_rate"], bootstrap_ci(scores_of(400), 500)[
        "task_success_rate"]
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert (large[1] - large[0]) < (small[1] - small[0]) / 2  # width ~ 1/sqrt(n)
    assert bootstrap_ci(scores_of(20), 500) == bootstrap_ci(scores_of(20), 500)


def test_empty_denominators_are_none_not_zero():
    m = aggregate([q("a", None)], [score(q("a", None), conv(answer("hi")))], n_boot=50)
    assert m["tool_selection_accuracy"] is None and m["no_tool_accuracy"] is None and m["argument_validity"] is None
    assert m["task_success_rate"] == 1.0 and m["ci95"]["tool_selection_accuracy"] is None


def fq(qid: str, tools: list[str], facts: list[str], kind: str = "calculation", family: str = "",
       sources: list[str] | None = None, arguments: dict | None = None) -> Question:
    return Question(id=qid, text="question?", persona="employee", cluster=0,
                    expect=Expect(tools=tools, arguments=arguments), split="test", kind=kind, family=family,
                    answer_facts=facts, source_chunk_ids=sources or [])


def test_right_tools_but_a_wrong_answer_is_not_a_success():
    question = fq("a", ["calculate_gratuity"], ["AED 17,500"], arguments=GRATUITY_ARGS)
    msgs = [call("calculate_gratuity", monthly_basic_salary=10000, years_of_service=5),
            obs("calculate_gratuity", GRATUITY_OBS)]
    right = score(question, conv(*msgs, answer("You get AED 17,500 (Federal Decree-Law 33/2021, Art. 51).")))
    assert (right.checks_answer, right.answer_correct, right.task_success) == (1, 1, 1)
    wrong = score(question, conv(*msgs, answer("You worked 5 years (Federal Decree-Law 33/2021, Art. 51).")))
    assert (wrong.tool_selection, wrong.argument_match, wrong.checks_answer) == (1, 1, 1)
    assert (wrong.answer_correct, wrong.task_success) == (0, 0) and "AED 17,500" in wrong.answer_reason
    assert wrong.answer_checked_by == "offline"
    unanswered = score(question, conv(*msgs), status="max_steps")
    assert (unanswered.checks_answer, unanswered.answer_correct) == (1, 0)


def test_a_verdict_given_elsewhere_replaces_the_offline_one():
    from agentdistill.evaluate.answer_check import AnswerVerdict

    question = fq("a", ["calculate_gratuity"], ["AED 17,500"])
    msgs = conv(call("calculate_gratuity", monthly_basic_salary=10000, years_of_service=5),
                obs("calculate_gratuity", GRATUITY_OBS), answer("Seventeen and a half thousand dirhams."))
    offline = score(question, msgs)
    judged = score_question(question, msgs, "answered", 2, 1.0, SPECS,
                            verdict=AnswerVerdict(True, "same sum", "judge:x"))
    assert (offline.answer_correct, offline.task_success) == (0, 0)
    assert (judged.answer_correct, judged.task_success, judged.answer_checked_by) == (1, 1, "judge:x")


def test_answer_correct_rate_counts_only_questions_with_facts_and_breaks_down_by_family():
    questions = [fq("right", [], ["greeting"], kind="no_tool", family="no_tool.greeting.casual"),
                 fq("wrong", [], ["thanks"], kind="no_tool", family="no_tool.thanks"),
                 fq("unknown", [], [], kind="no_tool", family="no_tool.thanks")]
    replies = ["Hello! How can I help?", "Hello! How can I help?", "Hello!"]
    scores = [score(qq, conv(answer(r))) for qq, r in zip(questions, replies, strict=True)]
    assert [s.checks_answer for s in scores] == [1, 1, 0]
    m = aggregate(questions, scores, n_boot=100)
    assert m["answer_correct_rate"] == 0.5 and m["task_success_rate"] == pytest.approx(2 / 3)
    assert m["no_tool_accuracy"] == 1.0  # no tool was called; the wrong kind of reply is an answer fault
    lo, hi = m["ci95"]["answer_correct_rate"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    fam = m["per_family"]
    assert fam["no_tool.greeting.casual"] == {**fam["no_tool.greeting.casual"], "n": 1, "answer_correct_rate": 1.0}
    assert fam["no_tool.thanks"]["n"] == 2 and fam["no_tool.thanks"]["answer_correct_rate"] == 0.0
    assert fam["no_tool.thanks"]["task_success_rate"] == 0.5
    assert m["per_kind"]["no_tool"]["answer_correct_rate"] == 0.5
    assert aggregate([q("x", [])], [score(q("x", []), conv(answer("hi")))], n_boot=10)["per_family"] == {
        "(none)": {"n": 1, "format_valid_rate": 1.0, "tool_selection_accuracy": None, "answer_correct_rate": None,
                   "task_success_rate": 1.0, "no_tool_accuracy": 1.0, "loop_rate": 0.0}}


def test_retrieval_hit_finds_the_source_passage_in_a_search_observation():
    from agentdistill.records import Chunk

    def chunk(cid: str, path: str, text: str) -> Chunk:
        return Chunk(id=cid, doc_id="d", source="s", title="t", section_path=path, text=text, n_tokens=10)

    chunks = {"c51": chunk("c51", "Law 1 > Art. 51 > Gratuity", "# Art. 51\nThe worker who completes one year of "
                           "continuous service is entitled to an end-of-service gratuity of 21 days' basic wage."),
              "c29": chunk("c29", "Law 1 > Art. 29 > Leave", "Annual leave is 30 days per year of service, with pay."),
              "c40": chunk("c40", "", "Probation may not exceed six months and is counted in the service period.")}
    question = fq("a", ["search_labour_law"], [], kind="lookup", sources=["c51"])

    def run(observation: str, sources: list[str] = ["c51"], tool: str = "search_labour_law"):  # noqa: B006
        question.source_chunk_ids = sources
        msgs = conv(call(tool, query="gratuity"), obs(tool, observation), answer("x"))
        return score_question(question, msgs, "answered", 2, 1.0, SPECS, chunks=chunks)

    by_path = run("[1] Law 1 > Art. 29 > Leave: Annual leave ...\n[2] Law 1 > Art. 51 > Gratuity: The worker ...")
    assert (by_path.searches, by_path.retrieval_hit) == (1, 1)
    by_text = run("[1] Law 1, Art. 51: The worker who completes one year of continuous service is entitled to an "
                  "end-of-service gratuity of 21 days' ...")
    assert by_text.retrieval_hit == 1  # another head, the same passage (its heading dropped)
    miss = run("[1] Law 1 > Art. 29 > Leave: Annual leave is 30 days per year of service, with pay.")
    assert (miss.searches, miss.retrieval_hit) == (1, 0)
    assert run("[1] : Probation may not exceed six months and is counted in the service period.",
               ["c40"]).retrieval_hit == 1  # a short passage is shown whole
    assert run("[1] Law 1 > Art. 51 > Gratuity: ...", tool="calculate_gratuity").searches == 0  # not a search
    assert run("anything", ["unknown-chunk"]).searches == 0  # a source the corpus lacks is not measured
    m = aggregate([question] * 2, [by_path, miss], n_boot=10)
    assert m["retrieval_hit_rate"] == 0.5


def test_with_the_generic_style_a_section_the_search_showed_is_grounded_and_an_unknown_one_hallucinated():
    shown = "[1] Returns policy > Refund periods: Refunds are paid within 14 days."
    corpus = {"Returns policy > Refund periods", "Returns policy > Exchanges"}
    msgs = conv(call("search_labour_law", query="refund"), obs("search_labour_law", shown),
                answer("In 14 days (Returns policy > Refund periods); gift cards too [Returns policy > Gift cards]."))
    s = score_question(q("r", ["search_labour_law"]), msgs, "answered", 2, 1.0, SPECS, corpus_citations=corpus,
                       style=GENERIC)
    assert s.citations == ["Returns policy > Gift cards", "Returns policy > Refund periods"]
    assert s.ungrounded == s.hallucinated == ["Returns policy > Gift cards"]
    # the law style reads no section path as a citation
    assert score_question(q("r", ["search_labour_law"]), msgs, "answered", 2, 1.0, SPECS, corpus_citations=corpus,
                          style=LAW_CITATIONS).citations == []
