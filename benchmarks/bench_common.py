"""What every benchmark here needs: the CPU's name for its table, and one timed call on either device.

The scripts import it as a sibling module (``python benchmarks/<name>.py`` puts this folder on the path).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed_ms(fn: Callable[[], Any], cuda: bool, behind_device_sleep: bool = False) -> tuple[Any, float]:
    """``fn()``'s result and its milliseconds: CUDA events around it on a GPU (the kernels' time, after
    everything queued before it), the wall clock on a CPU. ``behind_device_sleep``: the call is queued behind
    a 2 ms sleep on the GPU, so that the host's allocations and launches happen while it sleeps and only the
    device's time is counted, as in a training step where the host runs ahead of the GPU."""
    if not cuda:
        start = time.perf_counter()
        result = fn()
        return result, (time.perf_counter() - start) * 1e3
    import torch

    start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    if behind_device_sleep:
        torch.cuda._sleep(4_000_000)  # clock cycles: about 2 ms at 2 GHz
    start_event.record()
    result = fn()
    end_event.record()
    torch.cuda.synchronize()
    return result, start_event.elapsed_time(end_event)
