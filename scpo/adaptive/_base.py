"""Adaptive sampling: stop drawing samples for a prompt once its vote is settled.

Pure Python. Samples are drawn in rounds; after each round a stopping rule (one file each in
scpo/adaptive/, chosen by the `adaptive` setting) looks at the vote counts of the parsed answers
drawn so far (completions with no answer never lead). The rules say only whether the vote is
settled; the bookkeeping common to all of them is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class StoppingRule:
    """A rule for `adaptive: <name>`: whether a prompt's vote counts after `drawn` of at most `k` samples are settled.

    `answers` are the drawn samples' answer keys in order (None: no answer) and `last_round` how many of
    them the last round drew, for rules that look at a window (ESC) rather than at the counts.
    """

    name: ClassVar[str]

    def settled(
        self,
        counts: Sequence[int],
        drawn: int,
        k: int,
        confidence: float,
        answers: Sequence | None = None,
        last_round: int | None = None,
    ) -> bool:
        raise NotImplementedError


def top_two(counts: Sequence[int]) -> tuple[int, int]:
    ordered = sorted((c for c in counts if c > 0), reverse=True)
    return (ordered[0] if ordered else 0), (ordered[1] if len(ordered) > 1 else 0)


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
