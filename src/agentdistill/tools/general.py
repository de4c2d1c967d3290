"""A small general-purpose tool pack: arithmetic, unit conversion and date arithmetic.

These give the agent something to route to outside its domain (and a way to do sums a 135M model
cannot do in its head). None of them runs model-written code: the calculator parses the expression
with ``ast`` and evaluates only numbers, arithmetic operators and a short list of math functions.
"""

from __future__ import annotations

import ast
import calendar
import datetime as dt
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping

from agentdistill.currencies import CODE, spellings

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "floor": math.floor,
              "ceil": math.ceil, "log": math.log, "log10": math.log10, "exp": math.exp}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPONENT = 1000  # 10**10**10 would hang the process: a tool must answer promptly
_MAX_MAGNITUDE = 1e300
# Longer than any sum a question needs; checked before the expression is read at all, so that a model (or a
# user) pasting a 50,000-digit number gets an answer at once instead of a parse that holds the GIL.
MAX_EXPRESSION_CHARS = 500


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large")
        value = _BINARY[type(node.op)](left, right)
        if isinstance(value, complex) or abs(value) > _MAX_MAGNITUDE:
            raise ValueError("the result is not a finite real number")
        return value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords):
        return _FUNCTIONS[node.func.id](*[_eval(a) for a in node.args])
    raise ValueError(f"unsupported element {ast.unparse(node)!r}: only numbers, + - * / // % ** ( ) and "
                     f"{', '.join(_FUNCTIONS)} are allowed")


# Operators in words, as questions write them and small models copy them into the expression
# ("3,200 divided by 4": twice in one run's held-out questions, both an error from the calculator).
_WORD_OPERATORS = {"plus": "+", "minus": "-", "times": "*", "multiplied by": "*", "divided by": "/"}
_WORD_OPERATOR = re.compile(rf"\b(?:{'|'.join(_WORD_OPERATORS)})\b", re.I)


def money_words(currencies: Mapping[str, str] | None = None) -> re.Pattern[str]:
    """What the calculator drops from an expression: a currency's spelling (agentdistill.currencies; the run's
    packs' ``currencies`` too) anywhere, and any other three-capital code right before or after a number. A bare
    code is dropped only beside a number so that an upper-case function name ("LOG(100)") stays an error
    instead of vanishing from the sum."""
    # an abbreviation's full stop goes with it ("Fr. 500"), a decimal point stays ("$.5")
    return re.compile(rf"(?:{spellings(currencies)}|{CODE}(?=\.?\s*\d))(?:\.(?!\d))?|(?<=\d)\s*{CODE}")


_MONEY_WORDS = money_words()


def _normalize_expression(expression: str, money: re.Pattern[str] = _MONEY_WORDS) -> str:
    """Accept the ways people (and small models) write arithmetic: 1,000  3 x 4  2^3  15% of 200  9 divided by 3
    USD 500 (``money``: the currency words to drop, ``money_words``)."""
    expr = expression.strip().rstrip("=").replace("×", "*").replace("÷", "/").replace("^", "**")
    expr = _WORD_OPERATOR.sub(lambda m: f" {_WORD_OPERATORS[m.group().lower()]} ", expr)
    expr = re.sub(r"(?<=\d)\s*[xX]\s*(?=[\d(])", "*", expr)
    if "(" not in expr or not re.search(r"[a-z]\s*\(", expr):  # max(1,200) keeps its comma
        expr = re.sub(r"(?<=\d),(?=\d{3}\b)", "", expr)
    # A percentage starts only where a number starts ((?<![\d.])): without that anchor the regex engine
    # retries from every digit of a long number, quadratic in its length.
    expr = re.sub(r"(?<![\d.])(\d+(?:\.\d+)?)\s*%\s*of\b", r"(\1/100)*", expr)
    expr = re.sub(r"(?<![\d.])(\d+(?:\.\d+)?)\s*%(?!\s*[\d(])", r"(\1/100)", expr)  # "10 % 3" stays modulo
    return money.sub("", expr).strip()


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression.

    For example "(21 * 5 + 30 * 2.5) * 10000 / 30" or "15% of 4000".

    Args:
        expression: Numbers with + - * / // % ** and parentheses; sqrt, round, min, max, abs, floor, ceil, log, exp.
    """
    return _calculate(expression, _MONEY_WORDS)


def calculator_for(currencies: Mapping[str, str]) -> Callable[[str], str]:
    """The calculator of a run whose packs declare currency spellings (``domains.currency_aliases``): it drops
    those too ("Fr. 500 * 2" where "fr" is the run's), and is the same tool to a model (name, docstring,
    arguments)."""
    money = money_words(currencies)

    @functools.wraps(calculator)
    def run(expression: str) -> str:
        return _calculate(expression, money)

    return run


def _calculate(expression: str, money: re.Pattern[str]) -> str:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"the expression is {len(expression)} characters long; at most {MAX_EXPRESSION_CHARS} "
                         "are accepted: write the numbers the question needs, not more")
    expr = _normalize_expression(expression, money)
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"{expression!r} is not an arithmetic expression ({e.msg})") from e
    try:
        value = _eval(tree)
    except ZeroDivisionError as e:
        raise ValueError("division by zero") from e
    except (TypeError, OverflowError) as e:
        raise ValueError(f"cannot evaluate {expression!r}: {e}") from e
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    text = f"{value:.10g}" if isinstance(value, float) else str(value)
    return f"{expression.strip()} = {text}"


# Each unit: (dimension, factor to the dimension's base unit). Temperature is affine: handled apart.
_UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0), "km": ("length", 1000.0), "cm": ("length", 0.01), "mm": ("length", 0.001),
    "mi": ("length", 1609.344), "ft": ("length", 0.3048), "in": ("length", 0.0254), "yd": ("length", 0.9144),
    "kg": ("mass", 1.0), "g": ("mass", 0.001), "mg": ("mass", 1e-6), "t": ("mass", 1000.0),
    "lb": ("mass", 0.45359237), "oz": ("mass", 0.028349523125),
    "l": ("volume", 1.0), "ml": ("volume", 0.001), "m3": ("volume", 1000.0), "gal": ("volume", 3.785411784),
    "s": ("time", 1.0), "min": ("time", 60.0), "h": ("time", 3600.0), "day": ("time", 86400.0),
    "week": ("time", 604800.0),
    "m2": ("area", 1.0), "km2": ("area", 1e6), "ha": ("area", 1e4), "ft2": ("area", 0.09290304),
    "acre": ("area", 4046.8564224),
    "kmh": ("speed", 1 / 3.6), "ms": ("speed", 1.0), "mph": ("speed", 0.44704),
}
_ALIASES = {
    "meter": "m", "metre": "m", "kilometer": "km", "kilometre": "km", "centimeter": "cm", "millimeter": "mm",
    "mile": "mi", "foot": "ft", "feet": "ft", "inch": "in", "inches": "in", "yard": "yd",
    "kilogram": "kg", "kilo": "kg", "gram": "g", "milligram": "mg", "tonne": "t", "ton": "t", "pound": "lb",
    "lbs": "lb", "ounce": "oz", "liter": "l", "litre": "l", "milliliter": "ml", "millilitre": "ml", "gallon": "gal",
    "second": "s", "sec": "s", "minute": "min", "hour": "h", "hr": "h", "days": "day", "d": "day",
    "weeks": "week", "wk": "week", "km/h": "kmh", "kph": "kmh", "m/s": "ms", "hectare": "ha", "acres": "acre",
    "celsius": "c", "°c": "c", "fahrenheit": "f", "°f": "f", "kelvin": "k",
}
_TEMPERATURE = {"c", "f", "k"}


def _unit(name: str) -> str:
    key = name.strip().lower().replace(" ", "")
    key = _ALIASES.get(key, _ALIASES.get(key.rstrip("s"), key))
    if key not in _UNITS and key not in _TEMPERATURE:
        raise ValueError(f"unknown unit {name!r}; known units: {', '.join([*_UNITS, 'C', 'F', 'K'])}")
    return key


def _to_kelvin(value: float, unit: str) -> float:
    return {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[unit]


def _from_kelvin(value: float, unit: str) -> float:
    return {"c": value - 273.15, "f": (value - 273.15) * 9 / 5 + 32, "k": value}[unit]


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity to another unit.

    Length, mass, volume, area, time, speed and temperature units are known.

    Args:
        value: The number to convert.
        from_unit: Its unit, e.g. "km", "lb", "F".
        to_unit: The unit wanted, e.g. "mi", "kg", "C".
    """
    src, dst = _unit(from_unit), _unit(to_unit)
    if src in _TEMPERATURE or dst in _TEMPERATURE:
        if not (src in _TEMPERATURE and dst in _TEMPERATURE):
            raise ValueError(f"cannot convert {from_unit} to {to_unit}: only temperatures convert to temperatures")
        result = _from_kelvin(_to_kelvin(value, src), dst)
    else:
        (dim_a, fa), (dim_b, fb) = _UNITS[src], _UNITS[dst]
        if dim_a != dim_b:
            raise ValueError(f"cannot convert {from_unit} ({dim_a}) to {to_unit} ({dim_b})")
        result = value * fa / fb
    return f"{value:g} {from_unit} = {result:.6g} {to_unit}"


def _date(text: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as e:
        raise ValueError(f"{name} must be a date written YYYY-MM-DD, got {text!r}") from e


def _add_months(d: dt.date, months: int) -> dt.date:
    """Same day ``months`` later, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    years, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + years, m + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _years_months_days(lo: dt.date, hi: dt.date) -> tuple[int, int, int]:
    """Calendar difference: whole months first (as people count service), then the days left over."""
    months = (hi.year - lo.year) * 12 + hi.month - lo.month
    if _add_months(lo, months) > hi:  # the last month is not complete yet
        months -= 1
    return months // 12, months % 12, (hi - _add_months(lo, months)).days


def date_diff(start_date: str, end_date: str) -> str:
    """Count the days between two dates.

    Args:
        start_date: The first date, YYYY-MM-DD.
        end_date: The second date, YYYY-MM-DD.
    """
    a, b = _date(start_date, "start_date"), _date(end_date, "end_date")
    years, months, rest = _years_months_days(min(a, b), max(a, b))
    days = (b - a).days
    earlier = " earlier" if days < 0 else ""
    return (f"From {a.isoformat()} to {b.isoformat()}: {days} days ({years} years, {months} months, {rest} days"
            f"{earlier}; {days / 365:.2f} years of 365 days)")


def add_days(date: str, days: int) -> str:
    """Add days to a date (negative days go back).

    Args:
        date: The start date, YYYY-MM-DD.
        days: Days to add; negative to go back.
    """
    d = _date(date, "date")
    if abs(days) > 365 * 200:
        raise ValueError(f"{days} days is too far from {date}")
    out = d + dt.timedelta(days=days)
    return f"{d.isoformat()} {'+' if days >= 0 else '-'} {abs(days)} days = {out.isoformat()} ({out.strftime('%A')})"


TOOLS = [calculator, convert_units, date_diff, add_days]
