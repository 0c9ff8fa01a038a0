"""`gold`: 1 if the answer is equivalent to the prompt's gold answer, else 0; None (no reward) without one.

For comparison runs (RL with verifiable rewards) and semi-supervised mixes; the label-free rewards never read gold.
"""

from __future__ import annotations

from scpo.rewards._base import Reward
from scpo.rewards._votes import gold_rewards


class Gold(Reward):
    name = "gold"

    def __call__(self, batch):
        return batch.per_group(lambda i, group: gold_rewards(batch.group_answers[i], batch.group_golds[i], batch.task))
