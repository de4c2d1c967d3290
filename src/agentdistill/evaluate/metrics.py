"""Agent metrics: what one evaluated question scores, and how the scores add up to metrics.json.

Every metric is computed from the question (its ``expect``: the tools, and maybe the arguments, that
the right answer needs) and the conversation the agent really had (canonical messages + outcome).
Let ``called`` be the tool names the agent's assistant steps called, in order, and ``expected`` the
list ``question.expect.tools``. Per question:

- format_valid: every assistant turn parsed as a Thought/Action or Thought/Answer step: the run did
  not end in ``parse_error`` and no ``format_error`` observation is in the conversation (the runtime
  feeds a reply that does not parse back to the model; a step it then retries still counts).
- tool_selection (questions expecting >= 1 tool): ``set(called) == set(expected)``: every expected
  tool was chosen and no other.
- exact_tool_match (same questions): ``called == expected`` as lists: same tools, same order, same
  number of calls (a repeated or retried call breaks it).
- argument_validity (per call): the tool exists and the arguments validate against its JSON schema.
- argument_match (questions whose expect fixes arguments): for every tool T in
  ``expect.arguments`` some call of T has every fixed argument equal to the expected value and every
  optional argument the question does not fix at its default (``agentdistill.tools.matching``: numbers
  within 1e-6 relative; strings compared as BFCL's checker does). Required arguments the question does
  not fix may take any value.
- no_tool_correct (questions expecting no tool): the agent answered without calling any tool.
- loop: the runtime stopped the run because the model repeated an action (status ``loop``).
- citations: what the final answer cites, as the run's citation style reads it. ``hallucinated``:
  those that do not exist in the run's corpus (the section paths of chunks.jsonl; without a corpus,
  falls back to ``ungrounded``). ``ungrounded``: those that neither an observation of this
  conversation nor the question showed.
- tool_errors: observations that report a failed call (the registry starts them with ``Error:``).
- answer_correct (questions whose ``answer_facts`` are known, ``checks_answer``): the final answer is
  right, by the offline checker (``agentdistill.evaluate.answer_check``: the facts' figures and
  sentences are in the answer, a lookup's answer is supported by a passage the agent retrieved, a
  "not covered" question is said to be not covered, a reply without a tool is of the kind due) or, with
  ``eval.judge``, by an LLM judge (``agentdistill.evaluate.judge``; the offline verdict where it fails).
  A question without answer_facts has no verdict and leaves the denominator.
- retrieval_hit (questions with ``source_chunk_ids`` whose conversation called a search tool, a tool
  whose name holds "search": ``searches``): some observation of the conversation shows a source
  passage: the chunk's section path (search results lead each passage with it: ``[1] <section path>:
  <text>``), or the first ``HIT_PREFIX_CHARS`` characters of its text (Markdown heading dropped,
  whitespace folded). It measures the retriever with the agent's own queries.
- task_success: answered (status ``answered``, so within max_steps), grounded (no ungrounded
  citation) and, where the question has an expectation, the right tools (``set(called) ==
  set(expected)``, i.e. no tool at all for a no-tool question), each expected tool with at least one
  call that succeeded (an answer written after the tools failed rests on nothing), every fixed
  argument matched, and, where the answer has a verdict, a correct answer: routing to the right tool
  and then answering something else is a failure.

Aggregates over n questions (rates in 0..1, ``None`` when a rate's denominator is empty):
format_valid_rate, task_success_rate, loop_rate: over all n. tool_selection_accuracy,
exact_tool_match: over questions expecting tools. argument_validity: valid calls / all calls.
argument_match: over questions fixing arguments. no_tool_accuracy: over no-tool questions.
answer_correct_rate: over questions with answer_facts. retrieval_hit_rate: over ``searches``.
hallucinated_citation_rate, ungrounded_citation_rate: over answers that cite something.
tool_error_rate: failed calls / calls. mean_steps (model turns) and mean_latency_s: over all n.
``per_tool``, ``per_persona``, ``per_kind`` and ``per_family`` (the question's phrasing family) break
the main rates down by group.
``ci95`` holds 95% percentile-bootstrap intervals of the headline rates: the questions are resampled
with replacement B times, each rate is recomputed as sum(numerator) / sum(denominator) on every
resample, and the 2.5th / 97.5th percentiles bound it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator

from agentdistill.agent.runtime import FORMAT_ERROR  # the tool name on observations answering an unparseable reply
from agentdistill.citations import GENERIC, CitationStyle
from agentdistill.evaluate.answer_check import AnswerVerdict, check_answer
from agentdistill.records import Chunk, Question
from agentdistill.tools.matching import arguments_match, optional_defaults

TOOL_ERROR = "Error"  # how tools.registry starts the observation of a call that failed
SEARCH = "search"  # a tool whose name holds this word retrieves passages (retrieval_hit)
HIT_PREFIX_CHARS = 80  # of a source passage's text that an observation must show for a retrieval hit

# Rates that get a bootstrap interval: (metrics key, QuestionScore numerator field, denominator field).
HEADLINE = {
    "format_valid_rate": ("format_valid", "one"),
    "tool_selection_accuracy": ("tool_selection", "expects_tools"),
    "exact_tool_match": ("exact_tool_match", "expects_tools"),
    "argument_validity": ("n_valid_calls", "n_calls"),
    "argument_match": ("argument_match", "fixes_arguments"),
    "answer_correct_rate": ("answer_correct", "checks_answer"),
    "task_success_rate": ("task_success", "one"),
    "no_tool_accuracy": ("no_tool_correct", "expects_no_tool"),
    "loop_rate": ("loop", "one"),
    "hallucinated_citation_rate": ("hallucinated_answer", "cites"),
    "ungrounded_citation_rate": ("ungrounded_answer", "cites"),
    "tool_error_rate": ("n_tool_errors", "n_calls"),
    "retrieval_hit_rate": ("retrieval_hit", "searches"),
}


@dataclass
class QuestionScore:
    """The scores of one question; 0/1 ints so that rates are plain sums (see the module docstring)."""

    status: str
    steps: int
    latency_s: float
    called: list[str]
    one: int = 1
    format_valid: int = 0
    expects_tools: int = 0
    tool_selection: int = 0
    exact_tool_match: int = 0
    n_calls: int = 0
    n_valid_calls: int = 0
    invalid_calls: list[str] = field(default_factory=list)  # "tool: why" for each call that failed its schema
    n_tool_errors: int = 0
    fixes_arguments: int = 0
    argument_match: int = 0
    expects_no_tool: int = 0
    no_tool_correct: int = 0
    loop: int = 0
    citations: list[str] = field(default_factory=list)
    hallucinated: list[str] = field(default_factory=list)
    ungrounded: list[str] = field(default_factory=list)
    cites: int = 0
    hallucinated_answer: int = 0
    ungrounded_answer: int = 0
    checks_answer: int = 0  # 1 when the answer has a verdict (the question lists answer_facts)
    answer_correct: int = 0
    answer_reason: str = ""  # why the verdict is what it is
    answer_checked_by: str = ""  # "offline" or "judge:<model>"
    searches: int = 0
    retrieval_hit: int = 0
    task_success: int = 0


def tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every call of every assistant step, in order."""
    return [c for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls", [])]


def observation_texts(messages: list[dict[str, Any]]) -> list[str]:
    """What the tools showed the agent: every tool result but format errors and failed calls."""
    return [m["content"] for m in messages if m.get("role") == "tool" and m.get("name") != FORMAT_ERROR
            and not m["content"].lstrip().startswith(TOOL_ERROR)]


def _fold(text: str) -> str:
    return " ".join(text.split()).lower()


def passage_shown(chunk: Chunk, observations: Iterable[str]) -> bool:
    """Whether an observation shows the chunk: its section path leading a passage, or its text's first
    HIT_PREFIX_CHARS characters (Markdown heading dropped, whitespace folded, case ignored)."""
    text = chunk.text.strip()
    if text.startswith("#"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    prefix = _fold(text)[:HIT_PREFIX_CHARS]
    path = chunk.section_path.strip()
    head = re.compile(rf"(?:^|\n)\s*\[\d+\]\s*{re.escape(path)}\s*:") if path else None
    for obs in observations:
        if head is not None and head.search(obs):
            return True
        if len(prefix) >= 20 and prefix in _fold(obs):
            return True
    return False


def _validators(tool_specs: list[dict[str, Any]]) -> dict[str, Draft202012Validator]:
    out = {}
    for spec in tool_specs:
        spec = spec.get("function", spec)  # accept {"type": "function", "function": {...}} too
        out[spec["name"]] = Draft202012Validator(spec.get("parameters") or {"type": "object"})
    return out


def score_question(
    question: Question,
    messages: list[dict[str, Any]],
    status: str,
    steps: int,
    latency_s: float,
    tool_specs: list[dict[str, Any]],
    answer: str | None = None,
    corpus_citations: set[str] | None = None,
    verdict: AnswerVerdict | None = None,
    chunks: Mapping[str, Chunk] | None = None,
    style: CitationStyle = GENERIC,
    currencies: Mapping[str, str] | None = None,
) -> QuestionScore:
    """Score one conversation against its question (definitions in the module docstring).

    ``verdict``: the answer's verdict when another checker gave it (an LLM judge); None: the offline
    checker's. ``chunks``: the run's chunks by id, for retrieval_hit (without them it is not measured).
    ``style``: how the run's documents are cited (``domains.citation_style``); ``currencies``: how its packs write
    their currencies, for the offline checker (``domains.currency_aliases``).
    """
    calls = tool_calls(messages)
    called = [c["name"] for c in calls]
    s = QuestionScore(status=status, steps=steps, latency_s=latency_s, called=called)

    format_errors = sum(1 for m in messages if m.get("role") == "tool" and m.get("name") == FORMAT_ERROR)
    s.format_valid = int(status != "parse_error" and format_errors == 0)

    validators = _validators(tool_specs)
    s.n_calls = len(calls)
    for c in calls:
        v = validators.get(c["name"])
        if v is None:
            s.invalid_calls.append(f"{c['name']}: no such tool")
            continue
        error = next(iter(v.iter_errors(c.get("arguments", {}))), None)
        if error is None:
            s.n_valid_calls += 1
        else:
            s.invalid_calls.append(f"{c['name']}: {error.message}")

    observations = [m for m in messages if m.get("role") == "tool" and m.get("name") != FORMAT_ERROR]
    failed = [m for m in observations if m["content"].lstrip().startswith(TOOL_ERROR)]
    s.n_tool_errors = len(failed)
    succeeded = {m["name"] for m in observations if not m["content"].lstrip().startswith(TOOL_ERROR)}

    expect = question.expect
    right_tools = True
    if expect is not None:
        if expect.tools:
            s.expects_tools = 1
            s.tool_selection = int(set(called) == set(expect.tools))
            s.exact_tool_match = int(called == list(expect.tools))
        else:
            s.expects_no_tool = 1
            s.no_tool_correct = int(status == "answered" and not called)
        right_tools = set(called) == set(expect.tools) and set(expect.tools) <= succeeded
        if expect.arguments:
            s.fixes_arguments = 1
            s.argument_match = int(arguments_match(expect.arguments, calls, optional_defaults(tool_specs)))
            right_tools = right_tools and bool(s.argument_match)

    s.loop = int(status == "loop")

    if answer is None and status == "answered":
        answer = next((m["content"] for m in reversed(messages) if m.get("role") == "assistant" and "content" in m), "")
    cited = style.extract(answer or "")
    seen = set(style.extract(question.text))
    for m in observations:
        seen |= style.extract(m["content"])
    s.citations = sorted(cited)
    s.ungrounded = sorted(cited - seen)
    s.hallucinated = sorted(cited - corpus_citations) if corpus_citations else list(s.ungrounded)
    s.cites = int(bool(cited))
    s.hallucinated_answer = int(bool(s.hallucinated))
    s.ungrounded_answer = int(bool(s.ungrounded))

    texts = observation_texts(messages)
    if verdict is None:
        verdict = check_answer(question, answer if status == "answered" else None, texts, currencies)
    if verdict.correct is not None:
        s.checks_answer, s.answer_correct = 1, int(verdict.correct)
    s.answer_reason, s.answer_checked_by = verdict.reason, verdict.by

    sources = [chunks[cid] for cid in question.source_chunk_ids if chunks and cid in chunks]
    if sources and any(SEARCH in name for name in called):
        s.searches = 1
        s.retrieval_hit = int(any(passage_shown(c, texts) for c in sources))

    right_answer = not s.checks_answer or bool(s.answer_correct)
    s.task_success = int(status == "answered" and not s.ungrounded and right_tools and right_answer)
    return s


def _rate(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def rates(scores: list[QuestionScore]) -> dict[str, Any]:
    """The point estimates of metrics.json (no intervals, no breakdowns)."""
    out: dict[str, Any] = {"n": len(scores)}
    for key, (num, den) in HEADLINE.items():
        out[key] = _rate(sum(getattr(s, num) for s in scores), sum(getattr(s, den) for s in scores))
    out["mean_steps"] = _rate(sum(s.steps for s in scores), len(scores))
    out["mean_latency_s"] = _rate(sum(s.latency_s for s in scores), len(scores))
    return out


def bootstrap_ci(scores: list[QuestionScore], n_boot: int = 1000, seed: int = 0) -> dict[str, list[float] | None]:
    """95% percentile-bootstrap intervals of the HEADLINE rates, resampling questions (one RNG draw for all)."""
    if not scores or n_boot <= 0:
        return {key: None for key in HEADLINE}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(scores), size=(n_boot, len(scores)))
    out: dict[str, list[float] | None] = {}
    for key, (num, den) in HEADLINE.items():
        nums = np.array([getattr(s, num) for s in scores], dtype=float)[idx].sum(axis=1)
        dens = np.array([getattr(s, den) for s in scores], dtype=float)[idx].sum(axis=1)
        ok = dens > 0
        if not ok.any():
            out[key] = None
            continue
        lo, hi = np.percentile(nums[ok] / dens[ok], [2.5, 97.5])
        out[key] = [round(float(lo), 4), round(float(hi), 4)]
    return out


def per_tool(questions: list[Question], scores: list[QuestionScore]) -> dict[str, dict[str, Any]]:
    """For each tool expected or called: how often it is chosen when needed (recall), how often a call of it
    was needed (precision, over questions with an expectation), its calls' schema validity, and task success
    on the questions that need it."""
    names = sorted({t for q in questions if q.expect for t in q.expect.tools} | {t for s in scores for t in s.called})
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        needing = [(q, s) for q, s in zip(questions, scores, strict=True) if q.expect and name in q.expect.tools]
        calling = [(q, s) for q, s in zip(questions, scores, strict=True) if q.expect is not None and name in s.called]
        n_calls = sum(s.called.count(name) for s in scores)
        n_invalid = sum(1 for s in scores for why in s.invalid_calls if why.startswith(f"{name}:"))
        out[name] = {
            "n_expected": len(needing),
            "n_calls": n_calls,
            "recall": _rate(sum(name in s.called for _, s in needing), len(needing)),
            "precision": _rate(sum(name in q.expect.tools for q, _ in calling), len(calling)),  # type: ignore[union-attr]
            "argument_validity": _rate(n_calls - n_invalid, n_calls),
            "task_success_rate": _rate(sum(s.task_success for _, s in needing), len(needing)),
        }
    return out


def _group(keys: Iterable[str], scores: list[QuestionScore]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[QuestionScore]] = {}
    for k, s in zip(keys, scores, strict=True):
        groups.setdefault(k, []).append(s)
    keep = ("n", "format_valid_rate", "tool_selection_accuracy", "answer_correct_rate", "task_success_rate",
            "no_tool_accuracy", "loop_rate")
    return {k: {m: v for m, v in rates(group).items() if m in keep} for k, group in sorted(groups.items())}


def aggregate(questions: list[Question], scores: list[QuestionScore], n_boot: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """metrics.json: the DESIGN.md keys, extra rates, status counts, 95% intervals, per tool/persona/kind/family."""
    out = rates(scores)
    statuses: dict[str, int] = {}
    for s in scores:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    out["statuses"] = dict(sorted(statuses.items()))
    out["ci95"] = bootstrap_ci(scores, n_boot, seed)
    out["per_tool"] = per_tool(questions, scores)
    out["per_persona"] = _group((q.persona for q in questions), scores)
    out["per_kind"] = _group((q.kind for q in questions), scores)
    out["per_family"] = _group((q.family or "(none)" for q in questions), scores)
    return out
