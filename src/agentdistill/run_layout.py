"""The run directory: every file and folder name inside it, and whether each stage's outputs are complete.

Stages talk only through the run directory's files, so their names are a contract between stages; this
module is the one place that spells them (tests/test_run_layout.py fails on a name spelled anywhere
else). ``RunLayout(run_dir)`` gives each path by what it is::

    <run>/
      config.resolved.yaml                  the config the run was started with (config.open_run)
      chunks.jsonl clusters.json index/     ingest: the chunks, their topic clusters, the vector index
      manifest.json ingest_report.json      ingest: what was read (to resume), what was skipped and why
      questions.raw.jsonl questions.jsonl   questions: every question written, then the filtered, split set
      questions.stats.json                  questions: counts; "complete" once the set is final
      traces.jsonl traces.rejected.jsonl    traces: the teacher's kept and rejected answers
      traces.stats.json                     traces: counts; "complete" once every question is answered
      export/train.trl.jsonl ...            traces: the training split for other trainers (TRL, ShareGPT)
      functions.jsonl synth_calls.stats.json synth-calls: the invented functions (then traces.jsonl), counts
      bfcl_dev/                             synth-calls: the dev traces as BFCL-format files
      teacher_topk/manifest.json            teacher-cache: the shards; "complete" once all are written
      adapters/<model>/ adapters/<s>-uld/   sft and distill: the adapters, with agentdistill.json
      checkpoints/<sft|distill>-<model>/    sft and distill: checkpoints to resume from (time_budget.json)
      logs/<checkpoints folder>/            TensorBoard logs
      eval/<name>/                          eval: eval.json, results.jsonl, metrics.json
      bench/bfcl/<name>/                    bench bfcl: results.jsonl, metrics.json
      report.html                           report
      export/hf/ export/gguf/<m>-<q>.gguf   export (export.json in the merged model, <m>-<q>.Modelfile beside the GGUF)
      stage_seconds.json                    the pipeline: seconds each stage took
      .locks/<stage>.lock                   run_lock: one writer per run and stage

Names that Hugging Face or PEFT give files inside a model or adapter folder (adapter_config.json,
config.json, tokenizer.json, ...) are theirs, not the run's. A foundation module: it imports no stage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

CONFIG_RESOLVED = "config.resolved.yaml"
# ingest
CHUNKS = "chunks.jsonl"
CLUSTERS = "clusters.json"
INDEX = "index"
INGEST_MANIFEST = "manifest.json"
INGEST_REPORT = "ingest_report.json"
# questions
QUESTIONS = "questions.jsonl"
QUESTIONS_RAW = "questions.raw.jsonl"
QUESTIONS_STATS = "questions.stats.json"
# traces, and their training split exported for other trainers
TRACES = "traces.jsonl"
TRACES_REJECTED = "traces.rejected.jsonl"
TRACES_STATS = "traces.stats.json"
EXPORT = "export"
TRL_EXPORT = "train.trl.jsonl"
SHAREGPT_EXPORT = "train.sharegpt.jsonl"
DATASET_INFO = "dataset_info.json"  # LLaMA-Factory's description of the ShareGPT file
# synth-calls: traces over invented functions instead of questions and traces
FUNCTIONS = "functions.jsonl"  # the invented functions, their domain and split
SYNTH_CALLS_STATS = "synth_calls.stats.json"
BFCL_DEV = "bfcl_dev"  # the held-out functions' traces as BFCL-format files
# training
TEACHER_CACHE = "teacher_topk"
TEACHER_CACHE_MANIFEST = "manifest.json"
ADAPTERS = "adapters"
ADAPTER_META = "agentdistill.json"  # in an adapter's folder: what trained it (base model, kind, steps)
ULD_SUFFIX = "-uld"  # adapters/<student>-uld: the distilled student; eval/<student>-uld: its eval
SFT_EVAL_SUFFIX = "-sft"  # eval/<student>-sft: the SFT student's eval in a pipeline run
CHECKPOINTS = "checkpoints"
INCOMPLETE_CHECKPOINTS = "incomplete"  # in a checkpoints folder: checkpoints set aside as unusable
CHECKPOINT_SPENT = "time_budget.json"  # in each checkpoint folder: the training seconds spent up to it
LOGS = "logs"
PEFT_ADAPTER_CONFIG = "adapter_config.json"  # PEFT's name; an adapter folder holding it is a finished adapter
# evaluation
EVAL = "eval"
EVAL_META = "eval.json"
RESULTS = "results.jsonl"
METRICS = "metrics.json"
BENCH_BFCL = ("bench", "bfcl")
REPORT = "report.html"
# export
EXPORT_HF = "hf"
EXPORT_GGUF = "gguf"
EXPORT_META = "export.json"  # not the model cache's marker: that would make the folder stand for its base model
# Ollama's, beside the GGUF file and named after it: two exports into one folder keep one each
MODELFILE_SUFFIX = ".Modelfile"
# the pipeline
STAGE_SECONDS = "stage_seconds.json"
LOCKS = ".locks"
LOCK_SUFFIX = ".lock"

# The names test_run_layout.py finds spelled outside this module: every file name above, and the folder
# names distinctive enough that a string equal to one means the run's folder ("eval", "export", "index"
# are also commands, modes and keys).
OWNED_NAMES = frozenset({
    CONFIG_RESOLVED, CHUNKS, CLUSTERS, INGEST_MANIFEST, INGEST_REPORT, QUESTIONS, QUESTIONS_RAW, QUESTIONS_STATS,
    TRACES, TRACES_REJECTED, TRACES_STATS, TRL_EXPORT, SHAREGPT_EXPORT, DATASET_INFO, TEACHER_CACHE, ADAPTERS,
    ADAPTER_META, CHECKPOINTS, CHECKPOINT_SPENT, EVAL_META, RESULTS, METRICS, REPORT, EXPORT_META, MODELFILE_SUFFIX,
    STAGE_SECONDS, LOCKS,
})


def json_flag(path: Path, key: str) -> bool:
    """Whether the JSON object in ``path`` has a true ``key``; False when it is missing or unreadable."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError):  # ValueError: not JSON, not UTF-8
        return False
    return isinstance(obj, dict) and bool(obj.get(key))


def gguf_name(name: str, quant: str) -> str:
    """The GGUF file export writes for the adapter folder ``name`` at ``quant`` (in export/gguf/ or --out)."""
    return f"{name}-{quant}.gguf"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory. ``RunLayout(Path())`` gives them relative to the run, as a command
    names them (``--model adapters/<student>``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # the run
    @property
    def config_resolved(self) -> Path:
        return self.root / CONFIG_RESOLVED

    @property
    def stage_seconds(self) -> Path:
        return self.root / STAGE_SECONDS

    @property
    def locks(self) -> Path:
        return self.root / LOCKS

    def lock(self, name: str) -> Path:
        """The lock file of ``name`` (a stage; a name with a slash, like a model id, is flattened)."""
        return self.locks / (re.sub(r"[^A-Za-z0-9._-]+", "--", name) + LOCK_SUFFIX)

    # ingest
    @property
    def chunks(self) -> Path:
        return self.root / CHUNKS

    @property
    def clusters(self) -> Path:
        return self.root / CLUSTERS

    @property
    def index(self) -> Path:
        return self.root / INDEX

    @property
    def ingest_manifest(self) -> Path:
        return self.root / INGEST_MANIFEST

    @property
    def ingest_report(self) -> Path:
        return self.root / INGEST_REPORT

    # questions
    @property
    def questions(self) -> Path:
        return self.root / QUESTIONS

    @property
    def questions_raw(self) -> Path:
        return self.root / QUESTIONS_RAW

    @property
    def questions_stats(self) -> Path:
        return self.root / QUESTIONS_STATS

    # traces
    @property
    def traces(self) -> Path:
        return self.root / TRACES

    @property
    def traces_rejected(self) -> Path:
        return self.root / TRACES_REJECTED

    @property
    def traces_stats(self) -> Path:
        return self.root / TRACES_STATS

    @property
    def functions(self) -> Path:
        return self.root / FUNCTIONS

    @property
    def synth_calls_stats(self) -> Path:
        return self.root / SYNTH_CALLS_STATS

    @property
    def bfcl_dev(self) -> Path:
        return self.root / BFCL_DEV

    @property
    def export(self) -> Path:
        """export/: the training split for other trainers (traces), the merged model and GGUF files (export)."""
        return self.root / EXPORT

    @property
    def trl_export(self) -> Path:
        return self.export / TRL_EXPORT

    @property
    def sharegpt_export(self) -> Path:
        return self.export / SHAREGPT_EXPORT

    @property
    def dataset_info(self) -> Path:
        return self.export / DATASET_INFO

    # training
    @property
    def teacher_cache(self) -> Path:
        return self.root / TEACHER_CACHE

    @property
    def teacher_cache_manifest(self) -> Path:
        return self.teacher_cache / TEACHER_CACHE_MANIFEST

    @property
    def adapters(self) -> Path:
        return self.root / ADAPTERS

    def adapter(self, name: str) -> Path:
        """adapters/<name>: the SFT adapter of the model ``name`` (a hub id ``org/model`` nests; always inside
        the run, an absolute name too)."""
        return self.root / f"{ADAPTERS}/{name}"

    def uld_adapter(self, student: str) -> Path:
        """adapters/<student>-uld: the student distilled from the teacher."""
        return self.root / f"{ADAPTERS}/{student}{ULD_SUFFIX}"

    def checkpoints(self, name: str) -> Path:
        return self.root / CHECKPOINTS / name

    def logs(self, name: str) -> Path:
        return self.root / LOGS / name

    # evaluation
    @property
    def evals(self) -> Path:
        return self.root / EVAL

    def eval_dir(self, name: str) -> Path:
        return self.evals / name

    @property
    def bfcl_runs(self) -> Path:
        return self.root.joinpath(*BENCH_BFCL)

    @property
    def report(self) -> Path:
        return self.root / REPORT

    # export
    @property
    def export_hf(self) -> Path:
        return self.export / EXPORT_HF

    @property
    def export_gguf(self) -> Path:
        return self.export / EXPORT_GGUF

    def gguf(self, name: str, quant: str) -> Path:
        """export/gguf/<name>-<quant>.gguf: the export of the adapter ``name`` at ``quant``."""
        return self.export_gguf / gguf_name(name, quant)

    # is this stage done: its outputs are complete (an incomplete stage runs again and resumes itself)
    def ingest_done(self) -> bool:
        return self.chunks.exists() and self.clusters.exists() and self.index.exists()

    def questions_done(self) -> bool:
        return json_flag(self.questions_stats, "complete")

    def traces_done(self) -> bool:
        return json_flag(self.traces_stats, "complete")

    def adapter_done(self, name: str) -> bool:
        """Whether adapters/<name> holds a finished adapter (sft and distill write it in a temporary folder
        and rename it into place whole)."""
        return (self.adapter(name) / PEFT_ADAPTER_CONFIG).exists()

    def uld_adapter_done(self, student: str) -> bool:
        return (self.uld_adapter(student) / PEFT_ADAPTER_CONFIG).exists()

    def teacher_cache_done(self) -> bool:
        return json_flag(self.teacher_cache_manifest, "complete")

    def eval_done(self, name: str) -> bool:
        return (self.eval_dir(name) / METRICS).exists()

    def gguf_done(self, name: str, quant: str) -> bool:
        return self.gguf(name, quant).exists()
