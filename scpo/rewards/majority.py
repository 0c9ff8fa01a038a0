"""`majority` (TTRL, Zuo et al. 2025): 1 if the rollout's answer is equivalent to its group's majority answer, else 0.

Ties go to the answer seen first (as TTRL's Counter.most_common); a rollout with no answer gets 0.
With `vote_rule: scrl`, SCRL's binary reward instead (arXiv 2603.19880; scpo/rewards/_scrl.py): +1 for its positive
answer, -1 for a negative one, 0 for the rest, scrl_unparsed_reward (-1) without an answer.
"""

from __future__ import annotations

from scpo.rewards._base import Reward
from scpo.rewards._scrl import ScrlRewardSettings, scrl_rewards, uses_scrl


class Majority(Reward):
    name = "majority"
    settings = ScrlRewardSettings

    def __init__(self, settings=None):
        super().__init__(settings)
        self.scrl = self.needs_token_stats = uses_scrl(settings)  # SCRL's entropy gate reads the policy's entropies

    def __call__(self, batch):
        if self.scrl:
            return scrl_rewards(batch, self.s, continuous=False)
        return batch.per_group(lambda i, group: group.majority_rewards())
