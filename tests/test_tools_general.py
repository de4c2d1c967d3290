"""The general pack: a calculator that evaluates arithmetic without eval, units, dates."""

from __future__ import annotations

import pytest

from agentdistill.tools.general import add_days, calculator, calculator_for, convert_units, date_diff
from agentdistill.tools.spec import Tool


@pytest.mark.parametrize("expr, value", [
    ("1 + 2 * 3", "7"),
    ("(21 * 5 + 30 * 2) * 9,000 / 30", "49500"),
    ("2^10", "1024"),
    ("3 x 4", "12"),
    ("15% of 4000", "600"),
    ("10 % 3", "1"),
    ("sqrt(16) + max(1,200)", "204"),
    ("round(2 / 3, 3)", "0.667"),
    ("AED 9,000 / 30", "300"),
    ("-2 ** 2", "-4"),
    ("3,200 divided by 4", "800"),  # runs/s18a: the question's words copied into the expression
    ("7 Times 3 minus 1", "20"),
    ("2 multiplied by 5 plus 1", "11"),
])
def test_calculator_evaluates_arithmetic(expr, value):
    assert calculator(expr) == f"{expr} = {value}"


# A currency's spelling is dropped: the generic ones and any three-capital code beside a number in every run,
# the spellings a run's packs declare (domains.currency_aliases) only in that run.
LOCAL = {"dhs": "AED", "dh": "AED", "dirhams": "AED"}


@pytest.mark.parametrize("expr, value", [
    ("Dhs 9,000 / 30", "300"), ("dh 500 * 2", "1000"), ("Dhs. 500 + 1", "501"), ("500 dirhams / 2", "250"),
    ("AED9000/30", "300"), ("(AED 9000 + aed 1000) / 30", "333.3333333"), ("$100 + 5", "105"), ("$.5 + 1", "1.5"),
])
def test_the_runs_calculator_drops_its_packs_currency_words(expr, value):
    assert calculator_for(LOCAL | {"aed": "AED"})(expr) == f"{expr} = {value}"


def test_without_the_pack_its_currency_words_are_not_arithmetic():
    with pytest.raises(ValueError):
        calculator("Dhs 9,000 / 30")
    assert calculator("CHF 20 * 3") == "CHF 20 * 3 = 60" and calculator("20 CHF * 3") == "20 CHF * 3 = 60"
    for expr in ("LOG(100)", "ABS(-3)"):  # an upper-case function name is not a currency code: still an error
        with pytest.raises(ValueError):
            calculator_for(LOCAL)(expr)


def test_the_runs_calculator_is_the_same_tool_to_a_model():
    assert Tool.from_function(calculator_for(LOCAL)).spec() == Tool.from_function(calculator).spec()


@pytest.mark.parametrize("expr", [
    "__import__('os').system('touch /tmp/pwned')",
    "open('/etc/passwd').read()",
    "(1).__class__",
    "[x for x in range(3)]",
    "lambda: 1",
    "a + 1",
    "'abc' * 3",
])
def test_calculator_runs_no_code(expr):
    with pytest.raises(ValueError):
        calculator(expr)


def test_calculator_refuses_work_that_would_hang_and_reports_math_errors():
    with pytest.raises(ValueError, match="too large"):
        calculator("9 ** 9 ** 9")
    with pytest.raises(ValueError, match="division by zero"):
        calculator("1 / 0")
    with pytest.raises(ValueError, match="not an arithmetic expression"):
        calculator("2 +* 3)")


def test_convert_units():
    assert convert_units(5, "miles", "km") == "5 miles = 8.04672 km"
    assert convert_units(100, "F", "C") == "100 F = 37.7778 C"
    assert convert_units(2, "h", "min") == "2 h = 120 min"
    with pytest.raises(ValueError, match="cannot convert"):
        convert_units(1, "kg", "km")
    with pytest.raises(ValueError, match="unknown unit"):
        convert_units(1, "parsec", "km")


def test_date_arithmetic():
    # 2019-03-01 .. 2024-06-30: 1948 days (2020 and 2024 are leap years), 5 years 3 months 29 days
    assert date_diff("2019-03-01", "2024-06-30") == ("From 2019-03-01 to 2024-06-30: 1948 days (5 years, 3 months, "
                                                     "29 days; 5.34 years of 365 days)")
    # month ends: Dec 31 + 114 months is Jun 30 (clamped), so this is a whole number of months
    assert ": 3468 days (9 years, 6 months, 0 days;" in date_diff("2008-12-31", "2018-06-30")
    assert ": -29 days (0 years, 1 months, 0 days earlier; -0.08 years" in date_diff("2024-03-01", "2024-02-01")
    assert add_days("2024-01-31", 30) == "2024-01-31 + 30 days = 2024-03-01 (Friday)"
    assert add_days("2024-03-01", -1).startswith("2024-03-01 - 1 days = 2024-02-29")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        date_diff("01/03/2019", "2024-06-30")


def test_a_huge_expression_is_refused_before_it_is_read():
    import time

    from agentdistill.tools.general import MAX_EXPRESSION_CHARS

    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"50000 characters long; at most {MAX_EXPRESSION_CHARS}"):
        calculator("1" * 50_000)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("text", ["1" * 50_000, "1" * 50_000 + "% of 2", "12.5" * 12_500 + "%"])
def test_the_operator_normaliser_takes_linear_time(text):
    import time

    from agentdistill.tools.general import _normalize_expression

    start = time.perf_counter()
    _normalize_expression(text)
    assert time.perf_counter() - start < 1.0  # quadratic: 137 s for 50,000 digits
