"""How amounts of money are written: which currency a word or symbol spells, for any domain.

The generic code that reads amounts (the answer checker, the calculator, the schema question writer) knows

- the common symbols, codes and names in ``GENERIC`` (``$``/``USD``/``dollar``, ``€``/``EUR``/``euro``,
  ``£``/``GBP``/``pound``);
- any code written the way ISO 4217 writes one, three capital letters (``CHF 20``, ``20 JPY``), as a fallback;
- the spellings a run's packs declare (``DomainPack.currencies``, gathered by ``domains.currency_aliases(cfg)``
  and handed to that code): a local abbreviation or the currency's name in words, which only a pack can know.
  A pack's spelling is a currency only in a run that uses the pack.

A table of spellings maps each spelling, lower-case, to its currency's code:
``{"fr": "CHF", "franc": "CHF", "francs": "CHF"}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

GENERIC: dict[str, str] = {
    "$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD",
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP",
}
# A code as ISO 4217 writes one, not inside a longer word. Case matters: "Day" or "and" is not a code.
CODE = r"(?<![^\W\d_])[A-Z]{3}(?![^\W\d_])"
_CODE = re.compile(r"[A-Z]{3}")


def currency(word: str, aliases: Mapping[str, str] | None = None) -> str | None:
    """The code of the currency ``word`` (as written) spells: the packs' ``aliases`` first, then ``GENERIC``, then
    the word itself when it is a three-capital code; None when it spells none."""
    w = word.lower()
    found = (aliases or {}).get(w) or GENERIC.get(w)
    return found or (word if _CODE.fullmatch(word) else None)


def spellings(aliases: Mapping[str, str] | None = None) -> str:
    """A regular expression for one spelling in ``GENERIC`` or ``aliases``, in any case and not inside a longer
    word ("euro" is not found in "Europe"). Codes beyond the tables are ``CODE``."""
    words = sorted({*GENERIC, *(aliases or {})})
    return rf"(?<![^\W\d_])(?i:{'|'.join(map(re.escape, words))})(?![^\W\d_])"
