"""The pack's citation style (``STYLE``): legal citations found in text and normalized, so that two spellings
of one article compare equal.

"Federal Decree-Law 33/2021, Art. 51", "FDL 33/2021 Art. 51", "Article 51 of Federal Decree-Law
No. (33) of 2021", "Federal Decree-Law No. (33) of 2021, Article (51)" and "Federal Decree-Law 33/2021 >
Art. 51" (a chunk's section path) all name law ``"FDL 33/2021"``, article 51; "Arts. 29-30" names two
articles. Sub-clauses ("Art. 29(1)(b)") are dropped: a citation names an article.

One scanner finds the article lists and the law each is tied to (the law right before it, "Law X, Art.
5", or after it, "Art. 5 of Law X", or the one a list it continues was tied to, "Law X, Art. 5 and Art.
6"). Two readers differ only in where an untied "Art. 5" belongs:

- ``extract_citations`` (tools, trace filters, evaluation): to the law named last before it, which is
  how a reader of an answer resolves it; dropped when no law was named, since it cannot be checked.
  Gives strings, ``"FDL 33/2021 Art. 51"``.
- ``law_articles`` (retrieval evaluation): to ``default_law``, the law the document *is*; inside a law
  text "Article 12" is that law's own article even after it mentions another law. Gives pairs,
  ``("FDL 33/2021", 51)``, with law None when unknown.

Law documents' titles and article headings (which become chunks' section paths) are read here too.

"Cabinet Resolution" and "Cabinet Decision" are two English renderings of one Arabic word (qarar),
and translations use both for the same instrument, so both normalize to ``CR``; "Cabinet Decision
106/2022, Art. 5" becomes ``"CR 106/2022 Art. 5"`` (likewise Ministerial Resolution/Decision -> ``MR``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from agentdistill.records import Chunk

# (spoken form, abbreviation, display name in a short title); the first row whose form matches wins, so
# longer forms come first. The display name keeps the title's own word where translations differ
# ("Cabinet Decision 106/2022" is how that instrument's documents name it).
_KINDS: tuple[tuple[str, str, str], ...] = (
    (r"Federal\s+Decree[-\s]+(?:by[-\s]+)?Law", "FDL", "Federal Decree-Law"),
    (r"Decree[-\s]+(?:by[-\s]+)?Law", "FDL", "Federal Decree-Law"),
    (r"FDL", "FDL", "Federal Decree-Law"),
    (r"Federal\s+Law", "FL", "Federal Law"),
    (r"FL", "FL", "Federal Law"),
    (r"Cabinet\s+Resolution", "CR", "Cabinet Resolution"),
    (r"Cabinet\s+Decision", "CR", "Cabinet Decision"),
    (r"CR", "CR", "Cabinet Resolution"),
    (r"CD", "CR", "Cabinet Decision"),
    (r"Ministerial\s+(?:Resolution|Decision)", "MR", "Ministerial Resolution"),
    (r"MR|MD", "MR", "Ministerial Resolution"),
)
# How citations spell the kinds of law out ("Federal Decree-Law", "Cabinet Decision", ...).
LAW_NAMES = tuple(dict.fromkeys(display for _, _, display in _KINDS))
# The name a law id spells out when the corpus's own spelling is not known: its abbreviation's first row.
_LONG_NAMES = {abbrev: display for _, abbrev, display in reversed(_KINDS)}


# A law's name and number: "Federal Decree-Law No. (33) of 2021", "CR 1/2022".
_LAW = (
    rf"\b(?-i:[A-Z]{{2,5}}\s+)?(?P<kind>{'|'.join(form for form, _, _ in _KINDS)})\s*(?:(?:No\.?|Number)\s*)?(?:\(\s*)?"
    r"(?P<num>\d{1,4})(?:\s*\))?\s*(?:/\s*|of\s+(?:the\s+year\s+)?)(?P<year>(?:19|20)\d{2})\b"
)
LAW_RE = re.compile(_LAW, re.I)

# "51", "(51)", "29(1)(b)"; at most three digits, so "Art. 51, 2021 edition" does not cite article 2021.
_SUB_CLAUSE = r"\(\s*\w{1,3}\s*\)"
_ARTICLE_NUMBER = rf"(?:\(\s*\d{{1,3}}\s*\)|\d{{1,3}})(?!\d)(?:\s*{_SUB_CLAUSE})*"
# An article list, with the law it is "of" when one follows: "Arts. 29 and 30 of Cabinet Resolution 1/2022".
_ARTICLES_RE = re.compile(
    rf"\b(?:Articles?|Arts?)\.?\s*(?P<list>{_ARTICLE_NUMBER}(?:\s*(?:-|–|—|to|,|and|&|/)\s*{_ARTICLE_NUMBER})*)"
    rf"(?:\s*(?:of|in|under)\s+(?:the\s+)?{_LAW})?",
    re.I,
)
# What may stand between a law or article list and the article list it carries over to: "Law X, Art. 5",
# "Law X > Art. 5" (a section path), "Art. 5 and Art. 6", "Art. 5; Art. 6".
_CARRIES_OVER = re.compile(r"\s*(?:(?:[,;:>&]|and|or)\s*)?", re.I)
_MAX_RANGE = 30  # "Arts. 1-74" points at a whole law: as 74 citations it would match any answer about it


def _kind(spoken: str) -> tuple[str, str]:
    """(abbreviation, display name) of how a text names a kind of law ("Cabinet Decision" -> CR)."""
    for form, abbrev, display in _KINDS:
        if re.fullmatch(form, spoken.strip(), re.I):
            return abbrev, display
    raise ValueError(f"not a kind of law: {spoken!r}")


def law_id(kind: str, number: str | int, year: str | int) -> str:
    """``("Federal Decree-Law", "33", "2021")`` -> ``"FDL 33/2021"``."""
    return f"{_kind(kind)[0]} {int(number)}/{int(year)}"


def _matched_law(m: re.Match[str]) -> str:
    return law_id(m["kind"], m["num"], m["year"])


def law_name(lid: str) -> str:
    """``"FDL 33/2021"`` -> ``"Federal Decree-Law 33/2021"``: the kind's long name (a domain pack that knows
    the corpus's own spelling of its laws says so itself)."""
    abbrev, _, rest = lid.partition(" ")
    return f"{_LONG_NAMES.get(abbrev, abbrev)} {rest}"


def _article_numbers(article_list: str) -> list[int]:
    """``"29-30"`` -> [29, 30]; ``"29(1)(b), 31 and (33)"`` -> [29, 31, 33]."""
    # A parenthesis right after a number is its sub-clause; one that opens the list or follows a separator
    # holds the number itself ("Article (51)").
    cleaned = re.sub(rf"(?<=[\d)])\s*{_SUB_CLAUSE}", "", article_list)
    tokens = re.findall(r"\d+|-|–|—|\bto\b", cleaned)
    out: list[int] = []
    i = 0
    while i < len(tokens):
        if not tokens[i].isdigit():  # a dangling "-" or "to"
            i += 1
            continue
        n = int(tokens[i])
        if i + 2 < len(tokens) and not tokens[i + 1].isdigit() and tokens[i + 2].isdigit():
            end = int(tokens[i + 2])
            out.extend(range(n, end + 1) if n <= end <= n + _MAX_RANGE else [n, end])
            i += 3
        else:
            out.append(n)
            i += 1
    return out


class _ArticleList(NamedTuple):
    articles: list[int]
    law: str | None  # the law the text ties the list to; None when it ties it to none
    last_named_law: str | None  # the law named last before the list


def _article_lists(text: str) -> Iterator[_ArticleList]:
    """Every article list in ``text`` with the law it is tied to (see the module docstring)."""
    laws = [(m.end(), _matched_law(m)) for m in LAW_RE.finditer(text)]
    next_law, last_named = 0, None  # last_named: (end, law id) of the law named last before the list
    prev_end, prev_law = -1, None  # the previous article list: where it ends, the law it is tied to
    for m in _ARTICLES_RE.finditer(text):
        while next_law < len(laws) and laws[next_law][0] <= m.start():
            last_named = laws[next_law]
            next_law += 1
        # The nearest law or article list before this one is what it may carry over from.
        near_end, near_law = last_named if last_named and last_named[0] > prev_end else (prev_end, prev_law)
        if m["kind"]:
            law = _matched_law(m)
        elif near_law and _CARRIES_OVER.fullmatch(text, near_end, m.start()):
            law = near_law
        else:
            law = None
        yield _ArticleList(_article_numbers(m["list"]), law, last_named[1] if last_named else None)
        prev_end, prev_law = m.end(), law


def extract_citations(text: str) -> set[str]:
    """Every article cited in ``text``, normalized to ``"<LAW ID> Art. <n>"`` (e.g. "FDL 33/2021 Art. 51").

    An article the text ties to no law belongs to the law named last before it; with none, it is left
    out (an article of no named law cannot be checked).
    """
    found: set[str] = set()
    for article_list in _article_lists(text):
        lid = article_list.law or article_list.last_named_law
        if lid:
            found.update(f"{lid} Art. {n}" for n in article_list.articles)
    return found


LawArticle = tuple[str | None, int]  # (law id or None when unknown, article)


def law_articles(text: str, default_law: str | None = None) -> set[LawArticle]:
    """Every (law id, article) ``text`` cites. An article the text ties to no law belongs to
    ``default_law``, the law of the document the text is from (None for a guide that is no law)."""
    return {(found.law or default_law, n) for found in _article_lists(text) for n in found.articles}


def answer_is_cited(answer: str, cited: set[LawArticle]) -> bool:
    """Does a set of (law, article) pairs contain one the expected answer names?

    An answer without an instrument ("Art. 51") matches that article in any law; a bare article in
    a passage whose law is unknown matches only such answers, so it cannot inflate recall.
    """
    return any(
        a == art and (law is None or c_law == law) for law, art in law_articles(answer) for c_law, a in cited
    )


def strip_citations(text: str) -> str:
    """The text with its citations removed (topic words should not be "decree" and "article")."""
    return LAW_RE.sub(" ", _ARTICLES_RE.sub(" ", text))


def leading_law(title: str) -> re.Match[str] | None:
    """The instrument a title starts with ("Federal Decree-Law No. (33) of 2021 Regulating ...")."""
    return LAW_RE.match(title.strip().removeprefix("The ").removeprefix("the "))


def document_law(title: str) -> str | None:
    """The law id of a document whose title names it first, else None."""
    m = leading_law(title)
    return _matched_law(m) if m else None


def short_title(title: str) -> str:
    """Short form of a law's title: "Federal Decree-Law No. (33) of 2021 Regulating ..." -> "Federal Decree-Law
    33/2021". Other titles are returned unchanged."""
    m = leading_law(title)
    if not m:
        return title.strip()
    return f"{_kind(m['kind'])[1]} {int(m['num'])}/{m['year']}"


_ARTICLE_HEADER = re.compile(
    r"^(?:article|art\.?)\s*\(?\s*(?P<num>\d+)\s*\)?(?:\s*(?:bis)\b)?\s*(?:[—–\-:.]\s*(?P<title>.*))?$", re.I
)


def normalize_header(header: str) -> list[str]:
    """Article headings to path parts: "Article 51 — End of service gratuity" -> ["Art. 51", "End of service
    gratuity"]; other headings as they are."""
    header = header.strip().strip("#").strip()
    m = _ARTICLE_HEADER.match(header)
    if not m:
        return [header]
    parts = [f"Art. {int(m['num'])}"]
    if m["title"] and m["title"].strip():
        parts.append(m["title"].strip())
    return parts


def is_article_heading(line: str) -> bool:
    """A short line that is only an article heading (how law PDFs and text files mark sections)."""
    line = line.strip()
    return len(line) <= 100 and _ARTICLE_HEADER.match(line) is not None


class LawCitations:
    """This module as the pack's ``CitationStyle`` (agentdistill.citations): citations are law articles, a law
    text's article headings are its sections, and retrieval compares (law, article) pairs."""

    name = "uae_law"
    example = "Federal Decree-Law 33/2021, Art. 51"

    def extract(self, text: str) -> set[str]:
        return extract_citations(text)

    def of_section(self, section_path: str) -> set[str]:
        return extract_citations(section_path)

    def strip(self, text: str) -> str:
        return strip_citations(text)

    def is_heading(self, line: str) -> bool:
        return is_article_heading(line)

    def header_parts(self, header: str) -> list[str]:
        return normalize_header(header)

    def short_title(self, title: str) -> str:
        return short_title(title)

    def answer_keys(self, answer: str) -> set[LawArticle]:
        return law_articles(answer)

    def passage_keys(self, chunk: Chunk) -> set[LawArticle]:
        """What a chunk cites; a bare "Art. 5" belongs to the law the chunk's document is."""
        return law_articles(f"{chunk.section_path}\n{chunk.text}", default_law=document_law(chunk.title))

    def matches(self, answer_key: LawArticle, passage_key: LawArticle) -> bool:
        """An answer without a law ("Art. 51") matches that article in any law; a passage's bare article of an
        unknown law matches only such answers (see ``answer_is_cited``)."""
        (law, article), (passage_law, passage_article) = answer_key, passage_key
        return passage_article == article and (law is None or passage_law == law)


STYLE = LawCitations()
