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


TRAINING_PROBE = """
import json
from transformers import TrainerControl
from scpo.core.memory import keep_freed_memory, resident_mb
from scpo.training import launch
keep_freed_memory()
callback, seen = launch.release_freed_memory_callback(), []

def step(hook="on_step_end", **due):  # 400 MB made and freed, then a step (or epoch) ends with `due` set
    block = bytearray(400 << 20)
    del block
    seen.append(resident_mb())
    getattr(callback, hook)(None, None, TrainerControl(**due))
    seen.append(resident_mb())

launch.LOW_MEMORY = 0.0
step()  # nothing due, memory plentiful: the freed heap is kept (the sampler's speed)
step(should_save=True)  # a checkpoint is next: handed back
step(hook="on_epoch_end", should_evaluate=True)
launch.LOW_MEMORY = 1.0
step()  # the machine is short of memory: handed back after any step
step(hook="on_substep_end")  # and after any micro-batch of a step
print(json.dumps(seen))
"""


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_training_hands_freed_memory_back_before_a_save_an_eval_or_when_the_machine_runs_short():
    import json

    out = subprocess.run([sys.executable, "-c", TRAINING_PROBE], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    (kept, still), *released = [seen[i : i + 2] for i in range(0, len(seen), 2)]
    assert still > kept - 50  # nothing due: the 400 MB stayed resident
    for before, after in released:
        assert after < before - 300, seen
