"""Surface forms of quantities: each written form carries the value the tool needs."""

from __future__ import annotations

import random

import pytest

from agentdistill.domains.uae_labour.phrasing import (
    casual,
    duration_forms,
    hour_forms,
    int_words,
    money_forms,
    number_words,
    shorthand_thousands,
)


@pytest.mark.parametrize(("n", "words"), [(0, "zero"), (7, "seven"), (18, "eighteen"), (45, "forty-five"),
                                          (120, "one hundred and twenty")])
def test_int_words(n, words):
    assert int_words(n) == words


def test_number_words_covers_halves_only():
    assert number_words(4.5) == "four and a half"
    assert number_words(0.5) == "a half"
    assert number_words(3) == "three"
    assert number_words(2.25) is None


def test_money_is_written_in_the_forms_people_use():
    forms = money_forms(12000, ["AED", "Dhs"], ["dirhams", "AED"])
    for expected in ("AED 12,000", "AED12,000", "12000 dirhams", "12k", "12k AED", "Dhs 12,000"):
        assert expected in forms
    assert shorthand_thousands(12500) == "12.5k"
    assert shorthand_thousands(12345) is None  # "12.345k" is not how anyone writes it
    assert not any("k" in f.split()[0] for f in money_forms(12345, ["AED"], ["dirhams"]) if f[0].isdigit())


def test_a_duration_states_its_figures_in_the_units_it_is_written_in():
    years = dict(duration_forms(4.5, "years"))
    assert years["four and a half years"] == {"years": 4.5}
    assert years["54 months"] == {"months": 54}
    assert years["4 years and 6 months"] == {"years": 4, "months": 6}
    months = dict(duration_forms(24, "months"))
    assert months["2 years"] == months["two years"] == {"years": 2} and months["24 months"] == {"months": 24}
    assert dict(duration_forms(18, "months"))["a year and a half"] == {"years": 1.5}
    assert dict(duration_forms(15, "months"))["1 year and 3 months"] == {"years": 1, "months": 3}
    for value, unit in ((4.5, "years"), (0.5, "years"), (7, "months"), (30, "months")):
        for text, parts in duration_forms(value, unit):  # every form holds the same length of service
            total = 12 * parts.get("years", 0) + parts.get("months", 0)
            assert total == (12 * value if unit == "years" else value), text
    with pytest.raises(ValueError, match="unit"):
        duration_forms(3, "weeks")


def test_hours_and_casual_typing_keep_their_figures():
    assert "1.5 hrs" in hour_forms(1.5) and "six hours" in hour_forms(6)
    rng = random.Random(0)
    for _ in range(50):
        text = casual("My basic salary is AED 12,000 and I worked 6 hours. What is my overtime?", rng)
        assert "12,000" in text and "6" in text
