"""One YAML file per run, validated by pydantic.

Each stage reads its own section. Unknown keys are errors (a typo must not silently fall back to a
default); the error names the key, the file, the line, and the closest valid name. Relative paths in
the file are resolved against the file's folder, so a config works from any working directory.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentdistill.errors import UserError
from agentdistill.run_layout import RunLayout


def steps_or_epochs(cls: type, steps: int | None) -> int | None:
    """A training section's max_steps: -1 (train for epochs) or a count of at least one."""
    if steps == 0:
        raise ValueError("0 steps would train nothing; give -1 to train for epochs, or a count >= 1")
    return steps


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelsConfig(Section):
    student: str = Field(default="smollm2-135m", min_length=1)  # registry name, Hugging Face id, or local folder
    # the cross-tokenizer teacher that is fine-tuned then distilled
    teacher: str = Field(default="gemma3-270m", min_length=1)
    # sentence-transformers model of the corpus index and question dedup
    embedder: str = Field(default="all-minilm-l6-v2", min_length=1)
    cache_dir: Path | None = None  # default: $AGENTDISTILL_CACHE or ~/.cache/agentdistill
    # Local models generate (eval, agent) in bf16 where the hardware computes it natively (None: auto); on a
    # 2-core Xeon with AMX an eval of the tuned student took 71 s instead of 117 s, the same task success.
    # false keeps float32. The adapter is merged into float32 weights before the cast either way.
    generation_bf16: bool | None = None


class CorpusConfig(Section):
    paths: list[Path] = Field(default_factory=list)  # documents: files, folders (searched recursively), globs
    chunk_tokens: int = Field(default=512, ge=32)  # chunk size in student tokens (at least 32)
    # tokens consecutive chunks of a long section share (under half of chunk_tokens)
    chunk_overlap: int = Field(default=64, ge=0)
    n_clusters: int | None = Field(default=None, ge=1)  # None: chosen by the rule in corpus/cluster.py
    hybrid: bool = True  # fuse BM25 with dense scores (reciprocal rank fusion)
    embed_batch_size: int = Field(default=32, ge=1)  # texts per embedding batch
    # How the embedder runs (corpus/embed.py): torch (float32, the reference), torch-int8 (its linear layers
    # in int8: 4x the tokens/s on a 2-core CPU, recall@5 unchanged, benchmarks/ingest.py), onnx or onnx-int8
    # (onnxruntime; needs the onnx package). An index is searched with the variant it was built with; changing
    # this re-embeds the corpus at the next ingest.
    embed_variant: Literal["torch", "torch-int8", "onnx", "onnx-int8"] = "torch-int8"
    # A file larger than this many megabytes is skipped with a message, not read: a corpus is documents a
    # person wrote, and a 50 MB text file is a log or a dump (it took minutes and gigabytes to chunk).
    max_document_mb: float = Field(default=20.0, gt=0)

    def model_post_init(self, context: Any) -> None:
        if self.chunk_overlap >= self.chunk_tokens // 2:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be below half of chunk_tokens "
                             f"({self.chunk_tokens}); about 1/8 of it works well")
    # A search whose best passage is less similar than this (cosine, dense embeddings) finds nothing:
    # the topic is not in the documents. 0 turns it off.
    min_similarity: float = Field(default=0.0, ge=0.0, lt=1.0)
    # The search tool also searches the user's latest message and interleaves the two rankings, the top of each
    # first: a small student's query often drops the words that find the passage, where the question keeps them.
    search_asked: bool = True
    # With search_asked, the asker's ranking leads: its top passage is shown first, then the query's. A small
    # model answers from the first passage it is shown, and its query finds the passage less often than the
    # question it paraphrases (docs/design.md, "Tools and the agent runtime").
    asked_leads: bool = True


class ToolsConfig(Section):
    # domain packs: built-in ones (folders and modules of agentdistill/domains/; "documents" searches the run's own
    # documents, "general" computes), importable modules or .py files defining PACK, TOOLS or tools(cfg, run_dir)
    packs: list[str] = Field(default_factory=lambda: ["documents", "general"])
    timeout_s: float = Field(default=10.0, gt=0)  # seconds a tool call may run before it becomes a timeout observation


class TeacherConfig(Section):
    """The LLM that writes questions and traces. ``rule`` needs no server (offline demo)."""

    # rule: the offline rule teacher (the bundled packs only); openai: an OpenAI-compatible endpoint; local: a model
    kind: Literal["rule", "openai", "local"] = "rule"
    base_url: str | None = None  # OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1
    model: str | None = None  # served model name (openai) or registry model (local)
    api_key_env: str = "OPENAI_API_KEY"  # environment variable that holds the endpoint's API key
    concurrency: int = Field(default=4, ge=1)  # requests in flight at once
    temperature: float = Field(default=0.7, ge=0)  # sampling temperature of the question writer
    max_tokens: int = Field(default=512, ge=1)  # tokens per teacher reply
    timeout_s: float = Field(default=120.0, gt=0)  # seconds per request
    max_retries: int = Field(default=4, ge=0)  # retries of a failed request, with backoff


# decode-time rules of the retired hand-written engine: an on/off comparison did not show that they help
RETIRED_AGENT_KEYS = ("numbers_from_user", "arguments_from_user", "citations_from_observations", "follow_plan")


class AgentConfig(Section):
    max_steps: int = Field(default=6, ge=1)  # model turns per question before the runtime stops it
    self_consistency: int = Field(default=1, ge=1)  # N sampled candidate steps, majority on the action (1 = greedy)
    first_thought_prefix: str | None = None  # text every first thought starts with (prefilled where the backend can)
    # Decode every step under the step grammar of the tools (llm/grammar.py): a thought line, then an action
    # that names a registered tool, or an answer. A small student's commonest slip is an invented name after a
    # right thought. The local and llama.cpp backends honour it; other HTTP servers ignore it.
    constrain_tool_names: bool = True
    # ... and an action's arguments follow its tool's JSON schema (names, types, enums, required): after
    # reading a passage the student wrote a figure of it under an argument name the tool does not take.
    constrain_arguments: bool = True
    # ... and an answer after a tool call quotes one to three sentences of the tools' results, verbatim
    # (agent/quotes.py): a small student otherwise writes a memorised sentence or a figure of its own.
    # Off by default: the on/off comparison (docs/design.md, "Quoted answers") was made on one domain.
    quote_answers: bool = False
    # ... and of a search result, only its first passage, the one the search ranked best: a small student offered
    # every passage quotes a sentence it memorised from a lower one, about a neighbouring topic (agent/quotes.py).
    quote_top_passage: bool = False
    # ... and an answer after a tool that computed opens with a sentence of its result (agent/quotes.py): a small
    # student that also searched opened with the passage and never stated the figure it was asked for.
    quote_result_first: bool = False
    # ... and an action's number arguments are figures the user or the tools stated, read as people write them
    # ("5.5k", "one hundred and twenty", "2 years and 6 months" as 30): a small student otherwise writes figures
    # of its own, or calls a calculator with invented ones where the question states none (agent/figures.py).
    figures_from_conversation: bool = False
    # ... and each figure goes only to an argument of the unit it was stated in ("4.5 yrs" not as a salary, "10 pm"
    # not as hours, "EUR 38,750" not as days), and a choice among units ("years"/"months") only to a unit the
    # conversation names: a small student otherwise puts a figure into another argument's place (agent/figures.py).
    figures_by_unit: bool = False
    # A first step that answers a user message unaided, where a tool's data is at least this relevant to the
    # message (a search's closest passage, as a cosine similarity), is decoded again calling one of those tools:
    # a small student otherwise declines a question its documents answer ("I'm pregnant, can they fire me?" as
    # out of scope). With the step grammar only. None: off.
    act_above_relevance: float | None = Field(default=None, ge=0, le=1)
    # The first step after a user message may call only the tools among the two first steps (a tool, or a reply
    # without one) that the training questions nearest the message took most, and the most taken of each of its
    # clauses where it asks several things, or reply: this many of them vote, by the similarity of the run's
    # embedder. A small student otherwise routes phrasing it never trained on to tools no close training question
    # used (agent/routing.py). With the step grammar and a run's train traces only. None: off.
    route_neighbours: int | None = Field(default=None, ge=1)
    # With route_neighbours: a step that answers after a tool's result, where a clause that asks (of a sentence
    # ending in a question mark) voted for a tool the conversation has not called yet, is decoded again calling it:
    # a message that asks for a rule and a figure needs both, and a small student answers after the first
    # (agent/routing.py).
    plan_from_clauses: bool = False
    # With route_neighbours: a first step that replies without a tool gives one of the replies of the nearest training
    # questions that replied: a small student told greetings from thanks by the phrasings it trained on and thanked
    # "heyyy" (agent/routing.py).
    replies_from_neighbours: bool = False
    # A step that repeats an action the conversation has taken is decoded again as an answer, with the step grammar:
    # a small student searched the same words twice and the loop guard ended the conversation with no answer.
    answer_on_repeat: bool = False

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        """Drop the decode-time rules retired with the hand-written engine where a saved config turns them off
        (docs/design.md, "The step grammar"); refuse one that turns them on."""
        if isinstance(data, dict):
            on = [k for k in RETIRED_AGENT_KEYS if data.get(k)]
            if on:
                raise ValueError(f"agent.{on[0]} was retired with the hand-written decoding rules; remove it "
                                 "(docs/design.md, 'The step grammar')")
            data = {k: v for k, v in data.items() if k not in RETIRED_AGENT_KEYS}
        return data


class QuestionsConfig(Section):
    personas: Path | None = None  # personas.yaml: who asks ({name, asks_about, style}); None: the run's packs' own
    window: int = Field(default=3, ge=1)  # LLM question writer: chunks of a cluster shown per prompt (a sliding window)
    stride: int = Field(default=2, ge=1)  # LLM question writer: chunks the window moves by
    per_window: int = Field(default=2, ge=1)  # LLM question writer: questions asked for per prompt
    n_questions: int = Field(default=800, ge=1)  # questions kept after dedup, sampled to the mix
    # weight of each kind of question: lookup, calculation, multi_step (search, then compute), no_tool
    mix: dict[str, float] = Field(
        default_factory=lambda: {"lookup": 0.45, "calculation": 0.25, "multi_step": 0.15, "no_tool": 0.15}
    )
    # embedding similarity at which two questions with the same numbers are one
    dedup_threshold: float = Field(default=0.95, gt=0, le=1)
    # LLM question writer: times an invalid reply is asked again, then dropped
    max_invalid_retries: int = Field(default=2, ge=0)
    # Questions written by hand the way people write them (JSONL rows in the format of the run's pack that
    # reads them, DomainPack.spec_questions), trained on beside the written ones and on top of n_questions;
    # a row on a topic the split holds out is left out, so held-out scores stay unseen.
    seed_questions: Path | None = None

    @field_validator("mix")
    @classmethod
    def _known_kinds(cls, mix: dict[str, float]) -> dict[str, float]:
        kinds = ("lookup", "calculation", "multi_step", "no_tool")  # synth/questions.py KINDS
        unknown = sorted(set(mix) - set(kinds))
        if unknown:
            raise ValueError(f"unknown kind {unknown[0]!r}; the kinds are {', '.join(kinds)}")
        if any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError("the weights must be >= 0 and at least one above 0")
        return mix


class SplitConfig(Section):
    # the share held out to report on: of whole topics and, per kind, of whole phrasing families (synth/splits.py)
    test_fraction: float = Field(default=0.2, ge=0, lt=1)
    # the share held out the same way to choose changes on, so that no change is tuned on the score it reports;
    # a question whose topic and family fall on different sides is left out (questions.stats.json counts it)
    dev_fraction: float = Field(default=0.1, ge=0, lt=1)  # the share held out for choosing changes (dev)
    by: Literal["cluster", "document"] = "cluster"  # what a held-out topic is: a cluster of chunks, or a document
    # which topics are held out (None: the run's seed); another seed holds out other topics from the same
    # questions, so a recipe can be measured on more than one unseen topic
    seed: int | None = Field(default=None, ge=0)

    def model_post_init(self, context: Any) -> None:
        # a ValueError, so that the config's loader reports it with the file, the line and any other problem
        if self.test_fraction + self.dev_fraction >= 1:
            raise ValueError(f"test_fraction + dev_fraction must be below 1 (got {self.test_fraction} + "
                             f"{self.dev_fraction}): nothing would be left to train on")


class SFTConfig(Section):
    model: str = "student"  # "student", "teacher", or a registry name / HF id
    method: Literal["lora", "qlora", "full"] = "lora"  # LoRA, LoRA on a 4-bit base (CUDA), or every weight
    lora_r: int = Field(default=16, ge=1)  # LoRA rank
    lora_alpha: int = Field(default=32, ge=1)  # LoRA scale: the update is multiplied by lora_alpha / lora_r
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)  # dropout on the LoRA input
    target_modules: list[str] | str = "all-linear"  # modules that get adapters: "all-linear" or their names
    # adapt only the top N transformer layers (None: all); cheaper backward
    lora_layers: int | None = Field(default=None, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0)  # peak learning rate of the cosine schedule
    epochs: float = Field(default=2.0, gt=0)  # passes over the training examples
    max_steps: int = Field(default=-1, ge=-1)  # optimizer steps, overriding epochs (-1: from epochs; 0 is refused)
    batch_size: int = Field(default=4, ge=1)  # examples per batch
    grad_accum: int = Field(default=1, ge=1)  # batches accumulated per optimizer step
    # whole traces: a cut one loses its final answer (the bundled example's lookups run ~1.1k tokens)
    max_length: int = Field(default=1536, ge=1)
    packing: bool = False  # TRL packing of several examples into one sequence (off: length-grouped batches)
    save_steps: int = Field(default=50, ge=1)  # steps between checkpoints; a killed run resumes from the last one
    logging_steps: int = Field(default=5, ge=1)  # steps between logged losses
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])  # "tensorboard" (the run's logs/), "wandb"
    # train on a seeded sample of this many answered traces (None: all)
    max_examples: int | None = Field(default=None, ge=1)
    # The answered train traces that max_examples leaves out are still trained on, cut after their first
    # assistant turn (train.data.first_turn): the tool decision, at about a tenth of a whole trace's cost.
    first_turns_of_rest: bool = False
    # Extra copies of the first assistant turn of each answered train trace that calls two tools or more: the
    # step where the student chooses a plan of several tools, a rarer choice in the data than any one-tool plan
    # (train.data.first_turn; a copy costs about a tenth of a whole trace).
    multi_tool_first_turns: int = Field(default=0, ge=0)
    bf16: bool | None = None  # None: on CUDA with bf16, or a CPU with native bf16 matmuls (AVX512-BF16 / AMX)
    share_prefix: bool = True  # run the system prompt all examples share once per batch (train/shared_prefix.py)
    # NEFTune (Jain et al. 2023): uniform noise of this scale on the input embeddings while training, a
    # regulariser against learning the training questions' exact wording (5 in the paper; None: off)
    neftune_noise_alpha: float | None = Field(default=None, gt=0)
    # Minutes of training at most: a CPU too slow for the planned steps trains fewer, with the cosine schedule
    # ending at the last one (train/time_budget.py). None: the planned steps, however long they take.
    time_budget_min: float | None = Field(default=None, gt=0)

    _steps_or_epochs = field_validator("max_steps")(steps_or_epochs)


class DistillConfig(Section):
    top_k: int = Field(default=256, ge=1)  # teacher probabilities kept per token (the cache, and the ULD loss's top-k)
    temperature: float = Field(default=1.0, gt=0)  # softmax temperature of both distributions
    uld_weight: float = Field(default=1.0, ge=0)  # weight of the ULD term added to cross-entropy
    loss: Literal["uld", "kl", "jsd"] = "uld"  # kl / jsd: only for a teacher with the student's tokenizer
    mode: Literal["offline", "online"] = "offline"  # online: teacher forward in the loop, no teacher_topk/
    teacher: str | None = None  # model or adapter dir; default: adapters/<models.teacher>/ from `sft --model teacher`
    chunk_tokens: int | None = Field(default=None, ge=1)  # tokens per loss chunk; None: sized from the vocabulary
    # None: the sft section's value, so that SFT-only and SFT+ULD differ only by the distillation term
    learning_rate: float | None = Field(default=None, gt=0)
    epochs: float | None = Field(default=None, gt=0)  # None: the sft section's value
    max_steps: int | None = Field(default=None, ge=-1)  # None: the sft section's value (-1: from epochs)

    _steps_or_epochs = field_validator("max_steps")(steps_or_epochs)


class JudgeConfig(Section):
    """An LLM that judges answers (evaluate.judge) behind any OpenAI-compatible endpoint; the offline checker
    (evaluate.answer_check) stays the default, and gives the verdict whenever the judge fails."""

    base_url: str  # e.g. http://127.0.0.1:8080/v1
    model: str | None = None  # served model name; None: the one model the server lists
    api_key_env: str = "OPENAI_API_KEY"  # environment variable that holds the endpoint's API key
    timeout_s: float = Field(default=60.0, gt=0)  # seconds per request
    max_retries: int = Field(default=2, ge=0)  # retries of a failed request


class EvalConfig(Section):
    split: Literal["train", "dev", "test"] = "test"  # the questions evaluated: test reports, dev chooses changes
    max_questions: int | None = Field(default=None, ge=1)  # evaluate a seeded subset of this many questions (None: all)
    # The pipeline's untuned-student baseline runs on a seeded subset of this many questions (None: as many
    # as max_questions): it fails nearly every question at the first step, so a small sample bounds its rates
    # tightly, and the minutes saved go to training.
    baseline_max_questions: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=8, ge=1)  # conversations per generation batch (local models)
    # Questions advanced together (evaluate.runner): several batches' worth keeps batches full as short
    # conversations finish; a killed eval loses at most this many conversations in progress.
    in_flight: int = Field(default=64, ge=1)
    max_new_tokens: int = Field(default=192, ge=1)  # tokens per model turn
    bootstrap: int = Field(default=1000, ge=0)  # resamples of the 95% bootstrap intervals (0: no intervals)
    # Judge answers with an LLM instead of the offline checker (None: offline only).
    judge: JudgeConfig | None = None


class ExportConfig(Section):
    # the GGUF type `agentdistill export --to gguf|ollama` writes when --quant is not given: f16, q8_0 or q4_k_m
    gguf_quant: Literal["f16", "q8_0", "q4_k_m"] = "q8_0"
    ollama: bool = True  # `agentdistill export --to gguf` writes an Ollama Modelfile beside the GGUF too


class PipelineConfig(Section):
    # Minutes for `agentdistill run` / `demo` on the SFT path, at most: the student's SFT trains for what is left
    # after the stages before it and a forecast of its eval (pipeline/time_budget.py), so a slower CPU trains
    # fewer steps instead of overrunning. None: no budget beyond sft.time_budget_min.
    time_budget_min: float | None = Field(default=None, gt=0)
    # The student's evals run through llama.cpp where it is installed with its GGUF converter: the untuned
    # student's bundled GGUF, and the tuned one exported to GGUF (export.gguf_quant) right after SFT. One
    # question after another there took a tenth of transformers' batched time, which SFT gets instead.
    gguf_evals: bool = True


class RunConfig(Section):
    name: str = "run"  # `agentdistill run` writes runs/<name> unless given --run
    # one seed for the run's random choices: clusters, questions, split, training, eval subsets
    seed: int = Field(default=0, ge=0)
    models: ModelsConfig = Field(default_factory=ModelsConfig)  # the student, the teacher, the embedder
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)  # the documents: chunking, embedding, search
    tools: ToolsConfig = Field(default_factory=ToolsConfig)  # the tool packs the agent may call
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)  # the ReAct runtime and its decoding constraints
    questions: QuestionsConfig = Field(default_factory=QuestionsConfig)  # synthetic questions: who asks, how many
    split: SplitConfig = Field(default_factory=SplitConfig)  # how questions are held out, by topic
    sft: SFTConfig = Field(default_factory=SFTConfig)  # supervised fine-tuning: LoRA, QLoRA or full
    distill: DistillConfig = Field(default_factory=DistillConfig)  # cross-tokenizer distillation (ULD)
    eval: EvalConfig = Field(default_factory=EvalConfig)  # a model evaluated as an agent on held-out questions
    export: ExportConfig = Field(default_factory=ExportConfig)  # `agentdistill export` (not built yet)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)  # `agentdistill run` / `demo` as a whole



def _key_lines(node: yaml.Node, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path in a YAML document to its 1-based line number."""
    lines: dict[tuple[Any, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, key_node.value)
            lines[path] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*prefix, i)] = item.start_mark.line + 1
            lines.update(_key_lines(item, (*prefix, i)))
    return lines


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return model
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return model
    return model


def _explain(error: dict[str, Any], path: Path | str, lines: dict[tuple[Any, ...], int]) -> str:
    loc = tuple(error["loc"])
    dotted = ".".join(map(str, loc))
    line = lines.get(loc) or lines.get(loc[:-1])
    where = f"{path}, line {line}" if line else str(path)
    if error["type"] == "extra_forbidden":
        owner = _section_model(loc[:-1])
        valid = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        guess = f" Did you mean '{close[0]}'?" if close else f" Valid keys here: {', '.join(valid)}."
        return f"{where}: unknown key '{dotted}'.{guess}"
    return f"{where}: '{dotted}': {error['msg']} (got {error.get('input')!r})"


def load_config(path: Path, check_paths: bool = True) -> RunConfig:
    """Load and validate a run config; relative paths are resolved against the file's folder.

    With ``check_paths`` the documents and the personas file it names must exist (globs excepted); a run's
    saved copy is loaded without the check, so that a stage after ingest runs when the documents moved.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found.", hint="Pass the path of a YAML run config.")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping of sections (models:, corpus:, ...).")
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        lines = _key_lines(node) if node is not None else {}
        problems = "\n".join("  " + _explain(err, path, lines) for err in e.errors())
        raise UserError(f"invalid config:\n{problems}") from e
    cfg = resolve_paths(cfg, path.parent.resolve())
    if check_paths:
        lines = _key_lines(node) if node is not None else {}
        missing = _missing_paths(cfg)
        if missing:
            problems = "\n".join(
                "  " + _explain({"loc": loc, "type": "path_missing", "msg": "no such file or folder",
                                 "input": str(value)}, path, lines)
                for loc, value in missing
            )
            raise UserError(f"invalid config:\n{problems}",
                            hint="Paths in a config are relative to the config file's folder.")
    return cfg


def _missing_paths(cfg: RunConfig) -> list[tuple[tuple[Any, ...], Path]]:
    """(key path, resolved path) of every path the config names that must exist and does not."""
    import glob

    missing = [(("corpus", "paths", i), p) for i, p in enumerate(cfg.corpus.paths)
               if not glob.has_magic(str(p)) and not p.exists()]
    for key in ("personas", "seed_questions"):
        path = getattr(cfg.questions, key)
        if path is not None and not path.is_file():
            missing.append((("questions", key), path))
    return missing


def apply_overrides(cfg: RunConfig, assignments: list[str] | None) -> RunConfig:
    """``cfg`` with ``section.key=value`` assignments applied, the values in YAML syntax (``sft.epochs=2``,
    ``tools.packs=[general]``); relative paths among them are taken from the current folder."""
    if not assignments:
        return cfg
    data = cfg.model_dump(mode="python")
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise UserError(f"--set {assignment!r}: expected section.key=value.",
                            hint="For example --set sft.epochs=2.")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise UserError(f"--set {assignment!r}: the value is not valid YAML: {e}") from e
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}  # validation then names the unknown section or the wrong type
            node = node[part]
        node[parts[-1]] = value
    try:
        updated = RunConfig.model_validate(data)
    except ValidationError as e:
        problems = "\n".join("  " + _explain(err, "--set", {}) for err in e.errors())
        raise UserError(f"invalid --set:\n{problems}") from e
    return resolve_paths(updated, Path.cwd())


def resolve_paths(cfg: RunConfig, base: Path) -> RunConfig:
    def rel(p: Path | None) -> Path | None:
        if p is None:
            return None
        p = p.expanduser()  # `~/docs` means the home folder, not a folder named "~" beside the config
        return p if p.is_absolute() else (base / p).resolve()

    cfg.corpus.paths = [rel(p) for p in cfg.corpus.paths]  # type: ignore[misc]
    cfg.questions.personas = rel(cfg.questions.personas)
    cfg.questions.seed_questions = rel(cfg.questions.seed_questions)
    cfg.models.cache_dir = rel(cfg.models.cache_dir)
    return cfg


def save_resolved(cfg: RunConfig, run_dir: Path) -> Path:
    """Write the resolved config into the run directory so that the run describes itself."""
    from agentdistill.jsonl import write_text_atomic

    out = RunLayout(run_dir).config_resolved
    write_text_atomic(out, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return out


def load_run_config(run_dir: Path) -> RunConfig:
    """The config a run directory was made with (defaults when the directory has none yet)."""
    resolved = RunLayout(run_dir).config_resolved
    return load_config(resolved, check_paths=False) if resolved.exists() else RunConfig()


def open_run(run_dir: Path, config_path: Path | None = None) -> RunConfig:
    """The config for a stage run in ``run_dir``.

    With ``config_path`` the file is validated and saved into the run directory (a later stage needs
    no --config); without it the run's saved config is used, or the defaults for a new run.
    """
    run_dir = Path(run_dir)
    if config_path is not None:
        cfg = load_config(config_path)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_resolved(cfg, run_dir)
        return cfg
    return load_run_config(run_dir)
