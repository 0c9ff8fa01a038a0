"""`adaptive: dirichlet`: stop when P(the leader's share is the largest) >= confidence under Dirichlet(v + 1).

The posterior covers the answers seen and one unseen answer; the probability is a Monte Carlo
estimate seeded by the counts (the same counts always give the same answer), cached by pattern.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache

from scpo.adaptive._base import StoppingRule


def dirichlet_leader_probability(counts: Sequence[int], draws: int = 2000) -> float:
    """P(the most-voted answer has the largest share) under Dirichlet(counts + 1, 1 for an unseen answer)."""
    return _dirichlet(tuple(sorted((c for c in counts if c > 0), reverse=True)), draws)


@lru_cache(maxsize=4096)  # few distinct count patterns recur across prompts
def _dirichlet(counts: tuple[int, ...], draws: int) -> float:
    if not counts:
        return 0.0
    alphas = [c + 1 for c in counts] + [1]
    rng = random.Random(",".join(map(str, counts)))  # the same counts always give the same answer
    wins = 0
    for _ in range(draws):
        x = [rng.gammavariate(a, 1.0) for a in alphas]
        wins += x[0] >= max(x[1:])
    return wins / draws


class Dirichlet(StoppingRule):
    name = "dirichlet"

    def settled(self, counts, drawn, k, confidence, answers=None, last_round=None):
        return dirichlet_leader_probability(counts) >= confidence
