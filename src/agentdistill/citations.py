"""Find legal citations in text and normalize them, so that two spellings of one article compare equal.

"Federal Decree-Law 33/2021, Art. 51", "FDL 33/2021 Art. 51", "Article 51 of Federal Decree-Law
No. (33) of 2021" and "Federal Decree-Law 33/2021 > Art. 51" (a chunk's section path) all become
``"FDL 33/2021 Art. 51"``; "Arts. 29-30" becomes two citations. Sub-clauses ("Art. 29(1)(b)") are
dropped: a citation names an article. A bare "Art. 5" belongs to the law named last before it, which
is how a reader resolves it too. Used by the lookup tools, the trace filters and the evaluation's
hallucinated-citation rate (a cited article that the corpus does not contain).

"Cabinet Resolution" and "Cabinet Decision" are two English renderings of one Arabic word (qarar),
and translations use both for the same instrument, so both normalize to ``CR``; "Cabinet Decision
106/2022, Art. 5" becomes ``"CR 106/2022 Art. 5"`` (likewise Ministerial Resolution/Decision -> ``MR``).
"""

from __future__ import annotations

import re

# Canonical law id -> (display name used in the corpus, what the law is about)
KNOWN_LAWS: dict[str, tuple[str, str]] = {
    "FDL 33/2021": ("Federal Decree-Law 33/2021", "labour relations in the private sector"),
    "CR 1/2022": ("Cabinet Resolution 1/2022", "executive regulation of the labour law"),
    "FDL 9/2022": ("Federal Decree-Law 9/2022", "domestic workers"),
    "CR 106/2022": ("Cabinet Decision 106/2022", "executive regulation of the domestic workers law"),
}

_KINDS = {  # spoken form (lower case, single spaces) -> abbreviation
    "federal decree law": "FDL", "federal decree-law": "FDL", "decree law": "FDL", "decree-law": "FDL",
    "fdl": "FDL", "federal law": "FL", "fl": "FL", "cabinet resolution": "CR", "cr": "CR",
    "cabinet decision": "CR", "cd": "CR", "ministerial resolution": "MR", "mr": "MR",
    "ministerial decision": "MR", "md": "MR",
}
_LONG_NAMES = {"FDL": "Federal Decree-Law", "FL": "Federal Law", "CR": "Cabinet Resolution",
               "MR": "Ministerial Resolution"}

_KIND = (r"(?P<kind>(?:UAE\s+)?Federal\s+Decree[- ]Law|Decree[- ]Law|FDL|Federal\s+Law|FL|Cabinet\s+Resolution|CR"
         r"|Cabinet\s+Decision|CD|Ministerial\s+Resolution|MR|Ministerial\s+Decision|MD)")
_NUMBER = r"(?:\s+No\.?)?\s*\(?(?P<num>\d{1,4})\)?\s*(?:/\s*|\s+of\s+(?:the\s+year\s+)?)(?P<year>(?:19|20)\d{2})\b"
LAW_RE = re.compile(r"\b" + _KIND + _NUMBER, re.I)
_BARE_NUMBER = re.compile(r"^\s*(?:No\.?\s*)?\(?(\d{1,4})\)?\s*(?:/|\s+of\s+)\s*((?:19|20)\d{2})\s*$", re.I)

_ARTNUM = r"\d{1,3}(?!\d)(?:\s*\(\s*\w{1,3}\s*\))*"
_ART_RE = re.compile(
    r"\b(?:Articles?|Arts?)\.?\s*(?P<list>" + _ARTNUM + r"(?:\s*(?:-|–|—|to|,|and|&|/)\s*" + _ARTNUM + r")*)",
    re.I,
)
_OF_LAW = re.compile(r"\s*(?:of|in|under)\s+(?:the\s+)?" + _KIND + _NUMBER, re.I)
_MAX_RANGE = 30  # "Arts. 1-74" is a pointer at a whole law, not 74 citations


def law_id(kind: str, number: str | int, year: str | int) -> str:
    abbrev = _KINDS[" ".join(kind.lower().replace("uae ", "").split())]
    return f"{abbrev} {int(number)}/{int(year)}"


def law_name(lid: str) -> str:
    """``"FDL 33/2021"`` -> ``"Federal Decree-Law 33/2021"`` (the corpus's spelling)."""
    if lid in KNOWN_LAWS:
        return KNOWN_LAWS[lid][0]
    abbrev, _, rest = lid.partition(" ")
    return f"{_LONG_NAMES.get(abbrev, abbrev)} {rest}"


def format_citation(lid: str, article: int | str) -> str:
    """The human-readable citation the tools print: ``"Federal Decree-Law 33/2021, Art. 51"``."""
    return f"{law_name(lid)}, Art. {article}"


def _expand(article_list: str) -> list[int]:
    """``"29-30"`` -> [29, 30]; ``"29(1)(b), 31 and 33"`` -> [29, 31, 33]."""
    cleaned = re.sub(r"\(\s*\w{1,3}\s*\)", "", article_list)
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


def extract_citations(text: str) -> set[str]:
    """Every article cited in ``text``, normalized to ``"<LAW ID> Art. <n>"`` (e.g. "FDL 33/2021 Art. 51")."""
    laws = [(m.start(), m.end(), law_id(m.group("kind"), m.group("num"), m.group("year")))
            for m in LAW_RE.finditer(text)]
    found: set[str] = set()
    for m in _ART_RE.finditer(text):
        after = _OF_LAW.match(text, m.end())
        if after:  # "Article 51 of Federal Decree-Law No. 33 of 2021"
            lid = law_id(after.group("kind"), after.group("num"), after.group("year"))
        else:
            before = [law for law in laws if law[1] <= m.start()]
            if not before:
                continue  # an article of no named law cannot be checked
            lid = before[-1][2]
        found.update(f"{lid} Art. {n}" for n in _expand(m.group("list")))
    return found


_ALIASES = [  # (words that must all appear, law id), most specific first
    (("domestic", "regulation"), "CR 106/2022"),
    (("domestic", "decision"), "CR 106/2022"),
    (("domestic",), "FDL 9/2022"),
    (("executive", "regulation"), "CR 1/2022"),
    (("implementing", "regulation"), "CR 1/2022"),
    (("labour",), "FDL 33/2021"),
    (("labor",), "FDL 33/2021"),
    (("employment", "law"), "FDL 33/2021"),
]


def resolve_law(text: str) -> str | None:
    """A law id from what a user or model calls it, or None.

    Accepts the full or short name ("Federal Decree-Law 33/2021", "FDL 33/2021", "Decree-Law No. 33 of
    2021"), the bare number ("33/2021") when a known law has it, and common names ("labour law",
    "domestic workers law", "executive regulation").
    """
    m = LAW_RE.search(text)
    if m:
        return law_id(m.group("kind"), m.group("num"), m.group("year"))
    bare = _BARE_NUMBER.match(text)
    if bare:
        suffix = f" {int(bare.group(1))}/{int(bare.group(2))}"
        matches = [lid for lid in KNOWN_LAWS if lid.endswith(suffix)]
        return matches[0] if len(matches) == 1 else None
    words = text.lower()
    for needed, lid in _ALIASES:
        if all(w in words for w in needed):
            return lid
    return None
