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


def test_a_duration_in_another_unit_keeps_the_value_of_the_tools_unit():
    years = dict(duration_forms(4.5, "years"))
    assert years["four and a half years"] == 4.5
    assert years["54 months"] == 4.5
    assert years["4 years and 6 months"] == 4.5
    months = dict(duration_forms(24, "months"))
    assert months["2 years"] == 24 and months["two years"] == 24 and months["24 months"] == 24
    assert dict(duration_forms(18, "months"))["a year and a half"] == 18
    with pytest.raises(ValueError, match="unit"):
        duration_forms(3, "weeks")


def test_hours_and_casual_typing_keep_their_figures():
    assert "1.5 hrs" in hour_forms(1.5) and "six hours" in hour_forms(6)
    rng = random.Random(0)
    for _ in range(50):
        text = casual("My basic salary is AED 12,000 and I worked 6 hours. What is my overtime?", rng)
        assert "12,000" in text and "6" in text
