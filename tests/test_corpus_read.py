"""Readers: Markdown, text, PDF, HTML into Markdown; every bad file skipped with a reason that names it."""

import io
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from agentdistill.corpus.read import read_documents, read_file
from agentdistill.domains.uae_labour.citations import STYLE as LAW_CITATIONS


def make_pdf(lines: list[str], user_password: str | None = None, owner_password: str | None = None) -> bytes:
    """A real one-page PDF whose text layer holds ``lines`` (Helvetica), optionally encrypted."""
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    ops = ["BT", "/F1 11 Tf", "14 TL", "60 740 Td"]
    ops += ["(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*" for line in lines]
    stream = DecodedStreamObject()
    stream.set_data("\n".join([*ops, "ET"]).encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    if user_password is not None:
        writer.encrypt(user_password=user_password, owner_password=owner_password)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_markdown_title_is_the_first_h1(tmp_path):
    f = tmp_path / "leave.md"
    f.write_text("Intro line\n\n# Annual Leave\n\n## Days\n\nThirty days a year.\n", encoding="utf-8")
    doc = read_file(f)
    assert (doc.title, doc.format, doc.source) == ("Annual Leave", "markdown", str(f.resolve()))
    assert "## Days" in doc.text


def test_html_structure_becomes_markdown(tmp_path):
    f = tmp_path / "page.html"
    f.write_text(
        "<html><head><title>Overtime guide</title><style>p{color:red}</style></head><body>"
        "<nav>Home | About</nav><h1>Overtime</h1><p>Paid   at a premium.</p>"
        "<h2>Rates</h2><ul><li>Day: <b>25%</b></li><li>Night: 50%</li></ul>"
        "<table><tr><th>Hours</th><th>Premium</th></tr><tr><td>2</td><td>AED 50</td></tr></table>"
        "<script>alert('x')</script></body></html>",
        encoding="utf-8",
    )
    doc = read_file(f)
    assert doc.title == "Overtime guide"
    lines = doc.text.splitlines()
    assert "# Overtime" in lines and "## Rates" in lines
    assert "- Day: 25%" in lines and "- Night: 50%" in lines
    assert "| Hours | Premium |" in lines and "| 2 | AED 50 |" in lines
    assert "Paid at a premium." in lines
    assert "alert" not in doc.text and "color" not in doc.text and "Home | About" not in doc.text


def test_pdf_text_is_read_and_article_lines_become_headings(tmp_path):
    f = tmp_path / "law.pdf"
    f.write_bytes(make_pdf(["Article (12)", "The worker is entitled to one rest day a week."]))
    doc = read_file(f, style=LAW_CITATIONS)  # a law text's style tells its article headings
    assert doc.format == "pdf"
    assert "## Article (12)" in doc.text.splitlines()
    assert "one rest day a week" in doc.text
    assert "## Article (12)" not in read_file(f).text  # the generic style marks no heading in plain text


def test_pdf_encrypted_with_an_empty_user_password_is_still_read(tmp_path):
    f = tmp_path / "open.pdf"
    f.write_bytes(make_pdf(["Notice period is thirty days."], user_password="", owner_password="owner"))
    assert "thirty days" in read_file(f).text


def test_text_file_title_comes_from_its_name(tmp_path):
    f = tmp_path / "end_of_service-benefits.txt"
    f.write_text("Gratuity is paid at the end of service.", encoding="utf-8")
    assert read_file(f).title == "End of service benefits"


def test_utf16_text_with_a_bom_is_read(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_bytes("Wages are paid monthly.".encode("utf-16"))
    assert read_file(f).text == "Wages are paid monthly."


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("blob.txt", bytes(range(256)) * 4, "binary file"),
        ("latin1.txt", "Caf\u00e9 workers".encode("latin-1"), "not UTF-8"),
        ("empty.md", b"", "no text"),
        ("blank.md", b"   \n\n  \n", "no text"),
        ("encrypted.pdf", make_pdf(["secret"], user_password="pw"), "encrypted"),
        ("truncated.pdf", make_pdf(["Some text on a page."])[:300], "damaged or truncated"),
        ("noise.pdf", b"%PDF-1.7\nthis is not really a pdf at all\n", "PDF"),
        ("blankpage.pdf", make_pdf([]), "no extractable text"),
    ],
)
def test_bad_file_is_skipped_with_a_reason_and_good_files_are_kept(tmp_path, name, content, reason):
    (tmp_path / "good.md").write_text("# Good\n\nReal text.\n", encoding="utf-8")
    bad = tmp_path / name
    bad.write_bytes(content)
    docs, skipped = read_documents([tmp_path])
    assert [d.title for d in docs] == ["Good"]
    assert len(skipped) == 1
    assert skipped[0].path == str(bad.resolve())
    assert reason in skipped[0].reason


def test_folders_globs_and_missing_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.md").write_text("# One\n\ntext\n", encoding="utf-8")
    (tmp_path / "a" / "data.jsonl").write_text("{}\n", encoding="utf-8")
    (tmp_path / "a" / ".hidden.md").write_text("# Hidden\n\ntext\n", encoding="utf-8")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.txt").write_text("two", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    docs, skipped = read_documents(
        [
            tmp_path / "a",
            Path(f"{tmp_path}/b/*.txt"),
            tmp_path / "a" / "one.md",
            tmp_path / "empty",
            tmp_path / "missing.md",
            Path(f"{tmp_path}/nothing/*.pdf"),
        ]  # fmt: skip
    )
    assert sorted(d.title for d in docs) == ["One", "Two"]  # one.md named twice is read once
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert "unsupported file type '.jsonl'" in reasons["data.jsonl"]
    assert reasons["empty"].startswith("empty folder")
    assert reasons["missing.md"] == "does not exist"
    assert reasons["*.pdf"] == "no file matches this pattern"
    assert ".hidden.md" not in reasons


def test_same_content_same_doc_id(tmp_path):
    (tmp_path / "x.md").write_text("# T\n\nbody\n", encoding="utf-8")
    (tmp_path / "y.md").write_text("# T\n\nbody\n", encoding="utf-8")
    (tmp_path / "z.md").write_text("# T\n\nother body\n", encoding="utf-8")
    x, y, z = (read_file(tmp_path / n) for n in ("x.md", "y.md", "z.md"))
    assert x.doc_id == y.doc_id != z.doc_id
