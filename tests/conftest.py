"""Shared test setup. Everything here runs before any test module imports agentdistill or transformers."""

import os

# Offline: a test that tries to download weights must fail, not hang or pass by luck.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"  # chromadb
os.environ.setdefault("AGENTDISTILL_CACHE", os.path.expanduser("~/.cache/agentdistill"))
