"""`majority` (TTRL, Zuo et al. 2025): 1 if the rollout's answer is equivalent to its group's majority answer, else 0.

Ties go to the answer seen first (as TTRL's Counter.most_common); a rollout with no answer gets 0.
With `vote_rule: scrl`, SCRL's binary reward instead (arXiv 2603.19880; scpo/rewards/_scrl.py): +1 for its positive
answer, -1 for a negative one, 0 for the rest, scrl_unparsed_reward (-1) without an answer.
"""

from __future__ import annotations

from scpo.rewards._scrl import VoteReward


class Majority(VoteReward):
    name = "majority"
    continuous = False

    def plain(self, group) -> list[float]:
        return group.majority_rewards()
