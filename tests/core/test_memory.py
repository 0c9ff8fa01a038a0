"""glibc told to keep freed memory (scpo/core/memory.py): a large tensor freed and made again costs no page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys
from scpo.core.memory import keep_freed_memory
kept = keep_freed_memory()
blocks = [bytearray(64 << 20) for _ in range(1)]  # warm: the heap grows once
del blocks
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # 20 x 64 MB written, freed, made again
    b = bytearray(64 << 20)
    del b
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def probe(env_value: str) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"SCPO_KEEP_FREED_MEMORY": env_value, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults_and_the_switch_turns_it_off():
    kept, faults = probe("1")
    glibc, faults_default = probe("0")
    assert kept and not glibc
    pages = 20 * (64 << 20) // 4096  # what glibc's mmap per block faults in
    assert faults_default > pages // 2  # each block mapped anew: a fault per page
    assert faults < pages // 20  # kept in the heap: written pages stay mapped
