"""Ingest end to end (real tokenizer, MiniLM, Chroma, k-means): bad files skipped, changes re-embedded
incrementally, interrupted runs resumed, and the index searchable with citations."""

import io
import json
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject
from typer.testing import CliRunner

from agentdistill import cli
from agentdistill.config import RunConfig
from agentdistill.corpus import ingest, load_chunks, load_clusters
from agentdistill.corpus.index import ChunkIndex
from agentdistill.corpus.search import Searcher
from agentdistill.errors import UserError

pytestmark = pytest.mark.slow

LEAVE = """# Annual Leave

## How many days of leave a worker earns

A worker who has completed a year of service earns thirty calendar days of paid annual leave.
Between six months and a year of service, the worker earns two days for every month.

Sources: Federal Decree-Law 33/2021, Art. 29

## Leave for part-time workers

Part-time workers earn leave in proportion to the hours they work, with a minimum of five days.

Sources: Cabinet Resolution 1/2022, Art. 18
"""

GRATUITY = """# End-of-Service Gratuity

## Gratuity for full-time workers

After one year of continuous service a full-time worker is owed a gratuity of twenty-one days of basic
wage for each of the first five years, and thirty days for each further year.

Sources: Federal Decree-Law 33/2021, Art. 51
"""

HTML = """<html><head><title>Overtime</title></head><body><h1>Overtime</h1>
<h2>Night overtime premium</h2><p>Overtime between ten at night and four in the morning is paid with a
premium of at least fifty percent of the basic hourly wage.</p><p>Sources: Federal Decree-Law 33/2021, Art. 19</p>
</body></html>"""


def make_pdf(lines: list[str], user_password: str | None = None) -> bytes:
    """A real one-page PDF with a text layer (Helvetica), optionally encrypted."""
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})  # fmt: skip
    fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    stream = DecodedStreamObject()
    body = "\n".join(f"({line}) Tj T*" for line in lines)
    stream.set_data(f"BT /F1 11 Tf 14 TL 60 740 Td\n{body}\nET".encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    if user_password is not None:
        writer.encrypt(user_password)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture()
def corpus(tmp_path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "leave.md").write_text(LEAVE, encoding="utf-8")
    (d / "gratuity.md").write_text(GRATUITY, encoding="utf-8")
    (d / "copy-of-leave.md").write_text(LEAVE, encoding="utf-8")  # a duplicate: ingested once
    (d / "overtime.html").write_text(HTML, encoding="utf-8")
    good_pdf = make_pdf(["Article (37)", "A worker may take up to fifteen days of unpaid leave for a pilgrimage."])
    (d / "hajj.pdf").write_bytes(good_pdf)
    (d / "corrupt.pdf").write_bytes(good_pdf[: len(good_pdf) // 2])
    (d / "locked.pdf").write_bytes(make_pdf(["Secret terms."], user_password="pw"))
    (d / "image.txt").write_bytes(bytes(range(256)) * 8)
    (d / "notes.txt").write_bytes("Caf\u00e9 opening hours".encode("latin-1"))
    return d


def cfg() -> RunConfig:
    c = RunConfig()
    c.tools.packs = ["uae_labour", "general"]  # its citation style reads the law's article headings ("Hajj > Art. 37")
    c.corpus.n_clusters = 2
    return c


def test_ingest_skips_bad_files_indexes_the_rest_and_searches_with_citations(corpus, tmp_path):
    run = tmp_path / "run"
    report = ingest([corpus], run, cfg(), progress=False)

    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"corrupt.pdf", "locked.pdf", "image.txt", "notes.txt"}
    assert "damaged or truncated" in reasons["corrupt.pdf"] and "encrypted" in reasons["locked.pdf"]
    assert "binary" in reasons["image.txt"] and "UTF-8" in reasons["notes.txt"]
    assert [Path(d["path"]).name for d in report.duplicates] == ["leave.md"]  # copy-of-leave.md sorts first
    assert report.documents == report.new_documents == 4
    on_disk = json.loads((run / "ingest_report.json").read_text())
    assert on_disk["chunks"] == report.chunks and len(on_disk["skipped"]) == 4

    chunks = load_chunks(run)
    assert len(chunks) == report.chunks == report.embedded_chunks == ChunkIndex(run / "index").count()
    assert {Path(c.source).name for c in chunks} == {"copy-of-leave.md", "gratuity.md", "overtime.html", "hajj.pdf"}
    paths = {c.section_path for c in chunks}
    assert "Annual Leave > How many days of leave a worker earns (Federal Decree-Law 33/2021, Art. 29)" in paths
    assert "Overtime > Night overtime premium (Federal Decree-Law 33/2021, Art. 19)" in paths
    assert "Hajj > Art. 37" in paths

    clusters = load_clusters(run)
    assert clusters["k"] == 2 and "n_clusters" in clusters["rule"]
    members = [cid for c in clusters["clusters"] for cid in c["chunk_ids"]]
    assert sorted(members) == sorted(c.id for c in chunks)
    assert all(c["size"] == len(c["chunk_ids"]) and c["top_terms"] for c in clusters["clusters"])

    searcher = Searcher.open(run)
    for hybrid in (False, True):
        top = searcher.search("how much gratuity after five years of service", k=3, hybrid=hybrid)[0]
        assert (
            top.citation
            == "End-of-Service Gratuity > Gratuity for full-time workers (Federal Decree-Law 33/2021, Art. 51)"
        )
        assert top.chunk.source.endswith("gratuity.md")
    hits = searcher.search("night overtime premium", k=2, hybrid=False)
    assert hits[0].score > hits[1].score  # dense scores are cosine similarities, best first


def test_reingest_embeds_only_what_changed_and_drops_stale_chunks(corpus, tmp_path):
    run = tmp_path / "run"
    first = ingest([corpus], run, cfg(), progress=False)

    again = ingest([corpus], run, cfg(), progress=False)
    assert (again.new_documents, again.embedded_chunks, again.chunks) == (0, 0, first.chunks)

    (corpus / "gratuity.md").write_text(GRATUITY.replace("twenty-one days", "21 days"), encoding="utf-8")
    (corpus / "overtime.html").unlink()
    changed = ingest([corpus], run, cfg(), progress=False)
    assert (changed.new_documents, changed.removed_documents, changed.embedded_chunks) == (1, 1, 1)
    chunks = load_chunks(run)
    assert not any(c.source.endswith("overtime.html") for c in chunks)
    assert any("21 days" in c.text for c in chunks) and not any("twenty-one" in c.text for c in chunks)
    assert sorted(ChunkIndex(run / "index").ids()) == sorted(c.id for c in chunks)  # stale ids left Chroma


def test_interrupted_ingest_resumes_at_the_next_document(corpus, tmp_path, monkeypatch):
    from agentdistill.corpus.embed import Embedder

    run = tmp_path / "run"
    real_encode = Embedder.encode
    calls = {"n": 0}

    def dies_on_third_document(self, texts, show_progress=False):  # fault injection: the process "dies"
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_encode(self, texts, show_progress)

    monkeypatch.setattr(Embedder, "encode", dies_on_third_document)
    with pytest.raises(KeyboardInterrupt):
        ingest([corpus], run, cfg(), progress=False)
    assert len(json.loads((run / "manifest.json").read_text())["documents"]) == 2

    monkeypatch.setattr(Embedder, "encode", real_encode)
    resumed = ingest([corpus], run, cfg(), progress=False)
    assert resumed.new_documents == 2 and resumed.documents == 4
    assert len(load_chunks(run)) == ChunkIndex(run / "index").count() == resumed.chunks


def test_nothing_readable_is_a_user_error_naming_the_files(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "blob.txt").write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(UserError, match=r"blob\.txt: a binary file"):
        ingest([d], tmp_path / "run", cfg(), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty folder"):
        ingest([tmp_path / "empty"], tmp_path / "run", cfg(), progress=False)
    assert not (tmp_path / "run").exists()  # nothing was started


def test_cli_ingest_prints_the_summary_and_search_prints_json(corpus, tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "config.yaml"  # the law pack's citation style, as cfg() above
    config.write_text("tools:\n  packs: [uae_labour, general]\ncorpus:\n  n_clusters: 2\n")
    result = CliRunner().invoke(cli.app, ["ingest", str(corpus), "--run", str(run), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "chunks" in result.output and "clusters" in result.output
    assert "skipped" in result.output and "corrupt.pdf" in result.output and "4 skipped" in result.output

    result = CliRunner().invoke(cli.app, ["search", "unpaid leave for pilgrimage", "--run", str(run), "-k", "2",
                                          "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and rows[0]["rank"] == 1
    assert rows[0]["citation"] == "Hajj > Art. 37" and "pilgrimage" in rows[0]["chunk"]["text"]
