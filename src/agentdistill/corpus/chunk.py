"""Split a Markdown document into chunks that each carry a section path a reader can cite.

Two passes, both LlamaIndex: ``MarkdownNodeParser`` cuts at headings, so a chunk never straddles two
sections and knows its heading trail; a section longer than ``chunk_tokens`` (counted with the
*student's* tokenizer, the model that will read the chunk in its prompt) is then cut by
``SentenceSplitter`` with ``chunk_overlap`` tokens of overlap. The splitter's first separator is a
blank line, so a table or list (no blank lines inside) stays whole whenever it fits in one chunk.

The section path is the heading trail with the document's short title first, title and headings written
as the run's citation style writes them (``CitationStyle.short_title`` and ``header_parts``; a law text's
style makes "Article 12 — Refund periods" "Art. 12 > Refund periods"): "Returns policy > Refund periods".
A section that cites its sources in a "Sources: ..." line gets them appended, "... > Refunds (Federal
Law 5/2020, Art. 12)", so every chunk of it, split or not, cites the articles it rests on.

A section longer than ``WINDOW_CHARS`` characters is read in windows of that size, each cut at a paragraph,
line, sentence or word break where there is one: the tokenizer and the splitter then never hold more than
one window, so a 50 MB one-line file costs memory for its text only (it took 6 GB whole), and
``on_progress`` can report characters as they are done. Consecutive windows share no overlap: a seam
every 100,000 characters of a very long section, none in a section of ordinary length.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator

from agentdistill.citations import GENERIC, CitationStyle
from agentdistill.corpus.read import Document
from agentdistill.errors import UserError
from agentdistill.records import Chunk

Encode = Callable[[str], list[int]]

_SEP = "\x1f"  # header-path separator: "/" (LlamaIndex's default) occurs in "33/2021"
_SOURCES = re.compile(r"^\s*[*_]*\s*sources?\s*[*_]*\s*:\s*[*_]*\s*(?P<src>.+?)\s*[*_]*\s*$", re.I | re.M)
_HEADING = re.compile(r"^(#+)\s+(.*)$")
WINDOW_CHARS = 100_000  # at least 16 chunks' worth of characters (a token is >= 1 character)
_BREAKS = ("\n\n", "\n", ". ", " ")  # where a window may end, best first


def check_sizes(chunk_tokens: int, chunk_overlap: int) -> None:
    if chunk_tokens < 32:
        raise UserError(
            f"corpus.chunk_tokens is {chunk_tokens}; it must be at least 32.",
            hint="512 suits a 2k-context student; use 256 for very small models.",
        )
    if not 0 <= chunk_overlap < chunk_tokens // 2:
        raise UserError(
            f"corpus.chunk_overlap is {chunk_overlap}; it must be >= 0 and below half of "
            f"corpus.chunk_tokens ({chunk_tokens}).",
            hint="About 1/8 of chunk_tokens works well.",
        )


def sections(doc: Document, style: CitationStyle = GENERIC) -> list[tuple[str, str]]:
    """(section_path, text) for each heading-delimited section of the document that has a body."""
    from llama_index.core import Document as LIDocument
    from llama_index.core.node_parser import MarkdownNodeParser

    parser = MarkdownNodeParser.from_defaults(header_path_separator=_SEP, include_prev_next_rel=False)
    out = []
    for node in parser.get_nodes_from_documents([LIDocument(text=doc.text)]):
        text = node.get_content().strip()
        first, _, body = text.partition("\n")
        heading = _HEADING.match(first)
        if heading and not body.strip():
            continue  # a heading directly followed by a sub-heading: its path lives in the children
        trail = [h for h in node.metadata.get("header_path", "").split(_SEP) if h]
        if heading:
            trail.append(heading.group(2))
        if trail and trail[0].strip() == doc.title.strip():
            trail = trail[1:]  # the document's own H1 is replaced by its short title
        parts = [style.short_title(doc.title)]
        for h in trail:
            parts.extend(style.header_parts(h))
        path = " > ".join(p for p in parts if p)
        sources = [m.group("src").rstrip(".") for m in _SOURCES.finditer(text)]
        if sources:
            path += f" ({'; '.join(sources)})"
        out.append((path, text))
    return out


def windows(text: str, size: int) -> Iterator[str]:
    """``text`` in consecutive pieces of at most ``size`` characters, each ending at the best break in its
    second half (see ``_BREAKS``), or cut at ``size`` where there is none. Linear in ``len(text)``."""
    start = 0
    while len(text) - start > size:
        end = start + size
        cut = next((k + len(b) for b in _BREAKS if (k := text.rfind(b, start + size // 2, end - len(b) + 1)) >= 0),
                   end)
        yield text[start:cut]
        start = cut
    if start < len(text):
        yield text[start:]


def chunk_document(doc: Document, encode: Encode, chunk_tokens: int = 512, chunk_overlap: int = 64,
                   on_progress: Callable[[int], None] | None = None, style: CitationStyle = GENERIC) -> list[Chunk]:
    """The document's chunks in reading order, ids ``<doc_id>-<n>``, each at most ``chunk_tokens``
    student tokens unless a single sentence is longer. ``on_progress(n)`` is told each time ``n`` more
    characters of the document's sections are chunked."""
    from llama_index.core.node_parser import SentenceSplitter

    check_sizes(chunk_tokens, chunk_overlap)
    # Text without sentence breaks is split word by word, a tokenizer call per word: words repeat, so their
    # counts are cached (a bounded cache: a document of distinct words cannot grow it without end).
    @functools.lru_cache(maxsize=1 << 16)
    def cached(piece: str) -> list[int]:
        return encode(piece)

    def count(piece: str) -> list[int]:
        return cached(piece) if len(piece) <= 64 else encode(piece)

    splitter = SentenceSplitter(
        chunk_size=chunk_tokens, chunk_overlap=chunk_overlap, tokenizer=count, paragraph_separator="\n\n"
    )
    doc_id = doc.doc_id
    chunks: list[Chunk] = []
    for path, section in sections(doc, style):
        for window in windows(section, max(WINDOW_CHARS, 16 * chunk_tokens)):
            text = window.strip()
            n = len(encode(text))
            pieces = [(text, n)] if n <= chunk_tokens else [(p, len(encode(p))) for p in splitter.split_text(text)]
            pieces = [(piece, n_tokens) for piece, n_tokens in pieces if piece]
            for piece, n_tokens in pieces:
                chunks.append(
                    Chunk(
                        id=f"{doc_id}-{len(chunks):04d}",
                        doc_id=doc_id,
                        source=doc.source,
                        title=doc.title,
                        section_path=path,
                        text=piece,
                        n_tokens=n_tokens,
                    )
                )
            if on_progress is not None:
                on_progress(len(window))
    return chunks
