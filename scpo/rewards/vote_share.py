"""`vote_share`: the share of its group's rollouts that agree with the rollout's answer (a soft majority reward).

With `vote_rule: scrl`, SCRL's continuous reward instead (arXiv 2603.19880; scpo/rewards/_scrl.py): scrl_a_plus x
share for its positive answer, -scrl_a_minus x (scrl_tau_low - share) for a negative one, 0 for the rest, each minus
scrl_lambda_h x (the answer's mean entropy - the prompt's); scrl_unparsed_reward (-1) without an answer.
"""

from __future__ import annotations

from scpo.rewards._scrl import VoteReward


class VoteShare(VoteReward):
    name = "vote_share"
    continuous = True

    def plain(self, group) -> list[float]:
        return group.vote_share_rewards()
