"""The documents pack: a search over the run's own documents (tools/documents.py), for any domain, and the
generic offline teacher with its question writer (synth/schema_teacher.py, synth/schema_questions.py),
which work for any pack's tools. ``tools.packs: [documents, general]`` is a run over your own documents
with no code of your own; ``domains.offline_pack`` falls back to this pack's teacher when no pack of a run
brings one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentdistill.config import RunConfig
from agentdistill.domains import DomainPack
from agentdistill.tools.documents import DocumentSearch, warm_up
from agentdistill.tools.spec import Tool


def tools(cfg: RunConfig, run_dir: Path | None) -> list[Tool]:
    return [DocumentSearch(run_dir, cfg).tool()]


def offline_teacher(run_dir: Path | None, cfg: RunConfig) -> Any:
    from agentdistill.synth.schema_teacher import SchemaTeacher

    return SchemaTeacher(run_dir, cfg)


def offline_questions(*args: Any, **kwargs: Any) -> tuple[list[Any], dict[str, int]]:
    from agentdistill.synth.schema_questions import schema_questions

    return schema_questions(*args, **kwargs)


PACK = DomainPack(name="documents", tools=tools, topic="the documents", offline_teacher=offline_teacher,
                  offline_questions=offline_questions, warm_up=warm_up)
