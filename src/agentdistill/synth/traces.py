"""`agentdistill traces`: the teacher answers every question with the real ReAct runtime and real tools.

Each finished conversation is judged (filters.py) and appended, as one durable line, either to
traces.jsonl (kept) or to traces.rejected.jsonl (with the reason). A question is therefore recorded
exactly once, in one of the two files, the moment its conversation ends; a run killed at any point
(even kill -9 in the middle of a write: the appender cuts a torn last line) resumes with the
questions that have no record yet. A conversation the backend failed on (status backend_error) is
not recorded, so it is tried again on the next run instead of being rejected forever.

Questions go to the runtime in blocks (lockstep batches inside a block): a block is what a kill can
lose, so it is small for a slow LLM teacher and larger for the instant rule teacher. At the end the
stage counts both files into traces.stats.json (``complete: true`` once every question has a record)
and exports the training split (export.py).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.jsonl import JsonlAppender, count_lines, drop_duplicates, iter_json, read_records, write_json_atomic
from agentdistill.records import Question, Trace
from agentdistill.run_layout import TRACES, TRACES_REJECTED, RunLayout
from agentdistill.synth.filters import Rejection, check_trace
from agentdistill.synth.splits import check_disjoint

MAX_CONSECUTIVE_BACKEND_ERRORS = 16  # a dead server fails every request: stop instead of spinning


def make_teacher(cfg: RunConfig, run_dir: Path) -> Any:
    """The teacher LLM from cfg.teacher: the rule teacher, an OpenAI-compatible server, or a local model."""
    from agentdistill.llm import make_teacher_llm

    return make_teacher_llm(cfg, run_dir)


def load_questions(run_dir: Path) -> list[Question]:
    """questions.jsonl of a finished questions stage, with its split checked for leaks."""
    layout = RunLayout(run_dir)
    if not layout.questions.exists() or not layout.questions_done():
        raise UserError(f"{run_dir} has no finished questions.jsonl.",
                        hint=f"Run `agentdistill questions --run {run_dir}` first.")
    questions = read_records(layout.questions, Question)
    check_disjoint(questions)
    return questions


def recorded(run_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(accepted, rejected) raw records keyed by question id; a torn last line is ignored."""
    out: list[dict[str, dict[str, Any]]] = []
    for path in (RunLayout(run_dir).traces, RunLayout(run_dir).traces_rejected):
        out.append({r["question_id"]: r for r in iter_json(path)} if path.exists() else {})
    return out[0], out[1]


def drop_duplicate_records(run_dir: Path, console: Console | None = None) -> int:
    """Keep one record per question across both record files; returns the lines dropped (and says which).

    A question recorded twice in one file keeps its first record; one both accepted and rejected (two
    writers on one run, or files merged by hand) keeps the accepted trace."""
    run_dir = Path(run_dir)
    kept = RunLayout(run_dir).traces
    dropped = drop_duplicates(kept, "question_id")
    accepted = {str(r["question_id"]) for r in iter_json(kept)} if kept.exists() else set()
    dropped += drop_duplicates(RunLayout(run_dir).traces_rejected, "question_id", also=accepted)
    if dropped and console is not None:
        shown = ", ".join(sorted(set(dropped))[:5]) + (" ..." if len(set(dropped)) > 5 else "")
        console.print(f"[yellow]warning:[/] dropped {len(dropped)} duplicate trace records of {len(set(dropped))} "
                      f"questions ({shown}); each question keeps one record.")
    return len(dropped)


class _Rate(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "-/s", style="progress.data.speed")


def _warm_up(cfg: RunConfig, tools: Any) -> None:
    """Let each pack open what its first tool call would (an index, an embedder) before calls are timed."""
    from agentdistill.domains import load_packs

    for pack in load_packs(cfg):
        if pack.warm_up is not None:
            pack.warm_up(tools)


def _block_size(cfg: RunConfig, llm: Any) -> int:
    return 256 if getattr(llm, "name", "") == "rule" else max(8, 4 * cfg.teacher.concurrency)


def run_traces(run_dir: Path, cfg: RunConfig, llm: Any = None, console: Console | None = None) -> dict[str, Any]:
    """Record a trace for every question without one; returns the stats written to traces.stats.json."""
    from agentdistill.agent.runtime import agent_options, run_agents
    from agentdistill.domains import citation_style, currency_aliases
    from agentdistill.tools import load_tools

    run_dir = Path(run_dir)
    console = console or Console(stderr=True)
    questions = load_questions(run_dir)
    duplicates = drop_duplicate_records(run_dir, console)
    accepted, rejected = recorded(run_dir)
    todo = [q for q in questions if q.id not in accepted and q.id not in rejected]
    start = time.perf_counter()
    backend_errors = 0
    teacher = None
    if todo:
        tools = load_tools(cfg, run_dir)
        llm = llm if llm is not None else make_teacher(cfg, run_dir)
        teacher = llm.name
        if hasattr(llm, "know"):  # an offline teacher plans from what the question's writer recorded
            llm.know(todo)
        _warm_up(cfg, tools)
        style = citation_style(cfg)
        currencies = currency_aliases(cfg)
        specs = tools.specs()
        n_rejected = len(rejected)
        consecutive = 0
        columns = [TextColumn("[bold]traces"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeRemainingColumn(),
                   TextColumn("rejected {task.fields[rejected]}")]
        layout = RunLayout(run_dir)
        with (JsonlAppender(layout.traces) as keep, JsonlAppender(layout.traces_rejected) as drop,
              Progress(*columns, console=console, transient=False) as bar):
            task = bar.add_task("traces", total=len(questions), completed=len(questions) - len(todo),
                                rejected=n_rejected)
            size = _block_size(cfg, llm)
            for b in range(0, len(todo), size):
                block = todo[b : b + size]
                # the teacher answers in its own words: quoting is how a small student reads what it was given
                options = {**agent_options(cfg.agent, currencies), "quote_answers": False}
                results = run_agents(llm, tools, [q.text for q in block], max_tokens=cfg.teacher.max_tokens,
                                     **options)
                for i, result in results:
                    q = block[i]
                    if result.outcome.status == "backend_error":
                        backend_errors += 1
                        consecutive += 1
                        if consecutive >= MAX_CONSECUTIVE_BACKEND_ERRORS:
                            raise UserError(
                                f"the teacher backend failed on {consecutive} questions in a row.",
                                hint="Check that the teacher server is up (teacher.base_url) and run the same command "
                                "again: every recorded trace is kept.")
                        continue
                    consecutive = 0
                    trace = Trace(id="t-" + q.id.removeprefix("q-"), question_id=q.id, tools=specs,
                                  messages=result.messages, teacher=teacher, outcome=result.outcome, split=q.split)
                    verdict = check_trace(trace, q, tools, cfg.agent.max_steps, style, currencies)
                    if verdict is None:
                        keep.append(trace)
                    else:
                        drop.append(Rejection(question_id=q.id, reason=verdict[0], detail=verdict[1][:500],
                                              trace=trace))
                        n_rejected += 1
                    bar.update(task, advance=1, rejected=n_rejected)
    stats = summarize(run_dir, questions)
    stats.update(seconds_this_run=round(time.perf_counter() - start, 2), backend_errors_this_run=backend_errors,
                 duplicates_dropped_this_run=duplicates)
    if teacher:
        stats["teacher"] = teacher
    if stats["complete"]:
        from agentdistill.synth.export import export_traces

        paths = export_traces(run_dir, load_accepted(run_dir, questions))
        stats["export"] = {k: str(v.relative_to(run_dir)) for k, v in paths.items()}
    write_json_atomic(RunLayout(run_dir).traces_stats, stats)
    return stats


def load_accepted(run_dir: Path, questions: list[Question]) -> list[Trace]:
    """Accepted traces of the current questions, each with its question's split (the source of truth)."""
    split = {q.id: q.split for q in questions}
    out = []
    for t in read_records(RunLayout(run_dir).traces, Trace):
        if t.question_id in split:
            out.append(t if t.split == split[t.question_id] else t.model_copy(update={"split": split[t.question_id]}))
    return out


def summarize(run_dir: Path, questions: list[Question]) -> dict[str, Any]:
    """Counts over both record files (not just this run), restricted to the current questions."""
    accepted, rejected = recorded(run_dir)
    by_id = {q.id: q for q in questions}
    both = set(accepted) & set(rejected)
    if both:
        raise UserError(f"{len(both)} questions have both an accepted and a rejected trace (e.g. {sorted(both)[0]}).",
                        hint="The trace files were edited or merged by hand; delete the wrong lines.")
    kept = [by_id[i] for i in accepted if i in by_id]
    reasons = Counter(r["reason"] for i, r in rejected.items() if i in by_id)
    tools: Counter[str] = Counter()
    for q in kept:
        tools.update(q.expect.tools if q.expect and q.expect.tools else ["(no tool)"])
    n_rec = len(kept) + sum(reasons.values())
    no_tool = sum(1 for q in kept if q.expect is not None and not q.expect.tools)
    return {
        "complete": n_rec == len(questions),
        "questions": len(questions),
        "recorded": n_rec,
        "accepted": len(kept),
        "rejected": sum(reasons.values()),
        "rejections": dict(reasons.most_common()),
        "accepted_by_kind": dict(Counter(q.kind for q in kept)),
        "accepted_by_persona": dict(Counter(q.persona for q in kept)),
        "accepted_by_tool": dict(tools.most_common()),
        "no_tool_share": round(no_tool / len(kept), 4) if kept else 0.0,
        "accepted_by_split": dict(Counter(q.split for q in kept)),
        # lines, not ids: a file holding a record twice shows here (and is repaired by the next run)
        "lines": {name: count_lines(Path(run_dir) / name) for name in (TRACES, TRACES_REJECTED)},
    }
