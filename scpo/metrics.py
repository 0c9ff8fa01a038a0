"""Evaluation metrics, pure Python: pass@k (unbiased), majority accuracy, standard errors, vote calibration.

Somers' D between vote share and correctness is computed over completions: for a correct and an
incorrect completion, +1 when the correct one has the larger vote share, -1 when smaller, 0 when
tied; averaged over all such pairs (= 2 AUC - 1 with vote share as the score). The ScPO paper
reports 0.80 on GSM8K.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021) for n samples of which c are correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def somers_d(scores: list[float], correct: list[bool]) -> float | None:
    """D of correctness given score; None when every completion is correct or every one is wrong."""
    pos = sorted(s for s, c in zip(scores, correct) if c)
    neg = sorted(s for s, c in zip(scores, correct) if not c)
    if not pos or not neg:
        return None
    concordant = discordant = 0
    for s in pos:
        concordant += bisect_left(neg, s)  # negatives with a lower score
        discordant += len(neg) - bisect_right(neg, s)  # negatives with a higher score
    return (concordant - discordant) / (len(pos) * len(neg))


def calibration(scores: list[float], correct: list[bool], bins: int = 10) -> list[dict]:
    """Accuracy per vote-share bin: [{lo, hi, n, accuracy}], empty bins left out."""
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [c for s, c in zip(scores, correct) if lo <= s < hi or (b == bins - 1 and s == 1.0)]
        if inside:
            out.append({"lo": lo, "hi": hi, "n": len(inside), "accuracy": sum(inside) / len(inside)})
    return out
