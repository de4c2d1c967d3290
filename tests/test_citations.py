"""Citation extraction normalizes every spelling of an article to one form, and only real citations count."""

from __future__ import annotations

import pytest

from agentdistill.citations import extract_citations, format_citation, resolve_law


@pytest.mark.parametrize("text, expected", [
    ("(Federal Decree-Law 33/2021, Art. 51)", {"FDL 33/2021 Art. 51"}),
    ("FDL 33/2021 Art. 51", {"FDL 33/2021 Art. 51"}),
    ("Federal Decree-Law 33/2021, Arts. 29-30", {"FDL 33/2021 Art. 29", "FDL 33/2021 Art. 30"}),
    ("Cabinet Resolution 1/2022, Art. 19", {"CR 1/2022 Art. 19"}),
    ("Federal Decree-Law 9/2022, Art. 12", {"FDL 9/2022 Art. 12"}),
    ("Cabinet Decision 106/2022, Art. 5", {"CR 106/2022 Art. 5"}),  # same Arabic word as "Resolution"
    ("Article 51 of Federal Decree-Law No. (33) of 2021", {"FDL 33/2021 Art. 51"}),
    ("Arts. 29 and 30 of Cabinet Resolution No. 1 of 2022", {"CR 1/2022 Art. 29", "CR 1/2022 Art. 30"}),
    ("Federal Decree-Law 33/2021 > Art. 51 > End-of-service gratuity", {"FDL 33/2021 Art. 51"}),
    ("see Art. 29(1)(b)", set()),  # an article of no named law cannot be checked
    ("Sources: Federal Decree-Law 33/2021, Art. 39; Federal Decree-Law 33/2021, Art. 51; Cabinet Resolution "
     "1/2022, Art. 29", {"FDL 33/2021 Art. 39", "FDL 33/2021 Art. 51", "CR 1/2022 Art. 29"}),
    ("Under Federal Decree-Law 33/2021 the gratuity (Art. 51(2)) and leave (Art. 29) apply",
     {"FDL 33/2021 Art. 51", "FDL 33/2021 Art. 29"}),
    ("Federal Decree-Law 33/2021, Art. 51, 2021 edition", {"FDL 33/2021 Art. 51"}),
    ("no citation here, just 33 days and 2021", set()),
])
def test_extract_citations(text, expected):
    assert extract_citations(text) == expected


def test_huge_ranges_are_not_expanded_into_many_citations():
    assert extract_citations("Federal Decree-Law 33/2021, Arts. 1-74") == {"FDL 33/2021 Art. 1", "FDL 33/2021 Art. 74"}


def test_a_tool_citation_round_trips():
    assert extract_citations(format_citation("FDL 33/2021", 43)) == {"FDL 33/2021 Art. 43"}
    assert format_citation("CR 106/2022", 5) == "Cabinet Decision 106/2022, Art. 5"


@pytest.mark.parametrize("name, lid", [
    ("Federal Decree-Law 33/2021", "FDL 33/2021"),
    ("FDL 33/2021", "FDL 33/2021"),
    ("33/2021", "FDL 33/2021"),
    ("No. 33 of 2021", "FDL 33/2021"),
    ("UAE labour law", "FDL 33/2021"),
    ("domestic workers law", "FDL 9/2022"),
    ("the domestic workers regulation", "CR 106/2022"),
    ("executive regulation", "CR 1/2022"),
    ("Cabinet Resolution No. (1) of 2022", "CR 1/2022"),
    ("income tax law", None),
    ("45/2030", None),
])
def test_resolve_law(name, lid):
    assert resolve_law(name) == lid
