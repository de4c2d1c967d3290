"""The laws of the UAE labour pack: their ids, the corpus's own spelling of their names, what each is
about, and the common names people call them by ("the labour law", "the domestic workers law")."""

from __future__ import annotations

import re

from agentdistill.domains.uae_labour.citations import LAW_RE, law_id
from agentdistill.domains.uae_labour.citations import law_name as generic_law_name

# Canonical law id -> (display name used in the corpus, what the law is about)
KNOWN_LAWS: dict[str, tuple[str, str]] = {
    "FDL 33/2021": ("Federal Decree-Law 33/2021", "labour relations in the private sector"),
    "CR 1/2022": ("Cabinet Resolution 1/2022", "executive regulation of the labour law"),
    "FDL 9/2022": ("Federal Decree-Law 9/2022", "domestic workers"),
    "CR 106/2022": ("Cabinet Decision 106/2022", "executive regulation of the domestic workers law"),
}

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

_BARE_NUMBER = re.compile(r"^\s*(?:No\.?\s*)?\(?(\d{1,4})\)?\s*(?:/|\s+of\s+)\s*((?:19|20)\d{2})\s*$", re.I)


def law_name(lid: str) -> str:
    """``"FDL 33/2021"`` -> ``"Federal Decree-Law 33/2021"`` (the corpus's spelling)."""
    return KNOWN_LAWS[lid][0] if lid in KNOWN_LAWS else generic_law_name(lid)


def format_citation(lid: str, article: int | str) -> str:
    """The human-readable citation the tools print: ``"Federal Decree-Law 33/2021, Art. 51"``."""
    return f"{law_name(lid)}, Art. {article}"


def resolve_law(text: str) -> str | None:
    """A law id from what a user or model calls it, or None.

    Accepts the full or short name ("Federal Decree-Law 33/2021", "FDL 33/2021", "Decree-Law No. 33 of
    2021"), the bare number ("33/2021") when a known law has it, and common names ("labour law",
    "domestic workers law", "executive regulation").
    """
    m = LAW_RE.search(text)
    if m:
        return law_id(m["kind"], m["num"], m["year"])
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
