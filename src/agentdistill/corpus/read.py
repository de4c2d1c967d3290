"""Read documents (Markdown, plain text, PDF, HTML) from files, folders and globs into Markdown text.

Every reader returns Markdown so that one chunker handles all formats: HTML headings become ``#``
lines, lists ``- `` items and tables pipe rows; in PDFs and text files a line that the run's citation style
calls a section heading (``CitationStyle.is_heading``: a law text's "Article (51)", say) becomes a ``##``
heading, because that is how such documents mark sections.
A file that cannot be read is never fatal: it is returned as a ``Skipped`` with a reason that names
the problem and what to do, and the caller ingests the rest. So is a file over the size limit
(``corpus.max_document_mb``), skipped before a byte of it is read.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentdistill.citations import GENERIC, CitationStyle

FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
}
SUPPORTED = ", ".join(sorted(FORMATS))


@dataclass
class Document:
    source: str  # absolute path of the file
    title: str
    text: str  # Markdown
    format: str

    @property
    def doc_id(self) -> str:
        """Content hash: the same text under two names is one document."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Skipped:
    path: str
    reason: str


class Unreadable(Exception):
    """A file this module cannot turn into text; the message is the reason shown to the user."""


def expand_paths(paths: list[Path]) -> tuple[list[Path], list[Skipped]]:
    """Files named by ``paths`` (files, folders searched recursively, globs), sorted, each once.

    Inside folders only supported extensions are taken (others are reported); a file named
    explicitly is read whatever its extension. Hidden files and folders are ignored.
    """
    files: dict[Path, None] = {}
    skipped: list[Skipped] = []

    def add_dir(d: Path) -> None:
        found = False
        for f in sorted(d.rglob("*")):
            if any(part.startswith(".") for part in f.relative_to(d).parts) or not f.is_file():
                continue
            found = True
            if f.suffix.lower() in FORMATS:
                files[f.resolve()] = None
            else:
                skipped.append(Skipped(str(f), f"unsupported file type {f.suffix or '(none)'!r} (read: {SUPPORTED})"))
        if not found:
            skipped.append(Skipped(str(d), "empty folder: no files in it"))

    for p in map(Path, paths):
        if p.is_dir():
            add_dir(p)
        elif p.is_file():
            files[p.resolve()] = None
        elif glob.has_magic(str(p)):
            matched = sorted(Path(m) for m in glob.glob(str(p), recursive=True))
            if not matched:
                skipped.append(Skipped(str(p), "no file matches this pattern"))
            for m in matched:
                if m.is_dir():
                    add_dir(m)
                elif m.suffix.lower() in FORMATS:
                    files[m.resolve()] = None
                else:
                    skipped.append(
                        Skipped(str(m), f"unsupported file type {m.suffix or '(none)'!r} (read: {SUPPORTED})")
                    )
        else:
            skipped.append(Skipped(str(p), "does not exist"))
    return sorted(files), skipped


def read_documents(paths: list[Path], max_mb: float | None = None, style: CitationStyle = GENERIC,
                   on_progress: Callable[[int, int], None] | None = None) -> tuple[list[Document], list[Skipped]]:
    """Read every file under ``paths``; unreadable ones, and files over ``max_mb`` megabytes, come back as
    ``Skipped`` with a reason. ``style`` tells a section heading in plain text (see the module docstring).
    ``on_progress(done, total)`` is told after each file."""
    files, skipped = expand_paths(paths)
    docs = []
    for n, f in enumerate(files, start=1):
        try:
            docs.append(read_file(f, max_mb, style))
        except Unreadable as e:
            skipped.append(Skipped(str(f), str(e)))
        if on_progress is not None:
            on_progress(n, len(files))
    return docs, skipped


def read_file(path: Path, max_mb: float | None = None, style: CitationStyle = GENERIC) -> Document:
    """One file as a Document. Raises Unreadable with the reason."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower(), "text")
    try:
        size = path.stat().st_size
        if max_mb is not None and size > max_mb * 1e6:
            raise Unreadable(f"{size / 1e6:.1f} MB, over the limit of {max_mb:g} MB per document "
                             "(corpus.max_document_mb); split it into smaller files, or raise the limit")
        if fmt == "pdf":
            title, text = _read_pdf(path)
        else:
            raw = _decode(path.read_bytes())
            title, text = {"markdown": _read_markdown, "html": _read_html, "text": _read_text}[fmt](raw, path)
        if fmt in ("pdf", "text"):
            text = _promote_headings(text, style)
    except OSError as e:
        raise Unreadable(f"cannot be read ({e.strerror or e}); check its permissions") from e
    text = text.strip()
    if not re.search(r"\w", text):
        raise Unreadable(
            "no text in it (an empty document)"
            if fmt != "pdf"
            else "no extractable text (a scanned PDF? run OCR on it first)"
        )
    return Document(source=str(path.resolve()), title=title.strip() or _title_from_name(path), text=text, format=fmt)


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise Unreadable(f"a binary file, not text (only {SUPPORTED} are read)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise Unreadable(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); re-save it as UTF-8") from e


def _title_from_name(path: Path) -> str:
    name = re.sub(r"[_\-]+", " ", path.stem).strip()
    return name[:1].upper() + name[1:]


def _promote_headings(text: str, style: CitationStyle) -> str:
    return "\n".join(f"## {line.strip()}" if style.is_heading(line) else line for line in text.splitlines())


def _read_markdown(text: str, path: Path) -> tuple[str, str]:
    m = re.search(r"^#\s+(.+)$", text, re.M)
    return (m.group(1) if m else _title_from_name(path)), text


def _read_text(text: str, path: Path) -> tuple[str, str]:
    return _title_from_name(path), text


def _read_pdf(path: Path) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # pypdf logs recoverable damage as warnings; the skip reason says it once, clearly.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("an encrypted PDF that needs a password; save a decrypted copy and ingest that")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata or {}).get("/Title") if reader.metadata else None
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise Unreadable(f"a damaged or truncated PDF ({type(e).__name__}: {e}); re-export or re-download it") from e
    except Exception as e:  # pypdf raises many types on hostile input; any of them means "unreadable"
        raise Unreadable(f"a PDF pypdf cannot read ({type(e).__name__}: {e})") from e
    title = str(meta_title).strip() if meta_title else _title_from_name(path)
    return title, "\n\n".join(pages)


_BLOCKS = ("p", "div", "section", "article", "br", "tr", "blockquote", "dd", "dt", "header", "main", "figure")


def _read_html(html: str, path: Path) -> tuple[str, str]:
    from bs4 import BeautifulSoup, NavigableString

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "nav", "footer", "head", "template", "svg"]):
        tag.decompose()

    def fold(tag) -> str:
        return " ".join(tag.get_text(" ").split())

    # Replace structure by its Markdown spelling, innermost first, then read the text in order.
    for table in soup.find_all("table"):
        rows = [[fold(c) for c in tr.find_all(["th", "td"])] for tr in table.find_all("tr")]
        rows = [r for r in rows if any(r)]
        md = "\n".join("| " + " | ".join(r) + " |" for r in rows)
        if rows and table.find("th"):
            md = md.replace("\n", "\n|" + "---|" * len(rows[0]) + "\n", 1)
        table.replace_with(NavigableString(f"\n\n{md}\n\n"))
    for pre in soup.find_all("pre"):
        pre.replace_with(NavigableString(f"\n\n```\n{pre.get_text()}\n```\n\n"))
    for li in soup.find_all("li"):
        li.replace_with(NavigableString(f"\n- {fold(li)}\n"))
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(NavigableString(f"\n\n{'#' * level} {fold(h)}\n\n"))
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before(NavigableString("\n"))
        tag.insert_after(NavigableString("\n"))

    lines, in_code = [], False
    for line in soup.get_text().splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        lines.append(line.rstrip() if in_code else " ".join(line.split()))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not title:
        m = re.search(r"^#\s+(.+)$", text, re.M)
        title = m.group(1) if m else _title_from_name(path)
    return title, text
