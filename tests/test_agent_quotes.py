"""The sentences an answer may quote (agent/quotes.py): a search result's passages without their citations,
split into whole sentences, the sentence a passage's cut leaves unfinished left out unless it is the passage's
only one."""

from __future__ import annotations

from agentdistill.agent.quotes import MAX_SENTENCES, observations, quotable_sentences, result_sentences

SEARCH = ("[1] Leave > Annual leave (Federal Decree-Law 33/2021, Art. 29): A worker earns 30 days a year "
          "(Federal Decree-Law 33/2021, Art. 29). Leave should be taken in the year it is earned. When a rest day ...\n"
          "[2] Leave > Mourning leave (Federal Decree-Law 33/2021, Art. 32): Mourning leave is paid! Is it? Yes.")


def test_a_search_result_gives_its_passages_whole_sentences_without_their_citations():
    assert quotable_sentences([SEARCH]) == [
        "A worker earns 30 days a year (Federal Decree-Law 33/2021, Art. 29).",  # no split inside "Art. 29"
        "Leave should be taken in the year it is earned.",
        "Mourning leave is paid!", "Is it?", "Yes."]


def test_a_passage_cut_inside_its_only_sentence_offers_what_was_shown_of_it():
    search = ("[1] Wages > Deductions (Federal Decree-Law 33/2021, Art. 25): An employer may take money out of a "
              "worker's wage only in the cases the law lists: repaying a loan; contributions for ...\n"
              "[2] Leave > Annual leave (Federal Decree-Law 33/2021, Art. 29): A worker earns 30 days a year. "
              "When a ...")
    assert quotable_sentences([search]) == [
        "An employer may take money out of a worker's wage only in the cases the law lists: repaying a loan; "
        "contributions for",  # the teacher's answer quotes it so: the passage shows nothing else
        "A worker earns 30 days a year."]  # a passage with a whole sentence does not offer its cut one


def test_with_top_passage_a_search_result_offers_its_first_passage_and_other_results_all_they_say():
    result = "Notice period: 30 days. Paid at the last wage."
    assert quotable_sentences([SEARCH, result], top_passage=True) == [
        "A worker earns 30 days a year (Federal Decree-Law 33/2021, Art. 29).",
        "Leave should be taken in the year it is earned.",
        "Notice period: 30 days.", "Paid at the last wage."]


def test_a_tool_result_without_passages_is_quoted_as_written_and_repeats_are_offered_once():
    result = "Overtime pay: AED 93.75 for 3 hours at 125% (6,000 x 12 / 365 / 8). Paid with the wage."
    assert quotable_sentences([result, "2025-03-27", result]) == [
        "Overtime pay: AED 93.75 for 3 hours at 125% (6,000 x 12 / 365 / 8).", "Paid with the wage.", "2025-03-27"]


def test_the_result_sentences_are_those_of_the_first_result_a_tool_computed():
    computed = "Overtime pay: AED 93.75 for 3 hours. Paid with the wage."
    found_nothing = "No passage in the documents is about 'tax': the documents do not cover it."
    error = "Error: overtime_pay: overtime_hours must be positive"
    assert result_sentences([SEARCH, found_nothing, error, computed, "2025-03-27"]) == [
        "Overtime pay: AED 93.75 for 3 hours.", "Paid with the wage."]
    assert result_sentences([SEARCH, found_nothing, error]) == []


def test_the_offer_is_bounded():
    many = " ".join(f"Sentence {i}." for i in range(3 * MAX_SENTENCES))
    assert len(quotable_sentences([many])) == MAX_SENTENCES


def test_observations_are_the_tool_messages_but_the_skipped_tools():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                {"role": "assistant", "content": "", "tool_calls": []},
                {"role": "tool", "name": "calculator", "content": "4"},
                {"role": "tool", "name": "format_error", "content": "Error: not in the format"}]
    assert observations(messages, skip=["format_error"]) == ["4"]
