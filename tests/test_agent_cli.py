"""`agentdistill chat` shows the agent's steps as they happen, against a real llama.cpp server."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agentdistill.cli import app


@pytest.mark.llamacpp
def test_chat_one_question_through_a_real_server(llamacpp_server):
    result = CliRunner().invoke(app, ["chat", "--model", llamacpp_server.url, "--served-model", llamacpp_server.model,
                                      "--question", "What is 2 + 2?", "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    assert f"{llamacpp_server.model} with tools: search_documents"  # the default packs in result.output
    # one step was taken and shown: a parsed Thought, or the reply that did not parse
    assert "Thought:" in result.output or "Reply not understood" in result.output
    assert "1 steps" in result.output


def test_chat_reports_an_unreachable_server_as_a_user_error():
    from agentdistill.errors import UserError

    with pytest.raises(UserError, match="cannot reach the model server"):
        CliRunner().invoke(app, ["chat", "--model", "http://127.0.0.1:9", "--served-model", "x", "-q", "hi"],
                           catch_exceptions=False)


def test_interactive_chat_answers_until_an_empty_line():
    from fault_server import MODEL, fault_server

    with fault_server(["text:Thought: I know this.\nAnswer: forty-two"]) as server:
        result = CliRunner().invoke(app, ["chat", "--model", server.url, "--served-model", MODEL],
                                    input="What is six times seven?\n\n")
    assert result.exit_code == 0, result.output
    assert "Thought: I know this." in result.output
    assert "forty-two" in result.output and "answered" in result.output
    assert len(server.requests) == 1
    sent = server.requests[0]["messages"]
    assert sent[0]["role"] == "system" and "calculator(" in sent[0]["content"]
    assert sent[1] == {"role": "user", "content": "What is six times seven?"}
