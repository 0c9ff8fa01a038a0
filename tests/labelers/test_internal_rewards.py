"""Internal-reward labelers, pure logic: judge-score parsing, rank consistency vs scipy, CREAM loss, SCIR filter."""

from __future__ import annotations

import math
import random

import pytest

from scpo.consistency import (
    agreeing,
    average_ranks,
    consistency,
    kendall_tau,
    mean_and_std,
    preference_probability,
    scir_filter,
    spearman_rho,
)
from scpo.core.errors import ScpoError
from scpo.judge import DEFAULT_TEMPLATE, mean_score, parse_score, render
from scpo.labelers import LABELERS
from scpo.reward_pairs import pick_by_reward, reward_pick
from scpo.stages.label import settings_class
from scpo.stages.pairs import build_pairs
from scpo.tasks import get_task

# Real-looking judge outputs (several taken from what SmolLM2 and Llama judges write) and the score to read.
JUDGE_OUTPUTS = [
    ("The response is relevant and answers the question directly.\nScore: 4", 4.0),
    ("Score: 4/5", 4.0),
    ("**Score:** 3", 3.0),
    ("**Score: 5**", 5.0),
    ("Justification: relevant (+1), addresses the question (+1), useful (+1).\n\nScore: 3\n\nI hope this helps!", 3.0),
    ("Based on the criteria, I would give this response a score of 4 points.", 4.0),
    ("The response earns 2 points: it is relevant and partially answers.", 2.0),
    ("First criterion met. Score: 1. Second criterion met. Score: 2. Final Score: 3", 3.0),
    ("Score: 2.5", 2.5),
    ("score = 4 out of 5", 4.0),
    ("Score: 8/10", 4.0),  # another scale, rescaled to 5 points
    ("Total score: 0", 0.0),
    ("SCORE:5", 5.0),
    # unreadable or out of range: None, never 0
    ("Score: 7", None),
    ("Score: 12/5", None),
    ("The response is good.", None),
    ("Score: <total points>", None),
    ("", None),
    ("Score: -1", None),  # negative: out of range
    ("I cannot evaluate this response.", None),
    ("Score: 2 + 3 = 5", None),  # the embedded judge restating the sum: not a score
    ("Score: 4. Check: Score: 0 + 8 = 8", 4.0),
    ("Score: 45", None),  # never read as a prefix "4"
]


@pytest.mark.parametrize("text, expected", JUDGE_OUTPUTS)
def test_parse_score_on_real_looking_judge_outputs(text, expected):
    assert parse_score(text) == expected


def test_unparseable_scores_are_excluded_not_zero():
    assert mean_score([4.0, None, 2.0]) == 3.0
    assert mean_score([None, None]) is None
    assert mean_score([0.0, None]) == 0.0


def test_judge_prompt_keeps_braces_and_needs_both_fields():
    text = render(DEFAULT_TEMPLATE, "What is {x}?", "x = {1, 2}")
    assert "User: What is {x}?" in text and "<response>x = {1, 2}</response>" in text
    assert text.rstrip().endswith("outlined criteria.") and "Score: <total points>" in text
    with pytest.raises(ValueError, match="instruction"):
        render("no fields", "a", "b")
    with pytest.raises(ScpoError, match="judge_template"):
        settings_class([])(labeler="judge", judge_template="Rate {response}")


def _random_ranking(rng: random.Random, n: int, levels: int) -> list[float]:
    return [float(rng.randrange(levels)) for _ in range(n)]


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_kendall_and_spearman_match_scipy_on_random_rankings_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    checked = 0
    for _ in range(300):
        n = rng.choice([2, 3, 4, 5, 8, 16])
        levels = rng.choice([2, 3, n, 100])  # few levels: many ties
        x, y = _random_ranking(rng, n, levels), _random_ranking(rng, n, levels)
        want_tau = stats.kendalltau(x, y).statistic
        want_rho = stats.spearmanr(x, y).statistic
        got_tau, got_rho = kendall_tau(x, y), spearman_rho(x, y)
        if math.isnan(want_tau):
            assert math.isnan(got_tau)
        else:
            assert got_tau == pytest.approx(want_tau, abs=1e-12)
            checked += 1
        if math.isnan(want_rho):
            assert math.isnan(got_rho)
        else:
            assert got_rho == pytest.approx(want_rho, abs=1e-12)
        assert average_ranks(x) == pytest.approx(list(stats.rankdata(x)))
    assert checked > 200


def test_consistency_is_tau_rescaled_to_unit_interval():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(1)
    for _ in range(50):
        x, y = _random_ranking(rng, 5, 5), _random_ranking(rng, 5, 5)
        tau = stats.kendalltau(x, y).statistic
        want = 0.5 if math.isnan(tau) else (tau + 1) / 2
        assert consistency(x, y) == pytest.approx(want, abs=1e-12)
    assert consistency([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert consistency([1, 2, 3, 4], [4, 3, 2, 1]) == 0.0
    assert consistency([1, 1, 1], [1, 2, 3]) == 0.5  # a constant ranking tells nothing
    assert consistency([1, 2, 3], [1, 3, 2], "spearman") == pytest.approx((0.5 + 1) / 2)
    with pytest.raises(ValueError, match="metric"):
        consistency([1, 2], [1, 2], "pearson")


def test_pick_by_reward_max_vs_min_ties_dropped_unscored_excluded():
    assert pick_by_reward([3.0, 5.0, None, 1.0], 0, "p") == (1, 3)
    assert pick_by_reward([2.0, 2.0, 2.0], 0, "p") == "tie"
    assert pick_by_reward([None, 4.0, None], 0, "p") == "too_few_scored"
    assert pick_by_reward([float("nan"), 1.0, 2.0], 0, "p") == (2, 1)
    # equal maxima: a seeded choice that depends only on (seed, prompt id)
    picks = {pick_by_reward([5.0, 5.0, 1.0], seed, "p")[0] for seed in range(20)}
    assert picks == {0, 1}
    assert pick_by_reward([5.0, 5.0, 1.0], 3, "p") == pick_by_reward([5.0, 5.0, 1.0], 3, "p")


def test_scir_filter_keeps_exactly_the_agreeing_pairs():
    rng = random.Random(2)
    candidates = []
    for i in range(200):
        judge = preference_probability(rng.uniform(0, 5), rng.uniform(0, 5), 1.0)
        implicit = preference_probability(rng.gauss(0, 10), rng.gauss(0, 10), 10.0)
        candidates.append({"id": i, "probabilities": {"judge": judge, "implicit": implicit}})
    for threshold in (0.5, 0.6, 0.7):
        kept, rate = scir_filter(candidates, threshold)
        want = [c["id"] for c in candidates if all(p >= threshold and p > 0.5 for p in c["probabilities"].values())]
        assert [c["id"] for c in kept] == want
        assert rate == pytest.approx(len(want) / len(candidates))
        assert 0 < len(want) < len(candidates)
    table = [
        {"id": "both", "probabilities": {"judge": 0.9, "implicit": 0.6}},
        {"id": "judge only", "probabilities": {"judge": 0.9, "implicit": 0.4}},
        {"id": "implicit only", "probabilities": {"judge": 0.2, "implicit": 0.8}},
        {"id": "neither", "probabilities": {"judge": 0.1, "implicit": 0.3}},
        {"id": "weak", "probabilities": {"judge": 0.55, "implicit": 0.7}},
    ]
    assert [c["id"] for c in scir_filter(table, 0.5)[0]] == ["both", "weak"]
    assert [c["id"] for c in scir_filter(table, 0.6)[0]] == ["both"]
    assert not agreeing({"judge": 0.5, "implicit": 0.9})  # a tie is no vote for chosen
    assert math.isnan(scir_filter([], 0.5)[1])


def test_preference_probability_is_bradley_terry():
    assert preference_probability(4.0, 3.0, 1.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert preference_probability(0.0, 2.0, 10.0) == pytest.approx(1 / (1 + math.exp(0.2)))
    assert preference_probability(1.0, 1.0) == 0.5


def test_reward_pick_cream_consistency_and_scir_probabilities():
    pick = reward_pick([0.1, 0.9, 0.5, 0.2], 0, "p", previous=[0.0, 1.0, 0.6, 0.3])
    assert (pick.chosen, pick.rejected, pick.consistency) == (1, 0, 1.0)
    pick = reward_pick([0.1, 0.9, 0.5, 0.2], 0, "p", previous=[1.0, 0.0, 0.4, 0.7])
    assert pick.consistency == 0.0
    pick = reward_pick(
        [4.0, 2.0, None],
        0,
        "p",
        signals={"judge": [4.0, 2.0, None], "implicit": [-1.0, 1.0, 0.0]},
        scales={"judge": 1.0, "implicit": 10.0},
    )
    assert (pick.chosen, pick.rejected) == (0, 1)
    assert pick.probabilities["judge"] > 0.5 > pick.probabilities["implicit"]


def _label(pid, i, reward, **extra):
    return {
        "id": pid,
        "prompt": f"q {pid}",
        "completion": f"answer {i}",
        "sample_index": i,
        "labeler": extra.pop("labeler", "cream"),
        "reward": reward,
        **extra,
    }


def labeler(name: str, task):
    return LABELERS.get(name)(settings_class([])(labeler=name), task)


def test_build_reward_pairs_cream_and_scir_counts():
    task = get_task("numeric")
    rows = (
        [_label("a", i, r, previous_reward=p) for i, (r, p) in enumerate([(1, 1), (2, 2), (3, 3)])]
        + [_label("b", i, r, previous_reward=p) for i, (r, p) in enumerate([(1, 3), (2, 2), (3, 1)])]
        + [_label("c", i, 2.0, previous_reward=i) for i in range(3)]
    )
    pairs, counts = build_pairs(rows, labeler("cream", task))
    assert [(p["id"], p["consistency"]) for p in pairs] == [("a", 1.0), ("b", 0.0)]
    assert counts["skipped"] == {"tie": 1} and counts["consistency_mean"] == 0.5 and counts["consistency_std"] == 0.5
    assert pairs[0]["chosen"][0]["content"] == "answer 2" and pairs[0]["rejected"][0]["content"] == "answer 0"

    scir = [
        _label(pid, i, j, labeler="scir", judge_score=j, implicit_reward=m)
        for pid, values in (("agree", [(5.0, 2.0), (1.0, -2.0)]), ("disagree", [(5.0, -2.0), (1.0, 2.0)]))
        for i, (j, m) in enumerate(values)
    ]
    pairs, counts = build_pairs(scir, labeler("scir", task))
    assert [p["id"] for p in pairs] == ["agree"] and counts["agreement_rate"] == 0.5
    assert counts["skipped"] == {"disagree": 1} and pairs[0]["p_judge"] > 0.5 and pairs[0]["p_implicit"] > 0.5
    with pytest.raises(ScpoError, match="labeler=judge"):
        build_pairs(scir, labeler("judge", task))


def test_mean_and_std():
    assert mean_and_std([0.0, 1.0]) == (0.5, 0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labeler": "bogus"}, "unknown labeler 'bogus'"),
        ({"labeler": "scir", "scir_rewards": ["judge"]}, "scir_rewards"),
        ({"consistency_metric": "pearson"}, "consistency_metric"),
        ({"judge_samples": 0}, "judge_samples"),
        ({"scir_threshold": 1.5}, "scir_threshold"),
    ],
)
def test_bad_reward_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ScpoError, match=message):
        settings_class([])(**kwargs)


def test_cream_loss_is_the_soft_label_hand_computation_and_dpo_at_c1():
    torch = pytest.importorskip("torch")
    from scpo.losses import pair_losses

    def t(xs):
        return torch.tensor(xs, dtype=torch.float64)

    pol_c, pol_r, ref_c, ref_r = (
        t([-5.0, -9.0, -3.0]),
        t([-6.0, -8.0, -3.5]),
        t([-5.5, -8.5, -3.0]),
        t([-5.5, -8.0, -4.0]),
    )
    beta, cs = 0.1, [1.0, 0.25, 0.0]
    got = pair_losses("cream", pol_c, pol_r, ref_c, ref_r, t([3, 3, 3]), beta=beta, consistency=t(cs))
    for i, c in enumerate(cs):
        d = (pol_c[i] - ref_c[i]).item() - (pol_r[i] - ref_r[i]).item()
        want = c * math.log1p(math.exp(-beta * d)) + (1 - c) * math.log1p(math.exp(beta * d))
        assert got[i].item() == pytest.approx(want, abs=1e-12)
    dpo = pair_losses("dpo", pol_c, pol_r, ref_c, ref_r, t([3, 3, 3]), beta=beta)
    assert got[0].item() == pytest.approx(dpo[0].item(), abs=1e-12)
    # C = 0 is DPO with chosen and rejected swapped
    swapped = pair_losses("dpo", pol_r, pol_c, ref_r, ref_c, t([3, 3, 3]), beta=beta)
    assert got[2].item() == pytest.approx(swapped[2].item(), abs=1e-12)


def test_cream_avg_gives_every_pair_the_mean_consistency():
    datasets = pytest.importorskip("datasets")
    from scpo.losses.cream import CreamSettings, average_consistency

    ds = average_consistency(datasets.Dataset.from_dict({"consistency": [1.0, 0.5, 0.0, 0.5], "x": [1, 2, 3, 4]}))
    assert ds["consistency"] == [0.5] * 4 and ds["x"] == [1, 2, 3, 4]
    with pytest.raises(ScpoError, match="cream_consistency"):
        CreamSettings(cream_consistency="max")


def test_pairwise_judging_in_both_orders_cancels_position_bias():
    from scpo.judge import ordered_pairs, pairwise_scores, parse_winner

    assert ordered_pairs(3) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert [parse_winner(t) for t in ("Winner: A", "**Winner:** B.", "I prefer (A). Winner: (B)", "A is better")] == [
        "A",
        "B",
        "B",
        None,
    ]
    # A judge that always picks the first position: every response wins half its comparisons, a tie (no pair).
    biased = [(a, b, ["Winner: A"]) for a, b in ordered_pairs(3)]
    scores, unparsed = pairwise_scores(3, biased)
    assert scores == [2.5, 2.5, 2.5] and unparsed == [0, 0, 0]
    assert pick_by_reward(scores, 0, "p") == "tie"
    # A judge that prefers the lower index whichever side it is on; one unreadable verdict is excluded.
    consistent = [(a, b, ["Winner: A" if a < b else "Winner: B"]) for a, b in ordered_pairs(3)]
    consistent[0] = (0, 1, ["Winner: A", "no verdict"])
    scores, unparsed = pairwise_scores(3, consistent)
    assert scores == [5.0, 2.5, 0.0] and unparsed == [1, 1, 0]
    assert pick_by_reward(scores, 0, "p") == (0, 2)


def test_judge_items_per_response_or_per_ordered_pair():
    from scpo.labelers._internal import judge_items

    rows = [{"id": p, "prompt": f"q{p}", "completion": f"c{p}{i}", "sample_index": i} for p in "xy" for i in range(3)]
    task = get_task("numeric")
    single = judge_items(rows, settings_class([])(labeler="judge"), task)
    assert [it["rows"] for it in single] == [[i] for i in range(6)]
    assert "<response>cx0</response>" in single[0]["text"]
    pairwise = judge_items(rows, settings_class([])(labeler="judge", judge_pairwise=True), task)
    assert len(pairwise) == 12 and pairwise[0]["rows"] == [0, 1] and pairwise[2]["rows"] == [1, 0]
    assert (
        "<response A>cx0</response A>" in pairwise[0]["text"] and "<response B>cx1</response B>" in pairwise[0]["text"]
    )
    assert len({it["key"] for it in pairwise}) == 12  # distinct seeds per ordered pair


def test_report_shows_pairs_consistency_and_agreement_per_iteration(tmp_path):
    import json

    from scpo.reporting.runs import collect, labeler_table

    counts = [
        (
            {"labeler": "scir", "judge_outputs": 600, "judge_unparsed_share": 0.05, "mean_judge_score": 3.1},
            {"labeler": "scir", "prompts": 50, "pairs": 30, "agreement_rate": 0.6, "mean_reward_gap": 1.5},
        ),
        (
            {"labeler": "cream"},
            {
                "labeler": "cream",
                "prompts": 50,
                "pairs": 40,
                "consistency_mean": 0.71,
                "consistency_std": 0.2,
                "consistency_from_previous": True,
            },
        ),
    ]
    for t, (label, pairs) in enumerate(counts):
        d = tmp_path / f"iter_{t}"
        d.mkdir()
        (d / "labels.jsonl.manifest.json").write_text(json.dumps({"counts": label}))
        (d / "pairs.jsonl.manifest.json").write_text(json.dumps({"counts": pairs}))
    lines = labeler_table(collect(tmp_path))
    assert "| 0 | scir | 30 of 50 | - | 60.0% | 3.1 | 5.0% of 600 | 1.5 | - |" in lines
    assert "| 1 | cream | 40 of 50 | 0.710 ± 0.200 | - | - | - | - | - |" in lines
