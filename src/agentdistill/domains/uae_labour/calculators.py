"""UAE labour entitlement calculators. Each implements one article of the law exactly and cites it.

Conventions, all from the law itself:
- Federal Decree-Law 33/2021, Art. 67: a month is deemed 30 days and a year 365 days. So the daily
  wage is ``monthly wage / 30`` (not ``* 12 / 365``: that would mix the two conventions) and a year of
  service is 365 days. MOHRE's published overtime guide uses the same "basic salary / 30 / 8".
- Art. 17: the normal working day is 8 hours, so the hourly wage is ``daily wage / 8``.
- The figures are the legal minimums ("at least"); a contract may give more.

Each function returns one short sentence with the arithmetic shown and the article cited, because
the model copies the number and the citation into its answer, and a reader can check both.
Bad values raise ValueError: the tool registry turns that into an observation the model can act on.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

DAYS_PER_MONTH = 30  # Art. 67
DAYS_PER_YEAR = 365  # Art. 67
HOURS_PER_DAY = 8  # Art. 17(1)
LAW = "Federal Decree-Law 33/2021"


def _aed(amount: float) -> str:
    return f"AED {amount:,.2f}"


def _num(x: float) -> str:
    """3 -> "3", 2.5 -> "2.5", 1.2345 -> "1.23": numbers as a person writes them."""
    return f"{x:,.2f}".rstrip("0").rstrip(".") if x != int(x) else f"{int(x):,}"


def _check(name: str, value: float, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'greater than zero' if positive else 'zero or more'}, got {value}")


ServiceUnit = Literal["years", "months"]


def _service_months(length: float, unit: str) -> float:
    """A length of service in the unit the person used ("30 months", "2.5 years"), in months.

    The calculators take service as it is stated, a figure and its unit, so a model copies "30 months"
    rather than converting it: small models copy figures well and divide them badly.
    """
    _check("length_of_service", length)
    if unit not in get_args(ServiceUnit):
        raise ValueError(f"service_unit must be 'years' or 'months', got {unit!r}")
    return length * 12 if unit == "years" else length


def service_arguments(years: float | None, months: float | None) -> dict[str, float | str]:
    """The calculators' service arguments for a length stated in years, months or both: "2 years and 6 months"
    is one length in the smaller unit, 30 months. Empty when neither is stated."""
    if months is not None:
        length = 12 * (years or 0) + months
        return {"length_of_service": int(length) if float(length).is_integer() else length, "service_unit": "months"}
    return {} if years is None else {"length_of_service": years, "service_unit": "years"}


def calculate_gratuity(monthly_basic_salary: float, length_of_service: float, service_unit: ServiceUnit = "years",
                       unpaid_absence_days: float = 0) -> str:
    """End-of-service gratuity of a foreign full-time worker.

    Federal Decree-Law 33/2021, Art. 51: the wage of 21 days per year for the first five years and of
    30 days per year after that, pro rata for part of a year once one year is complete, nothing under
    one year, at most two years' wage.

    Args:
        monthly_basic_salary: Last monthly basic wage in AED (without housing or other allowances).
        length_of_service: Continuous service as stated, e.g. 6.5 for "6.5 years" or 30 for "30 months".
        service_unit: The unit the service is stated in, "years" or "months".
        unpaid_absence_days: Days of unpaid absence; they do not count as service.
    """
    _check("monthly_basic_salary", monthly_basic_salary, positive=True)
    years_of_service = _service_months(length_of_service, service_unit) / 12
    _check("unpaid_absence_days", unpaid_absence_days)
    service_days = years_of_service * DAYS_PER_YEAR - unpaid_absence_days
    years = max(service_days, 0) / DAYS_PER_YEAR
    cite = f"({LAW}, Art. 51)"
    if years < 1:
        return (f"No gratuity: {_num(years)} years of service is less than the one year of continuous service "
                f"the gratuity requires {cite}.")
    first, later = min(years, 5.0), max(years - 5.0, 0.0)
    days = 21 * first + 30 * later
    daily = monthly_basic_salary / DAYS_PER_MONTH
    amount = days * daily
    cap = 24 * monthly_basic_salary  # "two years' wage"
    parts = f"21 x {_num(first)} years" + (f" + 30 x {_num(later)} years" if later else "")
    text = (f"End-of-service gratuity: {_aed(min(amount, cap))} for {_num(years)} years of service: "
            f"{parts} = {_num(days)} days x daily basic wage {_aed(daily)} "
            f"({_num(monthly_basic_salary)} / 30)")
    if amount > cap:
        text += f"; {_aed(amount)} exceeds the cap of two years' wage, so it is capped at {_aed(cap)}"
    return text + f" {cite}."


def annual_leave(length_of_service: float, service_unit: ServiceUnit = "months") -> str:
    """Days of paid annual leave for a length of service.

    Federal Decree-Law 33/2021, Art. 29: two days per month of service when service is more than six
    months and less than one year; 30 days for each year of service after that.

    Args:
        length_of_service: Length of service as stated, e.g. 8 for "8 months" or 2 for "2 years".
        service_unit: The unit the service is stated in, "months" or "years".
    """
    months_of_service = _service_months(length_of_service, service_unit)
    cite = f"({LAW}, Art. 29)"
    months = int(months_of_service)  # leave accrues per completed month
    if months_of_service <= 6:
        return (f"No annual leave is earned yet: it starts when service exceeds six months "
                f"(2 days per month from then on); during probation the employer may still agree to grant "
                f"leave {cite}.")
    if months < 12:
        return f"Annual leave: {2 * months} days (2 days x {months} months of service) {cite}."
    years, rest = divmod(months, 12)
    text = (f"Annual leave: 30 days with full pay for each year of service; {months} months is "
            f"{years} full year{'s' if years > 1 else ''}")
    if rest:
        text += (f" plus {rest} months, for which {_num(30 * rest / 12)} days are due pro rata (30 x {rest}/12) "
                 f"if the service ends before the leave is used")
    return text + f" {cite}."


def overtime_pay(monthly_basic_salary: float, overtime_hours: float,
                 period: Literal["normal", "night", "rest_day"] = "normal", shift_worker: bool = False) -> str:
    """Minimum pay for overtime hours.

    Federal Decree-Law 33/2021, Art. 19: hourly basic wage plus 25%; plus 50% for hours between 10 pm
    and 4 am (not for shift workers); work on the weekly rest day: that day's wage plus 50%, unless
    another rest day is given instead.

    Args:
        monthly_basic_salary: Monthly basic wage in AED.
        overtime_hours: Hours worked beyond the normal 8-hour day (or on the rest day).
        period: "normal" for ordinary overtime, "night" for 10 pm to 4 am, "rest_day" for the weekly rest day.
        shift_worker: True for shift workers, who do not get the night rate.
    """
    _check("monthly_basic_salary", monthly_basic_salary, positive=True)
    _check("overtime_hours", overtime_hours)
    if period not in ("normal", "night", "rest_day"):
        raise ValueError(f"period must be 'normal', 'night' or 'rest_day', got {period!r}")
    hourly = monthly_basic_salary / DAYS_PER_MONTH / HOURS_PER_DAY
    rate, note = 1.25, "hourly basic wage plus 25%"
    if period == "night" and not shift_worker:
        rate, note = 1.5, "plus 50% for work between 10 pm and 4 am"
    elif period == "night":
        note = "shift workers get the ordinary 25% at night"
    elif period == "rest_day":
        rate, note = 1.5, "rest-day work: the day's wage plus 50%, unless another rest day is given instead"
    pay = overtime_hours * hourly * rate
    limit = "" if period == "rest_day" else "; overtime may not exceed 2 hours a day"
    return (f"Overtime pay: {_aed(pay)} = {_num(overtime_hours)} h x hourly basic wage {_aed(hourly)} "
            f"({_num(monthly_basic_salary)} / 30 / 8) x {rate} ({note}){limit} ({LAW}, Art. 19).")


def notice_period(contract_notice_days: int = 30, monthly_wage: float = 0.0, days_already_served: int = 0) -> str:
    """Notice period and pay in lieu of notice.

    Federal Decree-Law 33/2021, Art. 43: the notice agreed in the contract must be at least 30 and at
    most 90 days. A party that does not observe it pays the worker's full wage for the whole notice
    period or the part not served.

    Args:
        contract_notice_days: Notice period written in the employment contract, in days.
        monthly_wage: The worker's last full monthly wage in AED (0 if only the period is wanted).
        days_already_served: Days of the notice period already worked.
    """
    _check("contract_notice_days", contract_notice_days)
    _check("monthly_wage", monthly_wage)
    _check("days_already_served", days_already_served)
    cite = f"({LAW}, Art. 43)"
    days = min(max(contract_notice_days, 30), 90)
    agreed = _num(contract_notice_days)
    if contract_notice_days < 30:
        text = f"Notice period: 30 days (the contract's {agreed} days is below the legal minimum of 30)"
    elif contract_notice_days > 90:
        text = f"Notice period: 90 days (the contract's {agreed} days is above the legal maximum of 90)"
    else:
        text = f"Notice period: {_num(days)} days as agreed (the law requires 30 to 90 days)"
    if monthly_wage > 0:
        remaining = max(days - days_already_served, 0)
        daily = monthly_wage / DAYS_PER_MONTH
        text += (f". Warning allowance if the notice is not worked: {_aed(remaining * daily)} = {_num(remaining)} "
                 f"days x daily wage {_aed(daily)} ({_num(monthly_wage)} / 30), on the last full wage")
    return text + f" {cite}."
