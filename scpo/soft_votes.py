"""Soft (semantic) votes over a prompt's samples, and their preference pair. Pure Python, no torch.

Semantic Voting (Jiang et al., ICLR 2026, arXiv 2509.23067; code rubickkcibur/Semantic-Voting, read at commit
1aa6724) relaxes majority voting's exact match to similarity: each sample's soft vote is how close it lies to
the consensus of the prompt's samples, and DPO trains on (highest, lowest). Jain et al. 2023 ("Self-consistency
for open-ended generations", arXiv 2307.06857) pick the sample with the highest mean similarity to the others,
with a model-free n-gram similarity. What this module computes, from a prompt's similarity matrix S:

- `centroid` (Semantic Voting): cos(e_i, mean_j e_j) for unit embeddings e (voting_docker_service/SV.py:6-9,
  src/SRLM/cluster_score.py:155-156). With S_ij = e_i . e_j this is sum_j S_ij / sqrt(sum_jk S_jk): every
  sample, itself included, votes, and the norm of the mean is the normalisation, so it needs S only.
- `mean_others` (Jain et al.'s GSC score): mean over j != i of S_ij (self left out).
Both rank the samples alike when S has a constant diagonal (a cosine matrix: every S_ii = 1); they differ in
value. A soft vote is put on [0, 1] before it is used: a cosine-valued score x as (1 + x) / 2, the map of
Semantic Voting's GRPO reward (src/open_r1/my_rewards.py:127); an n-gram score is in [0, 1] already.

The pair (src/SRLM/cluster_score.py:175-185, cluster_score_solo.py): chosen = the highest soft vote, rejected =
the lowest, each the first one at that value (numpy's argmax / argmin); unscored samples (no text to embed) are
never picked (the reference gives them -1.1 / 1.1). A prompt needs at least `min_responses` scored samples
(`--filter_length 5`, cluster_score.py:124 and batch_scripts/semantic_pipeline.py:18). scpo's choices, where the
reference has nothing: equal highest and lowest votes give no pair (the reference would pair a sample with
itself), `tau` keeps a prompt only when its chosen vote reaches it (ScPO's filter on the soft vote; 0 keeps all,
as the reference), and `weighting: margin` weights a pair by v(chosen) - v(rejected) (ScPO's (V+ - V-)/k with
soft votes; the reference trains unweighted DPO, `weighting: none`, the default).

Not implemented: the reference's HDBSCAN step (`clustering: HDBSCAN`, min_cluster_size 5, min_samples 2), which
scores only the largest cluster's samples; scpo scores every sample, the reference's `clustering: "whole"`
(the default of its voting service, voting_docker_service/app.py:24, and cluster_score_solo.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from scpo.core.errors import ScpoError

SCORES = ("centroid", "mean_others")
WEIGHTINGS = ("none", "margin")
# Why a prompt gave no pair; the pairs stage counts these.
SKIP_REASONS = ("too_few_scored", "tie", "below_tau")
TIE_TOLERANCE = 1e-9  # soft votes closer than this are equal (identical texts embedded in different batches)


# ------------------------------------------------------------------------------------------- soft votes


def soft_scores(sim: Sequence[Sequence[float]], score: str) -> list[float]:
    """Each sample's raw score from the prompt's similarity matrix (see the module docstring)."""
    n = len(sim)
    if any(len(row) != n for row in sim):
        raise ScpoError(f"a similarity matrix must be square; got {n} rows of lengths {sorted({len(r) for r in sim})}")
    if score not in SCORES:
        raise ScpoError(f"setting semantic_score={score!r}: expected one of {SCORES}")
    if n == 0:
        return []
    sums = [math.fsum(row) for row in sim]
    if score == "centroid":
        total = math.fsum(sums)
        if total <= 0:  # the samples' mean embedding is 0: there is no consensus direction (the reference: nan)
            return [0.0] * n
        norm = math.sqrt(total)
        return [s / norm for s in sums]
    if n == 1:
        return [float(sim[0][0])]  # no other sample: its agreement with itself
    return [(s - sim[i][i]) / (n - 1) for i, s in enumerate(sums)]


def to_unit_interval(values: Sequence[float], cosine: bool) -> list[float]:
    """Soft votes on [0, 1]: a cosine-valued score x as (1 + x) / 2 (Semantic Voting's reward,
    src/open_r1/my_rewards.py:127); a score already on [0, 1] (n-gram overlap) as it is. Clipped for rounding."""
    mapped = [(1.0 + v) / 2.0 for v in values] if cosine else list(values)
    return [min(1.0, max(0.0, v)) for v in mapped]


def soft_votes(sim: Sequence[Sequence[float]], score: str, cosine: bool) -> list[float]:
    """Each sample's soft vote on [0, 1]."""
    return to_unit_interval(soft_scores(sim, score), cosine)


def scored_votes(
    sim: Sequence[Sequence[float]], scored: Sequence[bool], score: str, cosine: bool
) -> list[float | None]:
    """Soft votes of the `scored` samples among themselves (S is over those only, in order); None for the rest."""
    votes = iter(soft_votes(sim, score, cosine))
    out = [next(votes) if keep else None for keep in scored]
    if next(votes, None) is not None:
        raise ScpoError(f"the similarity matrix has more rows than the {sum(scored)} scored samples")
    return out


# ------------------------------------------------------------------------------------------------ pairs


@dataclass(frozen=True)
class SoftVoteRule:
    tau: float = 0.0  # keep a prompt when v(chosen) >= tau (scpo's choice; 0 keeps every prompt, as the reference)
    weighting: str = "none"  # none: w = 1 (the reference's plain DPO); margin: w = v(chosen) - v(rejected)
    min_responses: int = 5  # scored samples a prompt needs (the reference's filter_length, cluster_score.py:124)

    def __post_init__(self):
        if not 0.0 <= self.tau <= 1.0:
            raise ScpoError(f"setting semantic_tau={self.tau}: must be in [0, 1] (soft votes are on [0, 1])")
        if self.weighting not in WEIGHTINGS:
            raise ScpoError(f"setting semantic_weighting={self.weighting!r}: expected one of {WEIGHTINGS}")
        if self.min_responses < 2:
            raise ScpoError(
                f"setting semantic_min_responses={self.min_responses}: a pair needs at least 2 scored samples"
            )


@dataclass
class SoftPick:
    chosen: int
    rejected: int
    chosen_vote: float
    rejected_vote: float
    weight: float
    scored: int  # samples with a soft vote


def pick_soft(votes: Sequence[float | None], rule: SoftVoteRule) -> SoftPick | str:
    """(highest, lowest) soft vote of one prompt, or the reason there is no pair."""
    scored = [i for i, v in enumerate(votes) if v is not None]
    if len(scored) < rule.min_responses:
        return "too_few_scored"
    chosen = max(scored, key=lambda i: votes[i])  # the first maximum, as numpy's argmax
    rejected = min(scored, key=lambda i: votes[i])  # the first minimum, as numpy's argmin
    high, low = votes[chosen], votes[rejected]
    if high - low <= TIE_TOLERANCE:
        return "tie"
    if high < rule.tau:
        return "below_tau"
    weight = 1.0 if rule.weighting == "none" else min(1.0, high - low)
    return SoftPick(chosen, rejected, high, low, weight, len(scored))


# -------------------------------------------------------------------------------- lexical similarity

_TOKEN = re.compile(r"\w+|[^\w\s]")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The distinct n-grams of orders 1..n of a text's words and punctuation marks (scpo's choice of tokens: Jain et
    al. count the model's tokens; words make the similarity independent of the model)."""
    tokens = _TOKEN.findall(text)
    return {tuple(tokens[i : i + m]) for m in range(1, n + 1) for i in range(len(tokens) - m + 1)}


def ngram_similarity(texts: Sequence[str], n: int = 1) -> list[list[float]]:
    """Jain et al.'s n-gram consistency: with V the distinct n-grams of all the prompt's texts and v_i the 0/1
    vector of text i's n-grams over V, S_ij = v_i . v_j / |V| (n = 1: their Unigram Consistency Score's
    similarity). S is a Gram matrix, so the centroid score is defined on it too."""
    if n < 1:
        raise ScpoError(f"setting semantic_ngram={n}: must be at least 1")
    grams = [ngrams(t, n) for t in texts]
    vocabulary = len(set().union(*grams)) if grams else 0
    if not vocabulary:
        return [[0.0] * len(texts) for _ in texts]
    out = [[0.0] * len(texts) for _ in texts]
    for i, a in enumerate(grams):
        for j in range(i, len(grams)):
            out[i][j] = out[j][i] = len(a & grams[j]) / vocabulary
    return out


def cosine_matrix(vectors: Sequence[Sequence[float]]) -> list[list[float]]:
    """Cosine similarities of vectors (pure Python; the embedder computes its own with torch)."""
    norms = [math.sqrt(math.fsum(x * x for x in v)) or 1.0 for v in vectors]
    unit = [[x / nrm for x in v] for v, nrm in zip(vectors, norms)]
    return [[math.fsum(a * b for a, b in zip(u, w)) for w in unit] for u in unit]
