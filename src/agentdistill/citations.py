"""How a run's documents are cited: what the generic code asks of a citation style, and the generic style.

A ``CitationStyle`` answers, for one kind of document:

- ``extract(text)``: the citations a text makes, normalized so that two spellings of one source compare
  equal (the hallucinated- and ungrounded-citation metrics, the trace filter, the chat page's links);
  ``of_section(section_path)``: the citations a passage shown under that section path stands for (what
  a corpus holds); ``strip(text)``: the text without its citations (topic words for clustering);
- ``is_heading(line)``: a line of plain text (a PDF's, a ``.txt`` file's) that is only a section heading,
  which reading makes a ``##`` heading; ``header_parts(header)`` and ``short_title(title)``: how a
  heading and a document's title are written in a chunk's section path;
- ``answer_keys(answer)``, ``passage_keys(chunk)`` and ``matches(answer_key, passage_key)``: retrieval
  evaluation, where a retrieved chunk is a hit when one of its keys matches a key of an expected answer;
  ``example``: a citation as a person writes one, for messages.

A domain pack brings its own style (``DomainPack.citations``); ``domains.citation_style(cfg)`` picks the
run's, and the generic code is handed it. ``SectionCitations`` (``GENERIC``) works for any documents: a
citation is a passage's section path, as the search tools show it (``[1] Handbook > Annual leave: text``)
and as an answer cites it, in parentheses or brackets with at least two parts: "(Handbook > Annual leave)",
"[Annual leave > Carry-over]". Headings are the documents' own Markdown headings.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Protocol

from agentdistill.records import Chunk


class CitationStyle(Protocol):
    name: str
    example: str

    def extract(self, text: str) -> set[str]: ...

    def of_section(self, section_path: str) -> set[str]: ...

    def strip(self, text: str) -> str: ...

    def is_heading(self, line: str) -> bool: ...

    def header_parts(self, header: str) -> list[str]: ...

    def short_title(self, title: str) -> str: ...

    def answer_keys(self, answer: str) -> set[Hashable]: ...

    def passage_keys(self, chunk: Chunk) -> set[Hashable]: ...

    def matches(self, answer_key: Hashable, passage_key: Hashable) -> bool: ...


SEPARATOR = " > "  # between the parts of a section path
# A passage as the search tools show it: "[2] Handbook > Annual leave: text" (its citation ends at the first ": ").
_SHOWN = re.compile(r"^\s*\[\d+\]\s+(.+?):\s", re.M)
_OPEN, _CLOSE = "([", ")]"


def section_key(path: str) -> str:
    """A section path in one spelling: whitespace folded, parts joined by " > ", and ": " written " - " as
    the search tools write it (``tools.documents.citation``)."""
    parts = [" ".join(p.split()) for p in " ".join(path.split()).split(">")]
    return SEPARATOR.join(p for p in parts if p).replace(": ", " - ")


def _bracketed(text: str) -> list[tuple[int, int]]:
    """(start, end) of every outermost balanced (...) or [...] group of ``text``, brackets included."""
    spans, stack = [], []
    for i, ch in enumerate(text):
        if ch in _OPEN:
            stack.append((i, _CLOSE[_OPEN.index(ch)]))
        elif ch in _CLOSE:
            if stack and stack[-1][1] == ch:
                start, _ = stack.pop()
                if not stack:
                    spans.append((start, i + 1))
            else:
                stack = []  # an unbalanced closer: start again after it
    return spans


def _is_path(inner: str) -> bool:
    """Two or more parts, each with a letter in it ("(x > 5)" compares, it does not cite)."""
    parts = inner.split(">")
    return len(parts) >= 2 and all(re.search(r"[^\W\d_]", p) for p in parts)


class SectionCitations:
    """The generic style: citations are section paths (see the module docstring)."""

    name = "sections"
    example = "Handbook > Annual leave"

    def extract(self, text: str) -> set[str]:
        """The section paths ``text`` cites in brackets, and those a search result shows its passages under."""
        found = {section_key(m.group(1)) for m in _SHOWN.finditer(text)}
        for start, end in _bracketed(text):
            inner = text[start + 1 : end - 1]
            if _is_path(inner):
                found.add(section_key(inner))
        return found

    def of_section(self, section_path: str) -> set[str]:
        return {section_key(section_path)} if section_path.strip() else set()

    def strip(self, text: str) -> str:
        for start, end in reversed(_bracketed(text)):
            if _is_path(text[start + 1 : end - 1]):
                text = f"{text[:start]} {text[end:]}"
        return text

    def is_heading(self, line: str) -> bool:
        """Plain text marks no heading this style can tell from a sentence; Markdown's own are read as such."""
        return False

    def header_parts(self, header: str) -> list[str]:
        return [header.strip().strip("#").strip()]

    def short_title(self, title: str) -> str:
        return title.strip()

    def answer_keys(self, answer: str) -> set[Hashable]:
        """The section paths an expected answer cites in brackets, or the answer itself as one."""
        return set(self.extract(answer)) or ({section_key(answer)} if answer.strip() else set())

    def passage_keys(self, chunk: Chunk) -> set[Hashable]:
        return {section_key(chunk.section_path), *self.extract(chunk.text)}

    def matches(self, answer_key: Hashable, passage_key: Hashable) -> bool:
        """The same section, or one inside it ("Handbook > Leave" is cited by its "Handbook > Leave > Carry-over")."""
        return passage_key == answer_key or str(passage_key).startswith(f"{answer_key}{SEPARATOR}")


GENERIC: CitationStyle = SectionCitations()


def answer_is_cited(style: CitationStyle, answer: str, cited: set[Hashable]) -> bool:
    """Does one of a passage's keys ``cited`` match a key of the expected ``answer``?"""
    return any(style.matches(a, c) for a in style.answer_keys(answer) for c in cited)
