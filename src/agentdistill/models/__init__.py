"""Model registry (bundled + HF + local), GGUF->HF cache, and chat templates with assistant masks."""
