"""One model, many concurrent requests: a queue in front of a single worker thread.

The LLM backends take batches (a local model pads them into one forward pass), and a local model
must not run two ``generate`` calls at once. So every request, whether a client's tool-calling turn
or one step of an agent conversation, becomes a job on one queue; the worker takes what has
gathered while it was busy (up to ``max_batch`` jobs), generates them as one batch and hands each
result back through its future. No timer holds a lone request back: under load, batches fill by
themselves while the previous one runs.

Each job carries its caller's deadline and cancel flag: a job whose client has gone or whose time
is up is dropped before it reaches the model (a batch already running cannot be interrupted).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from agentdistill.llm.base import LLM, BackendError, Completion, GenerationRequest

log = logging.getLogger("agentdistill.serve")


class RequestTimeout(BackendError):
    """The request's time limit passed before the model answered."""


class RequestCancelled(BackendError):
    """The client went away; what it asked for is no longer wanted."""


@dataclass
class Job:
    request: GenerationRequest
    deadline: float  # time.monotonic() seconds
    cancelled: threading.Event
    future: Future[list[Completion]] = field(default_factory=Future)


class Batcher:
    """Owns ``llm``: ``submit`` queues requests, a daemon thread generates them in batches."""

    def __init__(self, llm: LLM, max_batch: int = 8):
        self.llm = llm
        self.name = llm.name
        self.max_batch = max(1, max_batch)
        self.batches = 0  # batches generated, and the largest one: /health shows them
        self.largest_batch = 0
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, daemon=True, name="agentdistill-batcher")
        self._thread.start()

    def submit(self, requests: list[GenerationRequest], deadline: float, cancelled: threading.Event) -> list[Job]:
        jobs = [Job(r, deadline, cancelled) for r in requests]
        for job in jobs:
            self._queue.put(job)
        return jobs

    def close(self) -> None:
        self._queue.put(None)

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # close after this batch
                    break
                jobs.append(job)
            live = [j for j in jobs if _still_wanted(j)]
            if live:
                self.batches += 1
                self.largest_batch = max(self.largest_batch, len(live))
                self._generate(live)

    def _generate(self, jobs: list[Job]) -> None:
        """Generate ``jobs`` as one batch; if the batch fails, each again alone, so a bad one fails alone."""
        try:
            outs = self.llm.generate([j.request for j in jobs])
        except Exception as e:  # noqa: BLE001 - any backend failure goes back to its callers, never kills the worker
            if len(jobs) > 1:
                for job in jobs:
                    self._generate([job])
                return
            log.warning("generation failed: %s: %s", type(e).__name__, e)
            failure = BackendError(f"the model failed on this request ({type(e).__name__}: {e})")
            jobs[0].future.set_exception(e if isinstance(e, BackendError) else failure)
            return
        for job, out in zip(jobs, outs, strict=True):
            job.future.set_result(out)


def _still_wanted(job: Job) -> bool:
    if not job.future.set_running_or_notify_cancel():  # its caller cancelled the future itself
        return False
    if job.cancelled.is_set():
        job.future.set_exception(RequestCancelled("the client went away"))
        return False
    if time.monotonic() >= job.deadline:
        job.future.set_exception(RequestTimeout("the request's time limit passed while it waited for the model"))
        return False
    return True


class RequestLLM:
    """The LLM one client request sees: its calls go through the shared ``Batcher`` under the request's
    deadline and cancel flag. It implements ``generate_each`` so the agent runtime gets one error per
    request (agent.runtime._generate) and ends the conversation cleanly when time is up."""

    def __init__(self, batcher: Batcher, deadline: float, cancelled: threading.Event | None = None):
        self.batcher = batcher
        self.name = batcher.name
        self.deadline = deadline
        self.cancelled = cancelled or threading.Event()
        self.timed_out = False

    def generate_each(self, requests: list[GenerationRequest]) -> list[list[Completion] | BackendError]:
        out: list[list[Completion] | BackendError] = []
        for job in self.batcher.submit(requests, self.deadline, self.cancelled):
            try:
                out.append(job.future.result(timeout=max(0.0, self.deadline - time.monotonic())))
            except TimeoutError:
                self.cancelled.set()  # its jobs still queued are dropped
                out.append(RequestTimeout("the request's time limit passed while the model was generating"))
            except BackendError as e:
                out.append(e)
            if isinstance(out[-1], RequestTimeout):
                self.timed_out = True
        return out

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        results = self.generate_each(requests)
        for r in results:
            if isinstance(r, BackendError):
                raise r
        return results  # type: ignore[return-value]
