"""Evaluate any model as an agent: the real runtime, the real tools, the held-out questions.

    questions.jsonl (split) -> run_agents(model, tools) -> eval/<name>/results.jsonl -> metrics.json

The model is anything ``llm.make_llm`` accepts: ``student`` / ``teacher`` (the configured base
models, untuned), a registry name or HF id, an adapter folder (``adapters/smollm2-135m``, relative
to the run), ``http://host:port/v1`` (with ``served_model``), or ``rule`` (the offline rule teacher).

Questions run in groups of ``eval.in_flight`` that advance in lockstep: every round sends the next
step of each unfinished conversation of the group, and a local model runs them in batches of
``eval.batch_size`` prompts of similar length. A group several batches wide keeps the batches full
while short conversations finish (64 in flight ran the 128-question SFT eval in 224 s against 284 s
with 16, with identical outputs). A question's latency is the time its own steps took (its batch's
generation and its tool calls), so it does not grow with the group. Every finished question is appended
to results.jsonl at once, so a killed eval loses at most the group in flight and a rerun skips what is
done (a ``backend_error`` is retried). metrics.json is written last, from every result, so it exists only
when the eval is complete.

Each result carries the verdict on its answer (``verdict``: correct, reason, and who gave it): the offline
checker's (evaluate.answer_check), or with ``eval.judge`` an LLM judge's (evaluate.judge). The checker
reads the conversation's observations; retrieval_hit reads the run's chunks.jsonl.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agentdistill.citations import GENERIC, CitationStyle
from agentdistill.config import RunConfig
from agentdistill.domains import citation_style, currency_aliases
from agentdistill.errors import UserError
from agentdistill.evaluate.answer_check import AnswerVerdict
from agentdistill.evaluate.judge import AnswerJudge, judge_id
from agentdistill.evaluate.metrics import aggregate, observation_texts, score_question
from agentdistill.jsonl import JsonlAppender, iter_json, read_records, write_json_atomic
from agentdistill.records import SCHEMA_VERSION, Chunk, Question, Trace
from agentdistill.run_layout import ADAPTER_META, EVAL_META, METRICS, RESULTS, RunLayout


def default_name(model: str, run_dir: Path, cfg: RunConfig, served_model: str | None = None) -> str:
    """The eval folder name for ``model``: readable and stable (see the module docstring for the forms).

    A base model is ``<model>-untuned``; an adapter is ``<base>-<kind>`` from its agentdistill.json
    (``smollm2-135m-sft``), else its folder name; an endpoint is its served model name.
    """
    if model == "rule":
        return "rule-teacher"
    if model.startswith(("http://", "https://")):
        label = served_model or model.split("://", 1)[1].split("/", 1)[0]
        return _slug(label)
    model = {"student": cfg.models.student, "teacher": cfg.models.teacher}.get(model, model)
    path = Path(model).expanduser()
    folder = path if path.is_absolute() else run_dir / path
    if not folder.is_dir():
        folder = path
    if (folder / "adapter_config.json").is_file() or (folder / ADAPTER_META).is_file():
        meta_file = folder / ADAPTER_META
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        base, kind = Path(meta.get("base_model") or "").name, meta.get("kind")
        # adapters/smollm2-135m (an SFT of smollm2-135m) -> smollm2-135m-sft; adapters/smollm2-135m-uld stays
        return _slug(f"{base}-{kind}" if kind and base == folder.name else folder.name)
    return _slug(f"{Path(model).name}-untuned")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-") or "model"


def select_questions(run_dir: Path, split: str, max_questions: int | None, seed: int,
                     questions_file: Path | None = None) -> list[Question]:
    """The questions of ``split`` (or all of ``questions_file``, a question set kept outside the run); with
    ``max_questions``, a seeded random subset kept in file order.

    The subset for N is a prefix of one fixed permutation, so a larger N contains every smaller one
    (an eval grown from 8 to 200 questions reuses the first 8 results).
    """
    path = questions_file or RunLayout(run_dir).questions
    if not path.exists():
        raise UserError(f"{path} does not exist: there is nothing to evaluate on.",
                        hint="Check the --questions path." if questions_file else
                        f"Run `agentdistill questions --run {run_dir}` first.")
    questions = [q for q in read_records(path, Question) if questions_file or q.split == split]
    if not questions and questions_file:
        raise UserError(f"{path} holds no questions.", hint="Give a JSONL file of question records.")
    if not questions:
        raise UserError(f"{path} has no questions in the {split!r} split.",
                        hint="Pick the split with --split, or regenerate questions (the split is made there).")
    if max_questions is not None and max_questions < len(questions):
        if max_questions < 1:
            raise UserError(f"--max-questions must be at least 1 (got {max_questions}).")
        keep = np.random.default_rng(seed).permutation(len(questions))[:max_questions]
        questions = [questions[i] for i in sorted(keep)]
    return questions


def corpus_citations(run_dir: Path, style: CitationStyle = GENERIC) -> set[str]:
    """Every citation the run's corpus holds, from its chunks' section paths (empty without a corpus)."""
    path = RunLayout(run_dir).chunks
    if not path.exists():
        return set()
    return {c for row in iter_json(path) for c in style.of_section(f"{row.get('section_path', '')}")}


def corpus_chunks(run_dir: Path) -> dict[str, Chunk]:
    """The run's chunks by id (empty without a corpus): the source passages retrieval_hit looks for."""
    path = RunLayout(run_dir).chunks
    return {c.id: c for c in read_records(path, Chunk)} if path.exists() else {}


# agent options an eval records
DECODING = ("constrain_tool_names", "constrain_arguments", "quote_answers", "quote_top_passage", "quote_result_first",
            "figures_from_conversation", "figures_by_unit", "act_above_relevance", "route_neighbours",
            "plan_from_clauses", "replies_from_neighbours", "answer_on_repeat")


def decoding_options(cfg: RunConfig) -> dict[str, Any]:
    """The agent options that change how a model's replies are decoded, as an eval records them."""
    return {key: getattr(cfg.agent, key) for key in DECODING}


def precision(model: str, cfg: RunConfig) -> str | None:
    """The dtype a local model generates in ("bfloat16" / "float32"); None for an endpoint or the rule teacher."""
    if model == "rule" or model.startswith(("http://", "https://")):
        return None
    from agentdistill.llm import generation_dtype

    return str(generation_dtype(cfg, None)).removeprefix("torch.")


def _decoding(meta: dict[str, Any]) -> str:
    """Which constraints the eval decoded with (evals written before an option had none of it)."""
    return ", ".join(f"{key}={meta.get(key) or False}" for key in DECODING)


def _identity(meta: dict[str, Any], run_dir: Path) -> tuple[Any, ...]:
    """What makes two evals the same: the model (for an endpoint, the served model: its port may change; for a
    file or folder, the path it resolves to, given relative to the run or to the working directory), the split,
    and the decoding constraints."""
    model = meta.get("model") or ""
    if model.startswith(("http://", "https://")):
        if meta.get("served_model"):
            model = f"endpoint:{meta['served_model']}"
    elif model:
        found = next((p for p in (run_dir / model, Path(model)) if p.exists()), None)
        model = str(found.resolve()) if found else model
    return model, meta.get("split"), _decoding(meta)


def _check_same_model(out_dir: Path, meta: dict[str, Any], run_dir: Path) -> None:
    """An eval folder belongs to one model: refuse to mix another model's answers into it."""
    path = out_dir / EVAL_META
    if path.exists():
        old = json.loads(path.read_text())
        if _identity(old, run_dir) != _identity(meta, run_dir):
            raise UserError(
                f"{out_dir} holds an eval of model {old.get('model')!r} on split {old.get('split')!r} with "
                f"{_decoding(old)}, not of {meta['model']!r} on {meta['split']!r} with {_decoding(meta)}.",
                hint="Pass another --name, or delete that folder to start over.")
    write_json_atomic(path, meta)


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """The latest result per question id (a retried backend error replaces the failed one)."""
    if not path.exists():
        return {}
    return {row["question_id"]: row for row in iter_json(path)}


def evaluate(
    run_dir: Path,
    cfg: RunConfig,
    model: str = "student",
    *,
    split: str | None = None,
    max_questions: int | None = None,
    name: str | None = None,
    served_model: str | None = None,
    quiet: bool = False,
    questions_file: Path | None = None,
) -> dict[str, Any]:
    """Run the eval (resuming), write results.jsonl and metrics.json; return the metrics. ``questions_file``:
    evaluate on that question set instead of a split of the run (its name stands for the split)."""
    from agentdistill.agent.routing import first_step_router
    from agentdistill.agent.runtime import agent_options, run_agents
    from agentdistill.llm import make_llm
    from agentdistill.tools import load_tools

    run_dir = Path(run_dir)
    split = f"file:{Path(questions_file).name}" if questions_file else split or cfg.eval.split
    max_questions = max_questions if max_questions is not None else cfg.eval.max_questions
    name = name or default_name(model, run_dir, cfg, served_model)
    out_dir = RunLayout(run_dir).eval_dir(name)
    questions = select_questions(run_dir, split, max_questions, cfg.seed, questions_file)
    meta = {"name": name, "model": model, "served_model": served_model, "split": split, **decoding_options(cfg),
            "precision": precision(model, cfg)}
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_same_model(out_dir, meta, run_dir)

    results_path = out_dir / RESULTS
    done = {qid for qid, row in load_results(results_path).items()
            if row["trace"]["outcome"]["status"] != "backend_error"}
    todo = [q for q in questions if q.id not in done]
    style = citation_style(cfg)
    currencies = currency_aliases(cfg)
    corpus = corpus_citations(run_dir, style)
    chunks = corpus_chunks(run_dir)
    judge = AnswerJudge(cfg.eval.judge, currencies=currencies) if todo and cfg.eval.judge is not None else None
    if todo:
        llm = make_llm(model, run_dir, cfg, served_model=served_model, batch_size=cfg.eval.batch_size)
        if hasattr(llm, "know"):  # the offline teacher plans from what each question's writer recorded
            llm.know(questions)
        tools = load_tools(cfg, run_dir)
        specs = tools.specs()
        router = first_step_router(run_dir, cfg)
        group = max(1, cfg.eval.in_flight)
        with JsonlAppender(results_path) as out, Progress(
            TextColumn(f"eval {name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"), disable=quiet, transient=False,
        ) as bar:
            task = bar.add_task("eval", total=len(questions), completed=len(questions) - len(todo), status="")
            ran = successes = 0
            for start in range(0, len(todo), group):
                batch = todo[start : start + group]
                for i, res in run_agents(llm, tools, [q.text for q in batch], max_tokens=cfg.eval.max_new_tokens,
                                         router=router, **agent_options(cfg.agent, currencies)):
                    q = batch[i]
                    answered = res.outcome.answer if res.outcome.status == "answered" else None
                    verdict = judge.check(q, answered, observation_texts(res.messages)) if judge else None
                    score = score_question(q, res.messages, res.outcome.status, res.outcome.steps, res.latency_s,
                                           specs, res.outcome.answer, corpus, verdict=verdict, chunks=chunks,
                                           style=style, currencies=currencies)
                    trace = Trace(id=f"{name}/{q.id}", question_id=q.id, tools=specs, messages=res.messages,
                                  teacher=llm.name, outcome=res.outcome, split=q.split)
                    out.append({
                        "schema_version": SCHEMA_VERSION, "question_id": q.id, "question": q.model_dump(mode="json"),
                        "trace": trace.model_dump(mode="json"), "latency_s": round(res.latency_s, 4),
                        "raw_steps": res.raw_steps, "error": res.error, "scores": asdict(score),
                        "verdict": {"correct": bool(score.answer_correct) if score.checks_answer else None,
                                    "reason": score.answer_reason, "by": score.answer_checked_by},
                    })
                    ran, successes = ran + 1, successes + score.task_success
                    bar.update(task, advance=1, status=f"task success {successes}/{ran}")
    metrics = compute_metrics(run_dir, questions, results_path, cfg, corpus, chunks)
    metrics["question_as_query_hit_rate"] = question_as_query_hit_rate(run_dir, cfg, questions, results_path, chunks)
    metrics.update(name=name, model=model, served_model=served_model, split=split, **decoding_options(cfg),
                   precision=meta["precision"], evaluated_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json_atomic(out_dir / METRICS, metrics)
    failed = metrics["statuses"].get("backend_error", 0)
    if failed and not quiet:
        Console(stderr=True).print(
            f"[yellow]warning:[/] {failed} of {metrics['n']} questions failed in the model backend and count as "
            "failures; run the same command again to retry only those.")
    if judge is not None and judge.failures and not quiet:
        Console(stderr=True).print(
            f"[yellow]warning:[/] the answer judge failed on {judge.failures} questions; they have the offline "
            "checker's verdict" + (f" (the judge is down: {judge.down})" if judge.down else "") + ".")
    return metrics


def _stored_verdict(row: dict[str, Any], judge: str | None) -> AnswerVerdict | None:
    """The verdict a result carries if the judge configured now gave it; None: check it offline again."""
    v = row.get("verdict") or {}
    if judge is None or v.get("by") != judge:
        return None
    return AnswerVerdict(v.get("correct"), v.get("reason", ""), by=judge)


def compute_metrics(run_dir: Path, questions: list[Question], results_path: Path, cfg: RunConfig,
                    corpus: set[str] | None = None, chunks: dict[str, Chunk] | None = None) -> dict[str, Any]:
    """metrics.json from the stored conversations of ``questions`` (scores are recomputed, not read back,
    so a fixed metric definition applies to old results too). Answers are checked offline again, except
    those the configured judge already judged: its verdicts are reused, not asked for twice."""
    rows = load_results(results_path)
    missing = [q.id for q in questions if q.id not in rows]
    if missing:
        raise UserError(f"{results_path} lacks {len(missing)} of the {len(questions)} questions "
                        f"(e.g. {missing[0]}).", hint="Run the same eval command again to finish it.")
    style = citation_style(cfg)
    currencies = currency_aliases(cfg)
    corpus = corpus if corpus is not None else corpus_citations(run_dir, style)
    chunks = chunks if chunks is not None else corpus_chunks(run_dir)
    judge = judge_id(cfg.eval.judge) if cfg.eval.judge else None
    scores = []
    for q in questions:
        row = rows[q.id]
        trace = row["trace"]
        outcome = trace["outcome"]
        scores.append(score_question(q, trace["messages"], outcome["status"], outcome["steps"], row["latency_s"],
                                     trace["tools"], outcome.get("answer"), corpus,
                                     verdict=_stored_verdict(row, judge), chunks=chunks, style=style,
                                     currencies=currencies))
    metrics = aggregate(questions, scores, n_boot=cfg.eval.bootstrap, seed=cfg.seed)
    metrics["answer_checker"] = {"judge": judge, "judged": sum(s.answer_checked_by == judge for s in scores),
                                 "checked": sum(s.checks_answer for s in scores)}
    return metrics


def question_as_query_hit_rate(run_dir: Path, cfg: RunConfig, questions: list[Question], results_path: Path,
                               chunks: dict[str, Chunk]) -> float | None:
    """The baseline for ``retrieval_hit_rate``: over the same questions (those whose conversation searched,
    with a source passage), how often a search with the question's own text shows the source passage.
    A model's queries that find less than this lose what retrieval could have found."""
    from agentdistill.evaluate.metrics import SEARCH, passage_shown
    from agentdistill.tools import load_tools

    rows = load_results(results_path)
    tools = None
    hits = n = 0
    for q in questions:
        sources = [chunks[c] for c in q.source_chunk_ids if c in chunks]
        called = {c["name"] for m in rows[q.id]["trace"]["messages"] if m.get("role") == "assistant"
                  for c in m.get("tool_calls", [])}
        searched = sorted(name for name in called if SEARCH in name)
        if not sources or not searched:
            continue
        tools = tools or load_tools(cfg, run_dir)
        result = tools.call(searched[0], {"query": q.text})
        n += 1
        hits += int(result.ok and any(passage_shown(c, [result.content]) for c in sources))
    return hits / n if n else None
