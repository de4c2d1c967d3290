"""An LLM judge of answers, behind any OpenAI-compatible endpoint (``eval.judge`` in the config).

The judge reads the question, the facts a right answer must contain (``Question.answer_facts``), the
passages the agent retrieved and the answer, and replies with one JSON object
``{"correct": true|false, "reason": "..."}``. It can accept a paraphrase that the offline checker
(evaluate.answer_check) cannot, at the price of a model call per question and a model's own mistakes;
the offline checker stays the default. A judge that fails (an HTTP error after the backend's retries, a
reply that is not such a JSON object, an unreachable server) never stops an eval: that question gets the
offline verdict, and a warning says why. A server that cannot be reached at all, or does not serve the
model, is asked no more for the rest of the eval.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agentdistill.config import JudgeConfig
from agentdistill.errors import UserError
from agentdistill.evaluate.answer_check import AnswerVerdict, check_answer
from agentdistill.llm.base import BackendError, GenerationRequest

log = logging.getLogger(__name__)

PASSAGE_CHARS = 3000  # of retrieved text shown to the judge
MAX_TOKENS = 200

SYSTEM = """You grade the final answer of an assistant that answers questions from a set of documents with tools.
You get the question, the facts a right answer must contain, the passages the assistant retrieved, and its answer.
The answer is correct when it states every fact (in any wording; figures must have the same value and unit) and
claims nothing that the passages contradict. When the fact is "not covered", the answer is correct only if it says
the documents do not cover the question and makes no claim of its own. When the fact is "greeting", "thanks" or
"decline", the answer is correct when it is a reply of that kind (a decline says the question is outside what the
assistant can help with).
Reply with one JSON object and nothing else: {"correct": true or false, "reason": "<one short sentence>"}"""


class JudgeError(Exception):
    """The judge gave no usable verdict for one question."""


def judge_prompt(question: Any, answer: str, observations: Sequence[str]) -> str:
    """The user message the judge reads."""
    facts = "\n".join(f"- {f}" for f in question.answer_facts)
    passages = "\n\n".join(observations)
    if len(passages) > PASSAGE_CHARS:
        passages = passages[:PASSAGE_CHARS] + " ..."
    return (f"Question ({question.kind}): {question.text}\n\nFacts a right answer must contain:\n{facts}\n\n"
            f"Passages the assistant retrieved:\n{passages or '(none)'}\n\nAnswer:\n{answer}")


def parse_verdict(text: str) -> tuple[bool, str]:
    """(correct, reason) from the judge's reply: the first JSON object in it (a code fence around it is
    fine). Raises JudgeError when there is none, or its "correct" is not a boolean."""
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end < start:
        raise JudgeError(f"the judge's reply holds no JSON object: {text[:120]!r}")
    try:
        data = json.loads(text[start : end + 1])
    except ValueError as e:
        raise JudgeError(f"the judge's reply is not valid JSON ({e}): {text[:120]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("correct"), bool):
        raise JudgeError(f"the judge's reply has no boolean 'correct': {text[:120]!r}")
    reason = data.get("reason")
    return data["correct"], reason if isinstance(reason, str) else ""


def judge_id(cfg: JudgeConfig) -> str:
    """How a verdict names this judge (``AnswerVerdict.by``): "judge:<model>"."""
    return f"judge:{cfg.model or cfg.base_url}"


class AnswerJudge:
    """``check(question, answer, observations)``: the judge's verdict, or the offline one if the judge fails
    (``currencies``: the run's packs' currency spellings, for the offline checker)."""

    def __init__(self, cfg: JudgeConfig, backend: Any = None, currencies: Mapping[str, str] | None = None):
        from agentdistill.llm.openai_http import OpenAIBackend

        self.backend = backend or OpenAIBackend(cfg.base_url, cfg.model, api_key=os.environ.get(cfg.api_key_env),
                                                concurrency=1, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries)
        self.name = judge_id(cfg)
        self.currencies = currencies
        self.down: str | None = None  # why the server cannot be used at all (then every verdict is offline)
        self.failures = 0

    def judge(self, question: Any, answer: str, observations: Sequence[str]) -> AnswerVerdict:
        """The judge's own verdict; raises JudgeError (or UserError when the server cannot be used)."""
        request = GenerationRequest(
            messages=[{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": judge_prompt(question, answer, observations)}],
            max_tokens=MAX_TOKENS, temperature=0.0)
        try:
            text = self.backend.generate([request])[0][0].text
        except BackendError as e:
            raise JudgeError(str(e)) from None
        correct, reason = parse_verdict(re.sub(r"```(?:json)?", "", text))
        return AnswerVerdict(correct, reason or ("correct" if correct else "wrong"), by=self.name)

    def check(self, question: Any, answer: str | None, observations: Sequence[str]) -> AnswerVerdict:
        offline = check_answer(question, answer, observations, self.currencies)
        if offline.correct is None or not answer or self.down:
            return offline  # nothing to judge against, or nothing to judge, or no judge to ask
        try:
            return self.judge(question, answer, observations)
        except JudgeError as e:
            why = str(e)
        except UserError as e:  # unreachable server, unknown model: no later question would fare better
            self.down = why = e.message
        except Exception as e:  # noqa: BLE001 (whatever else goes wrong in a judge, the eval goes on)
            why = f"{type(e).__name__}: {e}"
        self.failures += 1
        log.warning("answer judge failed on question %s (%s); using the offline verdict", question.id, why)
        return AnswerVerdict(offline.correct, f"{offline.reason} (judge failed: {why[:200]})", by=offline.by)
