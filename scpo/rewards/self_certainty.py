"""`self_certainty` (Intuitor, Zhao et al. 2025, arXiv 2505.19590; code: sunblaze-ucb/Intuitor, verl
`self_certainty_from_logits`): the mean over the rollout's tokens of KL(U || p_theta), how far the policy's
next-token distribution is from uniform, from the policy's own logits (divided by the sampling temperature).

Intuitor's code computes logsumexp(z) - mean(z), without the constant -log V; scpo keeps the constant so the
value is the KL itself (GRPO's group-normalised advantages are the same either way). Every completion token
counts, its EOS included (verl's response mask), all of a rollout the length limit cut off.

Combined with other rewards: Intuitor normalises each reward within its group before adding them; TRL by default
adds the weighted rewards, then normalises the sum. TRL's `multi_objective_aggregation: normalize_then_sum` is
Intuitor's order (TRL then rescales the summed advantages by one batch-wide standard deviation, a common factor
of every advantage); scpo grpo passes it to TRL as it is.
"""

from __future__ import annotations

from scpo.rewards._base import Reward


class SelfCertainty(Reward):
    name = "self_certainty"
    needs_token_stats = True

    def __call__(self, batch):
        return [sum(s.self_certainty) / len(s.self_certainty) if s.self_certainty else 0.0 for s in batch.token_stats]
