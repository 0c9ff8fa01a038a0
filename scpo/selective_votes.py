"""SCRL's selective vote labels (Yan et al. 2026, "What If Consensus Lies? Selective-Complementary Reinforcement
Learning at Test Time", arXiv 2603.19880; code Jasper-Yan/SCRL): which answers of a prompt's votes become a
positive label, which become negative labels, and the rewards its RL code gives them. Pure Python.

Why: TTRL's majority reward trusts any plurality; when the answers are spread out the majority is often wrong and
gets reinforced. SCRL keeps a positive label only under a clear consensus and adds negative labels for rare answers
the model was unsure of (the paper's "Selective Positive" and "Entropy-Gated Negative Pseudo-Labeling").

The rule, as `determine_pseudo_labels` in verl/verl/trainer/ppo/scrl_utils.py (SCRL's file:line below):
- share(a) = votes(a) / k, k counting every voting completion, answer or not (:97, :107);
- positive: the most-voted answer (no answer never counts, :118) when share >= tau_pos (:124) and, when a second
  answer exists, share(top) - share(second) > tau_marg (:127-128; one answer alone needs no margin, :130-132);
- negatives: every answer other than the positive (and never "no answer") with share < tau_low and a mean response
  entropy >= the prompt's mean (:143): "above-average" is >= the mean over all k voting completions, those
  without an answer included (:113), and an answer's entropy is the mean over its completions (:110);
- a response's entropy is its mean token entropy, H_t = -sum_v p_v log p_v of the policy's next-token
  distribution (logits / rollout temperature, verl dp_actor.py:184), averaged over the response's tokens (:207-210).
Shares and the margin are computed in floating point exactly as SCRL does (count / k, then the difference), so a
margin of exactly tau_marg can compare either way by one rounding, as in SCRL (e.g. 11/20 - 8/20 > 0.15 holds).
Means are `math.fsum(x) / n` (SCRL: `np.mean`); they differ only within a rounding of a tie.

The rewards, as `reward_func` in verl/verl/utils/reward_score/scrl_math/__init__.py (reward_mode binary, SCRL's
default, ppo_trainer_scrl.yaml:32): +1 for the positive answer, -1 for a negative one, 0 for the rest (:105-115),
and -1 for a response with no answer (:65-66). reward_mode continuous (its run_example.sh): positive a_plus * share
(the docstring's "- tau_pos" is not in the code, :151), negative -a_minus * (tau_low - share), others 0, each minus
lambda_h * (H(a) - H_mean) with H(a) the answer's mean entropy (:147-159).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scpo.core.errors import ScpoError
from scpo.core.settings import Block
from scpo.voting import UNPARSED, PromptVotes

VOTE_RULES = ("plain", "scrl")


@dataclass
class ScrlLabelSettings(Block):
    vote_rule: str = "plain"  # plain: the votes' usual rule (ScPO's most- vs least-voted pair; TTRL's majority, the vote share); scrl: SCRL's selective positive and entropy-gated negative labels (arXiv 2603.19880)
    scrl_tau_pos: float = 0.5  # vote_rule scrl: the positive answer's least vote share (SCRL's tau_pos: ppo_trainer_scrl.yaml:27, ray_trainer.py:1153; its run_example.sh uses 0.375)
    scrl_tau_marg: float = 0.15  # vote_rule scrl: the positive's share must beat the runner-up's by more than this (tau_marg: ppo_trainer_scrl.yaml:28, ray_trainer.py:1154; run_example.sh 0.125)
    scrl_tau_low: float = 0.15  # vote_rule scrl: a negative answer's share is below this (tau_low_min: ppo_trainer_scrl.yaml:29, ray_trainer.py:1155; run_example.sh 0.125)

    HASHED_WHEN_SET = ("vote_rule", "scrl_tau_pos", "scrl_tau_marg", "scrl_tau_low")

    def __post_init__(self):
        super().__post_init__()
        if self.vote_rule not in VOTE_RULES:
            raise ScpoError(f"setting vote_rule={self.vote_rule!r}: expected one of {', '.join(VOTE_RULES)}")
        for name in ("scrl_tau_pos", "scrl_tau_marg", "scrl_tau_low"):
            value = getattr(self, name)
            if not 0 <= value <= 1:  # NaN fails too
                raise ScpoError(f"setting {name}={value}: a vote share, must be in [0, 1]")

    def scrl_thresholds(self) -> ScrlThresholds:
        return ScrlThresholds(self.scrl_tau_pos, self.scrl_tau_marg, self.scrl_tau_low)


@dataclass(frozen=True)
class ScrlThresholds:
    tau_pos: float = 0.5  # scrl_utils.py:52
    tau_marg: float = 0.15  # scrl_utils.py:53
    tau_low: float = 0.15  # scrl_utils.py:54 (tau_low_min)


@dataclass
class ScrlLabels:
    """One prompt's SCRL labels over its answer groups (indices into `PromptVotes.groups`)."""

    positive: int | None  # the pseudo-positive answer group; None: no consensus clear enough
    negatives: list[int]  # the negative answer groups, most-voted first
    shares: list[float]  # per group: votes / k
    group_entropy: list[float | None]  # per group: the mean entropy of its voting completions (None: it has none)
    mean_entropy: float  # over all voting completions, with or without an answer
    why_no_positive: str | None = None  # all_unparsed | below_tau_pos | margin (None when there is a positive)


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def scrl_labels(votes: PromptVotes, entropies: Sequence[float], th: ScrlThresholds) -> ScrlLabels:
    """SCRL's positive and negative answers of one prompt; `entropies[i]` is completion i's mean token entropy (only
    the voting completions' are read)."""
    if len(entropies) != len(votes.group_of):
        raise ValueError(f"{len(entropies)} entropies for {len(votes.group_of)} completions")
    k = votes.k
    voting = votes.voting if votes.voting is not None else [True] * len(votes.group_of)
    shares = [g.votes / k if k else 0.0 for g in votes.groups]
    group_entropy = [mean([entropies[i] for i in g.members if voting[i]]) if g.votes else None for g in votes.groups]
    mean_entropy = mean([e for e, v in zip(entropies, voting) if v])
    # Answers with votes, most-voted first (SCRL's Counter.most_common without "no answer", :100, :118).
    ranked = sorted((gi for gi, g in enumerate(votes.groups) if g.votes > 0), key=lambda gi: -votes.groups[gi].votes)
    positive, why = None, None
    if not ranked:
        why = "all_unparsed"
    elif shares[ranked[0]] < th.tau_pos:
        why = "below_tau_pos"
    elif len(ranked) >= 2 and not shares[ranked[0]] - shares[ranked[1]] > th.tau_marg:
        why = "margin"
    else:
        # With tau_marg >= 0 a tie at the top never passes the margin, so which tied answer leads does not matter.
        positive = ranked[0]
    negatives = [
        gi for gi in ranked if gi != positive and shares[gi] < th.tau_low and group_entropy[gi] >= mean_entropy
    ]
    return ScrlLabels(positive, negatives, shares, group_entropy, mean_entropy, why)


def binary_rewards(votes: PromptVotes, labels: ScrlLabels, unparsed_reward: float = -1.0) -> list[float]:
    """SCRL's binary reward per completion: +1 positive answer, -1 negative answer, 0 other, `unparsed_reward` for a
    completion with no answer (scrl_math/__init__.py:65-66, :105-115)."""
    negatives = set(labels.negatives)
    return [
        unparsed_reward if g == UNPARSED else 1.0 if g == labels.positive else -1.0 if g in negatives else 0.0
        for g in votes.group_of
    ]


def continuous_rewards(
    votes: PromptVotes,
    labels: ScrlLabels,
    entropies: Sequence[float],
    tau_low: float,
    a_plus: float = 1.0,
    a_minus: float = 1.0,
    lambda_h: float = 0.1,
    unparsed_reward: float = -1.0,
) -> list[float]:
    """SCRL's continuous reward per completion (scrl_math/__init__.py:117-159). An answer without votes (a rollout
    beside a vote teacher) has share 0 and its own entropy, as SCRL's fallback for an answer it did not count
    (:128-129)."""
    negatives = set(labels.negatives)
    out = []
    for i, g in enumerate(votes.group_of):
        if g == UNPARSED:
            out.append(unparsed_reward)
            continue
        share = labels.shares[g]
        h = labels.group_entropy[g] if labels.group_entropy[g] is not None else entropies[i]
        penalty = lambda_h * (h - labels.mean_entropy)
        if g == labels.positive:
            out.append(a_plus * share - penalty)
        elif g in negatives:
            out.append(-a_minus * (tau_low - share) - penalty)
        else:
            out.append(-penalty)
    return out


def surprisal(row: dict) -> float | None:
    """A sample row's mean token surprisal, -1/n sum_t log pi(y_t | x, y_<t), from the sampler's raw log-probs (the
    row's `token_logprobs`, else `logprob` / `num_tokens`); None when the row has neither.

    What it estimates: the sampler stores only the sampled token's log-prob (vLLM `logprobs=0`, raw: temperature 1),
    not the distribution, so SCRL's entropy H_t = E_{v~p_t}[-log p_t(v)] is replaced by its one-sample estimate
    -log p_t(y_t). Sampled at temperature 1 without top-p its expectation is the mean token entropy at temperature
    1; sampled at T < 1 or with top-p it is the cross-entropy of the sampling distribution to the raw one, which
    also grows with the model's uncertainty. SCRL only compares an answer's mean with the prompt's mean, so the
    scale does not matter; the per-token noise averages over the response's tokens."""
    logprobs = row.get("token_logprobs")
    if logprobs is not None and len(logprobs):
        return -math.fsum(logprobs) / len(logprobs)
    n = row.get("num_tokens")
    if n == 0:
        return 0.0  # an empty completion: SCRL's masked mean over no tokens is 0 (scrl_utils.py:209-210)
    if row.get("logprob") is not None and n:
        return -float(row["logprob"]) / n
    return None
