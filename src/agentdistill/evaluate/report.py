"""report.html: every evaluated model of a run side by side, in one self-contained page.

The page needs no server and no network: CSS is inline, charts are matplotlib (Agg) PNGs embedded as
base64, and traces are escaped text. It reads only eval/*/metrics.json, eval/*/results.jsonl and
adapters/*/agentdistill.json, so it can be rebuilt at any time (the pipeline rebuilds it every run).
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentdistill.agent.runtime import FORMAT_ERROR
from agentdistill.agent.wire import render_message
from agentdistill.errors import UserError
from agentdistill.evaluate.runner import load_results
from agentdistill.jsonl import write_text_atomic
from agentdistill.run_layout import ADAPTER_META, METRICS, RESULTS, SFT_EVAL_SUFFIX, ULD_SUFFIX, RunLayout

# (metrics key, column label, higher is better)
COLUMNS = [
    ("format_valid_rate", "format valid", True),
    ("tool_selection_accuracy", "tool selection", True),
    ("exact_tool_match", "exact tools", True),
    ("argument_validity", "args valid", True),
    ("argument_match", "args match", True),
    ("answer_correct_rate", "answer correct", True),
    ("task_success_rate", "task success", True),
    ("no_tool_accuracy", "no-tool acc.", True),
    ("loop_rate", "loop rate", False),
    ("hallucinated_citation_rate", "halluc. citations", False),
    ("tool_error_rate", "tool errors", False),
    ("retrieval_hit_rate", "retrieval hit", True),
    ("question_as_query_hit_rate", "hit, question as query", True),
    ("mean_steps", "mean steps", None),
    ("mean_latency_s", "latency s", False),
]
CHARTED = ["format_valid_rate", "tool_selection_accuracy", "answer_correct_rate", "task_success_rate",
           "no_tool_accuracy", "loop_rate", "hallucinated_citation_rate"]
N_EXAMPLES = 4

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1150px;color:#222;
padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem} th,td{border:1px solid #ddd;padding:.35rem .55rem}
th{background:#f4f4f4;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best{font-weight:700;background:#eef7ee} .ci{color:#888;font-size:.75rem;display:block}
img{max-width:100%} details{margin:.4rem 0;border:1px solid #e2e2e2;border-radius:4px;padding:.3rem .6rem}
summary{cursor:pointer} pre{white-space:pre-wrap;font-size:.8rem;background:#fafafa;padding:.5rem;margin:.3rem 0}
.role{font-weight:600;color:#555} .ok{color:#1a7f37} .bad{color:#b42318}
"""


def find_evals(run_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(complete evals' metrics, names of evals without metrics.json), oldest first."""
    root = RunLayout(run_dir).evals
    evals, incomplete = [], []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir():
            continue
        if (folder / METRICS).is_file():
            m = json.loads((folder / METRICS).read_text())
            m.setdefault("name", folder.name)
            m["_dir"] = folder
            evals.append(m)
        elif (folder / RESULTS).is_file():
            incomplete.append(folder.name)
    evals.sort(key=lambda m: (m.get("evaluated_at", ""), m["name"]))
    return evals, incomplete


def _fmt(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else html.escape(str(v))


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bar_chart(evals: list[dict[str, Any]], keys: list[str], values: Any, title: str, ci: bool) -> str:
    """Grouped bars: one group per key, one bar per model; ``values(m, key)`` gives (value, [lo, hi] | None)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(keys) + 2), 3.6))
    width = 0.8 / max(1, len(evals))
    x = np.arange(len(keys))
    for i, m in enumerate(evals):
        vals, lows, highs = [], [], []
        for k in keys:
            v, interval = values(m, k)
            v = 0.0 if v is None else v
            vals.append(v)
            lows.append(max(0.0, v - interval[0]) if ci and interval else 0.0)
            highs.append(max(0.0, interval[1] - v) if ci and interval else 0.0)
        bars = ax.bar(x + (i - (len(evals) - 1) / 2) * width, vals, width, label=m["name"],
                      yerr=[lows, highs] if ci else None, capsize=3)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)  # a zero is a number too, not a missing bar
    ax.set_xticks(x, [k.replace("_rate", "").replace("_", " ") for k in keys], rotation=20, ha="right")
    ax.set_ylim(0, 1.12)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    uri = _png(fig)
    plt.close(fig)
    return uri


def _headline_table(evals: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{label}</th>" for _, label, _ in COLUMNS)
    best: dict[str, float] = {}
    for key, _, higher in COLUMNS:
        vals = [m.get(key) for m in evals if m.get(key) is not None]
        if higher is not None and len(vals) > 1:
            best[key] = max(vals) if higher else min(vals)
    rows = []
    for m in evals:
        cells = []
        for key, _, _ in COLUMNS:
            v, interval = m.get(key), (m.get("ci95") or {}).get(key)
            cls = "num best" if key in best and v == best[key] else "num"
            ci = f"<span class='ci'>[{interval[0]:.2f}, {interval[1]:.2f}]</span>" if interval else ""
            cells.append(f"<td class='{cls}'>{_fmt(v)}{ci}</td>")
        constrained = "tool and argument names" if m.get("constrain_arguments") else "tool names"
        rules = (", answers quoted" if m.get("quote_answers") else "") + (
            " from a search's top passage" if m.get("quote_answers") and m.get("quote_top_passage") else "") + (
            ", a computed result first" if m.get("quote_answers") and m.get("quote_result_first") else "") + (
            ", figures from the conversation" if m.get("figures_from_conversation") else "") + (
            " by unit" if m.get("figures_from_conversation") and m.get("figures_by_unit") else "") + (
            f", a tool first above relevance {m['act_above_relevance']:g}" if m.get("act_above_relevance") else "") + (
            f", first steps routed by {m['route_neighbours']} neighbours" if m.get("route_neighbours") else "") + (
            ", second tools planned by clause" if m.get("plan_from_clauses") else "") + (
            ", replies of the nearest" if m.get("route_neighbours") and m.get("replies_from_neighbours") else "") + (
            ", an answer for a repeat" if m.get("answer_on_repeat") else "")
        decoding = (f"<br><span class='ci'>{constrained} constrained{rules}</span>"
                    if m.get("constrain_tool_names") else "")
        rows.append(f"<tr><td>{html.escape(m['name'])}{decoding}</td><td class='num'>{m.get('n', '-')}</td>"
                    f"{''.join(cells)}</tr>")
    return f"<table><tr><th>model</th><th>n</th>{head}</tr>{''.join(rows)}</table>"


def _group_table(evals: list[dict[str, Any]], field: str, label: str, column_note: str,
                 cell: Callable[[dict[str, Any]], str]) -> str:
    """One row per group of ``field`` (per_persona, per_tool, ...), one column per model; ``cell`` writes
    the inside of a cell from the group's entry, "-" where the model has none."""
    groups = sorted({g for m in evals for g in (m.get(field) or {})})
    if not groups:
        return ""
    head = "".join(f"<th>{html.escape(m['name'])}{column_note}</th>" for m in evals)
    rows = []
    for g in groups:
        entries = [(m.get(field) or {}).get(g) for m in evals]
        cells = "".join(f"<td class='num'>{cell(e) if e else '-'}</td>" for e in entries)
        rows.append(f"<tr><td>{html.escape(g)}</td>{cells}</tr>")
    return f"<table><tr><th>{label}</th>{head}</tr>{''.join(rows)}</table>"


def _breakdown_table(evals: list[dict[str, Any]], field: str, metric: str, label: str) -> str:
    return _group_table(evals, field, label, "",
                        lambda e: f"{_fmt(e.get(metric))} <span class='ci'>n={e.get('n')}</span>")


def _success_and_answer_table(evals: list[dict[str, Any]], field: str, label: str) -> str:
    """Task success and answer correctness per group of ``field`` (per_family, per_kind)."""
    return _group_table(evals, field, label, "<br>task success / answer correct",
                        lambda e: (f"{_fmt(e.get('task_success_rate'), 2)} / {_fmt(e.get('answer_correct_rate'), 2)} "
                                   f"<span class='ci'>n={e.get('n')}</span>"))


def _per_tool_table(evals: list[dict[str, Any]]) -> str:
    return _group_table(
        evals, "per_tool", "tool", "<br>recall / precision / args valid",
        lambda e: (f"{_fmt(e.get('recall'), 2)} / {_fmt(e.get('precision'), 2)} / "
                   f"{_fmt(e.get('argument_validity'), 2)} <span class='ci'>expected {e.get('n_expected')}, "
                   f"calls {e.get('n_calls')}</span>"))


def pick_examples(rows: list[dict[str, Any]], k: int = N_EXAMPLES) -> list[dict[str, Any]]:
    """A few telling results: a success (one that used a tool, if any), failures of different statuses, then
    questions of kinds not shown yet."""
    def kind(r: dict[str, Any]) -> str:
        return r.get("question", {}).get("kind", "")

    successes = [r for r in rows if r["scores"].get("task_success")]
    chosen = [next((r for r in successes if r["scores"].get("called")), successes[0])] if successes else []
    statuses = set()
    for r in rows:
        status = r["trace"]["outcome"]["status"]
        if not r["scores"].get("task_success") and status not in statuses:
            chosen.append(r)
            statuses.add(status)
    kinds = {kind(r) for r in chosen}
    for r in rows:
        if kind(r) not in kinds:
            chosen.append(r)
            kinds.add(kind(r))
    chosen += [r for r in rows if r not in chosen]
    return chosen[:k]


def _turns(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) per turn, with the model's raw text where a reply did not parse (the canonical trace only
    keeps the error fed back to it). Each model turn is an assistant step or a format_error observation, in order;
    a run that ended in parse_error has one last raw turn with no message."""
    raw = list(row.get("raw_steps") or [])
    turns: list[tuple[str, str]] = []
    for m in row["trace"]["messages"]:
        if m["role"] == "system":
            continue  # the same long tool list in every trace
        if m["role"] == "assistant" and raw:
            raw.pop(0)
        if m["role"] == "tool" and m.get("name") == FORMAT_ERROR:
            turns.append(("assistant (did not parse)", raw.pop(0) if raw else ""))
        turns.append(("observation" if m["role"] == "tool" else m["role"], render_message(m)))
    turns += [("assistant (did not parse)", text) for text in raw]
    return turns


def _render_trace(row: dict[str, Any]) -> str:
    s, q, outcome = row["scores"], row["question"], row["trace"]["outcome"]
    ok = bool(s.get("task_success"))
    expect = q.get("expect") or {}
    summary = (f"<span class='{'ok' if ok else 'bad'}'>{'success' if ok else 'failure'}</span> "
               f"[{html.escape(outcome['status'])}, {outcome['steps']} steps, {html.escape(q.get('kind', ''))}] "
               f"{html.escape(q['text'][:140])}")
    facts = (f"persona {html.escape(q.get('persona', ''))}; expected tools "
             f"{html.escape(str(expect.get('tools')))}; called {html.escape(str(s.get('called')))}")
    if s.get("hallucinated"):
        facts += f"; hallucinated citations {html.escape(', '.join(s['hallucinated']))}"
    if q.get("answer_facts"):
        facts += f"; answer facts {html.escape('; '.join(q['answer_facts']))}"
    if s.get("checks_answer"):
        right = bool(s.get("answer_correct"))
        why = f"{s.get('answer_reason', '')}; {s.get('answer_checked_by', '')}"
        facts += (f"; answer <span class='{'ok' if right else 'bad'}'>{'correct' if right else 'wrong'}</span> "
                  f"({html.escape(why)})")
    turns = "".join(f"<div class='role'>{html.escape(role)}</div><pre>{html.escape(text)}</pre>"
                    for role, text in _turns(row))
    return f"<details><summary>{summary}</summary><p>{facts}</p>{turns}</details>"


def _adapters_table(run_dir: Path) -> str:
    metas = sorted(RunLayout(run_dir).adapters.glob(f"**/{ADAPTER_META}"))
    rows = []
    for path in metas:
        m = json.loads(path.read_text())
        name = path.parent.relative_to(RunLayout(run_dir).adapters)
        steps, planned = m.get("steps", "-"), m.get("planned_steps")
        steps = f"{steps} of {planned} (time budget)" if planned and planned != steps else steps
        rows.append(f"<tr><td>{html.escape(str(name))}</td><td>{html.escape(str(m.get('base_model')))}</td>"
                    f"<td>{html.escape(str(m.get('kind', '')))} / {html.escape(str(m.get('method', '')))}</td>"
                    f"<td class='num'>{steps}</td><td class='num'>{_fmt(m.get('train_loss'))}</td>"
                    f"<td class='num'>{_fmt(m.get('s_per_step'), 2)}</td>"
                    f"<td class='num'>{m.get('n_examples', '-')}</td></tr>")
    if not rows:
        return ""
    return ("<h2>Trained adapters</h2><table><tr><th>adapter</th><th>base</th><th>kind / method</th><th>steps</th>"
            f"<th>train loss</th><th>s/step</th><th>examples</th></tr>{''.join(rows)}</table>")


def _distill_table(evals: list[dict[str, Any]]) -> str:
    """SFT + ULD against SFT alone, question by question with paired 95% intervals, for every student evaluated
    as both ``<student>-sft`` and ``<student>-uld`` (the names `demo --distill` gives them); empty when none is."""
    from agentdistill.evaluate.compare import compare_arms

    by_name = {m["name"]: m for m in evals}
    parts = []
    for name in sorted(by_name):
        student = name.removesuffix(SFT_EVAL_SUFFIX)
        distilled = by_name.get(f"{student}{ULD_SUFFIX}")
        if student == name or distilled is None:
            continue
        result = compare_arms([by_name[name]["_dir"]], [distilled["_dir"]])
        rows = "".join(
            f"<tr><td>{html.escape(r.metric)}</td><td class='num'>{_fmt(r.a.value)}</td>"
            f"<td class='num'>{_fmt(r.b.value)}</td><td class='num'>{r.difference:+.3f}</td>"
            f"<td class='num'>{r.interval[0]:+.3f}..{r.interval[1]:+.3f}</td></tr>"
            for r in result.rates if r.difference is not None and r.interval is not None)
        parts.append(f"<h3>{html.escape(student)}: {result.n_questions} questions</h3><table><tr><th>rate</th>"
                     f"<th>SFT</th><th>SFT + ULD</th><th>difference</th><th>95% interval</th></tr>{rows}</table>")
    if not parts:
        return ""
    return ("<h2>Distillation against SFT alone</h2><p class='sub'>Both students trained on the same traces for the "
            "same steps; the interval resamples the questions both answered (paired). One seed per arm: "
            "`agentdistill compare` takes several.</p>" + "".join(parts))


def _bfcl_table(run_dir: Path) -> str:
    """BFCL accuracy per category of every model benched into <run>/bench/bfcl/ (``agentdistill bench bfcl
    --run``), with 95% Wilson intervals; empty when none was."""
    rows = []
    for path in sorted(RunLayout(run_dir).bfcl_runs.glob(f"*/{METRICS}")):
        m = json.loads(path.read_text())
        for category, c in m.get("categories", {}).items():
            ci = c.get("ci95")
            rows.append(f"<tr><td>{html.escape(path.parent.name)}</td><td>{html.escape(category)}</td>"
                        f"<td class='num'>{c.get('n')}</td><td class='num'>{_fmt(c.get('accuracy'))}"
                        f"{f'<span class=ci>{ci[0]:.3f}-{ci[1]:.3f}</span>' if ci else ''}</td>"
                        f"<td class='num'>{_fmt(c.get('parsed_rate'))}</td></tr>")
    if not rows:
        return ""
    return ("<h2>BFCL v3 (function calling)</h2><table><tr><th>model</th><th>category</th><th>n</th>"
            f"<th>accuracy</th><th>parsed</th></tr>{''.join(rows)}</table><p class='sub'>BFCL's AST checker "
            "(agentdistill/evaluate/bfcl.py); bracketed: 95% Wilson interval; see docs/bfcl.md.</p>")


def build_report(run_dir: Path) -> str:
    """The report page as one HTML string."""
    run_dir = Path(run_dir)
    evals, incomplete = find_evals(run_dir)
    if not evals:
        raise UserError(f"no finished evaluation in {RunLayout(run_dir).evals}.",
                        hint=f"Run `agentdistill eval --run {run_dir} --model MODEL` first.")
    headline = _bar_chart(evals, CHARTED, lambda m, k: (m.get(k), (m.get("ci95") or {}).get(k)),
                          "Headline rates (95% bootstrap intervals)", ci=True)
    kinds = sorted({g for m in evals for g in (m.get("per_kind") or {})})
    per_kind = _bar_chart(evals, kinds, lambda m, k: ((m.get("per_kind") or {}).get(k, {}).get("task_success_rate"),
                                                      None), "Task success by question kind", ci=False) if kinds else ""
    parts = [
        f"<h1>agentdistill report</h1><p class='sub'>run {html.escape(str(run_dir.resolve()))}; "
        f"written {time.strftime('%Y-%m-%d %H:%M')}; split {html.escape(str(evals[0].get('split')))}</p>",
        "<h2>Agent metrics</h2>", _headline_table(evals),
        "<p class='sub'>Definitions: agentdistill/evaluate/metrics.py. Bracketed: 95% bootstrap interval. "
        "Bold: best value in the column.</p>",
        f"<img alt='headline rates' src='{headline}'>",
    ]
    if len({m.get("n") for m in evals}) > 1:
        parts.append("<p class='sub'>The models were evaluated on different numbers of questions (column n): "
                     "compare rates with their intervals in mind.</p>")
    if incomplete:
        parts.append(f"<p class='sub'>Not finished (no metrics.json yet): {html.escape(', '.join(incomplete))}</p>")
    if per_kind:
        parts.append(f"<h2>By question kind</h2><img alt='task success by kind' src='{per_kind}'>")
        parts.append(_success_and_answer_table(evals, "per_kind", "kind"))
    families = _success_and_answer_table(evals, "per_family", "phrasing family")
    if families:
        parts += ["<h2>By phrasing family</h2>", families]
    parts += ["<h2>By persona (task success)</h2>",
              _breakdown_table(evals, "per_persona", "task_success_rate", "persona"),
              "<h2>By tool</h2>", _per_tool_table(evals), _distill_table(evals), _adapters_table(run_dir),
              _bfcl_table(run_dir),
              "<h2>Example traces</h2>"]
    for m in evals:
        rows = list(load_results(m["_dir"] / RESULTS).values())
        parts.append(f"<h3>{html.escape(m['name'])}</h3>")
        parts.extend(_render_trace(r) for r in pick_examples(rows))
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>agentdistill report</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def write_report(run_dir: Path) -> Path:
    """Write <run>/report.html atomically and return its path."""
    path = RunLayout(run_dir).report
    write_text_atomic(path, build_report(run_dir))
    return path
