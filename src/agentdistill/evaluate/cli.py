"""`agentdistill eval`, `agentdistill report` and `agentdistill bench bfcl`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agentdistill.cli_options import ConfigPath, ModelName, RunDir
from agentdistill.config import open_run
from agentdistill.run_layout import RunLayout

console = Console()

SHOWN = [
    "n", "format_valid_rate", "tool_selection_accuracy", "exact_tool_match", "argument_validity", "argument_match",
    "answer_correct_rate", "task_success_rate", "no_tool_accuracy", "loop_rate", "hallucinated_citation_rate",
    "tool_error_rate", "retrieval_hit_rate", "question_as_query_hit_rate", "mean_steps", "mean_latency_s",
]


def _decoding_option(flags: str, key: str, what: str) -> bool:
    """A --x/--no-x option that overrides ``agent.<key>`` for one eval (None: the config's setting)."""
    return typer.Option(None, flags, help=f"{what} (default: agent.{key}). Give the other setting its own --name.")


def _count_or_off(text: str, flag: str) -> int | None:
    """A count of at least 1 from ``text``, or None for "off"."""
    from agentdistill.errors import UserError

    if text.strip().lower() == "off":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise UserError(f"{flag} {text!r} is neither a count of at least 1 nor 'off'.",
                        hint=f"e.g. {flag} 5, or {flag} off")
    return int(text)


def _similarity_or_off(text: str, flag: str) -> float | None:
    """A cosine similarity in [0, 1] from ``text``, or None for "off"."""
    from agentdistill.errors import UserError

    if text.strip().lower() == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise UserError(f"{flag} {text!r} is neither a similarity between 0 and 1 nor 'off'.",
                        hint=f"e.g. {flag} 0.4, or {flag} off")
    return value


def eval_model(
    run: RunDir,
    model: ModelName = "student",
    split: str = typer.Option(None, "--split", help="Question split to evaluate on: test (to report), dev (to choose "
                              "changes) or train (default: eval.split, 'test')."),
    max_questions: int = typer.Option(None, "--max-questions", help="Evaluate a fixed random subset of N questions."),
    questions: Path = typer.Option(None, "--questions", help="Evaluate on this JSONL file of question records "
                                   "instead of a split: a fixed set, the same for every run whatever its split holds "
                                   "out (a pack's hand-written questions); answer_facts are checked the same way."),
    name: str = typer.Option(None, "--name", help="Folder under eval/ (default: derived from --model)."),
    served_model: str = typer.Option(None, "--served-model", help="Model name to request from an http:// endpoint."),
    constrain_tool_names: bool = _decoding_option(
        "--constrain-tool-names/--free-tool-names", "constrain_tool_names",
        "Decode every step under the step grammar of the tools (local models, llama.cpp), or free"),
    constrain_arguments: bool = _decoding_option(
        "--constrain-arguments/--free-arguments", "constrain_arguments",
        "With the grammar, decode an action's arguments as its tool's JSON schema allows, or as any JSON object"),
    quote_answers: bool = _decoding_option(
        "--quote-answers/--free-answers", "quote_answers",
        "With the grammar, an answer after a tool call quotes one to three sentences of the tools' results, "
        "or is free"),
    quote_top_passage: bool = _decoding_option(
        "--quote-top-passage/--quote-every-passage", "quote_top_passage",
        "With quoted answers, a search result offers only its first passage (the one it ranked best), or all"),
    quote_result_first: bool = _decoding_option(
        "--quote-result-first/--quote-any-first", "quote_result_first",
        "With quoted answers, an answer after a tool that computed opens with a sentence of its result, or with "
        "any quoted sentence"),
    figures_from_conversation: bool = _decoding_option(
        "--figures-from-conversation/--free-figures", "figures_from_conversation",
        "With the grammar and its arguments, an action's number arguments are figures the user or the tools "
        "stated ('5.5k' as 5500), or any number"),
    figures_by_unit: bool = _decoding_option(
        "--figures-by-unit/--figures-any-argument", "figures_by_unit",
        "With figures from the conversation, a figure goes only to an argument of the unit it was stated in "
        "('4.5 yrs' not as a salary), or to any number argument"),
    act_above_relevance: str = typer.Option(
        None, "--act-above-relevance", metavar="SIMILARITY|off",
        help="With the grammar, a first step that replies unaided to a question whose closest passage scores at "
        "least this cosine similarity is decoded again calling a tool at least that relevant to it, or 'off' "
        "(default: agent.act_above_relevance). Give the other setting its own --name."),
    route_neighbours: str = typer.Option(
        None, "--route-neighbours", metavar="K|off",
        help="With the grammar, the first step after a question may call only the tools among the two first steps "
        "its K nearest training questions took most (and each clause's most taken), or reply; or 'off' (default: "
        "agent.route_neighbours). Give the other setting its own --name."),
    plan_from_clauses: bool = _decoding_option(
        "--plan-from-clauses/--no-plan-from-clauses", "plan_from_clauses",
        "With routing, a step that answers after a tool's result while a clause that asks (of a sentence ending "
        "in '?') voted for a tool not called yet calls it first, or answers as decoded"),
    replies_from_neighbours: bool = _decoding_option(
        "--replies-from-neighbours/--free-replies", "replies_from_neighbours",
        "With routing, a first step that replies without a tool gives one of the replies of the nearest training "
        "questions that replied, or any reply"),
    answer_on_repeat: bool = _decoding_option(
        "--answer-on-repeat/--stop-on-repeat", "answer_on_repeat",
        "With the grammar, a step that repeats an action already taken is decoded again as an answer, or the "
        "conversation ends as a loop"),
    config: ConfigPath = None,
) -> None:
    """Evaluate a model as an agent on the held-out split -> eval/<name>/{results.jsonl,metrics.json}.

    MODEL: student | teacher (untuned), a registry name or HF id, an adapter folder (adapters/smollm2-135m,
    relative to the run), http://host:port/v1 (with --served-model), or rule (the offline rule teacher).
    Resumes: questions already in results.jsonl are skipped.
    """
    from agentdistill.evaluate.runner import evaluate

    if split is not None and questions is not None:
        from agentdistill.errors import UserError

        raise UserError("--split and --questions both say what to evaluate on.",
                        hint="Give --split for a split of the run, or --questions for a question file.")
    if split not in (None, "train", "dev", "test"):
        from agentdistill.errors import UserError

        raise UserError(f"unknown split {split!r}.",
                        hint="Use --split test (held out, to report), dev (held out, to choose changes) or train.")
    from agentdistill.config import load_config, load_run_config
    from agentdistill.evaluate.runner import default_name
    from agentdistill.run_lock import run_lock

    # one lock per eval folder: evals of different models may run side by side
    planned = load_config(config) if config is not None else load_run_config(run)
    with run_lock(run, f"eval-{name or default_name(model, run, planned, served_model)}"):
        cfg = open_run(run, config)
        decoding = {"constrain_tool_names": constrain_tool_names, "constrain_arguments": constrain_arguments,
                    "quote_answers": quote_answers, "quote_top_passage": quote_top_passage,
                    "quote_result_first": quote_result_first,
                    "figures_from_conversation": figures_from_conversation,
                    "figures_by_unit": figures_by_unit, "plan_from_clauses": plan_from_clauses,
                    "replies_from_neighbours": replies_from_neighbours, "answer_on_repeat": answer_on_repeat}
        for key, value in decoding.items():  # an option left out keeps the config's setting
            if value is not None:
                setattr(cfg.agent, key, value)
        if act_above_relevance is not None:
            cfg.agent.act_above_relevance = _similarity_or_off(act_above_relevance, "--act-above-relevance")
        if route_neighbours is not None:
            cfg.agent.route_neighbours = _count_or_off(route_neighbours, "--route-neighbours")
        metrics = evaluate(run, cfg, model, split=split, max_questions=max_questions, name=name,
                           served_model=served_model, questions_file=questions)
    table = Table(title=f"eval/{metrics['name']} ({metrics['split']} split)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for key in SHOWN:
        value, ci = metrics.get(key), metrics.get("ci95", {}).get(key)
        table.add_row(key, "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value),
                      f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "")
    console.print(table)
    console.print(f"statuses: {metrics['statuses']}")
    checker = metrics.get("answer_checker") or {}
    judge = checker.get("judge")
    by = f"{judge} ({checker.get('judged', 0)} judged, the rest offline)" if judge else "the offline checker"
    console.print(f"answers checked: {checker.get('checked', 0)} of {metrics['n']} (with answer_facts), by {by}")


def report(run: RunDir) -> None:
    """Write report.html comparing every evaluated model (tables, charts, example traces)."""
    from agentdistill.evaluate.report import write_report
    from agentdistill.run_lock import run_lock

    with run_lock(run, "report"):
        path = write_report(run)
    console.print(f"report written to {path}")


def compare(
    a: list[Path] = typer.Option(..., "--a", help="An eval folder of arm A (eval/<name>/); once per training seed."),
    b: list[Path] = typer.Option(..., "--b", help="An eval folder of arm B; once per training seed."),
    metric: list[str] = typer.Option(None, "--metric", help="A headline rate to compare (repeatable; default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    plot: Path = typer.Option(None, "--plot", help="Also write a PNG: each rate's pooled value and seeds per arm, "
                              "and B - A with its interval."),
    labels: str = typer.Option("A,B", "--labels", help="Names of the two arms in the table and the plot, "
                               "comma-separated."),
) -> None:
    """Compare two arms of evals (one per training seed each) question by question: B - A with 95% intervals.

    The interval resamples the questions (paired) and each arm's seeds, so it holds the seed-to-seed noise
    that a single run per arm hides. Give every arm the same questions (one split or --questions file).
    """
    import json
    from dataclasses import asdict

    from agentdistill.errors import UserError
    from agentdistill.evaluate.compare import compare_arms, plot_comparison

    names = [x.strip() for x in labels.split(",")]
    if len(names) != 2 or not all(names):
        raise UserError(f"--labels {labels!r} names {len(names)} arms.", hint="Give two names: --labels CE,ULD.")
    a_name, b_name = names
    result = compare_arms(a, b, metric or None)
    if plot is not None:
        console.print(f"plot written to {plot_comparison(result, plot, (a_name, b_name))}")
    if as_json:
        print(json.dumps(asdict(result), indent=2))
        return
    table = Table(title=f"{b_name} - {a_name} on {result.n_questions} questions, "
                        f"{result.n_seeds[0]} vs {result.n_seeds[1]} seeds")
    for column in ("metric", a_name, f"{a_name} per seed", b_name, f"{b_name} per seed", f"{b_name} - {a_name}",
                   "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for r in result.rates:
        if r.a.value is None and r.b.value is None:
            continue
        ci = f"{r.interval[0]:+.3f}..{r.interval[1]:+.3f}" if r.interval else ""
        table.add_row(r.metric, _fmt_rate(r.a.value), "/".join(map(_fmt_rate, r.a.per_seed)), _fmt_rate(r.b.value),
                      "/".join(map(_fmt_rate, r.b.per_seed)), "-" if r.difference is None else f"{r.difference:+.3f}",
                      ci)
    # a pipe or a log gets the whole table rather than one folded to 80 columns
    (console if console.is_terminal else Console(width=200)).print(table)


bench_app = typer.Typer(help="External benchmarks, scored the way their authors score them.", no_args_is_help=True)


@bench_app.command("bfcl")
def bench_bfcl(
    model: ModelName,
    data: Path = typer.Option(..., "--data", help="Folder with BFCL_v3_<category>.json and possible_answer/."),
    categories: str = typer.Option("simple,irrelevance", "--categories",
                                   help="Comma-separated BFCL v3 categories: simple, multiple, parallel, "
                                   "parallel_multiple, irrelevance (and their live_ versions)."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: bench/bfcl/<model name>, under --run "
                             "when given)."),
    limit: int = typer.Option(None, "--limit", help="Only the first N entries of each category."),
    run: Path = typer.Option(None, "--run", help="Run directory: resolves adapters/... and student/teacher."),
    served_model: str = typer.Option(None, "--served-model", help="Model name to request from an http:// endpoint."),
    batch_size: int = typer.Option(None, "--batch-size", help="Entries per generation batch (local models; "
                                   "default: eval.batch_size)."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Longest reply, in tokens."),
    grammar: bool = typer.Option(True, "--grammar/--free", help="Decode under the step grammar of each entry's "
                                 "functions (names, required arguments, types, enums), as the agent does; --free "
                                 "decodes without it, as published BFCL prompt-mode scores do."),
) -> None:
    """Score a model on BFCL v3 with BFCL's AST checker -> OUT/{results.jsonl,metrics.json}.

    The functions are shown as tools in the project's system prompt and the model replies in the wire
    format (docs/bfcl.md). Resumes: entries already in results.jsonl are skipped.
    """
    from agentdistill.config import RunConfig, load_run_config
    from agentdistill.evaluate.bfcl_runner import run_bfcl
    from agentdistill.evaluate.runner import default_name
    from agentdistill.llm import make_llm

    cfg = load_run_config(run) if run else RunConfig()
    wanted = [c.strip() for c in categories.split(",") if c.strip()]
    name = default_name(model, run or Path("."), cfg, served_model) + ("" if grammar else "-free")
    out = out or RunLayout(run or Path(".")).bfcl_runs / name
    llm = make_llm(model, run, cfg, served_model=served_model, batch_size=batch_size)
    metrics = run_bfcl(llm, data, wanted, out, limit=limit, max_tokens=max_tokens, grammar=grammar,
                       chunk=batch_size or cfg.eval.batch_size,
                       progress=lambda done, total: console.print(f"{done}/{total} entries", highlight=False))
    table = Table(title=f"BFCL v3, {metrics['model']} ({out})")
    for column in ("category", "n", "accuracy", "95% CI", "parsed"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for category, m in metrics["categories"].items():
        ci = m["ci95"]
        table.add_row(category, str(m["n"]), _fmt_rate(m["accuracy"]), f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "",
                      _fmt_rate(m["parsed_rate"]))
    console.print(table)


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
