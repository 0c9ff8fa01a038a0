"""Adaptive sampling rules, a registry: `adaptive: <name>` is scpo/adaptive/<name>.py (or a dotted path).

`none` draws all k samples. Every rule sees only the counts; `should_stop` applies what is common
to all of them (k reached, the first round, no parsed answer yet).
"""

from __future__ import annotations

from collections.abc import Sequence

from scpo.adaptive._base import StoppingRule, leader, same_majority, top_two
from scpo.adaptive.beta import beta_leader_probability
from scpo.adaptive.dirichlet import dirichlet_leader_probability
from scpo.core.registry import Registry

RULES: Registry = Registry("adaptive rule", __name__, StoppingRule, setting="adaptive")


def rule_names() -> tuple[str, ...]:
    return ("none", *RULES.names())


def check_rule(name: str) -> None:
    """A named error for an unknown rule (a dotted path to a user rule is imported here)."""
    if name != "none":
        RULES.get(name)


def should_stop(
    counts: Sequence[int],
    drawn: int,
    k: int,
    rule: str,
    confidence: float = 0.95,
    min_samples: int = 1,
    answers: Sequence | None = None,
    last_round: int | None = None,
) -> bool:
    """Whether a prompt with these parsed-answer vote counts after `drawn` of at most `k` samples is settled."""
    if drawn >= k:
        return True
    if rule == "none" or drawn < min_samples:
        return False
    if top_two(counts)[0] == 0:
        return False
    return RULES.get(rule)().settled(counts, drawn, k, confidence, answers, last_round)


__all__ = [
    "RULES",
    "StoppingRule",
    "beta_leader_probability",
    "check_rule",
    "dirichlet_leader_probability",
    "leader",
    "rule_names",
    "same_majority",
    "should_stop",
    "top_two",
]
