"""`agentdistill questions`: synthesize the questions the teacher will answer -> questions.jsonl.

Two writers feed the same finishing line:

- an LLM teacher (TeacherConfig.kind "openai" or "local"), prompted the way the field does it: for each
  cluster a sliding window over its chunks (QuestionsConfig.window/stride), one prompt per persona asking
  for questions that the window's text answers, plus prompts for calculation scenarios with concrete
  numbers, multi-step questions (search, then compute) and messages that need no tool. Output must be a
  JSON object; an invalid reply is asked again (max_invalid_retries) and then dropped and counted.
  Every reply is journaled in questions.raw.jsonl, so a killed run resumes without paying twice.
- a domain pack's offline writer (``DomainPack.offline_questions``), for the offline teacher.

Finishing: exact and near duplicates are removed (cosine similarity of MiniLM embeddings >=
dedup_threshold *and* the same numbers, since "the pay after 5 years" and "after 7 years" are different
questions), each kind is sampled to its share of n_questions (QuestionsConfig.mix), questions get stable
content-hash ids, and the split is made by cluster (splits.py). questions.jsonl is written atomically,
then questions.stats.json with ``complete: true`` (what `agentdistill run` checks to skip the stage).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from agentdistill.config import RunConfig
from agentdistill.corpus.cluster import cluster_of_chunk
from agentdistill.errors import UserError
from agentdistill.jsonl import JsonlAppender, iter_json, write_json_atomic, write_records
from agentdistill.records import Chunk, Expect, Question
from agentdistill.run_layout import RunLayout
from agentdistill.synth.splits import assign_splits, split_counts, topic_keys

KINDS = ("lookup", "calculation", "multi_step", "no_tool")

log = logging.getLogger(__name__)

# Used when neither a personas file nor the run's packs name anyone.
GENERIC_PERSONAS = [
    {"name": "newcomer", "asks_about": "what the documents say, in plain words", "style": "short and informal"},
    {"name": "practitioner", "asks_about": "specific rules, figures and procedures", "style": "precise"},
]


@dataclass
class Persona:
    name: str
    asks_about: list[str]
    style: str = ""


def load_personas(path: Path | None, cfg: RunConfig | None = None) -> list[Persona]:
    """Read personas.yaml: a list (or ``{personas: [...]}``) of ``{name, asks_about, style?}``. Without a
    file: the personas of the run's packs (``cfg``), else generic ones."""
    if path is None:
        from agentdistill.domains import default_personas

        raw: Any = (default_personas(cfg) if cfg is not None else []) or GENERIC_PERSONAS
    else:
        path = Path(path)
        if not path.exists():
            raise UserError(f"personas file {path} does not exist.", hint="Fix questions.personas in the config.")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise UserError(f"{path} is not valid YAML: {e}", hint="Fix the file; see the examples/ folder.") from e
    if isinstance(raw, dict):
        raw = raw.get("personas")
    if not isinstance(raw, list) or not raw:
        raise UserError(
            f"{path}: expected a list of personas, each {{name, asks_about, style?}}.",
            hint="Write a list of {name, asks_about, style} (an example is in examples/).",
        )
    personas = []
    for i, p in enumerate(raw):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or "asks_about" not in p:
            raise UserError(
                f"{path}: persona {i + 1} needs a string 'name' and an 'asks_about' (text or list).",
                hint="Example: - {name: employee, asks_about: [refunds, delivery], style: short and informal}",
            )
        about = p["asks_about"]
        about = [about] if isinstance(about, str) else [str(a) for a in about]
        personas.append(Persona(name=p["name"], asks_about=about, style=str(p.get("style") or "")))
    return personas


def load_corpus(run_dir: Path) -> tuple[list[Chunk], dict[str, Any]]:
    """chunks.jsonl and clusters.json of an ingested run (the corpus helper's files)."""
    from agentdistill.jsonl import read_records

    layout = RunLayout(run_dir)
    if not layout.chunks.exists() or not layout.clusters.exists():
        raise UserError(
            f"{run_dir} has no chunks.jsonl/clusters.json.",
            hint=f"Run `agentdistill ingest PATH... --run {run_dir}` first.",
        )
    chunks = read_records(layout.chunks, Chunk)
    clusters = json.loads(layout.clusters.read_text(encoding="utf-8"))
    return chunks, clusters


def windows(chunk_ids: list[str], size: int, stride: int) -> list[list[str]]:
    """Sliding windows over a cluster's chunks; the tail is covered by a last, possibly shorter, window."""
    if size < 1 or stride < 1:
        raise UserError(f"questions.window ({size}) and questions.stride ({stride}) must be >= 1.")
    if not chunk_ids:
        return []
    out = [chunk_ids[i : i + size] for i in range(0, max(1, len(chunk_ids) - size + 1), stride)]
    if out[-1][-1] != chunk_ids[-1]:
        out.append(chunk_ids[-size:])
    return out


def kind_targets(n: int, mix: dict[str, float]) -> dict[str, int]:
    """Questions per kind: n split by the mix weights (largest remainders, so the counts sum to n)."""
    unknown = set(mix) - set(KINDS)
    if unknown or not mix or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise UserError(
            f"questions.mix {mix} is not a set of non-negative weights over {list(KINDS)}.",
            hint="Example: {lookup: 0.45, calculation: 0.25, multi_step: 0.15, no_tool: 0.15}",
        )
    total = sum(mix.values())
    exact = {k: n * mix.get(k, 0.0) / total for k in KINDS}
    counts = {k: math.floor(v) for k, v in exact.items()}
    for k in sorted(KINDS, key=lambda k: counts[k] - exact[k])[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def question_id(text: str) -> str:
    return "q-" + hashlib.sha1(" ".join(text.lower().split()).encode("utf-8")).hexdigest()[:12]


# ----------------------------------------------------------------------------- LLM questions

class InvalidOutput(ValueError):
    """A teacher reply that is not the JSON we asked for; the message says what was wrong."""


_JSON_START = re.compile(r"[\[{]")


class Generated(NamedTuple):
    """One question a teacher wrote: its text, the tools it needs, what a right answer contains, and the
    word the teacher gave for how it is phrased (its family within the kind)."""

    question: str
    tools: list[str]
    answer_facts: list[str]
    style: str


def parse_generated(text: str, kind: str, tool_names: set[str]) -> list[Generated]:
    """Validate a teacher reply ``{"questions": [{"question": str, "tools": [name...], "answer_facts":
    [str...], "style": str}]}`` (``answer_facts`` and ``style`` may be missing: then none, and "llm").

    A reply with no valid item raises InvalidOutput; single bad items are skipped. The tool list must
    fit the kind: none for no_tool, two or more for multi_step.
    """
    m = _JSON_START.search(text)
    if m is None:
        raise InvalidOutput("no JSON object in the reply")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[m.start() :])
    except json.JSONDecodeError as e:
        raise InvalidOutput(f"invalid JSON: {e.msg}") from e
    items = obj.get("questions") if isinstance(obj, dict) else obj
    if not isinstance(items, list) or not items:
        raise InvalidOutput('expected a non-empty "questions" list')
    out: list[tuple[str, list[str]]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        q, tools = item.get("question"), item.get("tools", [])
        if not isinstance(q, str) or len(q.split()) < 2 or not isinstance(tools, list):
            continue
        tools = [t for t in tools if isinstance(t, str)]
        if any(t not in tool_names for t in tools):
            continue  # an invented tool: the question would teach a call that cannot work
        if (kind == "no_tool") != (not tools) or (kind == "multi_step" and len(set(tools)) < 2):
            continue
        facts = [" ".join(f.split()) for f in item.get("answer_facts") or [] if isinstance(f, str) and f.strip()]
        style = item.get("style") if isinstance(item.get("style"), str) else ""
        style = re.sub(r"[^a-z_]+", "_", style.lower()).strip("_") or "llm"
        out.append(Generated(" ".join(q.split()), list(dict.fromkeys(tools)), facts, style))
    if not out:
        raise InvalidOutput(f"no item with a question and tools valid for a {kind} question")
    return out


_SYSTEM = (
    "You write realistic questions that people send to an assistant. The assistant can call the tools listed "
    "below. Reply with one JSON object and nothing else."
)

_ASK = {
    "lookup": "Write {n} different questions this person would ask that the text above answers. Each question "
    "must make clear which tool the assistant should call (usually a search of the documents, or fetching a "
    "cited article).",
    "calculation": "Write {n} different questions this person would ask that need one of the calculation tools, "
    "with all the concrete numbers the tool needs written in the question (amounts, years, days, hours, dates), "
    "related to the text above.",
    "multi_step": "Write {n} different questions this person would ask that need two tools in turn: first find "
    "the rule in the documents, then compute a result from concrete numbers written in the question.",
    "no_tool": "Write {n} different messages this person might send that need no tool at all: a greeting, a "
    "thank-you, or a question outside the topics of the documents that the assistant should politely decline. "
    'Use "tools": [] for each.',
}


# What a right answer must contain (Question.answer_facts), asked of the teacher with each question, and
# how people phrase questions: the teacher names each question's style, which becomes its family.
_STYLE = ('Vary the phrasing as real people write: casual or formal, short or a story with details that do '
          'not matter, numbers as "12k" or "four and a half years", typos. Name each question\'s "style" in '
          'one word (plain, casual, terse, story, formal, ...).')
_FACTS = {
    "lookup": f'{_STYLE} In "answer_facts" copy the sentence of the text that answers it.',
    "calculation": f'{_STYLE} In "answer_facts" give the figure(s) a right answer states, with their units.',
    "multi_step": f'{_STYLE} In "answer_facts" give the figure(s) a right answer states, with their units.',
    "no_tool": f'{_STYLE} In "answer_facts" give the kind of reply due: "greeting", "thanks" or "decline".',
}


def build_prompt(
    kind: str, persona: Persona, window: list[Chunk], tool_specs: list[dict[str, Any]], n: int, domain: str
) -> list[dict[str, str]]:
    """The canonical messages asking the teacher for ``n`` questions of ``kind``."""
    tools = "\n".join(f"- {t['name']}: {(t.get('description') or '').strip().split(chr(10))[0]}" for t in tool_specs)
    who = f"Person: {persona.name}; asks about {', '.join(persona.asks_about)}."
    if persona.style:
        who += f" Style: {persona.style}."
    parts = [f"Tools:\n{tools}", f"The documents cover: {domain}.", who]
    if window and kind != "no_tool":
        text = "\n\n".join(f"[{c.section_path}]\n{c.text}" for c in window)
        parts.append(f"Text:\n{text}")
    parts.append(_ASK[kind].format(n=n))
    parts.append(_FACTS[kind])
    parts.append('Reply as JSON: {"questions": [{"question": "...", "tools": ["tool_name"], "answer_facts": '
                 '["..."], "style": "..."}]}')
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


@dataclass
class _Job:
    key: str
    kind: str
    persona: Persona
    cluster: int
    chunk_ids: list[str]
    messages: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0


def _plan_jobs(
    chunks: list[Chunk], clusters: dict[str, Any], personas: list[Persona], cfg: RunConfig, rng: random.Random
) -> list[_Job]:
    """Enough (window, persona, kind) prompts to over-fill each kind's target by a third (dedup loses some)."""
    qc = cfg.questions
    by_id = {c.id: c for c in chunks}
    all_windows = []
    for cl in clusters["clusters"]:
        ids = [c for c in cl["chunk_ids"] if c in by_id]
        all_windows += [(int(cl["id"]), w) for w in windows(ids, qc.window, qc.stride)]
    if not all_windows:
        raise UserError("clusters.json lists no chunks.", hint="Run `agentdistill ingest` again.")
    has_number = [w for w in all_windows if any(re.search(r"\d", by_id[c].text) for c in w[1])] or all_windows
    jobs = []
    for kind, target in kind_targets(qc.n_questions, qc.mix).items():
        n_jobs = math.ceil(target * 4 / 3 / max(1, qc.per_window)) if target else 0
        pool = has_number if kind in ("calculation", "multi_step") else all_windows
        order = rng.sample(pool, len(pool))
        for j in range(n_jobs):
            cluster, w = order[j % len(order)]
            persona = personas[j % len(personas)]
            if kind == "no_tool":
                cluster, w = -1, []
            jobs.append(_Job(f"{kind}:{j}:{cluster}:{'|'.join(w)}:{persona.name}", kind, persona, cluster, list(w)))
    return jobs


def llm_questions(
    run_dir: Path, cfg: RunConfig, llm: Any, tool_specs: list[dict[str, Any]], console: Any = None
) -> tuple[list[Question], dict[str, int]]:
    """Ask the teacher for questions; returns the candidates and counts (invalid replies dropped, ...)."""
    from agentdistill.llm.base import GenerationRequest

    chunks, clusters = load_corpus(run_dir)
    by_id = {c.id: c for c in chunks}
    personas = load_personas(cfg.questions.personas, cfg)
    rng = random.Random(cfg.seed)
    tool_names = {t["name"] for t in tool_specs}
    domain = "; ".join(sorted({c.title for c in chunks}))[:600]
    jobs = _plan_jobs(chunks, clusters, personas, cfg, rng)
    for job in jobs:
        job.messages = build_prompt(
            job.kind, job.persona, [by_id[c] for c in job.chunk_ids], tool_specs, cfg.questions.per_window, domain
        )

    raw_path = RunLayout(run_dir).questions_raw
    done = {r["key"]: r for r in iter_json(raw_path)} if raw_path.exists() else {}
    todo = [j for j in jobs if j.key not in done]
    counts: Counter[str] = Counter()
    batch = max(1, cfg.teacher.concurrency) * 4
    with JsonlAppender(raw_path) as journal:
        while todo:
            current, todo = todo[:batch], todo[batch:]
            requests = [
                GenerationRequest(messages=j.messages, max_tokens=cfg.teacher.max_tokens,
                                  temperature=cfg.teacher.temperature)
                for j in current
            ]
            replies = llm.generate(requests)
            for job, completions in zip(current, replies, strict=True):
                job.attempts += 1
                text = completions[0].text if completions else ""
                try:
                    items = parse_generated(text, job.kind, tool_names)
                except InvalidOutput as e:
                    counts["invalid_replies"] += 1
                    if job.attempts <= cfg.questions.max_invalid_retries:
                        todo.append(job)  # asked again: sampling at temperature > 0 usually fixes it
                        continue
                    record = {"key": job.key, "status": "dropped", "reason": str(e), "questions": []}
                else:
                    record = {"key": job.key, "status": "ok", "questions": [list(i) for i in items]}
                journal.append(record)
                done[job.key] = record
            if console is not None:
                console.print(f"  teacher replies: {len(done)}/{len(jobs)}, invalid so far {counts['invalid_replies']}")
    done = {r["key"]: r for r in iter_json(raw_path)}
    counts["dropped_prompts"] = sum(1 for r in done.values() if r["status"] == "dropped")
    out = []
    for job in jobs:
        rec = done.get(job.key)
        if rec is None or rec["status"] != "ok":
            continue
        for item in rec["questions"][: cfg.questions.per_window]:
            text, tools, facts, style = (list(item) + [[], "llm"])[:4]  # journals before facts held pairs
            out.append(Question(
                id=question_id(text), text=text, persona=job.persona.name, cluster=job.cluster,
                source_chunk_ids=job.chunk_ids, expect=Expect(tools=tools), kind=job.kind,
                family=f"{job.kind}.{style}", answer_facts=facts,
            ))
    return out, dict(counts)


# ----------------------------------------------------------------------------- finishing

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> tuple[str, ...]:
    return tuple(sorted(n.replace(",", "") for n in _NUMBER.findall(text)))


def dedup(questions: list[Question], embed: Any, threshold: float) -> tuple[list[Question], int]:
    """Drop exact and near duplicates, keeping the first of each group.

    Near duplicate: cosine(e_a, e_b) >= threshold on normalized embeddings and the same numbers in both.
    ``embed`` maps a list of texts to an (n, d) array of unit vectors.
    """
    import numpy as np

    seen: set[str] = set()
    unique = []
    for q in questions:
        key = " ".join(q.text.lower().split())
        if key not in seen:
            seen.add(key)
            unique.append(q)
    # only questions with the same numbers can be near duplicates: embed just the groups of two or more
    nums = [numbers_in(q.text) for q in unique]
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, key in enumerate(nums):
        groups.setdefault(key, []).append(i)
    need = [i for g in groups.values() if len(g) > 1 for i in g]
    vecs = dict(zip(need, np.asarray(embed([unique[i].text for i in need]), dtype=np.float32), strict=True)) \
        if need else {}
    kept: list[int] = []
    kept_by_group: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(unique)):
        same = kept_by_group.setdefault(nums[i], [])
        if same and float(np.max(np.stack([vecs[k] for k in same]) @ vecs[i])) >= threshold:
            continue
        same.append(i)
        kept.append(i)
    return [unique[i] for i in kept], len(questions) - len(kept)


def kind_rng(seed: int, kind: str) -> random.Random:
    """A random stream of one kind of question's own: an edit to how one kind is written or sampled
    leaves every other kind as it was, and with them the topics the split holds out."""
    return random.Random(f"{seed}:{kind}")


def sample_mix(questions: list[Question], n: int, mix: dict[str, float],
               seed: int) -> tuple[list[Question], dict[str, int]]:
    """Pick each kind's share of ``n``; returns the sample and the shortfall per kind (0 when filled).

    Within a kind the sample is random, except that every (persona, expected tools) pair present gets
    at least one question first, so no persona or tool disappears when a kind is cut down.
    """
    targets = kind_targets(n, mix)
    picked: list[Question] = []
    short: dict[str, int] = {}
    for kind, target in targets.items():
        pool = [q for q in questions if q.kind == kind]
        kind_rng(seed, f"sample {kind}").shuffle(pool)
        first: dict[tuple[str, tuple[str, ...]], Question] = {}
        for q in pool:
            first.setdefault((q.persona, tuple(q.expect.tools if q.expect else [])), q)
        cover = list(first.values())[:target]
        taken = {q.id for q in cover}
        chosen = cover + [q for q in pool if q.id not in taken][: target - len(cover)]
        picked += chosen
        short[kind] = target - len(chosen)
    random.Random(seed).shuffle(picked)
    return picked, short


SEED_FAMILY = "seed"  # the phrasing family of hand-written questions: "<kind>.seed", trained on only


def seed_reader(cfg: RunConfig) -> Any:
    """The run's pack's reader of hand-written questions (``DomainPack.spec_questions``), None without a seed
    file; a seed file that no pack of the run reads is an error before any question is written."""
    from agentdistill.domains import offline_pack

    path = cfg.questions.seed_questions
    if path is None:
        return None
    build = offline_pack(cfg).spec_questions
    if build is None:
        raise UserError(f"questions.seed_questions is set ({path}), but no pack of the run reads such rows.",
                        hint="Remove questions.seed_questions, or add the pack whose row format the file uses.")
    return build


def seed_questions(cfg: RunConfig, build: Any, chunks: list[Chunk], clusters: dict[str, Any], tools: Any,
                   split: list[Question]) -> tuple[list[Question], dict[str, int]]:
    """The hand-written questions of ``questions.seed_questions`` to train on, and counts of those left out.

    Each row becomes a question through ``build`` (``seed_reader``: the pack's, its answer facts from the
    real tools). A row on a topic that ``split`` holds out (a cluster or, with ``split.by: document``, a
    document of a dev or test question) is left out, and so is one in the words of a question already there
    (of any split, or an earlier row): the held-out scores stay unseen. So is a row the pack cannot use (a
    source no section has, a call that fails), logged with the reason, so that a seed file written for one
    version of the documents still trains on what it can.
    """
    path = cfg.questions.seed_questions
    if build is None:
        return [], {}
    cluster_of = cluster_of_chunk(clusters["clusters"])
    chunk_doc = {c.id: c.doc_id for c in chunks}
    held = {k for q in split if q.split != "train" and q.source_chunk_ids
            for k in topic_keys(q, cfg.split.by, chunk_doc)}
    written = {q.id for q in split}
    out: list[Question] = []
    counts: Counter[str] = Counter()
    for lineno, row in enumerate(iter_json(path), start=1):
        if question_id(str(row.get("text", ""))) in written:  # in the words of a question already there
            counts["seed_duplicate"] += 1
            continue
        try:
            (q,) = build([row], chunks, tools, family=SEED_FAMILY)
        except (ValueError, KeyError) as e:
            log.warning("%s:%d: seed question left out: %s", path, lineno, e)
            counts["seed_unusable"] += 1
            continue
        clusters_of_q = sorted(c for c in (cluster_of.get(s) for s in q.source_chunk_ids) if c is not None)
        q = q.model_copy(update={"split": "train", "cluster": clusters_of_q[0] if clusters_of_q else -1})
        if q.source_chunk_ids and topic_keys(q, cfg.split.by, chunk_doc) & held:
            counts["seed_held_out_topic"] += 1
            continue
        written.add(q.id)
        out.append(q)
    counts["seed_trained"] = len(out)
    return out, dict(counts)


@dataclass
class QuestionsReport:
    n: int
    by_kind: dict[str, int]
    by_persona: dict[str, int]
    by_tool: dict[str, int]
    split: dict[str, int]
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"complete": True, **self.__dict__}


def make_questions(run_dir: Path, cfg: RunConfig, llm: Any = None, console: Any = None) -> QuestionsReport:
    """Run the whole stage: generate, dedup, sample the mix, split, write questions.jsonl and stats."""
    from agentdistill.corpus.embed import Embedder
    from agentdistill.tools import load_tools

    run_dir = Path(run_dir)
    tools = load_tools(cfg, run_dir)
    chunks, clusters = load_corpus(run_dir)
    read_seeds = seed_reader(cfg)
    if cfg.teacher.kind == "rule" and llm is None:
        from agentdistill.domains import load_pack, offline_pack

        personas = load_personas(cfg.questions.personas, cfg)
        # a pack with a teacher of its own but no writer gets the generic writer, which records expect
        writer = offline_pack(cfg).offline_questions or load_pack("documents").offline_questions
        candidates, counts = writer(chunks, clusters, personas, tools, cfg)
        teacher = "rule"
    else:
        if llm is None:
            from agentdistill.llm import make_teacher_llm

            llm = make_teacher_llm(cfg, run_dir)
        candidates, counts = llm_questions(run_dir, cfg, llm, tools.specs(), console)
        teacher = getattr(llm, "name", "llm")
    if not candidates:
        raise UserError(
            "the teacher produced no valid question.",
            hint="Check the teacher endpoint and model (teacher.base_url, teacher.model); see questions.raw.jsonl.",
        )
    def embed(texts: list[str]) -> Any:  # the embedder loads only if some questions need comparing
        return Embedder(cfg.models.embedder).encode(texts)

    unique, n_dup = dedup(candidates, embed, cfg.questions.dedup_threshold)
    chunk_doc = {c.id: c.doc_id for c in chunks}
    split_seed = cfg.split.seed if cfg.split.seed is not None else cfg.seed
    # a question whose phrasing family and topic are held out to different sides would leak either way:
    # the split leaves it out, and the stats count it. The split is made over all candidates, before the
    # mix is sampled, so that what it leaves out does not cut the run short of n_questions.
    kept, excluded = assign_splits(unique, cfg.split.test_fraction, cfg.split.by, chunk_doc, seed=split_seed,
                                   dev_fraction=cfg.split.dev_fraction)
    final, short = sample_mix(kept, cfg.questions.n_questions, cfg.questions.mix, cfg.seed)
    # added after the mix is sampled: hand-written questions change no written question of any split
    seeds, seed_counts = seed_questions(cfg, read_seeds, chunks, clusters, tools, kept)
    final += seeds
    write_records(RunLayout(run_dir).questions, final)
    counts = {**counts, **seed_counts, "candidates": len(candidates), "duplicates_removed": n_dup,
              "excluded_by_split": len(excluded), **{f"short_{k}": v for k, v in short.items() if v}}
    tools_count: Counter[str] = Counter()
    for q in final:
        tools_count.update(q.expect.tools if q.expect and q.expect.tools else ["(no tool)"])
    report = QuestionsReport(
        n=len(final),
        by_kind=dict(Counter(q.kind for q in final)),
        by_persona=dict(Counter(q.persona for q in final)),
        by_tool=dict(tools_count),
        split=split_counts(final),
        counts=counts,
    )
    write_json_atomic(RunLayout(run_dir).questions_stats, {**report.as_dict(), "teacher": teacher})
    return report
