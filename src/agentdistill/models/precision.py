"""Whether this machine computes in bfloat16 natively, which decides the precision of training and generation.

On a CPU with AVX512-BF16 or AMX, bf16 matmuls run on dedicated instructions and beat float32; without
them bf16 is emulated and slower, so float32 stays. On CUDA it is the GPU's own bf16 support.
"""

from __future__ import annotations

import functools
from pathlib import Path


def native_bf16(cuda: bool) -> bool:
    """True where bf16 is the faster precision: a CUDA GPU that supports it (``cuda``), else this CPU."""
    if cuda:
        import torch

        return torch.cuda.is_bf16_supported()
    return cpu_native_bf16()


@functools.cache
def cpu_native_bf16() -> bool:
    """True on a CPU with native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
