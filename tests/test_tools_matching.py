"""Argument matching shared by the trace filter, the question writer and the eval, on real tool specs."""

from __future__ import annotations

from agentdistill.domains.uae_labour.calculators import notice_period, overtime_pay
from agentdistill.tools import ToolRegistry
from agentdistill.tools.matching import arguments_match, optional_defaults, values_match

SPECS = ToolRegistry([overtime_pay, notice_period]).specs()
DEFAULTS = optional_defaults(SPECS)
EIGHT_HOURS = {"overtime_pay": {"monthly_basic_salary": 11250, "overtime_hours": 8}}


def call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


def test_values_match_like_a_grader():
    assert values_match(5, 5.0) and values_match(5, "5") and values_match(10000, "10,000")
    assert values_match("Dubai Marina", "dubai-marina") and not values_match("Dubai", "Abu Dhabi")
    assert values_match(True, True) and not values_match(True, 1) and not values_match(5, 5.1)


def test_optional_defaults_come_from_the_tool_signature():
    assert DEFAULTS["overtime_pay"] == {"period": "normal", "shift_worker": False}
    assert DEFAULTS["notice_period"] == {"contract_notice_days": 30, "monthly_wage": 0.0, "days_already_served": 0}


def test_an_unfixed_optional_argument_must_stay_at_its_default():
    # "8 hours of overtime" says nothing of night work: the night rate pays 1.5x instead of 1.25x
    night = call("overtime_pay", monthly_basic_salary=11250, overtime_hours=8, period="night")
    assert not arguments_match(EIGHT_HOURS, [night], DEFAULTS)
    assert arguments_match(EIGHT_HOURS, [night])  # without the specs, unfixed arguments are free


def test_an_omitted_or_explicit_default_matches():
    omitted = call("overtime_pay", monthly_basic_salary=11250, overtime_hours=8)
    explicit = call("overtime_pay", monthly_basic_salary="11,250", overtime_hours=8.0, period="normal")
    assert arguments_match(EIGHT_HOURS, [omitted], DEFAULTS)
    assert arguments_match(EIGHT_HOURS, [explicit], DEFAULTS)


def test_a_fixed_optional_argument_left_out_takes_the_default_and_fails():
    rest_day = {"overtime_pay": {**EIGHT_HOURS["overtime_pay"], "period": "rest_day"}}
    assert not arguments_match(rest_day, [call("overtime_pay", monthly_basic_salary=11250, overtime_hours=8)],
                               DEFAULTS)


def test_some_call_of_each_fixed_tool_must_match():
    wrong, right = (call("overtime_pay", monthly_basic_salary=s, overtime_hours=8) for s in (1125, 11250))
    assert arguments_match(EIGHT_HOURS, [wrong, right], DEFAULTS)
    assert not arguments_match(EIGHT_HOURS, [wrong], DEFAULTS)
    assert not arguments_match(EIGHT_HOURS, [call("notice_period", contract_notice_days=8)], DEFAULTS)
