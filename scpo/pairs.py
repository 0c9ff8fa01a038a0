"""ScPO preference pairs from votes (Prasad et al. 2024), and gold pairs for IRPO / semi-supervised runs.

Pure Python. For one prompt with k voting samples:
  chosen   = a voting completion from the most-voted answer group (never the unparseable group, never one of
             ScPO's extra samples: those are drawn "to sample rejected responses", ScPO section 3),
  rejected = a completion from the least-voted group (the unparseable group included),
  kept only if V(chosen) >= tau, weight w = (V(chosen) - V(rejected)) / k; equal votes give no pair.
With SCRL's labels (vote_rule scrl, scpo/selective_votes.py) chosen comes from its positive answer and rejected from
its least-voted negative answer instead (`pick_by_scrl`).
Random picks use a generator seeded by (seed, prompt id), so a prompt's pair does not depend on
which other prompts are in the file (shards and re-runs agree).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from scpo.core.errors import ScpoError
from scpo.selective_votes import ScrlLabels
from scpo.voting import UNPARSED, PromptVotes

MODES = ("unsupervised", "semi_supervised", "supervised")

# Why a prompt gave no pair; the pairs stage counts these.
SKIP_REASONS = (
    "all_unparsed",
    "unanimous",
    "below_tau",
    "top_tie",
    "tie",
    "no_correct",
    "no_incorrect",
    "no_gold",
    "teacher_top_unsampled",
    "scrl_no_positive",
    "scrl_no_negative",
)


@dataclass
class PairRule:
    tau: float = 0.5  # <= 1: a fraction of k; > 1: a vote count
    mode: str = "unsupervised"
    seed: int = 0
    weighting: str = "margin"  # "margin": w = (V+ - V-)/k (ScPO); "none": w = 1 (the unweighted ablation)
    top_tie: str = "skip"  # two answers share the top vote: "skip" the prompt, or pick one at "random"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ScpoError(f"setting mode={self.mode!r}: expected one of {MODES}")
        if self.weighting not in ("margin", "none"):
            raise ScpoError(f"setting weighting={self.weighting!r}: expected 'margin' or 'none'")
        if self.top_tie not in ("skip", "random"):
            raise ScpoError(f"setting top_tie={self.top_tie!r}: expected 'skip' or 'random'")
        if not self.tau > 0:
            raise ScpoError(f"setting tau={self.tau}: must be > 0 (a fraction of k if <= 1, else a vote count)")
        if self.tau > 1 and not float(self.tau).is_integer():
            raise ScpoError(
                f"setting tau={self.tau}: above 1 it is a vote count, a whole number (a fraction of k is at most 1)"
            )

    def min_votes(self, k: int) -> float:
        return self.tau * k if self.tau <= 1 else self.tau


@dataclass
class Pick:
    chosen: int  # completion index
    rejected: int
    chosen_votes: int
    rejected_votes: int
    weight: float
    source: str  # "votes" or "gold"


def _rng(rule: PairRule, prompt_id) -> random.Random:
    return random.Random(f"{rule.seed}:{prompt_id}")


def pick_by_votes(
    votes: PromptVotes,
    rule: PairRule,
    prompt_id,
    candidates: Sequence[bool] | None = None,
    extra: Sequence[bool] | None = None,
) -> Pick | str:
    """The ScPO pair for one prompt, or the reason there is none.

    `candidates` (a vote teacher's labels, vote_teacher: frozen | ema): only these completions, the model's own, can
    be chosen or rejected, while the others (the teacher's) hold the votes; `extra` marks ScPO's extra samples
    among them (never chosen). Without a teacher every completion can be rejected and the voting ones chosen."""
    if not votes.groups or votes.top_votes == 0:
        return "all_unparsed"
    rng = _rng(rule, prompt_id)
    top = votes.top_votes
    leaders = [gi for gi, g in enumerate(votes.groups) if g.votes == top]
    if len(leaders) > 1 and rule.top_tie == "skip":
        return "top_tie"
    best = leaders[0] if len(leaders) == 1 else rng.choice(leaders)
    if top < rule.min_votes(votes.k) - 1e-9:
        return "below_tau"
    n = len(votes.group_of)
    can_reject = list(candidates) if candidates is not None else [True] * n
    if candidates is None:  # ScPO's extra samples (T=1.2) exist "to sample rejected responses": never chosen
        can_choose = [True] * n if votes.voting is None else list(votes.voting)
    else:
        can_choose = [c and not (extra is not None and extra[i]) for i, c in enumerate(candidates)]
    choosable = [i for i in votes.groups[best].members if can_choose[i]]
    if not choosable:  # the teacher's answer is not among the model's own samples
        return "teacher_top_unsampled"
    # Candidate rejected groups: every other parsed group with a completion that can be rejected (extras-only groups
    # have 0 votes) and the unparseable one.
    others = [
        (g.votes, gi) for gi, g in enumerate(votes.groups) if gi != best and any(can_reject[i] for i in g.members)
    ]
    unparsed = [i for i, g in enumerate(votes.group_of) if g == UNPARSED and can_reject[i]]
    if unparsed:
        others.append((votes.unparsed_votes, UNPARSED))
    if not others:
        return "unanimous"
    low = min(v for v, _ in others)
    if low >= top:  # nothing is voted below the chosen answer (unparsed completions may out-vote it)
        return "tie"
    worst = rng.choice(sorted(gi for v, gi in others if v == low))
    chosen = rng.choice(choosable)
    rejected = rng.choice(unparsed if worst == UNPARSED else [i for i in votes.groups[worst].members if can_reject[i]])
    weight = (top - low) / votes.k if rule.weighting == "margin" else 1.0
    return Pick(chosen, rejected, top, low, weight, "votes")


def pick_by_scrl(
    votes: PromptVotes,
    labels: ScrlLabels,
    rule: PairRule,
    prompt_id,
    candidates: Sequence[bool] | None = None,
    extra: Sequence[bool] | None = None,
) -> Pick | str:
    """The pair under SCRL's labels (vote_rule scrl, scpo/selective_votes.py): chosen from the positive answer,
    rejected from the least-voted negative answer (ties: a seeded pick), w = (V+ - V-) / k (or 1). `candidates` and
    `extra` as in pick_by_votes. SCRL's `tau_pos` replaces `tau`; an unparsed completion is never a negative."""
    if not votes.groups or votes.top_votes == 0:
        return "all_unparsed"
    if labels.positive is None:
        return "scrl_no_positive"
    n = len(votes.group_of)
    can_reject = list(candidates) if candidates is not None else [True] * n
    if candidates is None:
        can_choose = [True] * n if votes.voting is None else list(votes.voting)
    else:
        can_choose = [c and not (extra is not None and extra[i]) for i, c in enumerate(candidates)]
    choosable = [i for i in votes.groups[labels.positive].members if can_choose[i]]
    if not choosable:
        return "teacher_top_unsampled"
    negatives = [gi for gi in labels.negatives if any(can_reject[i] for i in votes.groups[gi].members)]
    if not negatives:
        return "scrl_no_negative"
    rng = _rng(rule, prompt_id)
    low = min(votes.groups[gi].votes for gi in negatives)
    worst = rng.choice(sorted(gi for gi in negatives if votes.groups[gi].votes == low))
    chosen = rng.choice(choosable)
    rejected = rng.choice([i for i in votes.groups[worst].members if can_reject[i]])
    top = votes.groups[labels.positive].votes
    weight = (top - low) / votes.k if rule.weighting == "margin" else 1.0
    return Pick(chosen, rejected, top, low, weight, "votes")


def pick_by_gold(correct: Sequence[bool], votes: PromptVotes, rule: PairRule, prompt_id) -> Pick | str:
    """(correct, incorrect) pair with weight 1, for prompts that have a gold answer (IRPO / semi-supervised)."""
    right = [i for i, c in enumerate(correct) if c]
    wrong = [i for i, c in enumerate(correct) if c is not None and not c]  # None: not a candidate
    if not right:
        return "no_correct"
    if not wrong:
        return "no_incorrect"
    rng = _rng(rule, prompt_id)
    chosen, rejected = rng.choice(right), rng.choice(wrong)
    return Pick(chosen, rejected, votes.votes_of(chosen), votes.votes_of(rejected), 1.0, "gold")


def pick(
    votes: PromptVotes,
    rule: PairRule,
    prompt_id,
    correct: Sequence[bool] | None,
    candidates: Sequence[bool] | None = None,
    extra: Sequence[bool] | None = None,
    scrl: ScrlLabels | None = None,
) -> Pick | str:
    """Gold pairs where the mode asks for them and gold exists, else vote pairs (SCRL's labels when `scrl` is given)."""
    if rule.mode != "unsupervised" and correct is not None:
        if candidates is not None:  # a teacher's completions are never a pair's side
            correct = [c if ok else None for c, ok in zip(correct, candidates)]
        return pick_by_gold(correct, votes, rule, prompt_id)
    if rule.mode == "supervised":
        return "no_gold"
    if scrl is not None:
        return pick_by_scrl(votes, scrl, rule, prompt_id, candidates, extra)
    return pick_by_votes(votes, rule, prompt_id, candidates, extra)


def mix_sources(pairs: list[dict], gold_ratio: float, seed: int = 0) -> list[dict]:
    """Semi-supervised mix: subsample the plentiful source so gold pairs are `gold_ratio` of the pairs.

    Every pair of the scarcer source is kept; which pairs of the other go is fixed by (seed, prompt
    id), and the kept pairs stay in their order.
    """
    if not 0 <= gold_ratio <= 1:
        raise ScpoError(f"setting gold_ratio={gold_ratio}: must be in [0, 1]")
    gold = [p for p in pairs if p["source"] == "gold"]
    votes = [p for p in pairs if p["source"] != "gold"]
    g, v, r = len(gold), len(votes), gold_ratio
    if r in (0, 1):
        keep_g, keep_v = (0, v) if r == 0 else (g, 0)
    elif g * (1 - r) >= v * r:  # gold is plentiful
        keep_g, keep_v = min(g, round(v * r / (1 - r))), v
    else:
        keep_g, keep_v = g, min(v, round(g * (1 - r) / r))

    def first(rows: list[dict], n: int) -> list[dict]:
        return sorted(rows, key=lambda p: random.Random(f"{seed}:mix:{p['id']}").random())[:n]

    kept = {id(p) for p in first(gold, keep_g) + first(votes, keep_v)}
    return [p for p in pairs if id(p) in kept]
