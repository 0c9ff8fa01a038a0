"""`adaptive: overtake`: stop when the leader can be neither overtaken nor tied by the remaining samples.

Exact: even if every sample still to come up to k went to the runner-up (or to a new answer), the
leader would stay ahead, so the majority of the drawn samples is the majority of the full k.
"""

from __future__ import annotations

from scpo.adaptive._base import StoppingRule, top_two


class Overtake(StoppingRule):
    name = "overtake"

    def settled(self, counts, drawn, k, confidence, answers=None, last_round=None):
        leader, runner_up = top_two(counts)
        return leader - runner_up > k - drawn
