"""Citation parsing: the many spellings of one article reduce to one (law, article) pair."""

import pytest

from agentdistill.corpus.cite import (
    document_law,
    extract_citations,
    is_article_heading,
    matches,
    normalize_header,
    short_title,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Federal Decree-Law 33/2021, Art. 51", {("FDL 33/2021", 51)}),
        ("Federal Decree-Law No. (33) of 2021, Article 51", {("FDL 33/2021", 51)}),
        ("Art. 51 of Federal Decree by Law No. (33) of 2021", {("FDL 33/2021", 51)}),
        ("Federal Decree-Law 33/2021, Arts. 29-30", {("FDL 33/2021", 29), ("FDL 33/2021", 30)}),
        ("Federal Decree-Law 33/2021, Art. 51 and Art. 52", {("FDL 33/2021", 51), ("FDL 33/2021", 52)}),
        ("Cabinet Decision 106/2022, Art. 5", {("CAB 106/2022", 5)}),
        ("Cabinet Resolution No. 106 of 2022, Article (5)", {("CAB 106/2022", 5)}),
        (
            "Sources: Federal Decree-Law 33/2021, Art. 29; Cabinet Resolution 1/2022, Art. 19",
            {("FDL 33/2021", 29), ("CAB 1/2022", 19)},
        ),
        ("Federal Decree-Law 33/2021 > Art. 51 > End of service gratuity", {("FDL 33/2021", 51)}),
        ("under Article 51(2) the worker", {(None, 51)}),
        ("the law of 2021 says nothing here", set()),
    ],
)
def test_extract_citations_normalizes_spellings(text, expected):
    assert extract_citations(text) == expected


def test_a_bare_article_belongs_to_the_documents_law():
    assert extract_citations("as set out in Articles 29, 30 and 31", default_law="FDL 33/2021") == {
        ("FDL 33/2021", 29),
        ("FDL 33/2021", 30),
        ("FDL 33/2021", 31),
    }


def test_law_titles_shorten_and_article_headings_normalize():
    title = "Federal Decree-Law No. (33) of 2021 Regulating Labour Relations (English translation)"
    assert short_title(title) == "Federal Decree-Law 33/2021"
    assert document_law(title) == "FDL 33/2021"
    assert short_title("Annual Leave") == "Annual Leave"
    assert document_law("Annual leave under Federal Decree-Law 33/2021") is None  # names it, but is not it
    assert normalize_header("Article 51 — End of service gratuity") == ["Art. 51", "End of service gratuity"]
    assert normalize_header("## Article (7)") == ["Art. 7"]
    assert normalize_header("Articles of association") == ["Articles of association"]
    assert is_article_heading("Article (12)")
    assert not is_article_heading("Article 12 of this law applies to everyone who works in the country.")


def test_matching_is_strict_about_the_law_when_the_answer_names_one():
    assert matches("Federal Decree-Law 33/2021, Art. 51", {("FDL 33/2021", 51)})
    assert matches("Cabinet Decision 106/2022, Art. 5", {("CAB 106/2022", 5)})
    assert not matches("Federal Decree-Law 33/2021, Art. 51", {("FDL 9/2022", 51)})
    assert not matches("Federal Decree-Law 33/2021, Art. 51", {(None, 51)})  # unknown law cannot count
    assert matches("Art. 51", {("FDL 9/2022", 51)})
    assert matches("Federal Decree-Law 33/2021, Arts. 29-30", {("FDL 33/2021", 30)})
