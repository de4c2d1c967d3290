"""Shared test setup. Everything here runs before any test module imports agentdistill or transformers."""

import os

# Offline: a test that tries to download weights must fail, not hang or pass by luck.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"  # chromadb
os.environ.setdefault("AGENTDISTILL_CACHE", os.path.expanduser("~/.cache/agentdistill"))


# --- models (helper "models"): the bundled chat models, converted once per machine ---------------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def bundled_models():
    """{registry name: prepared folder} for every bundled chat model.

    The first session on a fresh machine pays the GGUF conversion (~1-3 min on 2 CPUs); the folders
    land in $AGENTDISTILL_CACHE, so every later session only checks their completion markers.
    """
    from agentdistill.models.registry import BUNDLED, prepare

    return {name: prepare(name) for name in BUNDLED}


# --- runtime (helper "runtime"): a real llama.cpp server on the bundled SmolLM2 GGUF -------------
@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory):
    """A running llama.cpp OpenAI-compatible server (.url, .model) for tests marked ``llamacpp``.

    One per session (startup takes a few seconds); stopped when the session ends.
    """
    from llamacpp_server import llamacpp_server as start

    with start(tmp_path_factory.mktemp("llamacpp")) as server:
        yield server
