"""The canonical records that stages exchange (DESIGN.md, "Canonical data").

Every record is one JSON line carrying ``schema_version``. Stages talk only through these files, so
the models here are the contract: change a field only on purpose and bump SCHEMA_VERSION.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# 2: questions carry ``family`` and ``answer_facts``; a "dev" split sits beside train and test.
SCHEMA_VERSION = 2

Split = Literal["train", "dev", "test"]
SPLITS: tuple[str, ...] = ("train", "dev", "test")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {v} is newer than this agentdistill understands ({SCHEMA_VERSION}); "
                "upgrade agentdistill or regenerate the file"
            )
        return v


class Chunk(Record):
    id: str
    doc_id: str
    source: str
    title: str
    section_path: str  # "Federal Law 5/2020 > Art. 12 > Refund periods", "Returns policy > Time limits"
    text: str
    n_tokens: int


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tools: list[str]  # [] means: answer without a tool, or decline
    arguments: dict[str, dict[str, Any]] | None = None  # tool name -> arguments the question fixes
    # tool name -> arguments the writer suggests but the question does not fix, such as a search's query in
    # the documents' plain words where the question has typos or slang: an offline teacher calls with them,
    # scoring ignores them.
    hints: dict[str, dict[str, Any]] | None = None


class Question(Record):
    id: str
    text: str
    persona: str
    cluster: int
    source_chunk_ids: list[str] = Field(default_factory=list)
    expect: Expect | None = None
    split: Split | None = None
    kind: str = "lookup"  # lookup | calculation | multi_step | no_tool: drives the mix in config
    # The phrasing family the question was written in ("calculation.shorthand_numbers"): splits hold
    # out whole families, so a held-out score measures phrasing the student never saw.
    family: str = ""
    # What a right answer must contain: the figures or sentences the writer built the question from
    # (for a reply without a tool, the kind of reply: "greeting", "thanks" or "decline").
    answer_facts: list[str] = Field(default_factory=list)


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str | None
    steps: int
    # answered | max_steps | loop | parse_error | backend_error
    status: str


class Trace(Record):
    id: str
    question_id: str
    tools: list[dict[str, Any]]  # JSON-schema function specs, as OpenAI's "function" objects
    messages: list[dict[str, Any]]
    teacher: str
    outcome: Outcome
    split: Split | None = None

    @field_validator("messages")
    @classmethod
    def _messages_are_canonical(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, m in enumerate(messages):
            check_message(m, where=f"messages[{i}]")
        return messages


def check_message(message: dict[str, Any], where: str = "message") -> None:
    """Raise ValueError unless ``message`` is one of the four canonical message shapes."""
    if not isinstance(message, dict):
        raise ValueError(f"{where}: a message must be a JSON object, not {type(message).__name__}")
    role = message.get("role")
    if role in ("system", "user"):
        if not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: a {role} message needs a string 'content'")
    elif role == "tool":
        if not isinstance(message.get("name"), str) or not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: a tool message needs string 'name' and 'content'")
    elif role == "assistant":
        if not isinstance(message.get("thought"), str):
            raise ValueError(f"{where}: an assistant step needs a string 'thought'")
        has_calls = "tool_calls" in message
        has_answer = "content" in message
        if has_calls == has_answer:
            raise ValueError(
                f"{where}: an assistant step has either 'tool_calls' or 'content', not both/neither"
            )
        if has_answer and not isinstance(message["content"], str):
            raise ValueError(f"{where}: an assistant answer needs a string 'content'")
        if has_calls:
            calls = message["tool_calls"]
            if not isinstance(calls, list) or not calls:
                raise ValueError(f"{where}: 'tool_calls' must be a non-empty list")
            for j, c in enumerate(calls):
                try:
                    ToolCall.model_validate(c)
                except ValidationError as e:  # re-raised as ValueError so the message says which call
                    err = e.errors()[0]
                    field = ".".join(map(str, err["loc"])) or "call"
                    raise ValueError(f"{where}.tool_calls[{j}]: {field}: {err['msg']}") from None
    else:
        raise ValueError(f"{where}: unknown role {role!r} (expected system, user, assistant or tool)")
