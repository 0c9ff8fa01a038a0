"""`vote_share`: the share of its group's rollouts that agree with the rollout's answer (a soft majority reward)."""

from __future__ import annotations

from scpo.rewards._base import Reward


class VoteShare(Reward):
    name = "vote_share"

    def __call__(self, batch):
        return batch.per_group(lambda i, group: group.vote_share_rewards())
