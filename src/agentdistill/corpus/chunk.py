"""Split a Markdown document into chunks that each carry a section path a reader can cite.

Two passes, both LlamaIndex: ``MarkdownNodeParser`` cuts at headings, so a chunk never straddles two
sections and knows its heading trail; a section longer than ``chunk_tokens`` (counted with the
*student's* tokenizer, the model that will read the chunk in its prompt) is then cut by
``SentenceSplitter`` with ``chunk_overlap`` tokens of overlap. The splitter's first separator is a
blank line, so a table or list (no blank lines inside) stays whole whenever it fits in one chunk.

The section path is the heading trail with the document's short title first and article headings
normalized: "Federal Decree-Law 33/2021 > Art. 51 > End of service gratuity". A section that cites
its sources in a "Sources: ..." line gets them appended, "... > Gratuity (Federal Decree-Law
33/2021, Art. 51)", so every chunk of it, split or not, cites the articles it rests on.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agentdistill.citations import normalize_header, short_title
from agentdistill.corpus.read import Document
from agentdistill.errors import UserError
from agentdistill.records import Chunk

Encode = Callable[[str], list[int]]

_SEP = "\x1f"  # header-path separator: "/" (LlamaIndex's default) occurs in "33/2021"
_SOURCES = re.compile(r"^\s*[*_]*\s*sources?\s*[*_]*\s*:\s*[*_]*\s*(?P<src>.+?)\s*[*_]*\s*$", re.I | re.M)
_HEADING = re.compile(r"^(#+)\s+(.*)$")


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


def sections(doc: Document) -> list[tuple[str, str]]:
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
        parts = [short_title(doc.title)]
        for h in trail:
            parts.extend(normalize_header(h))
        path = " > ".join(p for p in parts if p)
        sources = [m.group("src").rstrip(".") for m in _SOURCES.finditer(text)]
        if sources:
            path += f" ({'; '.join(sources)})"
        out.append((path, text))
    return out


def chunk_document(doc: Document, encode: Encode, chunk_tokens: int = 512, chunk_overlap: int = 64) -> list[Chunk]:
    """The document's chunks in reading order, ids ``<doc_id>-<n>``, each at most ``chunk_tokens``
    student tokens unless a single sentence is longer."""
    from llama_index.core.node_parser import SentenceSplitter

    check_sizes(chunk_tokens, chunk_overlap)
    splitter = SentenceSplitter(
        chunk_size=chunk_tokens, chunk_overlap=chunk_overlap, tokenizer=encode, paragraph_separator="\n\n"
    )
    doc_id = doc.doc_id
    chunks: list[Chunk] = []
    for path, text in sections(doc):
        n = len(encode(text))
        pieces = [(text, n)] if n <= chunk_tokens else [(p, len(encode(p))) for p in splitter.split_text(text)]
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
    return chunks
