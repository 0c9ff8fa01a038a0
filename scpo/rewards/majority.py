"""`majority` (TTRL, Zuo et al. 2025): 1 if the rollout's answer is equivalent to its group's majority answer, else 0.

Ties go to the answer seen first (as TTRL's Counter.most_common); a rollout with no answer gets 0.
"""

from __future__ import annotations

from scpo.rewards._base import Reward


class Majority(Reward):
    name = "majority"

    def __call__(self, batch):
        return batch.per_group(lambda i, group: group.majority_rewards())
