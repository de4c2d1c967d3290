"""The UAE labour lookups over a real ingest of the project corpus (real embedder, real Chroma index)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from example_packs import example_config

from agentdistill.domains.uae_labour.citations import extract_citations
from agentdistill.domains.uae_labour.laws import law_name
from agentdistill.jsonl import read_records
from agentdistill.records import Chunk
from agentdistill.run_layout import RunLayout
from agentdistill.tools import load_tools
from agentdistill.tools.documents import CITATION_END

CORPUS = Path(__file__).resolve().parents[1] / "examples" / "uae_labour" / "corpus"


SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from agentdistill.corpus.ingest import ingest

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core box: spinning OpenMP threads slow everything down
    run_dir = tmp_path_factory.mktemp("uae_run")
    ingest([CORPUS], run_dir, example_config(), progress=False)
    yield run_dir
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tools(run_dir):
    return load_tools(example_config(), run_dir)


def test_search_finds_the_gratuity_article_and_leads_each_passage_with_its_citation(tools):
    r = tools.call("search_labour_law", {"query": "end of service gratuity for 7 years", "top_k": 3})
    assert r.ok, r.content
    lines = r.content.splitlines()
    assert [line[:3] for line in lines] == ["[1]", "[2]", "[3]"]
    assert "FDL 33/2021 Art. 51" in extract_citations(r.content)
    assert len(r.content) <= 1300  # short enough for a small model's context


def test_search_rejects_a_bad_top_k_with_a_message(tools):
    r = tools.call("search_labour_law", {"query": "overtime", "top_k": 50})
    assert not r.ok and "'top_k' must be one of [1, 2, 3, 4, 5], got 50" in r.content


def test_get_article_accepts_the_ways_people_name_a_law(tools):
    for law in ("Federal Decree-Law 33/2021", "FDL 33/2021", "33/2021", "UAE labour law"):
        r = tools.call("get_article", {"law": law, "article": 51})
        assert r.ok and "FDL 33/2021 Art. 51" in extract_citations(r.content), (law, r.content)
        assert "gratuity" in r.content.lower()
    domestic = tools.call("get_article", {"law": "domestic workers law", "article": 11})
    assert "FDL 9/2022 Art. 11" in extract_citations(domestic.content)


def test_get_article_explains_unknown_laws_and_missing_articles(tools):
    unknown = tools.call("get_article", {"law": "tax code", "article": 3})
    assert not unknown.ok
    assert "unknown law 'tax code'" in unknown.content and "Federal Decree-Law 33/2021" in unknown.content
    missing = tools.call("get_article", {"law": "FDL 33/2021", "article": 999})
    assert missing.ok and missing.content.startswith("No passage covers Federal Decree-Law 33/2021, Art. 999")
    assert "51" in missing.content  # it lists the articles that do exist


def test_get_article_writes_a_headings_colon_as_the_search_does(tools, run_dir):
    """A citation never holds ": ", where a passage's text starts: a heading's colon is written " - ", so a
    reader that drops the citation (agent/quotes.py) drops all of it, not the heading's first half."""
    chunks = [c for c in read_records(RunLayout(run_dir).chunks, Chunk)
              if ": " in c.section_path and extract_citations(c.section_path)]
    assert chunks  # the corpus has such headings ("Refund of recruitment fees: the formula ...")
    for chunk in chunks:
        lid, _, article = sorted(extract_citations(chunk.section_path))[0].rpartition(" Art. ")
        r = tools.call("get_article", {"law": law_name(lid), "article": int(article)})
        assert r.ok and all(line.split(CITATION_END, 1)[0].endswith(")") for line in r.content.splitlines()), (
            r.content[:300])


def test_get_article_leads_with_the_asked_articles_own_sentences(tools, run_dir):
    """A passage filed under several articles: the one asked for is stated first, whatever its place in the
    passage, so an answer taken from the first sentences quotes that article."""
    stating: dict[str, list[str]] = {}  # article -> the sentences of passages filed under it that cite it
    later = set()  # articles whose passage states them after another article's sentence
    for chunk in read_records(RunLayout(run_dir).chunks, Chunk):
        sentences = SENTENCE.split(" ".join(chunk.text.split("\n\n", 1)[-1].split()))
        for wanted in extract_citations(chunk.section_path):
            citing = [s for s in sentences if wanted in extract_citations(s)]
            stating.setdefault(wanted, []).extend(citing)
            if citing and citing[0] != sentences[0]:
                later.add(wanted)
    asked = [wanted for wanted, sentences in sorted(stating.items()) if sentences]
    for wanted in asked:
        lid, _, article = wanted.rpartition(" Art. ")
        r = tools.call("get_article", {"law": law_name(lid), "article": int(article)})
        shown = r.content.splitlines()[0].split("): ", 1)[1]
        assert r.ok and any(shown[:60] == s[:60] for s in stating[wanted]), (wanted, r.content[:300])
    assert len(asked) >= 20 and len(later & set(asked)) >= 5  # articles stated later in a passage were brought forward
