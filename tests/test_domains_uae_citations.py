"""The UAE pack's citation style: every spelling of an article normalized to one form, only real citations
counted, and the module served to the generic code as a ``CitationStyle``."""

from __future__ import annotations

import pytest

from agentdistill.citations import CitationStyle
from agentdistill.citations import answer_is_cited as style_cites
from agentdistill.domains.uae_labour.citations import (
    STYLE,
    answer_is_cited,
    document_law,
    extract_citations,
    is_article_heading,
    law_articles,
    normalize_header,
    short_title,
)
from agentdistill.records import Chunk


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Federal Decree-Law 33/2021, Art. 51", {("FDL 33/2021", 51)}),
        ("Federal Decree-Law No. (33) of 2021, Article 51", {("FDL 33/2021", 51)}),
        ("Art. 51 of Federal Decree by Law No. (33) of 2021", {("FDL 33/2021", 51)}),
        ("Federal Decree-Law 33/2021, Arts. 29-30", {("FDL 33/2021", 29), ("FDL 33/2021", 30)}),
        ("Federal Decree-Law 33/2021, Art. 51 and Art. 52", {("FDL 33/2021", 51), ("FDL 33/2021", 52)}),
        ("Cabinet Decision 106/2022, Art. 5", {("CR 106/2022", 5)}),
        ("Cabinet Resolution No. 106 of 2022, Article (5)", {("CR 106/2022", 5)}),
        (
            "Sources: Federal Decree-Law 33/2021, Art. 29; Cabinet Resolution 1/2022, Art. 19",
            {("FDL 33/2021", 29), ("CR 1/2022", 19)},
        ),
        ("Federal Decree-Law 33/2021 > Art. 51 > End of service gratuity", {("FDL 33/2021", 51)}),
        ("under Article 51(2) the worker", {(None, 51)}),
        ("the law of 2021 says nothing here", set()),
    ],
)
def test_law_articles_normalize_spellings(text, expected):
    assert law_articles(text) == expected


def test_a_bare_article_belongs_to_the_documents_law():
    assert law_articles("as set out in Articles 29, 30 and 31", default_law="FDL 33/2021") == {
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
    assert answer_is_cited("Federal Decree-Law 33/2021, Art. 51", {("FDL 33/2021", 51)})
    assert answer_is_cited("Cabinet Decision 106/2022, Art. 5", {("CR 106/2022", 5)})
    assert not answer_is_cited("Federal Decree-Law 33/2021, Art. 51", {("FDL 9/2022", 51)})
    assert not answer_is_cited("Federal Decree-Law 33/2021, Art. 51", {(None, 51)})  # unknown law cannot count
    assert answer_is_cited("Art. 51", {("FDL 9/2022", 51)})
    assert answer_is_cited("Federal Decree-Law 33/2021, Arts. 29-30", {("FDL 33/2021", 30)})


@pytest.mark.parametrize("text, expected", [
    ("Federal Decree-Law No. (33) of 2021, Article (51)", {("FDL 33/2021", 51)}),
    ("FDL 33/2021 Art. 51", {("FDL 33/2021", 51)}),
    # a closing parenthesis ends the list: 21 is the number of days, not an article
    ("the gratuity (Federal Decree-Law 33/2021, Art. 51), 21 days' pay per year", {("FDL 33/2021", 51)}),
    # the law an article is "of" wins over the law before it
    ("Federal Decree-Law 33/2021, Art. 5 of Cabinet Resolution 1/2022", {("CR 1/2022", 5)}),
])
def test_both_readers_parse_the_same_spellings(text, expected):
    assert law_articles(text) == expected
    assert extract_citations(text) == {f"{law} Art. {n}" for law, n in expected}


def test_both_readers_cap_ranges_alike():
    expected = {("FDL 33/2021", 1), ("FDL 33/2021", 40)}
    assert law_articles("Federal Decree-Law 33/2021, Arts. 1-40") == expected
    assert extract_citations("Federal Decree-Law 33/2021, Arts. 1-40") == {"FDL 33/2021 Art. 1", "FDL 33/2021 Art. 40"}


def test_an_untied_article_belongs_to_the_document_in_a_law_text_and_to_the_last_named_law_in_an_answer():
    law_text = "Federal Law No. 6 of 1973 is repealed. The employer shall, subject to Article 12, pay"
    assert law_articles(law_text, default_law="FDL 33/2021") == {("FDL 33/2021", 12)}
    answer = "Under Federal Decree-Law 33/2021 the gratuity (Art. 51(2)) and leave (Art. 29) apply"
    assert law_articles(answer) == {(None, 51), (None, 29)}  # untied, and no document law to fall back on
    assert extract_citations(answer) == {"FDL 33/2021 Art. 51", "FDL 33/2021 Art. 29"}


def test_the_pack_serves_the_parser_as_its_citation_style():
    style: CitationStyle = STYLE
    answer = "AED 17,500 (Federal Decree-Law 33/2021, Art. 51)"
    assert style.extract(answer) == extract_citations(answer) == {"FDL 33/2021 Art. 51"}
    assert style.of_section("Federal Decree-Law 33/2021 > Art. 51 > Gratuity") == {"FDL 33/2021 Art. 51"}
    assert "Decree" not in style.strip(answer) and "17,500" in style.strip(answer)
    assert style.is_heading("Article (51)") and not style.is_heading("The worker is paid monthly.")
    assert style.header_parts("Article 51 — End of service gratuity") == ["Art. 51", "End of service gratuity"]
    assert style.short_title("Federal Decree-Law No. (33) of 2021 Regulating Labour") == "Federal Decree-Law 33/2021"


def test_the_style_compares_law_articles_for_retrieval_as_answer_is_cited_does():
    chunk = Chunk(id="d-1", doc_id="d", source="/dl33.md",
                  title="Federal Decree-Law No. (33) of 2021 Regulating Labour",
                  section_path="Federal Decree-Law 33/2021 > Art. 51", text="The gratuity is ...", n_tokens=5)
    cited = STYLE.passage_keys(chunk)
    assert cited == {("FDL 33/2021", 51)}
    for answer in ("Federal Decree-Law 33/2021, Art. 51", "Art. 51", "Federal Decree-Law 9/2022, Art. 51"):
        assert style_cites(STYLE, answer, cited) == answer_is_cited(answer, cited)
    assert STYLE.answer_keys("no article here") == set()
