"""The search's own logic on a toy index (bag-of-words vectors, no model): one hit per section with its
neighbouring chunks, reciprocal rank fusion, and the query cleanup."""

import numpy as np
import pytest

from agentdistill.corpus.search import Searcher
from agentdistill.errors import UserError
from agentdistill.records import Chunk

VOCAB = ["leave", "annual", "days", "gratuity", "basic", "wage", "notice", "period", "probation", "maid"]


def bag(text: str) -> np.ndarray:
    words = text.lower().split()
    v = np.array([float(words.count(w)) for w in VOCAB], dtype=np.float32)
    return v / (np.linalg.norm(v) or 1.0)


class ToyEmbedder:
    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([bag(t) for t in texts])


class ToyIndex:
    """Cosine similarity over bag-of-words vectors of the chunks' texts, best first (what ChunkIndex.query gives)."""

    def __init__(self, chunks: list[Chunk]):
        self.ids = [c.id for c in chunks]
        self.vectors = np.stack([bag(c.text) for c in chunks])

    def count(self) -> int:
        return len(self.ids)

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        sims = self.vectors @ vector
        order = np.argsort(-sims, kind="stable")[:n]
        return [(self.ids[i], float(sims[i])) for i in order]


def chunk(n: int, doc: str, path: str, text: str) -> Chunk:
    return Chunk(id=f"{doc}-{n:04d}", doc_id=doc, source=f"/docs/{doc}.md", title=doc, section_path=path, text=text,
                 n_tokens=len(text.split()))


# Reading order: a long article split in three chunks, then its neighbour article, then another document.
CHUNKS = [
    chunk(0, "law", "Law > Art. 29 > Annual leave", "annual leave days annual leave"),
    chunk(1, "law", "Law > Art. 29 > Annual leave", "annual leave days"),
    chunk(2, "law", "Law > Art. 29 > Annual leave", "leave carried forward basic wage"),
    chunk(3, "law", "Law > Art. 30 > Maternity leave", "leave days for a mother"),
    chunk(0, "guide", "Guide", "annual leave days part time days"),
    chunk(1, "guide", "Guide", "gratuity basic wage"),
]


@pytest.fixture
def searcher() -> Searcher:
    return Searcher(CHUNKS, ToyIndex(CHUNKS), ToyEmbedder(), hybrid=False)


def test_neighbours_are_the_adjacent_chunks_of_the_same_section_only(searcher):
    by_id = {c.id: c for c in CHUNKS}
    assert [c.id for c in searcher.neighbours(by_id["law-0001"])] == ["law-0000", "law-0002"]
    assert [c.id for c in searcher.neighbours(by_id["law-0002"])] == ["law-0001"]  # Art. 30 is another section
    assert [c.id for c in searcher.neighbours(by_id["guide-0000"])] == ["guide-0001"]  # not law-0003 before it
    assert searcher.neighbours(by_id["law-0003"]) == []


def test_per_section_search_gives_one_hit_a_section_with_its_neighbouring_chunks(searcher):
    plain = searcher.search("annual leave days", k=3, per_section=False)
    assert [h.chunk.id for h in plain] == ["law-0001", "law-0000", "guide-0000"]  # two slots for Art. 29
    assert all(h.neighbours == [] for h in plain)

    hits = searcher.search("annual leave days", k=3, per_section=True)
    assert [h.chunk.id for h in hits] == ["law-0001", "guide-0000", "law-0003"]  # the freed slot finds Art. 30
    assert [c.id for c in hits[0].neighbours] == ["law-0000", "law-0002"]
    assert [h.citation for h in hits] == [CHUNKS[0].section_path, "Guide", CHUNKS[3].section_path]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hybrid_search_fuses_dense_and_bm25_ranks_with_their_weights(searcher):
    dense = [cid for cid, _ in searcher.dense("gratuity basic wage")]
    lexical = [cid for cid, _ in searcher.lexical("gratuity basic wage")]
    hits = searcher.search("gratuity basic wage", k=len(CHUNKS), hybrid=True, per_section=False)
    expected = {c.id: (1 / (searcher.rrf_k + dense.index(c.id) + 1) if c.id in dense else 0.0)
                + (searcher.bm25_weight / (searcher.rrf_k + lexical.index(c.id) + 1) if c.id in lexical else 0.0)
                for c in CHUNKS}  # fmt: skip
    assert hits[0].chunk.id == "guide-0001"
    for h in hits:
        assert h.score == pytest.approx(expected[h.chunk.id])


def test_empty_query_is_a_user_error(searcher):
    with pytest.raises(UserError):
        searcher.search("  ")



def test_an_interleaved_search_shows_the_top_of_every_query_first(searcher):
    alone = [h.chunk.id for h in searcher.search("gratuity", k=3)]
    assert alone[0] == "guide-0001" and "law-0003" not in alone[:2]
    both = [h.chunk.id for h in searcher.search_interleaved(["gratuity", "leave days for a mother"], k=3)]
    assert both[:2] == ["law-0003", "guide-0001"]  # each query's best, the one the other ranks higher first
    assert len(set(both)) == 3


def test_an_interleaved_search_in_order_leads_with_the_first_querys_top(searcher):
    for queries in (["gratuity", "leave days for a mother"], ["leave days for a mother", "gratuity"]):
        tops = [searcher.search(q, k=1)[0].chunk.id for q in queries]
        assert [h.chunk.id for h in searcher.search_interleaved(queries, k=3, in_order=True)][:2] == tops


def document_search(searcher: Searcher, **corpus: object):
    from agentdistill.config import RunConfig
    from agentdistill.tools.documents import DocumentSearch

    tool = DocumentSearch(None, RunConfig.model_validate({"corpus": corpus}))
    tool._searcher = searcher  # the toy index in place of an ingested run's
    return tool


def test_the_search_tool_also_searches_the_askers_words_unless_turned_off(searcher):
    question = "how many leave days for a mother?"
    on = document_search(searcher).search_documents("gratuity", 2, asked=question)
    assert on.startswith("[1] Law > Art. 30 > Maternity leave: ") and "[2] Guide: gratuity" in on
    off = document_search(searcher, search_asked=False).search_documents("gratuity", 2, asked=question)
    assert "Maternity" not in off and off.startswith("[1] Guide: gratuity")
    assert document_search(searcher).search_documents("gratuity", 2) == off


def test_with_asked_leads_the_askers_top_passage_is_shown_first(searcher):
    query, question = "how many leave days for a mother?", "gratuity"
    unled = document_search(searcher, asked_leads=False).search_documents(query, 2, asked=question)
    assert unled.startswith("[1] Law > Art. 30")
    led = document_search(searcher).search_documents(query, 2, asked=question)
    assert led.startswith("[1] Guide: gratuity") and "[2] Law > Art. 30 > Maternity leave: " in led


def test_the_query_alone_says_whether_the_documents_cover_it_and_the_asked_words_count_above_the_floor(searcher):
    floored = document_search(searcher, min_similarity=0.9)
    nothing = "No passage in the documents is about 'maid'"
    assert floored.search_documents("maid", 2, asked="leave days for a mother").startswith(nothing)
    both = floored.search_documents("leave days for a mother", 2, asked="annual leave days annual leave")
    assert both.startswith("[1] Law > Art. 29 > Annual leave") and "[2] Law > Art. 30 > Maternity leave: " in both
    under = floored.search_documents("leave days for a mother", 2, asked="gratuity")  # 0.58: under the floor
    assert under == floored.search_documents("leave days for a mother", 2)


def test_the_search_tool_reports_how_relevant_its_closest_passage_is_to_a_message(searcher):
    tool = document_search(searcher).tool()
    assert tool.relevance is not None
    assert tool.relevance("leave days for a mother") == pytest.approx(1.0)
    assert tool.relevance("gratuity") > tool.relevance("hello there") == 0.0


def test_the_search_tool_takes_the_name_it_is_given_or_its_functions_own(searcher):
    search = document_search(searcher)

    def search_policies(query: str, *, asked: str | None = None) -> str:
        """Search the policies.

        Args:
            query: What to look for.
        """
        return search.search_documents(query, asked=asked)

    assert search.tool().name == "search_documents"
    assert search.tool("find_passages").name == "find_passages"
    assert search.tool(fn=search_policies).name == "search_policies"
    assert search.tool("policy_search", fn=search_policies).name == "policy_search"
