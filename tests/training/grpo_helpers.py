"""Helpers for the GRPO tests: a task a random model can answer, and a known batch voted on by N processes.

    python -m torch.distributed.run --nproc_per_node 2 tests/grpo_helpers.py OUT_DIR

votes on KNOWN_BATCH split across the launched processes as TRL splits a generation batch (consecutive
slices, in rank order) and writes each process's rewards (training on all 4 rollouts of a group, and on
the first 2) to OUT_DIR/rank<r>.json.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from scpo.tasks import Task


@dataclass
class FirstLetter(Task):
    """The answer is the first letter of the completion: a random tiny model gives varied, votable answers."""

    name: str = "first_letter"
    keys_are_exact: bool = True

    def extract(self, completion: str) -> str | None:
        return next((c.lower() for c in completion if c.isalpha()), None)


GROUP = 4
# Three prompts of four rollouts; with two processes the middle group is split across them.
KNOWN_BATCH = [
    ("a", "The answer is 5.", "5"),
    ("a", "5", "5"),
    ("a", "6", "5"),
    ("a", "I do not know", "5"),
    ("b", "7", None),
    ("b", "The answer is 8", None),
    ("b", "8.0", None),
    ("b", "7", None),  # a tie: 7 seen first
    ("c", "no", "3"),
    ("c", "none", "3"),
    ("c", "?", "3"),
    ("c", "nothing", "3"),  # no parseable answer at all
]


def vote_in_process(rank: int, world: int, n_samples: int) -> dict:
    from scpo.tasks import get_task
    from scpo.training.grpo import GroupVoter, reward_functions

    local = len(KNOWN_BATCH) // world
    rows = KNOWN_BATCH[rank * local : (rank + 1) * local]
    voter = GroupVoter(get_task("numeric"), group_size=lambda: GROUP, n_samples=lambda: n_samples, rank=lambda: rank)
    logged = {}
    kwargs = {"id": [r[0] for r in rows], "gold": [r[2] for r in rows], "log_metric": logged.__setitem__}
    prompts, completions = [f"prompt {r[0]}" for r in rows], [r[1] for r in rows]
    rewards = {
        f.__name__: f(prompts=prompts, completions=completions, **kwargs)
        for f in reward_functions(["majority", "vote_share", "gold", "format"], voter)
    }
    return {"rank": rank, "rewards": rewards, "logged": logged}


if __name__ == "__main__":
    from accelerate import PartialState

    state = PartialState(cpu=True)  # under torchrun: a gloo process group
    out = Path(sys.argv[1])
    result = {n: vote_in_process(state.process_index, state.num_processes, n) for n in (GROUP, 2)}
    (out / f"rank{state.process_index}.json").write_text(json.dumps(result))
    state.destroy_process_group()  # a live gloo group can abort the interpreter at exit
