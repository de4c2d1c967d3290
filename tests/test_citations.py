"""The generic citation style: a citation is a passage's section path, as the search tools show it and as an
answer cites it in brackets; it names no domain and works for any documents."""

from __future__ import annotations

import pytest

from agentdistill.citations import GENERIC, answer_is_cited, section_key
from agentdistill.records import Chunk


@pytest.mark.parametrize("text, expected", [
    ("Five days carry over (Staff handbook > Annual leave > Carry-over).",
     {"Staff handbook > Annual leave > Carry-over"}),
    ("See [Annual leave > Carry-over] and [Expenses >  Travel].", {"Annual leave > Carry-over", "Expenses > Travel"}),
    ("Refunds in 14 days (Returns > Refunds (Consumer Code, Sec. 12)).",
     {"Returns > Refunds (Consumer Code, Sec. 12)"}),
    ("[1] Returns > Refund periods: Refunds are paid within 14 days.\n[2] Returns: We take back unworn items.",
     {"Returns > Refund periods", "Returns"}),  # a search result shows each passage under its citation
    ("It costs 30 (EUR) if x (x > 5) holds; see [1] and [the FAQ](https://example.com/faq).", set()),
    ("no citation here, just 14 days", set()),
])
def test_extract_reads_bracketed_section_paths_and_shown_passages(text, expected):
    assert GENERIC.extract(text) == expected


def test_spellings_of_one_path_compare_equal_and_match_the_search_tools_citation():
    assert section_key("  Staff handbook>Annual   leave > Carry-over ") == "Staff handbook > Annual leave > Carry-over"
    assert section_key("FAQ > Shipping: how long") == "FAQ > Shipping - how long"  # tools.documents.citation's form
    assert GENERIC.of_section("FAQ > Shipping: how long") == GENERIC.extract("[1] FAQ > Shipping - how long: text")


def test_strip_removes_citations_but_keeps_the_words_of_the_text():
    text = "Refunds take 14 days (Returns > Refund periods) for (most) items."
    assert GENERIC.strip(text).split() == ["Refunds", "take", "14", "days", "for", "(most)", "items."]


def test_headings_are_the_documents_markdown_headings():
    assert not GENERIC.is_heading("Article (12)")  # plain text marks no heading the generic style can tell
    assert GENERIC.header_parts("## Annual leave: carry-over") == ["Annual leave: carry-over"]
    assert GENERIC.short_title(" Staff handbook ") == "Staff handbook"


def test_retrieval_hits_a_chunk_of_the_cited_section_or_of_one_inside_it():
    chunk = Chunk(id="d-0001", doc_id="d", source="/h.md", title="Staff handbook",
                  section_path="Staff handbook > Annual leave > Carry-over", text="Up to 5 days carry over.",
                  n_tokens=8)
    cited = GENERIC.passage_keys(chunk)
    assert answer_is_cited(GENERIC, "Staff handbook > Annual leave > Carry-over", cited)
    assert answer_is_cited(GENERIC, "Staff handbook > Annual leave", cited)  # the section holds the chunk
    assert answer_is_cited(GENERIC, "Carry-over is in [Staff handbook > Annual leave]", cited)
    assert not answer_is_cited(GENERIC, "Staff handbook > Annual", cited)  # a part is matched whole
    assert not answer_is_cited(GENERIC, "Staff handbook > Expenses", cited)
