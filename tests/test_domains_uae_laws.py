"""The pack's laws: the corpus's spelling of each, and the names people call them by."""

from __future__ import annotations

import pytest

from agentdistill.domains.uae_labour.citations import extract_citations
from agentdistill.domains.uae_labour.laws import format_citation, resolve_law


def test_a_tool_citation_round_trips():
    assert extract_citations(format_citation("FDL 33/2021", 43)) == {"FDL 33/2021 Art. 43"}
    assert format_citation("CR 106/2022", 5) == "Cabinet Decision 106/2022, Art. 5"


@pytest.mark.parametrize("name, lid", [
    ("Federal Decree-Law 33/2021", "FDL 33/2021"),
    ("FDL 33/2021", "FDL 33/2021"),
    ("33/2021", "FDL 33/2021"),
    ("No. 33 of 2021", "FDL 33/2021"),
    ("UAE labour law", "FDL 33/2021"),
    ("domestic workers law", "FDL 9/2022"),
    ("the domestic workers regulation", "CR 106/2022"),
    ("executive regulation", "CR 1/2022"),
    ("Cabinet Resolution No. (1) of 2022", "CR 1/2022"),
    ("income tax law", None),
    ("45/2030", None),
])
def test_resolve_law(name, lid):
    assert resolve_law(name) == lid
