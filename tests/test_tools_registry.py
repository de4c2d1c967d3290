"""Tool specs come from typed functions; every bad call becomes an explanatory observation, never a crash."""

from __future__ import annotations

import time
from typing import Literal

import pytest
from example_packs import example_config

from agentdistill.config import RunConfig, ToolsConfig
from agentdistill.errors import UserError
from agentdistill.tools import Tool, ToolRegistry, load_tools


def book_room(city: str, nights: int, budget: float = 100.0, view: Literal["sea", "city"] = "sea",
              extras: list[str] | None = None, smoking: bool = False) -> str:
    """Book a hotel room. Prices are per night.

    Args:
        city: Where to stay, e.g. "Dubai".
        nights: How many nights.
            Must be at least one.
        budget: Most to pay per night.
        view: Which view.
        extras: Things to add.
        smoking: Smoking room or not.
    """
    if nights < 1:
        raise ValueError("nights must be at least 1")
    return f"booked {nights} nights in {city}"


def test_spec_is_built_from_type_hints_defaults_and_docstring():
    spec = Tool.from_function(book_room).spec()
    assert spec["name"] == "book_room"
    assert spec["description"].startswith("Book a hotel room.")
    params = spec["parameters"]
    assert params["required"] == ["city", "nights"]
    assert params["additionalProperties"] is False
    p = params["properties"]
    assert p["city"] == {"type": "string", "description": 'Where to stay, e.g. "Dubai".'}
    assert p["nights"]["type"] == "integer"
    assert p["nights"]["description"] == "How many nights. Must be at least one."  # continuation line joined
    assert p["budget"] == {"type": "number", "description": "Most to pay per night.", "default": 100.0}
    assert p["view"]["enum"] == ["sea", "city"]
    assert p["extras"]["type"] == "array" and p["extras"]["items"] == {"type": "string"}
    assert p["smoking"]["type"] == "boolean"


def test_signature_and_summary_are_compact_for_the_system_prompt():
    t = Tool.from_function(book_room)
    assert t.signature() == ("book_room(city: str, nights: int, budget?: number, view?: sea|city, extras?: list, "
                             "smoking?: bool)")
    assert t.summary == "Book a hotel room."


def test_a_tool_without_docstring_or_with_an_untyped_json_parameter_is_refused():
    def nodoc(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="docstring"):
        Tool.from_function(nodoc)

    def weird(x: set) -> str:
        """Weird."""
        return ""

    with pytest.raises(TypeError, match="unsupported"):
        Tool.from_function(weird)


@pytest.fixture()
def registry() -> ToolRegistry:
    def boom(x: int) -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    def slow(seconds: float) -> str:
        """Sleeps."""
        time.sleep(seconds)
        return "woke up"

    def data(n: int) -> dict:
        """Returns structured data."""
        return {"n": n, "items": list(range(n))}

    return ToolRegistry([book_room, boom, slow, data], timeout_s=0.5, max_chars=200)


def test_good_call_runs_the_function(registry):
    r = registry.call("book_room", {"city": "Abu Dhabi", "nights": 2})
    assert r.ok and r.content == "booked 2 nights in Abu Dhabi"
    assert registry.validate("book_room", {"city": "x", "nights": 1, "view": "city"}) is None


def test_unknown_tool_names_the_close_match_and_lists_the_tools(registry):
    r = registry.call("book_rooms", {})
    assert not r.ok
    assert r.content.startswith("Error: unknown tool 'book_rooms'")
    assert "Did you mean 'book_room'" in r.content
    assert "boom" in r.content and "slow" in r.content


def test_missing_mistyped_and_unknown_arguments_are_explained(registry):
    missing = registry.call("book_room", {"city": "Dubai"})
    assert not missing.ok and "missing required argument 'nights'" in missing.content
    assert "Expected: book_room(city: str, nights: int" in missing.content
    wrong = registry.call("book_room", {"city": "Dubai", "nights": "two"})
    assert not wrong.ok and "'nights' must be of type integer, got \"two\"" in wrong.content
    extra = registry.call("book_room", {"city": "Dubai", "nights": 2, "pool": True})
    assert not extra.ok and "unknown argument 'pool'" in extra.content
    enum = registry.call("book_room", {"city": "Dubai", "nights": 2, "view": "garden"})
    assert not enum.ok and "must be one of ['sea', 'city']" in enum.content
    not_object = registry.call("book_room", ["Dubai", 2])
    assert not not_object.ok and "must be a JSON object" in not_object.content


def test_a_tool_that_raises_becomes_an_observation(registry):
    value_error = registry.call("book_room", {"city": "Dubai", "nights": 0})
    assert not value_error.ok and value_error.content == "Error: book_room: nights must be at least 1"
    crash = registry.call("boom", {"x": 1})
    assert not crash.ok and "RuntimeError: disk on fire" in crash.content


def test_a_tool_past_its_timeout_becomes_an_observation_promptly(registry):
    start = time.perf_counter()
    r = registry.call("slow", {"seconds": 5})
    assert time.perf_counter() - start < 2.0
    assert not r.ok and "did not finish within 0.5 s" in r.content
    assert registry.call("slow", {"seconds": 0.01}).content == "woke up"


def test_structured_results_are_json_and_long_ones_are_clipped(registry):
    assert registry.call("data", {"n": 2}).content == '{"n": 2, "items": [0, 1]}'
    long = registry.call("data", {"n": 500}).content
    assert len(long) < 230 and long.endswith("...[truncated]")


def test_duplicate_tool_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        ToolRegistry([book_room, book_room])


def test_load_tools_builds_the_configured_packs_and_user_packs(tmp_path):
    reg = load_tools(example_config(), None)
    assert {"search_labour_law", "get_article", "calculate_gratuity", "annual_leave", "overtime_pay",
            "notice_period", "calculator", "convert_units", "date_diff", "add_days"} <= set(reg.names())
    assert reg.timeout_s == ToolsConfig().timeout_s
    user = tmp_path / "mytools.py"
    user.write_text('def shout(text: str) -> str:\n    """Shout it."""\n    return text.upper()\n\nTOOLS = [shout]\n')
    reg = load_tools(RunConfig(tools=ToolsConfig(packs=["general", str(user)])), None)
    assert reg.call("shout", {"text": "hi"}).content == "HI"
    with pytest.raises(UserError, match="no_such_pack"):
        load_tools(RunConfig(tools=ToolsConfig(packs=["no_such_pack"])), None)


def test_corpus_tools_without_a_corpus_say_what_to_do():
    reg = load_tools(example_config(), None)
    r = reg.call("search_labour_law", {"query": "annual leave"})
    assert not r.ok and "agentdistill ingest" in r.content


def test_a_tool_past_its_timeout_is_stopped_not_left_running():
    count = [0]

    def spin() -> str:
        """Loops in Python forever."""
        while True:
            count[0] += 1

    reg = ToolRegistry([spin], timeout_s=0.3)
    r = reg.call("spin", {})
    assert not r.ok and "did not finish within 0.3 s" in r.content
    time.sleep(0.2)  # the stop lands at the loop's next bytecode
    stopped_at = count[0]
    time.sleep(0.3)
    assert count[0] == stopped_at


def test_an_argument_too_long_to_read_is_refused_before_the_tool_runs():
    seen = []

    def echo(text: str) -> str:
        """Echo."""
        seen.append(text)
        return text

    reg = ToolRegistry([echo], max_argument_chars=100)
    r = reg.call("echo", {"text": "x" * 101})
    assert not r.ok and "argument 'text' of 'echo' is 101 characters long; at most 100" in r.content
    assert seen == []
    assert reg.call("echo", {"text": "x" * 100}).ok


def test_a_tool_that_takes_asked_gets_the_users_message_which_the_model_cannot_write():
    seen = []

    def lookup(query: str, *, asked: str | None = None) -> str:
        """Look something up.

        Args:
            query: What to look for.
        """
        seen.append(asked)
        return query

    registry = ToolRegistry([lookup])
    tool = registry.get("lookup")
    assert tool.takes_asked and list(tool.parameters["properties"]) == ["query"]
    assert registry.call("lookup", {"query": "x"}, asked="what is x?").ok
    assert registry.call("lookup", {"query": "y"}).ok
    assert seen == ["what is x?", None]
    refused = registry.call("lookup", {"query": "z", "asked": "forged"}, asked="real")
    assert not refused.ok and "unknown argument 'asked'" in refused.content and len(seen) == 2
    plain = ToolRegistry([Tool.from_function(lambda_free_tool)])
    assert plain.call("lambda_free_tool", {"n": 2}, asked="ignored").content == "2"


def lambda_free_tool(n: int) -> str:
    """Echo a number.

    Args:
        n: The number.
    """
    return str(n)
