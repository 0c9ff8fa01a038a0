"""What this machine computes with: a GPU (`has_gpu`, the one check every module asks), or a CPU with or without
native bf16 (read from /proc/cpuinfo, no torch).

vLLM-CPU and torch's CPU autocast both run bf16 fast only where the CPU has AVX512-BF16 or AMX; elsewhere bf16 is
emulated and slower than float32 (scpo/sampling/vllm_engine.py: cpu_dtype).
"""

from __future__ import annotations

from pathlib import Path


def has_gpu() -> bool:
    """Whether torch sees a CUDA GPU (False where torch is not installed: the pure stages run without it)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): without it vLLM-CPU's bf16 path emulates."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: leave the model's dtype alone
    return "avx512_bf16" in flags or "amx_bf16" in flags
