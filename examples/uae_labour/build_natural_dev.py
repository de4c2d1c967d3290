"""Build natural_dev.jsonl: hand-written questions (natural_dev.spec.jsonl) with their answer facts.

    python examples/uae_labour/build_natural_dev.py --run runs/demo   # a run ingested from this example

The questions are written the way people write them, by hand, in no template of the question writer, so
they measure every run on the same wording whatever phrasing families its split holds out. They are a
dev set: `agentdistill eval --run RUN --model MODEL --questions examples/uae_labour/natural_dev.jsonl`
compares changes on them; the test split reports. The facts come from the run's real tools and index.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agentdistill.config import load_run_config
from agentdistill.domains.uae_labour.questions import questions_from_spec
from agentdistill.jsonl import read_records
from agentdistill.records import Chunk
from agentdistill.run_layout import RunLayout
from agentdistill.tools import load_tools

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a run ingested from examples/uae_labour")
    parser.add_argument("--spec", type=Path, default=HERE / "natural_dev.spec.jsonl")
    parser.add_argument("--out", type=Path, default=HERE / "natural_dev.jsonl")
    args = parser.parse_args()
    cfg = load_run_config(args.run)
    chunks = read_records(RunLayout(args.run).chunks, Chunk)
    rows = [json.loads(line) for line in args.spec.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = questions_from_spec(rows, chunks, load_tools(cfg, args.run))
    args.out.write_text("".join(q.model_dump_json() + "\n" for q in questions), encoding="utf-8")
    print(f"wrote {len(questions)} questions to {args.out}")


if __name__ == "__main__":
    main()
