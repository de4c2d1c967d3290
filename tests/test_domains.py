"""Domain packs: a run's tools, personas and offline teacher come from the packs it names, built-in or
the user's own, and the generic core runs a pack it has never heard of."""

from __future__ import annotations

import textwrap

import pytest

from agentdistill.citations import GENERIC
from agentdistill.config import RunConfig, ToolsConfig
from agentdistill.domains import (
    DomainPack,
    citation_style,
    currency_aliases,
    default_personas,
    load_pack,
    offline_pack,
)
from agentdistill.domains.uae_labour.citations import STYLE as LAW_CITATIONS
from agentdistill.errors import UserError
from agentdistill.llm import make_llm
from agentdistill.llm.base import GenerationRequest
from agentdistill.synth.questions import GENERIC_PERSONAS, load_personas
from agentdistill.tools import load_tools

USER_PACK = textwrap.dedent('''
    from agentdistill.domains import DomainPack
    from agentdistill.llm.base import Completion


    def order_status(order_id: str) -> str:
        """The status of an order.

        Args:
            order_id: the order's number, e.g. "A-1001"
        """
        return {"A-1001": "shipped"}.get(order_id, "unknown order")


    class EchoTeacher:
        name = "echo"

        def generate(self, requests):
            return [[Completion("Thought: I know.\\nAnswer: " + r.messages[-1]["content"], "stop")] for r in requests]


    PACK = DomainPack(
        name="shop",
        tools=lambda cfg, run_dir: [order_status],
        topic="orders of a small shop",
        personas=[{"name": "customer", "asks_about": "orders and refunds"}],
        offline_teacher=lambda run_dir, cfg: EchoTeacher(),
        offline_questions=lambda *args: ([], {}),
    )
''')


def cfg_with(*packs: str) -> RunConfig:
    return RunConfig(tools=ToolsConfig(packs=list(packs)))


def test_a_builtin_pack_is_loaded_by_name():
    pack = load_pack("uae_labour")
    assert isinstance(pack, DomainPack) and pack.name == "uae_labour"
    assert pack.offline_teacher is not None and pack.offline_questions is not None and pack.personas


def test_the_citation_style_is_the_first_packs_that_brings_one_else_the_generic_one():
    assert citation_style(cfg_with("documents", "general")) is GENERIC
    assert citation_style(cfg_with("uae_labour", "general")) is LAW_CITATIONS
    assert citation_style(cfg_with("general", "uae_labour")) is LAW_CITATIONS
    assert citation_style(cfg_with("shop", "general")) is GENERIC  # the shop cites its policies' sections
    assert citation_style(RunConfig()) is GENERIC


def test_a_runs_currency_spellings_are_those_its_packs_declare():
    assert currency_aliases(cfg_with("uae_labour", "general"))["dhs"] == "AED"
    assert currency_aliases(cfg_with("uae_labour", "general"))["dirhams"] == "AED"
    assert "dhs" not in currency_aliases(cfg_with("shop", "general"))  # another pack's currency is not this run's
    assert currency_aliases(cfg_with("shop", "general"))["usd"] == "USD"
    assert load_pack("general").currencies == {} and currency_aliases(cfg_with("documents", "general")) == {}


def test_the_general_calculator_drops_the_currency_words_of_the_runs_packs():
    expression = {"expression": "Dhs 9,000 / 30"}
    assert load_tools(cfg_with("uae_labour", "general"), None).call("calculator", expression).content.endswith("= 300")
    assert not load_tools(cfg_with("shop", "general"), None).call("calculator", expression).ok
    for packs in (("general",), ("shop", "general")):  # a code in capitals is money in any run
        assert load_tools(cfg_with(*packs), None).call("calculator", {"expression": "CHF 90 / 3"}).content \
            .endswith("= 30")


def test_a_users_pack_declares_its_currency(tmp_path):
    path = tmp_path / "swiss.py"
    path.write_text('from agentdistill.domains import DomainPack\n\n'
                    'PACK = DomainPack(name="swiss", tools=lambda cfg, run_dir: [], currencies={"Franken": "CHF"})\n')
    assert currency_aliases(cfg_with(str(path), "general")) == {"franken": "CHF"}  # compared lower-cased


def test_a_users_pack_file_brings_tools_personas_and_an_offline_teacher(tmp_path):
    path = tmp_path / "shop_pack.py"
    path.write_text(USER_PACK)
    cfg = cfg_with("general", str(path))
    tools = load_tools(cfg, None)
    assert tools.call("order_status", {"order_id": "A-1001"}).content == "shipped"
    assert "calculator" in tools.names()  # the general pack beside it
    assert [p.name for p in load_personas(None, cfg)] == ["customer"]
    assert offline_pack(cfg).name == "shop"
    (reply,) = make_llm("rule", tmp_path, cfg).generate([GenerationRequest([{"role": "user", "content": "hi"}])])
    assert reply[0].text.endswith("Answer: hi")


def test_a_module_with_only_tools_is_a_tools_only_pack(tmp_path):
    path = tmp_path / "mytools.py"
    path.write_text('def shout(text: str) -> str:\n    """Shout it."""\n    return text.upper()\n\nTOOLS = [shout]\n')
    cfg = cfg_with(str(path))
    assert load_tools(cfg, None).call("shout", {"text": "hi"}).content == "HI"
    assert default_personas(cfg) == []
    assert [p.name for p in load_personas(None, cfg)] == [p["name"] for p in GENERIC_PERSONAS]


def test_without_a_pack_teacher_the_generic_offline_teacher_answers():
    assert offline_pack(cfg_with("general")).name == "documents"
    (reply,) = make_llm("rule", None, cfg_with("general")).generate([GenerationRequest([{"role": "user",
                                                                                         "content": "hello"}])])
    assert reply[0].text.startswith("Thought: No tool") and "Answer: H" in reply[0].text


def test_the_offline_teacher_needs_packs_with_tools(tmp_path):
    path = tmp_path / "nothing.py"
    path.write_text("TOOLS = []\n")
    with pytest.raises(UserError, match="bring no tools") as e:
        make_llm("rule", None, cfg_with(str(path)))
    assert "teacher.kind: openai" in (e.value.hint or "")


def test_an_unknown_pack_names_the_builtin_ones():
    with pytest.raises(UserError, match="documents, general, shop, uae_labour"):
        load_pack("no_such_pack")


def test_a_module_without_pack_or_tools_says_what_to_add(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("X = 1\n")
    with pytest.raises(UserError, match="neither PACK, TOOLS nor tools"):
        load_pack(str(path))
