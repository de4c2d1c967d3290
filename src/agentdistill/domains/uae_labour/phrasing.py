"""Surface forms people use, for any question writer: numbers in words, shorthand, casual typing.

A student trained only on "AED 12,000" and "5 years" learns that format, not the quantity: people
write "12k", "12000 dirhams", "four and a half years" and "a year and a half", in lower case, with
typos. These helpers turn one value into the many ways it is written, so a writer can sample them
for every phrasing family and the student sees the quantity behind the form. Nothing here names a
domain; a pack passes its own currency words.
"""

from __future__ import annotations

import random
import re

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def int_words(n: int) -> str:
    """0 <= n < 1000 in English words: 45 -> "forty-five", 120 -> "one hundred and twenty"."""
    if not 0 <= n < 1000:
        raise ValueError(f"int_words covers 0..999, got {n}")
    if n < 20:
        return _UNITS[n]
    if n < 100:
        tens, rest = divmod(n, 10)
        return _TENS[tens] + (f"-{_UNITS[rest]}" if rest else "")
    hundreds, rest = divmod(n, 100)
    return f"{_UNITS[hundreds]} hundred" + (f" and {int_words(rest)}" if rest else "")


def number_words(x: float) -> str | None:
    """A whole or half number in words ("four and a half", "a half"), or None for other fractions."""
    whole, frac = divmod(float(x), 1.0)
    if frac not in (0.0, 0.5) or whole >= 1000:
        return None
    if frac == 0.0:
        return int_words(int(whole))
    return "a half" if whole == 0 else f"{int_words(int(whole))} and a half"


def plain_number(x: float, thousands: bool = True) -> str:
    """12000 -> "12,000" (or "12000"), 4.5 -> "4.5"."""
    if float(x).is_integer():
        return f"{int(x):,}" if thousands else str(int(x))
    return f"{x:,}" if thousands else str(x)


def shorthand_thousands(x: float) -> str | None:
    """12000 -> "12k", 12500 -> "12.5k"; None when the value is not a round multiple of 100 over 1000."""
    if x < 1000 or x % 100:
        return None
    k = x / 1000
    return f"{int(k)}k" if k.is_integer() else f"{k:g}k"


def money_forms(value: float, currency_codes: list[str], currency_words: list[str]) -> list[str]:
    """The ways a sum is written: "AED 12,000", "AED12,000", "12000 dirhams", "12k", "12k AED", ..."""
    code, word = currency_codes[0], currency_words[0]
    forms = [f"{code} {plain_number(value)}", f"{code}{plain_number(value)}", f"{plain_number(value, False)} {word}",
             f"{plain_number(value)} {code}", f"{code} {plain_number(value, False)}"]
    forms += [f"{c} {plain_number(value)}" for c in currency_codes[1:]]
    forms += [f"{plain_number(value)} {w}" for w in currency_words[1:]]
    short = shorthand_thousands(value)
    if short:
        forms += [short, f"{short} {code}", f"{code} {short}", f"{short} {word}"]
    return forms


def duration_forms(value: float, unit: str) -> list[tuple[str, dict[str, float]]]:
    """How a duration of ``value`` ``unit`` ("years" or "months") is written, each form with the figures it
    states by unit: "30 months" -> {"months": 30}, "2 years and 6 months" -> {"years": 2, "months": 6}.

    A value in years is also written in months ("30 months" for 2.5 years) and in years and months; a value
    in months also in years where that is a whole or half number ("2 years" for 24) and in years and months.
    """
    if unit not in ("years", "months"):
        raise ValueError(f"unit must be years or months, got {unit!r}")
    months = round(value * 12) if unit == "years" else value
    years = int(months / 12) if float(months / 12).is_integer() else months / 12
    forms: list[tuple[str, dict[str, float]]] = []
    if unit == "months" or float(months).is_integer():
        forms += [(text, {"months": months}) for text in _counted(months, "month")]
    if years * 2 == int(years * 2) and years >= 1 or unit == "years":
        forms += [(text, {"years": years}) for text in _counted(years, "year")]
        if years >= 1:
            forms.append((f"{plain_number(years)} {'yr' if years == 1 else 'yrs'}", {"years": years}))
        if years == 1.5:
            forms.append(("a year and a half", {"years": years}))
    whole, rest = divmod(int(months), 12)
    if whole and rest and float(months).is_integer():
        forms.append((f"{whole} year{'s' if whole > 1 else ''} and {rest} month{'s' if rest > 1 else ''}",
                      {"years": whole, "months": rest}))
    return forms


def _counted(n: float, singular: str) -> list[str]:
    """ "3 months", "three months", "1 year", "one year": a count of a unit in figures and in words."""
    noun = singular if n == 1 else singular + "s"
    forms = [f"{plain_number(n)} {noun}"]
    words = number_words(n)
    if words == "a half":
        forms.append(f"half a {singular}")
    elif words:
        forms.append(f"{words} {noun}")
    return forms


def hour_forms(value: float) -> list[str]:
    n = plain_number(value)
    forms = [f"{n} hours" if value != 1 else "1 hour", f"{n} hrs", f"{n}h"]
    words = number_words(value)
    if words:
        forms.append(f"{words} hours" if value != 1 else "one hour")
    return forms


_WORD = re.compile(r"[A-Za-z]{5,}")


def with_typos(text: str, rng: random.Random, rate: float = 0.15) -> str:
    """Swap two inner letters in about ``rate`` of the longer words: "salary" -> "slaary"."""

    def swap(m: re.Match[str]) -> str:
        w = m.group(0)
        if rng.random() >= rate:
            return w
        i = rng.randrange(1, len(w) - 2)
        return w[:i] + w[i + 1] + w[i] + w[i + 2 :]

    return _WORD.sub(swap, text)


def casual(text: str, rng: random.Random, typos: bool = True) -> str:
    """Lower case, apostrophes and the final full stop sometimes dropped, "you" as "u", a few typos."""
    out = text[0].lower() + text[1:] if rng.random() < 0.7 else text
    if rng.random() < 0.5:
        out = out.lower()
    if rng.random() < 0.5:
        out = out.replace("'", "").replace("’", "")
    if rng.random() < 0.3:
        out = re.sub(r"\byou\b", "u", out)
    if rng.random() < 0.5:
        out = out.rstrip(".")
    if out.endswith("?") and rng.random() < 0.3:
        out = out.rstrip("?") + rng.choice(["??", "", " ?"])
    return with_typos(out, rng) if typos else out
