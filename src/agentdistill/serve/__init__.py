"""`agentdistill serve`: the trained agent behind an OpenAI-compatible endpoint, and a chat page.

- batcher.py: one worker thread owns the model; concurrent requests wait in a queue and go to it as
  one batch (the LLM backends take batches), each with its own deadline.
- openai_api.py: the request schema, OpenAI messages <-> canonical messages, replies and stream chunks.
- app.py: the FastAPI app: /v1/chat/completions (tool calling, and ``<name>-agent``: the ReAct loop
  with the run's tools), /v1/models, /health, the chat page at /; limits and 4xx errors.
- cli.py: the command, which builds the app for a run directory and runs uvicorn.
"""
