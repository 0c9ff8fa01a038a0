"""`vote_rule: scrl` for the `majority` and `vote_share` rewards: SCRL's rewards (arXiv 2603.19880, code
Jasper-Yan/SCRL) on each prompt's group of rollouts. The rule and the reward values are scpo/selective_votes.py.

`majority` becomes SCRL's binary reward (its default reward_mode, ppo_trainer_scrl.yaml:32): +1 for the positive
answer, -1 for a negative one, 0 for the rest, scrl_unparsed_reward (-1) without an answer. `vote_share` becomes its
continuous reward (reward_mode continuous, its run_example.sh), which weighs the same labels by the vote share and
the answer's entropy. The entropy of a rollout is its mean token entropy under the policy, from the same forward
pass as negative_entropy's (scpo/training/token_stats.py: logits / temperature, every completion token), which is
SCRL's `compute_log_prob` entropy (ray_trainer.py:1147-1150); the voter gathers every group's entropies over all
processes (RolloutBatch.group_entropies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scpo.core.errors import ScpoError
from scpo.rewards._base import Reward
from scpo.selective_votes import ScrlLabelSettings, binary_rewards, continuous_rewards, scrl_labels

SCRL_REWARDS = ("majority", "vote_share")


@dataclass
class ScrlRewardSettings(ScrlLabelSettings):
    scrl_unparsed_reward: float = -1.0  # vote_rule scrl (majority, vote_share): the reward of a rollout without an answer (SCRL's reward_func returns -1: scrl_math/__init__.py:65-66)
    scrl_a_plus: float = 1.0  # vote_rule scrl, vote_share (SCRL's continuous mode): the positive answer's reward a_plus x share (a_plus: ppo_trainer_scrl.yaml:33)
    scrl_a_minus: float = 1.0  # vote_rule scrl, vote_share: a negative answer's reward -a_minus x (scrl_tau_low - share) (a_minus: ppo_trainer_scrl.yaml:34)
    scrl_lambda_h: float = 0.1  # vote_rule scrl, vote_share: every answer's reward minus lambda_h x (its mean entropy - the prompt's) (lambda_h: ppo_trainer_scrl.yaml:35)

    HASHED_WHEN_SET = ("scrl_unparsed_reward", "scrl_a_plus", "scrl_a_minus", "scrl_lambda_h")

    def __post_init__(self):
        super().__post_init__()
        for name in ("scrl_unparsed_reward", "scrl_a_plus", "scrl_a_minus", "scrl_lambda_h"):
            if not math.isfinite(getattr(self, name)):
                raise ScpoError(f"setting {name}={getattr(self, name)}: must be a finite number")
        if self.vote_rule != "scrl":
            return
        funcs = getattr(self, "reward_funcs", None)  # scpo grpo's: the rule changes these rewards only
        if funcs is not None and not set(funcs) & set(SCRL_REWARDS):
            raise ScpoError(
                f"setting vote_rule=scrl changes the {' and '.join(SCRL_REWARDS)} rewards, and "
                f"reward_funcs={list(funcs)} has neither: add one or drop vote_rule"
            )
        teacher = getattr(self, "vote_teacher", "current")
        if teacher != "current":
            raise ScpoError(
                f"settings vote_rule=scrl and vote_teacher={teacher}: SCRL's entropy gate needs the "
                "voters' token entropies, and scpo grpo computes the policy's only; use vote_teacher: "
                "current"
            )


def uses_scrl(settings) -> bool:
    return getattr(settings, "vote_rule", "plain") == "scrl"


def scrl_rewards(batch, s, continuous: bool) -> list[float]:
    """Every local rollout's SCRL reward (binary, or continuous for vote_share)."""
    if batch.group_entropies is None:
        raise ScpoError(
            "vote_rule=scrl needs each group's token entropies, and the batch has none (the reward must "
            "declare needs_token_stats)"
        )
    th = s.scrl_thresholds()
    labeled = []

    def of_group(i, group):
        entropies = batch.group_entropies[i]
        labels = scrl_labels(group.votes, entropies, th)
        labeled.append(labels)
        if continuous:
            return continuous_rewards(
                group.votes,
                labels,
                entropies,
                th.tau_low,
                s.scrl_a_plus,
                s.scrl_a_minus,
                s.scrl_lambda_h,
                s.scrl_unparsed_reward,
            )
        return binary_rewards(group.votes, labels, s.scrl_unparsed_reward)

    values = batch.per_group(of_group)
    log = batch.extras.get("log_metric")
    if log is not None and labeled:  # SCRL's own metrics (scrl_utils.py:376-382); every process has every group
        log("scrl/positive_ratio", sum(lab.positive is not None for lab in labeled) / len(labeled))
        log("scrl/negative_answers", sum(len(lab.negatives) for lab in labeled) / len(labeled))
    return values


class VoteReward(Reward):
    """A vote reward (majority, vote share) that `vote_rule: scrl` turns into SCRL's: `plain` is the group's own
    reward, `continuous` picks SCRL's continuous (vote share) or binary (majority) form."""

    settings = ScrlRewardSettings
    continuous = False

    def __init__(self, settings=None):
        super().__init__(settings)
        self.scrl = self.needs_token_stats = uses_scrl(settings)  # SCRL's entropy gate reads the policy's entropies

    def plain(self, group) -> list[float]:
        raise NotImplementedError

    def __call__(self, batch):
        if self.scrl:
            return scrl_rewards(batch, self.s, continuous=self.continuous)
        return batch.per_group(lambda i, group: self.plain(group))
