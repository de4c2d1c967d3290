"""The layout holds: no import cycles, a foundation that imports no stage, and generic code that names no
domain (every domain lives in its pack under agentdistill/domains/)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from agentdistill.config import RunConfig, ToolsConfig
from agentdistill.currencies import GENERIC as GENERIC_CURRENCIES
from agentdistill.domains import BUILTIN_PACKS, load_pack
from agentdistill.tools import load_tools

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "agentdistill"
# The foundation (docs/design.md, Layout): what every stage may import, and which imports no stage.
FOUNDATION = {"agentdistill", "agentdistill.config", "agentdistill.records", "agentdistill.jsonl",
              "agentdistill.errors", "agentdistill.citations", "agentdistill.currencies", "agentdistill.cli_options",
              "agentdistill.run_lock", "agentdistill.run_layout"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_modules(name: str) -> set[str]:
    """The agentdistill modules ``name`` imports anywhere in its text (inside functions too: a lazy import
    is still a dependency), and the packages above each (importing a module runs its package first)."""
    path = MODULES[name]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [module, *(f"{module}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            out |= {m for i in range(1, len(parts) + 1) if (m := ".".join(parts[:i])) in MODULES}
    out.discard(name)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


# A package's __init__ importing its own submodules is how packages are built, not a cycle.
def without_own_package(name: str, targets: set[str]) -> set[str]:
    return {t for t in targets if not (MODULES[name].name == "__init__.py" and t.startswith(name + "."))}


def test_no_import_cycles():
    graph = {name: without_own_package(name, imported_modules(name)) for name in MODULES}
    assert cycles(graph) == []


def test_cycle_finder_finds_a_cycle():  # the check above could otherwise pass by finding nothing ever
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("name", sorted(FOUNDATION))
def test_the_foundation_imports_no_stage(name):
    if name == "agentdistill":
        return
    assert imported_modules(name) - FOUNDATION == set()


# Words of a domain's own sources that name it as surely as its pack's name (its citation style's, say).
DOMAIN_VOCABULARY = {"uae_labour": {"Decree", "Decree-Law", "FDL", "Cabinet", "Ministerial", "gratuity"}}


def domain_words(pack_name: str) -> set[str]:
    """What would name the pack in generic code: its name and the words in it, its tools' names, the words of its
    sources (``DOMAIN_VOCABULARY``) and the spellings of its currency that are not the generic ones
    (``DomainPack.currencies``: "AED", "dirham" belong to the pack that declares them)."""
    tools = load_tools(RunConfig(tools=ToolsConfig(packs=[pack_name])), None).names()
    currency = set(load_pack(pack_name).currencies) - set(GENERIC_CURRENCIES)
    return {pack_name, *pack_name.split("_"), *tools, *DOMAIN_VOCABULARY.get(pack_name, ()), *currency}


# The packs any domain uses (general tools; search over the run's own documents) name no domain themselves.
GENERIC_PACKS = {"general", "documents"}
DOMAIN_PACKS = [name for name in sorted(BUILTIN_PACKS) if name not in GENERIC_PACKS]


def in_a_domain_pack(path: Path) -> bool:
    packs = PACKAGE / "domains"
    return any(path == packs / f"{name}.py" or packs / name in path.parents for name in DOMAIN_PACKS)


@pytest.mark.parametrize("pack", DOMAIN_PACKS)
def test_generic_code_names_no_domain(pack):
    words = domain_words(pack)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(words))) + r")\b", re.IGNORECASE)
    hits = [f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}"
            for p in sorted(PACKAGE.rglob("*.py")) if not in_a_domain_pack(p)
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_there_is_a_domain_pack_to_check():
    assert DOMAIN_PACKS and all(len(domain_words(p)) > 3 for p in DOMAIN_PACKS)
    assert {"aed", "dirham", "dirhams"} <= domain_words("uae_labour")  # its currency's spellings are its own


def test_a_currency_spelling_in_generic_code_is_found():  # the check above could otherwise pass by finding nothing
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(domain_words("uae_labour")))) + r")\b", re.I)
    assert pattern.search('CODES = ["AED", "USD"]') and pattern.search("500 dirhams") and pattern.search("Dhs 5")
    assert not pattern.search('CODES = ["USD", "EUR"]')


def test_each_stage_package_has_one_cli_module():
    """A stage's commands live in its package's cli.py, and only there (the root's cli.py assembles them)."""
    found = {p.relative_to(PACKAGE).as_posix(): sorted(f.name for f in p.glob("*cli*.py"))
             for p in sorted(PACKAGE.rglob("*")) if p.is_dir() and (p / "__init__.py").is_file()}
    assert {pkg: names for pkg, names in found.items() if names and names != ["cli.py"]} == {}
    assert len([pkg for pkg, names in found.items() if names]) >= 8  # the check sees the stage packages
