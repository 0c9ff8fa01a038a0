"""`negative_entropy` (RENT, Prabhudesai et al. 2025, arXiv 2505.22660, code satrams/rent-rl; EM-RL, Agarwal et
al. 2025, arXiv 2505.15134): minus the token entropy of the policy's own next-token distributions over the
rollout (logits divided by the sampling temperature).

As RENT's code (verl/trainer/ppo/ray_trainer.py, `minimize_entropy`): R(y) = -(1/T) sum_t H(p_t) over all the
response's tokens (`entropy_aggregate: mean`, `entropy_tokens: all`, the defaults), and with its `format`
experiment, which its example run uses (README: exps=[grpo, entropy, format, ...]), a rollout whose answer does
not parse gets -entropy_base = -7.0 instead (`entropy_unparsed_reward: -7.0`; null: no format penalty).
EM-RL's paper states the negative sum of the token entropies: `entropy_aggregate: sum`.
`entropy_tokens: last` is scpo's option, not RENT's code: the paper reports that the last tokens' entropy
correlates best with accuracy, and it averages the final `entropy_last_fraction` of the tokens (at least one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scpo.core.errors import ScpoError
from scpo.core.settings import Block
from scpo.rewards._base import Reward

TOKEN_CHOICES = ("all", "last")
AGGREGATES = ("mean", "sum")


@dataclass
class NegativeEntropySettings(Block):
    entropy_tokens: str = "all"  # negative_entropy: all | last (the final entropy_last_fraction of the tokens)
    entropy_last_fraction: float = 1 / 3  # negative_entropy with entropy_tokens last: the share of tokens that count
    entropy_aggregate: str = "mean"  # negative_entropy: mean (RENT's code) | sum (EM-RL's paper) over the tokens
    entropy_unparsed_reward: float | None = -7.0  # negative_entropy: the reward of a rollout without an answer (RENT's
    # format experiment: -entropy_base, 7.0 in its code); null: its entropy like any other

    HASHED_WHEN_SET = (
        "entropy_tokens",
        "entropy_last_fraction",
        "entropy_aggregate",
        "entropy_unparsed_reward",
    )  # joined later: unset, earlier grpo runs keep their manifests

    def __post_init__(self):
        super().__post_init__()
        if self.entropy_tokens not in TOKEN_CHOICES:
            raise ScpoError(f"setting entropy_tokens={self.entropy_tokens!r}: one of {', '.join(TOKEN_CHOICES)}")
        if self.entropy_aggregate not in AGGREGATES:
            raise ScpoError(f"setting entropy_aggregate={self.entropy_aggregate!r}: one of {', '.join(AGGREGATES)}")
        if self.entropy_unparsed_reward is not None and not math.isfinite(self.entropy_unparsed_reward):
            raise ScpoError(f"setting entropy_unparsed_reward={self.entropy_unparsed_reward}: a finite number or null")
        if not 0 < self.entropy_last_fraction <= 1:
            raise ScpoError(f"setting entropy_last_fraction={self.entropy_last_fraction}: must be in (0, 1]")


def counted(entropies: list[float], tokens: str, fraction: float) -> list[float]:
    if tokens == "all" or not entropies:
        return entropies
    return entropies[-max(1, math.ceil(fraction * len(entropies))) :]


class NegativeEntropy(Reward):
    name = "negative_entropy"
    settings = NegativeEntropySettings
    needs_token_stats = True

    def __call__(self, batch):
        tokens = getattr(self.s, "entropy_tokens", "all")
        fraction = getattr(self.s, "entropy_last_fraction", 1 / 3)
        total = getattr(self.s, "entropy_aggregate", "mean") == "sum"
        unparsed = getattr(self.s, "entropy_unparsed_reward", -7.0)
        values = []
        for s, answer in zip(batch.token_stats, batch.answers):
            if answer is None and unparsed is not None:
                values.append(float(unparsed))
                continue
            chosen = counted(s.entropy, tokens, fraction)
            values.append(-sum(chosen) / (1 if total else len(chosen)) if chosen else 0.0)
        return values
