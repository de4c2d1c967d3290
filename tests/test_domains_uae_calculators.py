"""The UAE labour calculators against worked examples computed by hand from the articles.

Conventions (Federal Decree-Law 33/2021, Art. 67): a month is 30 days, a year 365 days, so the daily
wage is monthly / 30 and the hourly wage daily / 8 (Art. 17: 8-hour day).
"""

from __future__ import annotations

import re

import pytest

from agentdistill.domains.uae_labour.calculators import annual_leave, calculate_gratuity, notice_period, overtime_pay
from agentdistill.domains.uae_labour.citations import extract_citations


def aed(text: str) -> float:
    """The first 'AED x,xxx.xx' amount in a tool result."""
    m = re.search(r"AED ([\d,]+\.\d\d)", text)
    assert m, text
    return float(m.group(1).replace(",", ""))


# -- gratuity (Art. 51) -------------------------------------------------------------------------

def test_gratuity_first_five_years_is_21_days_per_year():
    # 9,000 / 30 = 300 a day; 3 years x 21 days = 63 days; 63 x 300 = 18,900
    out = calculate_gratuity(monthly_basic_salary=9000, length_of_service=3)
    assert aed(out) == 18900.00
    assert "FDL 33/2021 Art. 51" in extract_citations(out)


def test_gratuity_part_year_is_pro_rata_once_a_year_is_complete():
    # 3.5 years x 21 = 73.5 days x 300 = 22,050 (the corpus's own worked example)
    assert aed(calculate_gratuity(9000, 3.5)) == 22050.00


def test_gratuity_after_five_years_is_30_days_per_extra_year():
    # 7 years: 5 x 21 + 2 x 30 = 165 days x 300 = 49,500
    assert aed(calculate_gratuity(9000, 7)) == 49500.00
    # 7.5 years at 10,000: 105 + 2.5 x 30 = 180 days x 333.33... = 60,000
    assert aed(calculate_gratuity(10000, 7.5)) == 60000.00


def test_gratuity_is_capped_at_two_years_wage():
    # 28 years: 105 + 23 x 30 = 795 days x 300 = 238,500 > cap 24 x 9,000 = 216,000
    out = calculate_gratuity(9000, 28)
    assert aed(out) == 216000.00
    assert "cap" in out


def test_no_gratuity_under_one_year_and_unpaid_absence_does_not_count():
    assert "No gratuity" in calculate_gratuity(9000, 0.67)
    # one calendar year minus 10 unpaid days is 355 days of service: still under one year
    assert "No gratuity" in calculate_gratuity(9000, 1, unpaid_absence_days=10)
    # 2 years minus 73 unpaid days = 657 days = 1.8 years x 21 = 37.8 days x 300 = 11,340
    assert aed(calculate_gratuity(9000, 2, unpaid_absence_days=73)) == 11340.00


@pytest.mark.parametrize("bad", [{"monthly_basic_salary": 0, "length_of_service": 2},
                                 {"monthly_basic_salary": 5000, "length_of_service": -1},
                                 {"monthly_basic_salary": float("nan"), "length_of_service": 2}])
def test_gratuity_rejects_impossible_values_with_a_message(bad):
    with pytest.raises(ValueError, match="must be"):
        calculate_gratuity(**bad)


def test_service_is_taken_as_a_figure_in_the_unit_it_is_stated_in():
    # "180 months" and "15 years" are one length of service; so are "2 years" and "24 months" of leave
    assert calculate_gratuity(9000, 180, "months") == calculate_gratuity(9000, 15, "years")
    assert calculate_gratuity(9000, 15) == calculate_gratuity(9000, 15, "years")  # gratuity is mostly said in years
    assert annual_leave(2, "years") == annual_leave(24, "months") == annual_leave(24)
    for calculator, salary in ((calculate_gratuity, {"monthly_basic_salary": 9000}), (annual_leave, {})):
        with pytest.raises(ValueError, match="service_unit must be 'years' or 'months', got 'weeks'"):
            calculator(**salary, length_of_service=3, service_unit="weeks")


# -- annual leave (Art. 29) ---------------------------------------------------------------------

def test_annual_leave_two_days_per_month_between_six_months_and_a_year():
    out = annual_leave(8)  # 8 x 2 = 16
    assert "16 days" in out
    assert "FDL 33/2021 Art. 29" in extract_citations(out)
    assert "22 days" in annual_leave(11.9)  # 11 completed months x 2


def test_annual_leave_nothing_up_to_six_months():
    assert "No annual leave" in annual_leave(6)
    assert "No annual leave" in annual_leave(3)


def test_annual_leave_thirty_days_per_year_and_pro_rata_part_year():
    assert "30 days" in annual_leave(12)
    out = annual_leave(30)  # 2 years + 6 months: 30 x 6/12 = 15 days for the part year
    assert "30 days" in out and "2 full years" in out and "15 days" in out


# -- overtime (Art. 19) -------------------------------------------------------------------------

def test_overtime_normal_hours_are_paid_plus_25_percent():
    # 6,000 / 30 / 8 = 25 an hour; 10 h x 25 x 1.25 = 312.50
    out = overtime_pay(6000, 10)
    assert aed(out) == 312.50
    assert "FDL 33/2021 Art. 19" in extract_citations(out)


def test_overtime_at_night_is_plus_50_percent_except_for_shift_workers():
    assert aed(overtime_pay(6000, 3, period="night")) == 112.50  # 3 x 25 x 1.5
    assert aed(overtime_pay(6000, 3, period="night", shift_worker=True)) == 93.75  # 3 x 25 x 1.25


def test_rest_day_work_is_the_days_wage_plus_50_percent():
    # a full 8-hour rest day at 7,200: daily 240, x 1.5 = 360
    assert aed(overtime_pay(7200, 8, period="rest_day")) == 360.00


def test_overtime_rejects_an_unknown_period():
    with pytest.raises(ValueError, match="period"):
        overtime_pay(6000, 2, period="weekend")


# -- notice (Art. 43) ---------------------------------------------------------------------------

def test_notice_between_30_and_90_days_with_pay_in_lieu_for_the_rest():
    # 60 days agreed, 20 worked: 40 days x 9,000 / 30 = 12,000
    out = notice_period(contract_notice_days=60, monthly_wage=9000, days_already_served=20)
    assert "60 days" in out
    assert aed(out) == 12000.00
    assert "FDL 33/2021 Art. 43" in extract_citations(out)


def test_notice_below_the_minimum_is_raised_to_30_and_above_the_maximum_cut_to_90():
    low = notice_period(contract_notice_days=14, monthly_wage=6000)
    assert "30 days" in low and "minimum" in low
    assert aed(low) == 6000.00  # the whole 30 days unworked: 30 x 200
    high = notice_period(contract_notice_days=120)
    assert "90 days" in high and "maximum" in high
    assert "AED" not in high  # no wage given: only the period
