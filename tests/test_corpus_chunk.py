"""Chunking: section paths that cite articles, token limits counted with the student's tokenizer."""

import re
from collections import defaultdict
from pathlib import Path

import pytest

from agentdistill.citations import GENERIC
from agentdistill.corpus.chunk import chunk_document
from agentdistill.corpus.read import Document, read_documents, read_file
from agentdistill.domains.uae_labour.citations import STYLE as LAW_CITATIONS
from agentdistill.errors import UserError

LAW = Path("/work/shared/data/uae_law/dl33_2021_base.md")


@pytest.fixture(scope="module")
def encode():
    from agentdistill.models.registry import load_tokenizer

    tok = load_tokenizer("smollm2-135m")  # the default student, as ingest uses it
    return lambda text: tok.encode(text, add_special_tokens=False)


def doc(text: str, title: str = "Guide") -> Document:
    return Document(source="/tmp/guide.md", title=title, text=text, format="markdown")


@pytest.mark.skipif(not LAW.exists(), reason="the shared UAE law texts are not on this machine")
def test_real_law_sections_carry_every_article_number(encode):
    chunks = chunk_document(read_file(LAW, style=LAW_CITATIONS), encode, chunk_tokens=512, chunk_overlap=64,
                            style=LAW_CITATIONS)
    paths = [c.section_path for c in chunks]
    articles = {
        int(m.group(1)) for p in paths if (m := re.match(r"Federal Decree-Law 33/2021 > Art\. (\d+)( > |$)", p))
    }
    assert articles == set(range(1, 75))  # the base text has 74 articles (59-64 without a title)
    assert "Federal Decree-Law 33/2021 > Art. 51 > End-of-Service Gratuity for Full-Time Workers" in paths
    assert all(c.n_tokens <= 512 and c.n_tokens == len(encode(c.text)) for c in chunks)
    assert len({c.id for c in chunks}) == len(chunks)


@pytest.mark.skipif(not LAW.exists(), reason="the shared UAE law texts are not on this machine")
def test_all_four_law_texts_keep_their_article_numbers(encode):
    docs, skipped = read_documents([LAW.parent], style=LAW_CITATIONS)
    assert {Path(s.path).suffix for s in skipped} == {".jsonl"}  # the JSONL copies are not documents
    articles = defaultdict(set)
    for d in docs:
        for c in chunk_document(d, encode, style=LAW_CITATIONS):
            if m := re.match(r"(.+?) > Art\. (\d+)", c.section_path):
                articles[m.group(1)].add(int(m.group(2)))
    assert {law: len(nums) for law, nums in articles.items()} == {
        "Federal Decree-Law 33/2021": 74,
        "Cabinet Resolution 1/2022": 39,
        "Federal Decree-Law 9/2022": 32,
        "Cabinet Resolution 106/2022": 20,
    }


def test_long_section_is_split_with_overlap_under_the_limit(encode):
    sentences = [f"Rule {i} says the employer keeps record number {i} for two years." for i in range(40)]
    chunks = chunk_document(doc("# Guide\n\n## Records\n\n" + " ".join(sentences)), encode, 64, 24)
    assert len(chunks) > 3
    assert {c.section_path for c in chunks} == {"Guide > Records"}
    assert all(c.n_tokens <= 64 for c in chunks)
    for s in sentences:  # nothing lost
        assert any(s in c.text for c in chunks)
    for a, b in zip(chunks, chunks[1:], strict=False):  # neighbours share their border sentence
        last = re.findall(r"Rule \d+ ", a.text)[-1]
        assert last in b.text


def test_a_table_that_fits_stays_whole_and_sources_reach_every_piece(encode):
    table = "\n".join(["| Years | Days |", "|---|---|"] + [f"| {y} | {21 * y} |" for y in range(1, 7)])
    filler = " ".join(f"Paragraph sentence {i} explains the gratuity rules in plain words." for i in range(12))
    text = (
        f"# Gratuity\n\n## How it is paid\n\n{filler}\n\n{table}\n\n{filler}\n\n"
        "Sources: Federal Decree-Law 33/2021, Art. 51; Cabinet Resolution 1/2022, Art. 30\n"
    )
    chunks = chunk_document(doc(text, title="Gratuity"), encode, 128, 16)
    assert len(chunks) >= 3
    holding = [c for c in chunks if "| 1 | 21 |" in c.text]
    assert len(holding) == 1 and table in holding[0].text
    expected = "Gratuity > How it is paid (Federal Decree-Law 33/2021, Art. 51; Cabinet Resolution 1/2022, Art. 30)"
    assert {c.section_path for c in chunks} == {expected}


def test_heading_only_sections_give_no_chunks_and_preamble_keeps_the_title(encode):
    chunks = chunk_document(doc("Preamble text.\n\n# Guide\n\n## Part A\n\n### Leave\n\nBody."), encode)
    assert [(c.section_path, c.text) for c in chunks] == [
        ("Guide", "Preamble text."),
        ("Guide > Part A > Leave", "### Leave\n\nBody."),
    ]


@pytest.mark.parametrize(("size", "overlap"), [(16, 0), (128, 64), (128, -1)])
def test_bad_chunk_sizes_are_user_errors(encode, size, overlap):
    with pytest.raises(UserError, match="corpus.chunk_"):
        chunk_document(doc("# Guide\n\nText."), encode, size, overlap)


def test_generic_style_paths_are_the_markdown_headings_and_an_answer_cites_them(encode):
    text = "# Staff handbook\n\n## Annual leave\n\n### Carry-over\n\nUp to 5 unused days carry over to March."
    chunks = chunk_document(doc(text, title="Staff handbook"), encode)
    assert [c.section_path for c in chunks] == ["Staff handbook > Annual leave > Carry-over"]
    answer = "Five days carry over (Staff handbook > Annual leave > Carry-over)."
    assert GENERIC.extract(answer) == GENERIC.of_section(chunks[0].section_path)
    # the law style would read the same document's article headings into its paths
    law = doc("# Staff handbook\n\n## Article 7 - Carry-over\n\nUp to 5 days.", title="Staff handbook")
    assert chunk_document(law, encode, style=LAW_CITATIONS)[0].section_path == "Staff handbook > Art. 7 > Carry-over"
    assert chunk_document(law, encode)[0].section_path == "Staff handbook > Article 7 - Carry-over"
