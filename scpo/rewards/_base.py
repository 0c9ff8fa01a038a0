"""What a GRPO reward is: a function of one batch of rollouts, by name (`reward_funcs: [majority, format]`).

TRL calls each reward function with this process's rollouts; `scpo.training.grpo.GroupVoter` votes
once per batch over every prompt's full group (gathered from all processes) and hands each reward a
`RolloutBatch`. A reward returns one value per local rollout (None: no reward, left out of TRL's
group statistics). TRL logs each under its name (rewards/<name>/mean) and weights them with
`reward_weights`. A reward file may declare a settings block (its fields become recipe keys of
`scpo grpo`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scpo.rewards._votes import GroupVote
from scpo.tasks import Task


@dataclass
class RolloutBatch:
    """One reward call's rollouts: this process's `texts` / `answers` / `completion_ids`, and every group's votes."""

    texts: list[str]
    answers: list[str | None]  # None: no parseable answer (or cut off by the length limit)
    groups: list[GroupVote]  # every prompt's group, in TRL's order, over all processes
    group_golds: list[Any]  # each group's gold answer (None: unlabeled)
    group_answers: list[list[str | None]]  # each group's answers, all processes
    local: slice  # this process's rows in the concatenation of the groups
    task: Task
    completion_ids: Sequence[Sequence[int]] | None = None
    extras: dict = field(default_factory=dict)  # TRL's other reward-function keyword arguments
    # Per local rollout, the policy's per-token `entropy` and `self_certainty` lists (scpo/training/token_stats.py);
    # computed only when a reward declares `needs_token_stats`.
    token_stats: Sequence[Any] | None = None
    # With token_stats: each group's rollouts' mean token entropies, in group order, over all processes (vote_rule scrl)
    group_entropies: list[list[float]] | None = None
    group_texts: list[list[str]] | None = None  # each group's rollout texts, all processes (semantic_voting)

    def per_group(self, values_of_group) -> list:
        """Values computed per group (`values_of_group(i, group)` -> one per rollout), this process's rows."""
        values: list = []
        for i, group in enumerate(self.groups):
            values += values_of_group(i, group)
        return values[self.local]


class Reward:
    name: ClassVar[str]
    settings: ClassVar[type | None] = None
    needs_token_stats: ClassVar[bool] = False  # the batch must carry the policy's per-token statistics

    def __init__(self, settings=None):
        self.s = settings

    def __call__(self, batch: RolloutBatch) -> list[float | None]:
        raise NotImplementedError
