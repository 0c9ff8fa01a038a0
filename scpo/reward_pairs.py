"""Preference pairs from internal rewards (Self-Rewarding, implicit DPO reward, CREAM, SCIR). Pure Python.

For one prompt with N scored responses: chosen = a response with the highest reward, rejected =
one with the lowest; responses without a reward (every judge output unreadable) are left out; equal
highest and lowest rewards give no pair ("tie"). Among equal maxima (minima) the pick is random with
a generator seeded by (seed, prompt id), so a prompt's pair does not depend on the rest of the file.

- CREAM: the pair also carries C = consistency(current rewards, previous iteration's rewards) over
  the prompt's responses (scpo/consistency.py); None when there is no previous model.
- SCIR: every named reward signal gives P(chosen > rejected); the pair carries those probabilities
  and is kept only when they all agree (the filter is applied by the caller).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from scpo.consistency import consistency, preference_probability

REWARD_SIGNALS = ("judge", "implicit")
SKIP_REASONS = ("too_few_scored", "tie")


@dataclass
class RewardPick:
    chosen: int
    rejected: int
    chosen_reward: float
    rejected_reward: float
    consistency: float | None = None  # CREAM
    probabilities: dict[str, float] = field(default_factory=dict)  # SCIR: signal -> P(chosen > rejected)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def pick_by_reward(rewards: Sequence[float | None], seed: int, prompt_id) -> tuple[int, int] | str:
    """(chosen index, rejected index): max vs min reward, or the reason there is no pair."""
    scored = [i for i, r in enumerate(rewards) if _finite(r)]
    if len(scored) < 2:
        return "too_few_scored"
    high = max(rewards[i] for i in scored)
    low = min(rewards[i] for i in scored)
    if high == low:
        return "tie"
    rng = random.Random(f"{seed}:{prompt_id}")
    chosen = rng.choice([i for i in scored if rewards[i] == high])
    rejected = rng.choice([i for i in scored if rewards[i] == low])
    return chosen, rejected


def reward_pick(
    rewards: Sequence[float | None],
    seed: int,
    prompt_id,
    *,
    previous: Sequence[float | None] | None = None,
    metric: str = "kendall",
    signals: dict[str, Sequence[float | None]] | None = None,
    scales: dict[str, float] | None = None,
) -> RewardPick | str:
    """The pair of one prompt with its CREAM consistency (given `previous`) and SCIR probabilities (given `signals`).

    With `signals`, only responses that every signal scored are candidates, so each signal can
    judge the pair.
    """
    usable = list(rewards)
    if signals:
        for i in range(len(usable)):
            if not all(_finite(values[i]) for values in signals.values()):
                usable[i] = None
    picked = pick_by_reward(usable, seed, prompt_id)
    if isinstance(picked, str):
        return picked
    c, r = picked
    result = RewardPick(c, r, float(usable[c]), float(usable[r]))
    if previous is not None:
        both = [i for i in range(len(rewards)) if _finite(rewards[i]) and _finite(previous[i])]
        result.consistency = (
            consistency([rewards[i] for i in both], [previous[i] for i in both], metric) if len(both) >= 2 else 0.5
        )
    for name, values in (signals or {}).items():
        scale = (scales or {}).get(name, 1.0)
        result.probabilities[name] = preference_probability(float(values[c]), float(values[r]), scale)
    return result
