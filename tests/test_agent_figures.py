"""The figures a conversation states (agent/figures.py): read as people write them, so that the grammar that
allows only them (llm/grammar.py, ``figures``) never refuses a figure the user gave."""

from __future__ import annotations

import pytest

from agentdistill.agent.figures import (
    AGE,
    CALENDAR_YEAR,
    CLOCK,
    MONEY,
    Figure,
    argument_units,
    figure_values,
    is_date,
    named_units,
    reused_figures,
    stated_counts,
    stated_figures,
    takes,
)


@pytest.mark.parametrize(("text", "figure"), [
    ("my basic is 5.5k", 5500), ("AED12,000 a month", 12000), ("12000 dirhams", 12000), ("2.3k", 2300),
    ("four and a half years", 4.5), ("thirty-six months", 36), ("one hundred and twenty days notice", 120),
    ("2 years and 6 months", 30), ("2 years and 6 months", 2.5), ("1 year, 7 months", 19),
    ("i've worked 2 yaers and 6 motnhs", 30), ("3 wks and 2 days", 23), ("1 hour and 30 minutes", 90),
    ("leave after trhee years", 3), ("three hunrded months", 300),
    ("what date is 180 days before 2022-06-22?", -180), ("gratuity for half a year", 0.5),
    ("worked a year and a half", 1.5), ("an hour of overtime", 1),
])
def test_a_figure_as_people_write_it_is_stated(text, figure):
    assert figure in figure_values(stated_figures([text]))


def test_only_what_the_texts_state_is_a_figure():
    said = ["My salary is 5.5k and I worked 2 years and 6 months.", "Gratuity: AED 5,775.00"]
    figures = figure_values(stated_figures(said))
    assert figures == sorted({f * sign for f in (5500, 2, 6, 30, 2.5, 5775) for sign in (1, -1)})
    assert 55000 not in figures and 5.5 not in figures  # "5.5k" is one figure, not its digits
    assert 1.58 not in stated_figures(["1 year and 7 months"])  # not a round figure in years
    assert stated_figures(["Tell me about overtime pay on a rest day."]) == []
    assert stated_figures(["Is there a limit?"]) == []  # a word of its own, not "three" misspelt
    assert figure_values(stated_figures(["I earn 12,000 a month"])) == [-12000, 12000]  # "a month": per month


@pytest.mark.parametrize(("text", "figure"), [
    ("4.5 yrs of service", Figure(4.5, "year")), ("worked 2h extra", Figure(2, "hour")),
    ("a 60-day notice", Figure(60, "day")), ("2 years and 6 months", Figure(30, "month")),
    ("2 years and 6 months", Figure(2.5, "year")), ("basic AED 38,750", Figure(38750, MONEY)),
    ("basic 5.5k AED", Figure(5500, MONEY)), ("Dhs 38,250", Figure(38250, MONEY)),
    ("12000 dirhams", Figure(12000, MONEY)), ("$20", Figure(20, MONEY)), ("between 10 pm and 4 am", Figure(10, CLOCK)),
    ("basic salary of 6,000", Figure(6000)), ("Our company has 20 staff", Figure(20)), ("8 HRS", Figure(8, "hour")),
    ("can a 16 year old work?", Figure(16, AGE)), ("a 45-year-old with 3 years", Figure(45, AGE)),
    ("my son, aged 17", Figure(17, AGE)), ("with them since early 2019", Figure(2019, CALENDAR_YEAR)),
    ("joined in March 2020", Figure(2020, CALENDAR_YEAR)), ("on AED 2000 a month", Figure(2000, MONEY)),
    ("Federal Decree-Law No. 33 of 2021", Figure(2021)), ("a basic salary of 2000", Figure(2000)),
])
def test_a_figure_keeps_the_unit_it_was_stated_in(text, figure):
    assert figure in stated_figures([text], currencies={"dhs": "AED", "dirhams": "AED", "aed": "AED"})


@pytest.mark.parametrize(("name", "description", "units"), [
    ("overtime_hours", "Hours worked beyond the normal 8-hour day (or on the rest day).", {"hour"}),
    ("monthly_basic_salary", "Last monthly basic wage (without allowances).", {MONEY}),  # "monthly" is no unit
    ("amount", "The price in EUR.", {MONEY}),
    ("length_of_service", 'Service as stated, e.g. 6.5 for "6.5 years" or 30 for "30 months".', {"year", "month"}),
    ("contractNoticeDays", "", {"day"}), ("article", "The article number, e.g. 51.", set()),
    ("value", "The number to convert.", set()),
])
def test_an_argument_takes_the_units_its_name_or_description_names(name, description, units):
    assert argument_units(name, {"description": description}) == units


@pytest.mark.parametrize(("name", "schema", "date"), [
    ("start_date", {"type": "string", "description": "The first date, YYYY-MM-DD."}, True),
    ("when", {"type": "string", "format": "date"}, True),
    ("day", {"type": "string", "description": "The start date."}, True),
    ("query", {"type": "string", "description": "What to look for, e.g. 'update my contract'."}, False),
    ("law", {"type": "string", "description": "The law, e.g. FDL 33/2021."}, False),
    ("days", {"type": "integer", "description": "Days to add to the date."}, False),  # a number, not a date
])
def test_an_argument_is_a_date_where_its_format_name_or_description_says_so(name, schema, date):
    assert is_date(name, schema) is date


def test_a_figure_goes_only_to_an_argument_of_its_unit_or_of_none():
    figures = stated_figures(["4.5 yrs of service and 28,750 AED basic; 3 kids"])
    salary, service, any_unit = frozenset({MONEY}), frozenset({"year", "month"}), frozenset()
    assert [f.value for f in figures if f.value > 0 and takes(f, salary)] == [3, 28750]
    assert [f.value for f in figures if f.value > 0 and takes(f, service)] == [3, 4.5]
    assert [f.value for f in figures if f.value > 0 and takes(f, any_unit)] == [3, 4.5, 28750]


def test_an_age_or_a_calendar_year_goes_only_to_an_argument_that_names_no_unit():
    figures = stated_figures(["I'm 45 years old, on 8,500 basic, with them since early 2019: about 6 years"])
    service, days, any_unit = frozenset({"year", "month"}), frozenset({"day"}), frozenset()
    assert [f.value for f in figures if f.value > 0 and takes(f, service)] == [6, 8500]
    assert [f.value for f in figures if f.value > 0 and takes(f, days)] == [8500]
    assert [f.value for f in figures if f.value > 0 and takes(f, any_unit)] == [6, 45, 2019, 8500]


def test_a_call_passes_a_figure_as_often_as_the_conversation_states_it():
    properties = {"monthly_basic_salary": {"type": "number"}, "length_of_service": {"type": "number"},
                  "unpaid_absence_days": {"type": "number", "default": 0}}
    counts = stated_counts(["I'm on 8,500 basic, about 6 years, and 2 years and 6 months ago I took 6 days off"])
    assert counts[8500] == 1 and counts[6] == 3 and counts[30] == 1 and counts[-8500] == 1
    twice = {"monthly_basic_salary": 8500, "length_of_service": 6, "unpaid_absence_days": 8500}
    assert reused_figures(twice, properties, counts) == {"unpaid_absence_days": {8500, -8500}}  # the later use
    negative = {"monthly_basic_salary": 8500, "length_of_service": 6, "unpaid_absence_days": -8500}
    assert reused_figures(negative, properties, counts) == {"unpaid_absence_days": {8500, -8500}}  # one statement
    stated_twice = {"monthly_basic_salary": 8500, "length_of_service": 6, "unpaid_absence_days": 6}
    assert reused_figures(stated_twice, properties, counts) == {}
    defaults = {"monthly_basic_salary": 0, "length_of_service": 0, "unpaid_absence_days": 0}
    assert reused_figures(defaults, properties, stated_counts(["nothing stated"])) == {}


def test_the_units_a_conversation_names():
    for said, units in [(["4.5 yrs of service for our HR policy, basic monthly salary 9k"], {"year"}),
                        (["How many weeks is 45 days?"], {"week", "day"}), (["1h of overtime"], {"hour"})]:
        assert named_units(said, stated_figures(said)) == units
