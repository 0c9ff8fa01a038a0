"""`adaptive: beta` (Adaptive-Consistency, Aggarwal et al. 2023): stop when P(p_leader > p_runner_up) >= confidence.

The posterior of the top two counts is Beta(v1 + 1, v2 + 1); P(p > 1/2) is computed exactly for
integer counts, as a binomial tail.
"""

from __future__ import annotations

from math import comb

from scpo.adaptive._base import StoppingRule, top_two


def beta_leader_probability(v1: int, v2: int) -> float:
    """P(p > 1/2) for p ~ Beta(v1 + 1, v2 + 1): exact for integer counts, a binomial tail.

    With a = v1 + 1, b = v2 + 1: I_{1/2}(a, b) = P(Binomial(a + b - 1, 1/2) >= a).
    """
    n = v1 + v2 + 1
    return sum(comb(n, j) for j in range(v1 + 1)) / 2**n


class Beta(StoppingRule):
    name = "beta"

    def settled(self, counts, drawn, k, confidence, answers=None, last_round=None):
        return beta_leader_probability(*top_two(counts)) >= confidence
