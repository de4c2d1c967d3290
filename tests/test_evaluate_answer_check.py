"""The offline answer checker on right and wrong answers of every question kind, and the LLM judge
against a real local HTTP server (with a 500 and malformed replies falling back to the offline verdict)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentdistill.config import JudgeConfig
from agentdistill.domains import load_pack
from agentdistill.evaluate.answer_check import (
    AnswerVerdict,
    check_answer,
    fact_in,
    number_mentions,
    parse_figure,
    reply_kinds,
)
from agentdistill.evaluate.judge import AnswerJudge, parse_verdict
from agentdistill.records import Expect, Question


def q(kind: str, facts: list[str], tools: list[str] | None = None, text: str = "question?") -> Question:
    return Question(id="q", text=text, persona="p", cluster=0, kind=kind, answer_facts=facts,
                    expect=Expect(tools=tools if tools is not None else []), split="test")


PASSAGE = ("[1] Decree 7/2020 > Art. 12 > Annual leave: The worker is entitled to annual leave of 30 days "
           "with full pay for each year of service. The employer sets the dates of the leave.\n"
           "[2] Decree 7/2020 > Art. 13 > Sick leave: Sick leave is granted after probation.")
OTHER_PASSAGE = "[1] Decree 7/2020 > Art. 40 > Probation: Probation may not exceed six months."
LEAVE_FACT = "The worker is entitled to annual leave of 30 days with full pay for each year of service."
# The currency spellings a run over the law's documents hands the checker (domains.currency_aliases).
LAW_CURRENCIES = load_pack("uae_labour").currencies


# -- numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["AED 12,345.50", "AED 12345.5", "12,345.5 AED", "Dhs 12,345.50",
                                     "12,345.50 dirhams", "AED12,345.5"])
def test_money_matches_however_it_is_written(written):
    assert fact_in("AED 12,345.50", f"You will receive {written} in total.", LAW_CURRENCIES)[0]


@pytest.mark.parametrize("written", ["12,345.50", "USD 12,345.50", "AED 12,345", "AED 112,345.50",
                                     "AED 12,345.60", "AED 2,345.50"])
def test_money_does_not_match_another_amount_a_bare_number_or_another_currency(written):
    assert not fact_in("AED 12,345.50", f"You will receive {written} in total.", LAW_CURRENCIES)[0]
    assert not fact_in("AED 12,345.50", f"You will receive {written} in total.")[0]


def test_number_mentions_read_digits_words_scales_and_halves_where_they_stand():
    text = "basic 20k, four and a half years, AED12,500 and twenty-one days, 1.2 million"
    assert number_mentions(text) == [(6, 20000.0), (11, 4.5), (37, 12500.0), (48, 21.0), (65, 1_200_000.0)]
    assert number_mentions("no figures here") == []


def test_number_mentions_read_hundreds_written_out():
    assert number_mentions("one hundred and twenty days") == [(0, 120.0)]
    assert number_mentions("two hundred sixty-five months, three hundred years") == [(0, 265.0), (31, 300.0)]
    assert number_mentions("one hundred and 20 days") == [(0, 100.0), (16, 20.0)]  # digits after words: two figures
    assert number_mentions("five hundred thousand") == [(0, 500_000.0)]


def test_a_packs_currency_spellings_are_that_currency_only_in_its_run():
    shop = load_pack("shop").currencies
    for written in ("Dhs 500", "500 dirhams", "dh 500"):
        assert fact_in("AED 500", f"You get {written}.", LAW_CURRENCIES)[0], written
        assert not fact_in("AED 500", f"You get {written}.", shop)[0], written  # the shop's run has no dirhams
        assert not fact_in("AED 500", f"You get {written}.")[0], written
    assert parse_figure("500 dirhams", LAW_CURRENCIES) == parse_figure("AED 500")
    assert parse_figure("500 dirhams", shop).currency is False  # type: ignore[union-attr]  # a unit word there
    assert parse_figure("Dhs 500", shop) is None  # a sentence, not money
    assert check_answer(q("calculation", ["Dhs 625"]), "Your overtime pay is AED 625.", [], LAW_CURRENCIES).correct
    assert check_answer(q("calculation", ["Dhs 625"]), "Your overtime pay is USD 625.", [], LAW_CURRENCIES).correct \
        is False
    # a user's pack declares its own: "francs" is the Swiss franc only where declared
    swiss = {"franc": "CHF", "francs": "CHF", "fr": "CHF"}
    assert fact_in("CHF 20", "It costs 20 francs.", swiss)[0] and not fact_in("CHF 20", "It costs 20 francs.")[0]
    assert not fact_in("AED 20", "It costs 20 francs.", swiss)[0]


def test_a_code_in_three_capitals_is_a_currency_without_any_pack():
    assert parse_figure("CHF 20").unit == "CHF" and parse_figure("20 JPY").currency  # type: ignore[union-attr]
    assert fact_in("CHF 20", "It costs 20 CHF.")[0] and fact_in("AED 500", "500.00 AED/month")[0]
    assert not fact_in("CHF 20", "It costs EUR 20.")[0] and not fact_in("CHF 20", "It costs 20 chairs.")[0]
    assert parse_figure("8 HRS").unit == "hour"  # type: ignore[union-attr]  # a unit in capitals stays the unit


def test_currency_symbols_and_codes():
    assert fact_in("$100", "It costs USD 100.")[0] and fact_in("100 USD", "It costs $100.")[0]
    assert fact_in("EUR 9.99", "about €9.99")[0] and fact_in("GBP 5", "£5 a day")[0]
    assert not fact_in("$100", "It costs EUR 100.")[0]


def test_thousands_separators_and_trailing_zeros_do_not_matter():
    assert fact_in("AED 1,000", "AED 1000.00")[0] and fact_in("AED 625.00", "AED 625")[0]
    assert fact_in("0.5", "0.50")[0] and fact_in("AED 500", "500.00 AED/month")[0]
    assert not fact_in("AED 1,000", "AED 1,000,000")[0] and not fact_in("AED 625.00", "AED 625.01")[0]


def test_a_number_is_not_found_inside_a_longer_number():
    for answer in ("300 days", "130 days", "2030 days", "30.5 days", "1,030 days"):
        assert not fact_in("30 days", answer)[0], answer
    assert fact_in("30", "after 30, not 300")[0] and not fact_in("30", "300 or 130 or 30.5")[0]


def test_units_are_matched_by_any_spelling_next_to_the_number():
    assert fact_in("30 days", "a notice of 30 calendar days")[0]
    assert fact_in("30 days", "a 30-day notice")[0]
    assert fact_in("30 days", "thirty days")[0] and fact_in("21 days", "twenty-one days")[0]
    assert fact_in("8 hours", "8 hrs of overtime")[0] and fact_in("8 hours", "8h")[0]
    assert fact_in("25%", "25 percent more") [0] and fact_in("25 percent", "a 25% rate")[0]
    assert fact_in("25%", "25 per cent")[0]
    assert not fact_in("30 days", "30 months")[0]
    assert not fact_in("30 days", "AED 30 for 12 days")[0]  # 30 is money here, the days are 12


def test_facts_are_figures_or_sentences():
    assert parse_figure("AED 12,345.50").unit == "AED"  # type: ignore[union-attr]
    assert parse_figure("30 calendar days").unit == "day"  # type: ignore[union-attr]
    assert parse_figure("12345.5").unit is None  # type: ignore[union-attr]
    assert parse_figure("Art. 51") is None and parse_figure(LEAVE_FACT) is None


# -- calculations ---------------------------------------------------------------------------------------


def test_calculation_right_figure_only_the_period_and_wrong_figure():
    question = q("calculation", ["AED 625.00"], ["overtime_pay"])
    assert check_answer(question, "Your overtime pay is AED 625 (Art. 19).", ["Overtime pay: AED 625.00"]).correct
    only_period = check_answer(question, "You worked 10 hours of overtime.", ["Overtime pay: AED 625.00"])
    assert only_period.correct is False and "AED 625.00" in only_period.reason
    assert check_answer(question, "Your overtime pay is AED 652.", []).correct is False


def test_calculation_needs_every_figure():
    question = q("calculation", ["AED 1,000", "30 days"])
    assert check_answer(question, "AED 1,000 for a notice of 30 days.", []).correct
    assert check_answer(question, "AED 1,000.", []).correct is False


def test_multi_step_needs_the_figures_and_one_passage_fact():
    question = q("multi_step", ["AED 17,500", LEAVE_FACT], ["search", "calculate"])
    right = "The worker is entitled to 30 days of annual leave with full pay each year of service; you get AED 17,500."
    assert check_answer(question, right, [PASSAGE]).correct
    assert check_answer(question, "You get AED 17,500.", [PASSAGE]).correct is False
    assert check_answer(question, "The leave is 30 days per year of service with full pay.", [PASSAGE]).correct is False


# -- lookups ------------------------------------------------------------------------------------------


def test_lookup_supported_and_containing_the_fact():
    question = q("lookup", [LEAVE_FACT], ["search"], text="How much annual leave do I get?")
    answer = "You are entitled to 30 days of annual leave with full pay for each year of service (Art. 12)."
    v = check_answer(question, answer, [PASSAGE])
    assert v.correct, v.reason


def test_lookup_quoting_an_unrelated_passage_fails():
    question = q("lookup", [LEAVE_FACT], ["search"], text="How much annual leave do I get?")
    v = check_answer(question, "Probation may not exceed six months (Art. 40).", [OTHER_PASSAGE])
    assert v.correct is False and "content words" in v.reason


def test_lookup_with_an_unsupported_invention_fails():
    question = q("lookup", [LEAVE_FACT], ["search"], text="How much annual leave do I get?")
    answer = ("The worker is entitled to annual leave of 30 days with full pay for each year of service, plus a "
              "bonus flight ticket home and hotel vouchers every December.")
    assert check_answer(question, answer, [OTHER_PASSAGE]).correct is False  # nothing retrieved says it
    assert check_answer(question, answer, []).correct is False  # nothing retrieved at all
    v = check_answer(question, "Annual leave: 30 days with full pay for each year of service.", [])
    assert v.correct is False and "no passage was retrieved" in v.reason


def test_lookup_with_a_wrong_number_fails():
    question = q("lookup", [LEAVE_FACT], ["search"])
    v = check_answer(question, "The worker is entitled to annual leave of 45 days with full pay for each year of "
                               "service.", [PASSAGE])
    assert v.correct is False and "30" in v.reason


def test_a_section_requested_by_number_is_checked_as_a_lookup():
    fact = "The worker is entitled to annual leave of 30 days with full pay for each year of service."
    question = q("lookup", [fact], ["get_article"], text="What does Article 12 of Decree 7/2020 say?")
    obs = "[1] Decree 7/2020 > Art. 12 > Annual leave: " + fact + " The employer sets the dates."
    v = check_answer(question, "Article 12 says the worker is entitled to 30 days of annual leave with full pay "
                               "for each year of service.", [obs])
    assert v.correct and "supported" in v.reason
    assert check_answer(question, "Article 12 is about sick leave after probation.", [obs]).correct is False


def test_not_covered_said_and_not_said():
    question = q("lookup", ["not covered"], ["search"], text="What is the minimum wage in 2024?")
    for said in ("The documents do not cover the minimum wage.",
                 "I could not find any information about a minimum wage in the texts. You may ask the ministry.",
                 "That is not in the documents I can search.",
                 "There is no information on this."):
        v = check_answer(question, said, [OTHER_PASSAGE])
        assert v.correct, (said, v.reason)
    assert check_answer(question, "The minimum wage is AED 3,000 per month.", [OTHER_PASSAGE]).correct is False
    assert check_answer(q("calculation", ["not covered"]), "The documents do not cover it.", []).correct
    claim = check_answer(question, "The documents do not cover it, but it is usually AED 3,000.", [])
    assert claim.correct is False and "3000" in claim.reason
    rambling = ("The documents do not cover it. Generally employers negotiate salaries freely with workers, taking "
                "into account qualifications, experience, sector norms, living costs, company policy and benefits "
                "such as housing allowances and transport.")
    assert check_answer(question, rambling, []).correct is False


# -- replies without a tool ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind, right, wrong", [
    ("greeting", "Hello! How can I help you with your questions today?", "You're welcome!"),
    ("greeting", "Hi there, ask me anything about the documents.", "Sorry, I can only help with the law."),
    ("thanks", "You're welcome! Glad I could help.", "Hello! How can I help?"),
    ("thanks", "Happy to help. Anything else?", "Hi!"),
    ("decline", "Sorry, I can only help with questions about the documents.", "Hello! How can I help?"),
    ("decline", "That is outside what I can help with.", "You're welcome."),
])
def test_no_tool_replies_of_the_right_and_wrong_kind(kind, right, wrong):
    question = q("no_tool", [kind])
    assert check_answer(question, right, []).correct, (right, reply_kinds(right))
    v = check_answer(question, wrong, [])
    assert v.correct is False, (wrong, reply_kinds(wrong))


def test_unknown_facts_and_missing_answers():
    assert check_answer(q("lookup", []), "anything", []) == AnswerVerdict(None, "the question lists no answer_facts")
    assert check_answer(q("calculation", ["AED 5"]), None, []).correct is False
    assert check_answer(q("no_tool", ["greeting"]), "   ", []).correct is False
    assert check_answer(q("no_tool", ["smalltalk"]), "Hello", []).correct is None


# -- the LLM judge, against a real local HTTP server ----------------------------------------------------


@contextmanager
def judge_server(replies: list[Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stdlib OpenAI-compatible endpoint that answers each chat request with the next canned reply (the
    last one repeats): a str is the completion's text, an int an HTTP error status."""
    requests: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._send(200, {"object": "list", "data": [{"id": "judge-model"}]})

        def do_POST(self) -> None:  # noqa: N802
            requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
            if isinstance(reply, int):
                self._send(reply, {"error": {"message": f"status {reply}"}})
            else:
                self._send(200, {"object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", requests
    finally:
        httpd.shutdown()
        httpd.server_close()


LEAVE_Q = q("lookup", [LEAVE_FACT], ["search"], text="How much annual leave do I get?")
PARAPHRASE = "A month off on full pay every year."  # right, but in words the offline checker cannot match


def make_judge(url: str) -> AnswerJudge:
    return AnswerJudge(JudgeConfig(base_url=url, model="judge-model", timeout_s=5, max_retries=0))


def test_judge_verdict_comes_from_the_endpoint(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "")
    reply = '```json\n{"correct": true, "reason": "a month is 30 days"}\n```'
    with judge_server([reply]) as (url, requests):
        v = make_judge(url).check(LEAVE_Q, PARAPHRASE, [PASSAGE])
    assert v == AnswerVerdict(True, "a month is 30 days", by="judge:judge-model")
    assert check_answer(LEAVE_Q, PARAPHRASE, [PASSAGE]).correct is False  # the offline checker is stricter
    prompt = requests[0]["messages"][-1]["content"]
    assert LEAVE_FACT in prompt and PARAPHRASE in prompt and "Art. 12" in prompt and LEAVE_Q.text in prompt
    assert requests[0]["model"] == "judge-model" and requests[0]["temperature"] == 0.0


@pytest.mark.parametrize("reply", [500, "I think it is right.", '{"correct": "yes"}', '{"correct": true,'])
def test_judge_faults_fall_back_to_the_offline_verdict_with_a_warning(reply, caplog):
    answer = "You are entitled to 30 days of annual leave with full pay for each year of service."
    with judge_server([reply]) as (url, requests), caplog.at_level(logging.WARNING):
        judge = make_judge(url)
        v = judge.check(LEAVE_Q, answer, [PASSAGE])
        again = judge.check(LEAVE_Q, PARAPHRASE, [PASSAGE])
    assert v.correct is True and v.by == "offline" and "judge failed" in v.reason
    assert again.correct is False and again.by == "offline"
    assert len(requests) == 2 and judge.failures == 2 and judge.down is None  # each question asked once
    assert "answer judge failed" in caplog.text


def test_an_unreachable_judge_is_asked_once_then_left_alone(caplog):
    with judge_server(['{"correct": true}']) as (url, _):
        pass  # the server is gone once the block ends
    judge = make_judge(url)
    with caplog.at_level(logging.WARNING):
        verdicts = [judge.check(LEAVE_Q, PARAPHRASE, [PASSAGE]) for _ in range(3)]
    assert [v.correct for v in verdicts] == [False] * 3 and all(v.by == "offline" for v in verdicts)
    assert judge.down and judge.failures == 1 and "cannot reach" in caplog.text


def test_the_judge_is_not_asked_without_facts_or_an_answer():
    with judge_server(['{"correct": true, "reason": "x"}']) as (url, requests):
        judge = make_judge(url)
        assert judge.check(q("lookup", []), "anything", []).correct is None
        assert judge.check(LEAVE_Q, None, []).correct is False
    assert requests == []


def test_parse_verdict():
    assert parse_verdict('Verdict: {"correct": false, "reason": "wrong figure"}') == (False, "wrong figure")
    assert parse_verdict('{"correct": true}') == (True, "")
