"""Adaptive sampling: stop drawing samples for a prompt once its vote is settled.

Pure Python. Samples are drawn in rounds; after each round a stopping rule looks at the vote
counts of the parsed answers drawn so far (completions with no answer never lead):

- `overtake`: stop when the leader cannot be overtaken, nor even tied, by the runner-up (or by a
  new answer) even if every remaining sample up to k went to it. Exact: the majority of the
  drawn samples is the majority of the full k samples.
- `beta` (Adaptive-Consistency, Aggarwal et al. 2023): stop when P(p_leader > p_runner_up) >=
  confidence under the posterior Beta(v1 + 1, v2 + 1) of the top two counts.
- `dirichlet`: stop when P(the leader's share is the largest) >= confidence under the posterior
  Dirichlet(v + 1) over the answers seen and one unseen answer (Monte Carlo, seeded by the counts).
"""

from __future__ import annotations

import random
from functools import lru_cache
from math import comb
from typing import Sequence

RULES = ("none", "overtake", "beta", "dirichlet")


def top_two(counts: Sequence[int]) -> tuple[int, int]:
    ordered = sorted((c for c in counts if c > 0), reverse=True)
    return (ordered[0] if ordered else 0), (ordered[1] if len(ordered) > 1 else 0)


def beta_leader_probability(v1: int, v2: int) -> float:
    """P(p > 1/2) for p ~ Beta(v1 + 1, v2 + 1): exact for integer counts, a binomial tail.

    With a = v1 + 1, b = v2 + 1: I_{1/2}(a, b) = P(Binomial(a + b - 1, 1/2) >= a).
    """
    n = v1 + v2 + 1
    return sum(comb(n, j) for j in range(v1 + 1)) / 2**n


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


def should_stop(counts: Sequence[int], drawn: int, k: int, rule: str, confidence: float = 0.95,
                min_samples: int = 1) -> bool:
    """Whether a prompt with these parsed-answer vote counts after `drawn` of at most `k` samples is settled."""
    if drawn >= k:
        return True
    if rule == "none" or drawn < min_samples:
        return False
    leader, runner_up = top_two(counts)
    if leader == 0:
        return False
    if rule == "overtake":
        return leader - runner_up > k - drawn
    if rule == "beta":
        return beta_leader_probability(leader, runner_up) >= confidence
    if rule == "dirichlet":
        return dirichlet_leader_probability(counts) >= confidence
    raise ValueError(f"unknown stopping rule {rule!r}; expected one of {RULES}")


def leader(votes) -> str | None:
    """The answer with the most votes (a `voting.PromptVotes`), or None when there is none or two tie."""
    groups = [g for g in votes.groups if g.votes > 0]
    if not groups or (len(groups) > 1 and groups[1].votes == groups[0].votes):
        return None
    return groups[0].answer


def same_majority(a: str | None, b: str | None, task) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return task.equivalent(a, b)
