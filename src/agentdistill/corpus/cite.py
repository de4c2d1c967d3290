"""Legal citations in text: which articles of which instrument a passage names.

Law texts and the guides written from them cite the same article in many spellings:
"Federal Decree-Law No. (33) of 2021, Article 51", "Federal Decree-Law 33/2021, Art. 51",
"Arts. 29-30", "Article (51)" inside a document that *is* Decree-Law 33/2021. Retrieval evaluation
and section paths need one canonical form, so every citation is reduced to a pair
``(law_key, article)`` such as ``("FDL 33/2021", 51)``; ``law_key`` is None when the text names no
instrument. "Cabinet Resolution" and "Cabinet Decision" are two English renderings of one Arabic
word (qarar), so they share the key ``CAB``.
"""

from __future__ import annotations

import re

Citation = tuple[str | None, int]

_KINDS = (  # (pattern, key prefix, display name); the first that matches wins
    (r"federal\s+decree[-\s]+(?:by[-\s]+)?law", "FDL", "Federal Decree-Law"),
    (r"decree[-\s]+(?:by[-\s]+)?law", "FDL", "Federal Decree-Law"),
    (r"federal\s+law", "FL", "Federal Law"),
    (r"cabinet\s+resolution", "CAB", "Cabinet Resolution"),
    (r"cabinet\s+decision", "CAB", "Cabinet Decision"),
    (r"ministerial\s+(?:resolution|decision)", "MIN", "Ministerial Resolution"),
)


def _law_pattern(tag: str = "") -> str:
    kinds = "|".join(p for p, _, _ in _KINDS)
    return (
        rf"(?P<kind{tag}>{kinds})"
        rf"\s*(?:no\.?|number)?\s*\(?\s*(?P<num{tag}>\d+)\s*\)?\s*(?:of\s+(?:the\s+year\s+)?|/\s*)(?P<year{tag}>\d{{4}})"
    )


def _arts_pattern(tag: str = "") -> str:
    # "Art. 51", "Article (51)", "Arts. 29-30", "Articles 29, 30 and 31"; a sub-clause "51(2)" stays 51.
    return rf"\b(?:articles?|arts?\.?)\s*(?P<nums{tag}>\(?\d+\)?(?:\s*(?:-|–|to|and|&|,)\s*\(?\d+\)?)*)"


_LAW_RE = re.compile(_law_pattern(), re.I)
# An article list attached to a law on either side ("Law X, Art. 5" / "Art. 5 of Law X"), or alone.
_CITE_RE = re.compile(
    rf"{_law_pattern()}(?:\s*[,>:]?\s*{_arts_pattern('_after')})?|{_arts_pattern()}(?:\s+of\s+(?:the\s+)?{_law_pattern('2')})?",
    re.I,
)
_CONTINUES = re.compile(r"\s*(?:,|;|and|&|or)?\s*")
_MAX_RANGE = 60  # "Arts. 1-400" is a typo, not a citation of 400 articles


def _kind(text: str) -> tuple[str, str]:
    for pattern, key, display in _KINDS:
        if re.fullmatch(pattern, text.strip(), re.I):
            return key, display
    raise ValueError(text)


def law_key(kind: str, num: str, year: str) -> str:
    return f"{_kind(kind)[0]} {int(num)}/{year}"


def _articles(nums: str) -> list[int]:
    out: list[int] = []
    tokens = re.findall(r"\d+|-|–|to", nums)
    i = 0
    while i < len(tokens):
        a = int(tokens[i])
        if i + 2 < len(tokens) and tokens[i + 1] in ("-", "–", "to"):
            b = int(tokens[i + 2])
            out.extend(range(a, b + 1) if 0 <= b - a <= _MAX_RANGE else [a, b])
            i += 3
        else:
            out.append(a)
            i += 1
    return out


def extract_citations(text: str, default_law: str | None = None) -> set[Citation]:
    """Every (law_key, article) the text cites. A bare "Art. 5" belongs to ``default_law``."""
    found: set[Citation] = set()
    last_law, last_end = None, -1
    for m in _CITE_RE.finditer(text):
        g = m.groupdict()
        if g["kind"]:
            last_law = law_key(g["kind"], g["num"], g["year"])
            if g["nums_after"]:
                found.update((last_law, a) for a in _articles(g["nums_after"]))
        else:
            if g["kind2"]:
                key = law_key(g["kind2"], g["num2"], g["year2"])
            elif last_law and _CONTINUES.fullmatch(text[last_end : m.start()]):
                key = last_law  # "Law X, Art. 51 and Art. 52": the second article is Law X's too
            else:
                key = default_law
            found.update((key, a) for a in _articles(g["nums"]))
            last_law = key
        last_end = m.end()
    return found


def strip_citations(text: str) -> str:
    """The text with its citations removed (topic words should not be "decree" and "article")."""
    return _CITE_RE.sub(" ", text)


def leading_law(title: str) -> re.Match[str] | None:
    """The instrument a title starts with ("Federal Decree-Law No. (33) of 2021 Regulating ...")."""
    return _LAW_RE.match(title.strip().removeprefix("The ").removeprefix("the "))


def document_law(title: str) -> str | None:
    """The law key of a document whose title names it first, else None."""
    m = leading_law(title)
    return law_key(m["kind"], m["num"], m["year"]) if m else None


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


def matches(answer: str, cited: set[Citation]) -> bool:
    """Does a set of citations contain one the expected answer names?

    An answer without an instrument ("Art. 51") matches that article in any law; a bare article in
    a passage whose law is unknown matches only such answers, so it cannot inflate recall.
    """
    return any(
        a == art and (law is None or c_law == law) for law, art in extract_citations(answer) for c_law, a in cited
    )
