"""Consistency of internal rewards: rank correlations (CREAM) and preference agreement (SCIR). Pure Python.

- Kendall tau-b (ties in either ranking handled as scipy.stats.kendalltau's default) and Spearman
  rho (Pearson correlation of average ranks, as scipy.stats.spearmanr).
- CREAM (Wang et al. 2025): C = (tau + 1) / 2 in [0, 1] between the current and the previous
  iteration's rewards of one prompt's responses. When a ranking is constant the correlation is
  undefined (scipy says nan); C is then 0.5: the two models tell nothing about each other, so the
  soft label is a coin flip and the pair contributes no net preference.
- SCIR (Zhou et al. 2025): each internal reward gives a Bradley-Terry preference probability for the
  candidate pair, P(chosen > rejected) = sigmoid((r_chosen - r_rejected) / scale). The judge's
  reward is its mean 5-point score (scale 1: one point of difference is P = 0.73); the implicit
  reward is a log-probability ratio (the DPO reward is beta * ratio: scale = 1 / beta).
  A pair is kept when every reward's probability is >= threshold (all agree that chosen is better).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _pair_counts(x: Sequence[float], y: Sequence[float]) -> tuple[int, int, int]:
    """(concordant - discordant pairs, pairs untied in x, pairs untied in y): the terms of tau-b."""
    n = len(x)
    s = pairs_x = pairs_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            s += dx * dy
            pairs_x += dx != 0
            pairs_y += dy != 0
    return s, pairs_x, pairs_y


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall tau-b; nan when either ranking is constant (as scipy)."""
    if len(x) != len(y):
        raise ValueError(f"rankings of different lengths ({len(x)} and {len(y)})")
    s, pairs_x, pairs_y = _pair_counts(x, y)
    if pairs_x == 0 or pairs_y == 0:
        return math.nan
    return s / math.sqrt(pairs_x * pairs_y)


def average_ranks(x: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank (scipy.stats.rankdata 'average')."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (Pearson on average ranks); nan when either ranking is constant (as scipy)."""
    if len(x) != len(y):
        raise ValueError(f"rankings of different lengths ({len(x)} and {len(y)})")
    rx, ry = average_ranks(x), average_ranks(y)
    n = len(rx)
    if n < 2:
        return math.nan
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


CORRELATIONS = {"kendall": kendall_tau, "spearman": spearman_rho}


def consistency(current: Sequence[float], previous: Sequence[float], metric: str = "kendall") -> float:
    """CREAM's C = (corr + 1) / 2 in [0, 1]; 0.5 when the correlation is undefined (a constant ranking)."""
    if metric not in CORRELATIONS:
        raise ValueError(f"unknown consistency metric {metric!r}; expected one of {sorted(CORRELATIONS)}")
    corr = CORRELATIONS[metric](current, previous)
    if math.isnan(corr):
        return 0.5
    return min(1.0, max(0.0, (corr + 1) / 2))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


def preference_probability(r_chosen: float, r_rejected: float, scale: float = 1.0) -> float:
    """Bradley-Terry: P(chosen preferred) = sigmoid((r_chosen - r_rejected) / scale)."""
    if scale <= 0:
        raise ValueError(f"preference scale must be > 0 (got {scale})")
    return sigmoid((r_chosen - r_rejected) / scale)


def agreeing(probabilities: dict[str, float], threshold: float = 0.5) -> bool:
    """SCIR: every internal reward prefers chosen with probability >= threshold (and > 0.5: a tie is no vote)."""
    return bool(probabilities) and all(p >= threshold and p > 0.5 for p in probabilities.values())


def scir_filter(candidates: list[dict], threshold: float = 0.5) -> tuple[list[dict], float]:
    """Keeps the candidate pairs whose `probabilities` (reward name -> P(chosen > rejected)) all agree.

    Returns (kept pairs in their order, agreement rate = kept / candidates; nan for no candidates).
    """
    kept = [c for c in candidates if agreeing(c["probabilities"], threshold)]
    rate = len(kept) / len(candidates) if candidates else math.nan
    return kept, rate


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (the spread of C across pairs)."""
    if not values:
        return math.nan, math.nan
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))
