"""Soft votes, their pair rule and the n-gram similarity (scpo/soft_votes.py): pure Python, milliseconds.

The centroid score is checked against Semantic Voting's own formula written here from vectors (cosine to the
normalised mean of unit embeddings, voting_docker_service/SV.py:6-9), and the n-gram similarity against counts
done by hand."""

from __future__ import annotations

import math

import pytest

from scpo.core.errors import ScpoError
from scpo.semantic import SemanticSettings
from scpo.soft_votes import (
    SoftVoteRule,
    cosine_matrix,
    ngram_similarity,
    ngrams,
    pick_soft,
    scored_votes,
    soft_scores,
    soft_votes,
    to_unit_interval,
)

VECTORS = [[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.8, 0.0, 0.2], [0.0, 1.0, 0.0], [0.7, 0.3, 0.1]]


def reference_centroid(vectors):
    """SV.py's compute_voting_score on unit vectors: cos(e_i, mean / |mean|)."""
    unit = [[x / math.sqrt(sum(y * y for y in v)) for x in v] for v in vectors]
    mean = [sum(col) / len(unit) for col in zip(*unit)]
    norm = math.sqrt(sum(x * x for x in mean))
    return [sum(a * b / norm for a, b in zip(u, mean)) for u in unit]


def test_centroid_score_is_the_cosine_to_the_mean_embedding():
    got = soft_scores(cosine_matrix(VECTORS), "centroid")
    assert got == pytest.approx(reference_centroid(VECTORS), abs=1e-12)
    assert max(range(5), key=got.__getitem__) == 4 and min(range(5), key=got.__getitem__) == 3  # the blend; the outlier


def test_mean_others_leaves_the_sample_itself_out():
    sim = [[1.0, 0.5, 0.1], [0.5, 1.0, 0.3], [0.1, 0.3, 1.0]]
    assert soft_scores(sim, "mean_others") == pytest.approx([0.3, 0.4, 0.2])
    # with a constant diagonal both scores rank the samples alike
    ranks = [
        sorted(range(3), key=s.__getitem__) for s in (soft_scores(sim, "centroid"), soft_scores(sim, "mean_others"))
    ]
    assert ranks[0] == ranks[1] == [2, 0, 1]


def test_soft_votes_are_on_the_unit_interval():
    assert to_unit_interval([-1.0, 0.0, 1.0], cosine=True) == [0.0, 0.5, 1.0]  # my_rewards.py:127's 0.5 + 0.5 x
    assert to_unit_interval([0.25, 1.0000000001], cosine=False) == [0.25, 1.0]
    votes = soft_votes(cosine_matrix(VECTORS), "centroid", cosine=True)
    assert all(0 <= v <= 1 for v in votes)
    assert votes == pytest.approx([(1 + c) / 2 for c in reference_centroid(VECTORS)])


def test_opposite_samples_have_no_consensus_direction():
    assert soft_scores([[1.0, -1.0], [-1.0, 1.0]], "centroid") == [0.0, 0.0]  # the reference would divide 0 by 0


def test_unscored_samples_get_no_vote_and_the_rest_vote_among_themselves():
    sim = cosine_matrix(VECTORS[:3])
    got = scored_votes(sim, [True, False, True, False, True], "centroid", cosine=True)
    assert got[1] is None and got[3] is None
    assert [got[0], got[2], got[4]] == pytest.approx(soft_votes(sim, "centroid", cosine=True))
    with pytest.raises(ScpoError, match="more rows"):
        scored_votes(sim, [True, True], "centroid", cosine=True)
    with pytest.raises(ScpoError, match="square"):
        soft_scores([[1.0, 0.0]], "centroid")


def test_pair_is_highest_vs_lowest_with_the_first_at_each():
    rule = SoftVoteRule(min_responses=2)
    pick = pick_soft([0.7, 0.9, None, 0.2, 0.9, 0.2], rule)
    assert (pick.chosen, pick.rejected) == (1, 3)  # numpy's argmax / argmin: the first at the value
    assert (pick.chosen_vote, pick.rejected_vote, pick.weight, pick.scored) == (0.9, 0.2, 1.0, 5)


def test_margin_weight_tau_tie_and_too_few():
    votes = [0.8, 0.6, 0.5, 0.75, 0.7]
    assert pick_soft(votes, SoftVoteRule(weighting="margin")).weight == pytest.approx(0.3)
    assert pick_soft(votes, SoftVoteRule(tau=0.8)).chosen == 0
    assert pick_soft(votes, SoftVoteRule(tau=0.81)) == "below_tau"
    assert pick_soft([0.5] * 5, SoftVoteRule()) == "tie"
    assert pick_soft([0.9, 0.1, 0.5, 0.4, None], SoftVoteRule()) == "too_few_scored"  # 4 scored < filter_length 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tau": 1.2}, "semantic_tau=1.2: must be in \\[0, 1\\]"),
        ({"tau": -0.1}, "semantic_tau=-0.1"),
        ({"weighting": "votes"}, "semantic_weighting='votes'"),
        ({"min_responses": 1}, "semantic_min_responses=1"),
    ],
)
def test_bad_rules_are_named(kwargs, match):
    with pytest.raises(ScpoError, match=match):
        SoftVoteRule(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"semantic_similarity": "bleu"}, "semantic_similarity='bleu'"),
        ({"semantic_score": "median"}, "semantic_score='median'"),
        ({"semantic_text": "prompt"}, "semantic_text='prompt'"),
        ({"semantic_ngram": 0}, "semantic_ngram=0"),
        ({"semantic_tau": 2.0}, "semantic_tau=2.0"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ScpoError, match=match):
        SemanticSettings(**kwargs)


def test_each_similarity_has_its_sources_score_by_default():
    assert SemanticSettings().score() == "centroid"
    assert SemanticSettings(semantic_similarity="lexical").score() == "mean_others"
    assert SemanticSettings(semantic_similarity="lexical", semantic_score="centroid").score() == "centroid"


def test_ngram_similarity_counts_shared_ngrams_over_the_prompts_vocabulary():
    texts = ["the cat sat", "the cat ran", "a dog ran"]
    # distinct unigrams: the, cat, sat, ran, a, dog -> |V| = 6
    sim = ngram_similarity(texts, 1)
    assert sim[0][1] == pytest.approx(2 / 6) and sim[1][2] == pytest.approx(1 / 6) and sim[0][2] == 0
    assert sim[0][0] == pytest.approx(3 / 6) and sim == [list(r) for r in zip(*sim)]
    # orders 1..2: 6 unigrams + 5 distinct bigrams; the first two share the, cat and "the cat"
    sim2 = ngram_similarity(texts, 2)
    assert sim2[0][1] == pytest.approx(3 / 11)
    assert ngrams("Hi, you.", 1) == {("Hi",), (",",), ("you",), (".",)}
    assert ngram_similarity(["", ""], 1) == [[0.0, 0.0], [0.0, 0.0]]


def test_lexical_votes_pick_the_consensus_text():
    texts = [
        "The answer is 12 apples.",
        "So the answer is 12 apples.",
        "The answer is 12.",
        "Bananas fly at noon.",
        "The answer is 12 apples in total.",
    ]
    votes = soft_votes(ngram_similarity(texts, 1), "mean_others", cosine=False)
    pick = pick_soft(votes, SoftVoteRule())
    assert pick.rejected == 3 and pick.chosen in (0, 4)
