"""The figures a conversation states (agent/figures.py): read as people write them, so that the grammar that
allows only them (llm/grammar.py, ``figures``) never refuses a figure the user gave."""

from __future__ import annotations

import pytest

from agentdistill.agent.figures import stated_figures


@pytest.mark.parametrize(("text", "figure"), [
    ("my basic is 5.5k", 5500), ("AED12,000 a month", 12000), ("12000 dirhams", 12000), ("2.3k", 2300),
    ("four and a half years", 4.5), ("thirty-six months", 36), ("one hundred and twenty days notice", 120),
    ("2 years and 6 months", 30), ("2 years and 6 months", 2.5), ("1 year, 7 months", 19),
    ("i've worked 2 yaers and 6 motnhs", 30), ("3 wks and 2 days", 23), ("1 hour and 30 minutes", 90),
    ("leave after trhee years", 3), ("three hunrded months", 300),
    ("what date is 180 days before 2022-06-22?", -180),
])
def test_a_figure_as_people_write_it_is_stated(text, figure):
    assert figure in stated_figures([text])


def test_only_what_the_texts_state_is_a_figure():
    figures = stated_figures(["My salary is 5.5k and I worked 2 years and 6 months.", "Gratuity: AED 5,775.00"])
    assert figures == sorted({f * sign for f in (5500, 2, 6, 30, 2.5, 5775) for sign in (1, -1)})
    assert 55000 not in figures and 5.5 not in figures  # "5.5k" is one figure, not its digits
    assert 1.58 not in stated_figures(["1 year and 7 months"])  # not a round figure in years
    assert stated_figures(["Tell me about overtime pay on a rest day."]) == []
    assert stated_figures(["Is there a limit?"]) == []  # a word of its own, not "three" misspelt
