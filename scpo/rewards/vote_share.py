"""`vote_share`: the share of its group's rollouts that agree with the rollout's answer (a soft majority reward).

With `vote_rule: scrl`, SCRL's continuous reward instead (arXiv 2603.19880; scpo/rewards/_scrl.py): scrl_a_plus x
share for its positive answer, -scrl_a_minus x (scrl_tau_low - share) for a negative one, 0 for the rest, each minus
scrl_lambda_h x (the answer's mean entropy - the prompt's); scrl_unparsed_reward (-1) without an answer.
"""

from __future__ import annotations

from scpo.rewards._base import Reward
from scpo.rewards._scrl import ScrlRewardSettings, scrl_rewards, uses_scrl


class VoteShare(Reward):
    name = "vote_share"
    settings = ScrlRewardSettings

    def __init__(self, settings=None):
        super().__init__(settings)
        self.scrl = self.needs_token_stats = uses_scrl(settings)  # SCRL's entropy gate reads the policy's entropies

    def __call__(self, batch):
        if self.scrl:
            return scrl_rewards(batch, self.s, continuous=True)
        return batch.per_group(lambda i, group: group.vote_share_rewards())
