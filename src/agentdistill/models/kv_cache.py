"""The key/value-cache argument under both of its transformers names.

transformers 5.24 renamed ``past_key_values`` to ``cache`` (in forward, generate and the model
outputs) and warns on the old name; earlier releases know only the old one. The project supports
both, so the name is read off the model.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


def cache_kwarg(model: Any) -> str:
    """The keyword that passes a cache to ``model``'s forward (and generate)."""
    return _cache_kwarg_of(type(model))


@functools.cache
def _cache_kwarg_of(model_class: type) -> str:
    # read once per model class: callers ask on every generate() batch and every training step
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def output_cache(output: Any) -> Any:
    """The cache a forward pass returned."""
    cache = output.get("cache") if hasattr(output, "get") else None
    return cache if cache is not None else output.past_key_values
