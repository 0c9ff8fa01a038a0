"""`negative_entropy` (RENT, Prabhudesai et al. 2025, arXiv 2505.22660; EM-RL, Agarwal et al. 2025, arXiv
2505.15134): minus the mean token entropy of the policy's own next-token distributions over the rollout,
R(y) = -(1/T) sum_t H(p_t) (logits divided by the sampling temperature).

Which tokens count: RENT's reward averages over the response's tokens (`entropy_tokens: all`, the default);
RENT reports that the entropy of the last tokens correlates best with accuracy ("last chunk"):
`entropy_tokens: last` averages over the final `entropy_last_fraction` of the tokens (at least one). The chunk
size is a setting: scpo's default 1/3 follows the paper's description, RENT's code was not available to check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scpo.core.errors import ScpoError
from scpo.core.settings import Block
from scpo.rewards._base import Reward

TOKEN_CHOICES = ("all", "last")


@dataclass
class NegativeEntropySettings(Block):
    entropy_tokens: str = "all"  # negative_entropy: all | last (the final entropy_last_fraction of the tokens)
    entropy_last_fraction: float = 1 / 3  # negative_entropy with entropy_tokens last: the share of tokens that count

    HASHED_WHEN_SET = ("entropy_tokens", "entropy_last_fraction")  # joined later: unset, earlier grpo runs keep their manifests

    def __post_init__(self):
        super().__post_init__()
        if self.entropy_tokens not in TOKEN_CHOICES:
            raise ScpoError(f"setting entropy_tokens={self.entropy_tokens!r}: one of {', '.join(TOKEN_CHOICES)}")
        if not 0 < self.entropy_last_fraction <= 1:
            raise ScpoError(f"setting entropy_last_fraction={self.entropy_last_fraction}: must be in (0, 1]")


def counted(entropies: list[float], tokens: str, fraction: float) -> list[float]:
    if tokens == "all" or not entropies:
        return entropies
    return entropies[-max(1, math.ceil(fraction * len(entropies))):]


class NegativeEntropy(Reward):
    name = "negative_entropy"
    settings = NegativeEntropySettings
    needs_token_stats = True

    def __call__(self, batch):
        tokens = getattr(self.s, "entropy_tokens", "all")
        fraction = getattr(self.s, "entropy_last_fraction", 1 / 3)
        values = []
        for s in batch.token_stats:
            chosen = counted(s.entropy, tokens, fraction)
            values.append(-sum(chosen) / len(chosen) if chosen else 0.0)
        return values
