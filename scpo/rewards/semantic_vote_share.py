"""`semantic_vote_share` (EMPO, Zhang et al. 2025, arXiv 2504.05812; code: QingyangZhang/EMPO,
`verl/utils/reward_score/empo/compute_metrics.py` and `src/open_r1/rewards.py`): the share of the group's
rollouts in the rollout's semantic cluster, clusters by the task's answer equivalence (for math, the
math-verify grader, as EMPO's rule-based clustering).

As EMPO's code: a rollout without an answer is a cluster of its own (share 1/n), and an entropy threshold
filters prompts: the group's semantic entropy H = -sum_c p_c log p_c is compared with log n (all answers
distinct), and a prompt outside [empo_entropy_low x log n, empo_entropy_high x log n) gets 0 for every rollout
(EMPO's open-r1 reward keeps H < log n, the defaults here; the paper describes a band, the two settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scpo.core.errors import ScpoError
from scpo.core.settings import Block
from scpo.rewards._base import Reward
from scpo.voting import UNPARSED


@dataclass
class SemanticVoteShareSettings(Block):
    empo_entropy_low: float = 0.0  # semantic_vote_share: keep prompts with semantic entropy >= low x log n
    empo_entropy_high: float = 1.0  # ... and < high x log n (EMPO's code: H < log n)

    HASHED_WHEN_SET = (
        "empo_entropy_low",
        "empo_entropy_high",
    )  # joined later: unset, earlier grpo runs keep their manifests

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.empo_entropy_low < self.empo_entropy_high <= 1:
            raise ScpoError(
                f"settings empo_entropy_low={self.empo_entropy_low}, empo_entropy_high="
                f"{self.empo_entropy_high}: need 0 <= low < high <= 1 (fractions of log n)"
            )


def cluster_shares(group) -> tuple[list[float], float]:
    """Each rollout's cluster share (no answer: a cluster of one) and the group's semantic entropy.

    With a vote teacher (vote_teacher: frozen | ema) only the teacher's rollouts vote: the policy's rollouts are
    scored by the teacher's clusters, and a policy rollout without an answer is in no teacher cluster, so it gets
    0, as a parsed answer the teacher never gave does (not 1/n, which would rank it above that answer)."""
    n = group.size
    shares = [
        (0.0 if group.teacher else 1 / n) if g == UNPARSED else group.votes.groups[g].votes / n
        for g in group.votes.group_of
    ]
    clusters = [g.votes / n for g in group.votes.groups if g.votes] + [1 / n] * group.unparsed
    return shares, -sum(p * math.log(p) for p in clusters)


class SemanticVoteShare(Reward):
    name = "semantic_vote_share"
    settings = SemanticVoteShareSettings

    def __call__(self, batch):
        low, high = getattr(self.s, "empo_entropy_low", 0.0), getattr(self.s, "empo_entropy_high", 1.0)

        def rewards(_, group):
            shares, entropy = cluster_shares(group)
            top = math.log(group.size) if group.size > 1 else 0.0
            entropy, low_edge, high_edge = (round(x, 9) for x in (entropy, low * top, high * top))  # log n exactly
            inside = low_edge <= entropy < high_edge or (group.size == 1 and low == 0)
            return shares if inside else [0.0] * len(shares)

        return batch.per_group(rewards)
