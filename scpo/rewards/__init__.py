"""GRPO rewards, a registry: `reward_funcs: [<name>, ...]` names scpo/rewards/<name>.py, or by dotted path a Reward
subclass or a plain TRL reward function `f(completions, **kwargs) -> list[float]` (wrapped: scpo/rewards/_trl.py).

majority (TTRL), vote_share, gold, format, and the label-free self_certainty (Intuitor), negative_entropy
(RENT) and semantic_vote_share (EMPO); combined with TRL's `reward_weights`. The vote
machinery they share (one prompt's group at a time, pure Python) is scpo/rewards/_votes.py.
"""

from __future__ import annotations

from scpo.core.registry import Registry
from scpo.rewards._base import Reward, RolloutBatch
from scpo.rewards._trl import trl_reward
from scpo.rewards._votes import (
    GroupVote,
    batch_stats,
    format_rewards,
    gold_answer,
    gold_rewards,
    is_correct,
    vote_group,
)

REWARDS: Registry = Registry("reward", __name__, Reward, setting="reward_funcs", adapt=trl_reward)

__all__ = [
    "REWARDS",
    "GroupVote",
    "Reward",
    "RolloutBatch",
    "batch_stats",
    "format_rewards",
    "gold_answer",
    "gold_rewards",
    "is_correct",
    "vote_group",
]
