"""The configuration reference (docs/configuration.md), generated from the config model in config.py.

    python -m agentdistill.config_reference > docs/configuration.md

Every key of ``RunConfig`` and its sections is listed with its type, default and meaning. The meaning is
the field's ``description`` where it has one, else the comment written beside or directly above the field
in config.py, read from the source: config.py documents its fields in comments, and reading them keeps
one text for the code's reader and the user. tests/test_config_reference.py checks that the committed
file is what this prints and that every key has a meaning.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import sys
import textwrap
import tokenize
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from agentdistill.config import RunConfig

COMMAND = "python -m agentdistill.config_reference > docs/configuration.md"


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """{field name: the comments on its declaration's lines, or else the comment lines right above it}."""
    try:
        lines, _ = inspect.getsourcelines(model)
    except (OSError, TypeError):  # no source shipped: descriptions only
        return {}
    source = textwrap.dedent("".join(lines))
    comments: dict[int, str] = {}  # 1-based line -> comment text
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    out: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        end = node.end_lineno or node.lineno
        beside = [comments[n] for n in range(node.lineno, end + 1) if n in comments]
        above: list[str] = []
        n = node.lineno - 1
        while n in comments and n not in code_lines:  # a comment block that ends right above the field
            above.insert(0, comments[n])
            n -= 1
        out[node.target.id] = " ".join(beside or above)
    return out


def type_name(annotation: Any) -> str:
    """A field's type as a user writes it in YAML: ``int``, ``list[str]``, ``"lora" | "qlora"``, ``path | null``."""
    if annotation is type(None):
        return "null"
    if annotation is Path:
        return "path"
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(v) for v in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(annotation))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in get_args(annotation))}]"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: FieldInfo) -> str:
    """The default as YAML (JSON is valid YAML flow syntax)."""
    value = field.get_default(call_default_factory=True)
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value)


def bounds(field: FieldInfo) -> str:
    """Numeric bounds the field enforces, e.g. ``> 0``."""
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return ", ".join(f"{sign} {getattr(m, key)}" for m in field.metadata for key, sign in signs.items()
                     if getattr(m, key, None) is not None)


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The config model a field holds (``JudgeConfig`` for ``JudgeConfig | None``), else None."""
    options = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) else [annotation]
    model = options[0] if len(options) == 1 else None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _entries(prefix: str, model: type[BaseModel], depth: int = 0, only: set[str] | None = None) -> list[str]:
    """One Markdown list item per field of ``model`` (or of its fields named in ``only``); a nested
    section's fields indented below it."""
    comments = field_comments(model)
    lines = []
    for key, field in model.model_fields.items():
        if only is not None and key not in only:
            continue
        nested = section_model(field.annotation)
        kind = type_name(field.annotation) if nested is None else type_name(field.annotation).replace(
            nested.__name__, "section")
        if limits := bounds(field):
            kind += f", {limits}"
        default = "required" if field.is_required() else f"default `{default_text(field)}`"
        meaning = field.description or comments.get(key, "")
        if nested is not None and nested.__doc__:
            meaning = " ".join(filter(None, [meaning, " ".join(inspect.cleandoc(nested.__doc__).split())]))
        meaning = meaning.replace("<", "\\<")  # "runs/<name>" is text, not an HTML tag
        item = f"{'  ' * depth}- **`{prefix}{key}`** ({kind}; {default})"
        lines.append(item + (f": {meaning}" if meaning else ""))
        if nested is not None:
            lines += _entries(f"{prefix}{key}.", nested, depth + 1)
    return lines


def _sections() -> list[tuple[str, type[BaseModel] | None, FieldInfo]]:
    """(name, section model or None for a top-level scalar, the RunConfig field) in declaration order."""
    return [(name, section_model(field.annotation), field) for name, field in RunConfig.model_fields.items()]


def render() -> str:
    """docs/configuration.md as Markdown."""
    top_comments = field_comments(RunConfig)
    parts = [
        "# Configuration reference",
        "",
        f"Generated from `src/agentdistill/config.py` by `{COMMAND}`; edit the config model, not this file.",
        "",
        "A run is configured by one YAML file of the sections below. A key left out takes its default (a key "
        "marked required is needed only when its section is given); an unknown key is an error. Relative paths in "
        "`corpus.paths`, `questions.personas` and `models.cache_dir` are taken from the config file's folder. "
        "`--set section.key=value` overrides one key on the command line (`agentdistill run` and `demo`). "
        "Each folder in `examples/` holds a complete `config.yaml`.",
        "",
        "## Top level",
        "",
    ]
    parts += _entries("", RunConfig, only={name for name, model, _ in _sections() if model is None})
    for name, model, _ in _sections():
        if model is None:
            continue
        parts += ["", f"## `{name}`", ""]
        intro = " ".join(inspect.cleandoc(model.__doc__ or "").split()) or top_comments.get(name, "")
        if intro:
            parts += [intro, ""]
        parts += _entries(f"{name}.", model)
    return "\n".join(parts) + "\n"


def all_keys() -> list[str]:
    """Every configurable key, dotted (``sft.epochs``, ``eval.judge.model``), as the reference lists them."""
    def keys(prefix: str, model: type[BaseModel]) -> list[str]:
        out = []
        for key, field in model.model_fields.items():
            out.append(prefix + key)
            if (nested := section_model(field.annotation)) is not None:
                out += keys(f"{prefix}{key}.", nested)
        return out

    return keys("", RunConfig)


if __name__ == "__main__":
    sys.stdout.write(render())
