"""SCRL's selective vote labels (vote_rule: scrl) against its reference code, and the `votes` labeler's SCRL pairs.

The oracle is SCRL's `determine_pseudo_labels` (Jasper-Yan/SCRL, verl/verl/trainer/ppo/scrl_utils.py:84-144) ported
literally for one prompt (tests/scrl_reference.py). It is compared with scpo/selective_votes.py on constructed vote
sets and on a thousand random ones.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest
from helpers import read_jsonl, write_jsonl
from scrl_reference import reference_labels

from scpo.core.errors import ScpoError
from scpo.pairs import SKIP_REASONS, PairRule, pick_by_scrl
from scpo.selective_votes import ScrlLabelSettings, ScrlThresholds, scrl_labels, surprisal
from scpo.stages import label, pairs
from scpo.tasks import get_task
from scpo.voting import vote

NUMERIC = get_task("numeric")
REFERENCE = ScrlThresholds(0.5, 0.15, 0.15)  # ppo_trainer_scrl.yaml:27-29
RUN_EXAMPLE = ScrlThresholds(0.375, 0.125, 0.125)  # run_example.sh:40-42


def scpo_labels(answers, entropies, th=REFERENCE):
    """scpo's labels as answer strings (the numeric task's answers here are exact integers: one spelling each)."""
    votes = vote(answers, NUMERIC)
    labels = scrl_labels(votes, entropies, th)
    positive = None if labels.positive is None else votes.groups[labels.positive].answer
    return positive, [votes.groups[g].answer for g in labels.negatives], labels


def agree(answers, entropies, th=REFERENCE):
    want_pos, want_neg, _ = reference_labels(answers, entropies, th.tau_pos, th.tau_marg, th.tau_low)
    got_pos, got_neg, _ = scpo_labels(answers, entropies, th)
    assert got_pos == want_pos and sorted(got_neg) == sorted(want_neg), (answers, entropies, th)
    return got_pos, sorted(got_neg)


# --------------------------------------------------------------------------- constructed vote sets

CASES = [
    # (answers, entropies, thresholds, positive, negatives)
    # clear consensus (5/8, runner-up 1/8); the two singletons: "2" unsure (a negative), "3" sure (not)
    (["1"] * 5 + ["2", "3", None], [0.2] * 5 + [0.9, 0.05, 0.3], REFERENCE, "1", ["2"]),
    # 4/8 vs 3/8: the margin 0.125 is not > 0.15, no positive; the unsure singleton is still a negative
    (["1"] * 4 + ["2"] * 3 + ["3"], [0.2] * 7 + [0.9], REFERENCE, None, ["3"]),
    # neither: top share 3/8 < 0.5, and no answer below 0.15 of the votes
    (["1"] * 3 + ["2"] * 3 + ["3"] * 2, [0.5] * 8, REFERENCE, None, []),
    # a share of exactly tau_pos is enough (>=); one answer alone needs no margin; no answer never counts
    (["1"] * 4 + [None] * 4, [0.1] * 4 + [2.0] * 4, REFERENCE, "1", []),
    # 5/8 vs 3/8: margin 0.25 > 0.15
    (["1"] * 5 + ["2"] * 3, [0.5] * 8, REFERENCE, "1", []),
    # an unparsed completion is never a negative, however unsure and rare
    (["1"] * 7 + [None], [0.1] * 7 + [3.0], REFERENCE, "1", []),
    # an answer whose entropy equals the prompt's mean is a negative (>=): every entropy 0.5
    (["1"] * 7 + ["2"], [0.5] * 8, REFERENCE, "1", ["2"]),
    # a share of exactly tau_low is not below it: run_example's 0.125 with k = 8
    (["1"] * 6 + ["2", "3"], [0.1] * 6 + [0.9, 0.9], RUN_EXAMPLE, "1", []),
    # ... while the reference's 0.15 takes both
    (["1"] * 6 + ["2", "3"], [0.1] * 6 + [0.9, 0.9], REFERENCE, "1", ["2", "3"]),
    # SCRL's float margin: 11/20 - 8/20 = 0.15000000000000002 > 0.15, a positive (as its code computes it)
    (["1"] * 11 + ["2"] * 8 + ["3"], [0.3] * 20, REFERENCE, "1", ["3"]),
    # a tie at the top never passes the margin; nothing voted at all: no labels
    (["1", "1", "2", "2"], [0.1, 0.1, 0.9, 0.9], ScrlThresholds(0.5, 0.0, 0.15), None, []),
    ([None, None, None], [0.1, 0.2, 0.3], REFERENCE, None, []),
]


@pytest.mark.parametrize("answers, entropies, th, positive, negatives", CASES)
def test_constructed_vote_sets_match_the_reference(answers, entropies, th, positive, negatives):
    assert agree(answers, entropies, th) == (positive, sorted(negatives))


def test_why_there_is_no_positive():
    assert scpo_labels([None, None], [0.1, 0.2])[2].why_no_positive == "all_unparsed"
    assert scpo_labels(["1", "2", "3"], [0.1, 0.2, 0.3])[2].why_no_positive == "below_tau_pos"
    assert scpo_labels(["1"] * 4 + ["2"] * 3 + ["3"], [0.1] * 8)[2].why_no_positive == "margin"  # 0.5 - 0.375
    assert scpo_labels(["1"] * 4 + ["2"] * 2, [0.1] * 6)[2].why_no_positive is None  # 4/6 - 2/6 > 0.15


def test_random_vote_sets_match_the_reference():
    """Random prompts: k 1..24, answers from a small alphabet with no-answers, entropies continuous or from a few
    dyadic values (exact ties with the mean), thresholds SCRL's, its run script's, or random in [0, 1]."""
    rng = random.Random(0)
    seen = Counter()
    for case in range(1200):
        k = rng.randint(1, 24)
        alphabet = ["1", "2", "3", "4", "5", "6"][: rng.randint(1, 6)]
        weights = [rng.random() ** 3 for _ in alphabet] + [rng.random() * 0.3]
        answers = rng.choices(alphabet + [None], weights=weights, k=k)
        if case % 2:
            entropies = [rng.uniform(0.0, 3.0) for _ in answers]
        else:
            entropies = [rng.choice([0.25, 0.5, 1.0, 1.5]) for _ in answers]
        th = [REFERENCE, RUN_EXAMPLE, ScrlThresholds(*(round(rng.random(), 3) for _ in range(3)))][case % 3]
        positive, negatives = agree(answers, entropies, th)
        seen["positive" if positive else "no positive"] += 1
        seen["negatives" if negatives else "no negatives"] += 1
    assert min(seen.values()) > 150, seen  # every outcome is exercised


def test_the_labels_do_not_depend_on_the_order_of_the_completions():
    rng = random.Random(1)
    for _ in range(200):
        answers = rng.choices(["1", "2", "3", None], weights=[5, 2, 1, 1], k=12)
        entropies = [rng.uniform(0, 2) for _ in answers]
        order = list(range(12))
        rng.shuffle(order)
        a = scpo_labels(answers, entropies)
        b = scpo_labels([answers[i] for i in order], [entropies[i] for i in order])
        assert a[:2] == b[:2]


def test_extra_samples_join_groups_but_neither_vote_nor_count_in_the_entropy_mean():
    votes = vote(["1", "1", "1", "2", "2"], NUMERIC, voting=[True, True, True, True, False])
    labels = scrl_labels(votes, [0.1, 0.1, 0.1, 0.6, 99.0], REFERENCE)
    assert labels.shares == [0.75, 0.25] and labels.mean_entropy == pytest.approx(0.225)
    assert labels.group_entropy == [pytest.approx(0.1), 0.6] and labels.positive == 0 and labels.negatives == []


def test_surprisal_from_the_samplers_log_probs():
    assert surprisal({"token_logprobs": [-0.5, -1.5, -1.0], "logprob": -99.0, "num_tokens": 3}) == pytest.approx(1.0)
    assert surprisal({"logprob": -3.0, "num_tokens": 4}) == pytest.approx(0.75)
    assert surprisal({"token_logprobs": [], "logprob": 0.0, "num_tokens": 0}) == 0.0  # SCRL: 0 over no tokens
    assert surprisal({"completion": "x"}) is None and surprisal({"logprob": None, "num_tokens": 2}) is None


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "name, value", [("scrl_tau_pos", 1.5), ("scrl_tau_marg", -0.1), ("scrl_tau_low", float("nan"))]
)
def test_thresholds_outside_zero_one_are_named_errors(name, value):
    with pytest.raises(ScpoError, match=re.escape(f"setting {name}={value}: a vote share, must be in [0, 1]")):
        ScrlLabelSettings(vote_rule="scrl", **{name: value})
    with pytest.raises(ScpoError, match="setting vote_rule='scr': expected one of plain, scrl"):
        ScrlLabelSettings(vote_rule="scr")


def test_a_bad_threshold_stops_scpo_label_before_reading_the_samples(tmp_path):
    with pytest.raises(ScpoError, match=re.escape("setting scrl_tau_marg=1.2: a vote share, must be in [0, 1]")):
        label.main(
            [
                "--samples_file",
                str(tmp_path / "missing.jsonl"),
                "--labels_file",
                str(tmp_path / "l.jsonl"),
                "--vote_rule",
                "scrl",
                "--scrl_tau_marg",
                "1.2",
            ]
        )
    with pytest.raises(ScpoError, match="settings vote_rule=scrl and mode=supervised"):
        pairs.main(
            [
                "--labels_file",
                str(tmp_path / "l.jsonl"),
                "--pairs_file",
                str(tmp_path / "p.jsonl"),
                "--vote_rule",
                "scrl",
                "--mode",
                "supervised",
            ]
        )


# --------------------------------------------------------------------------- pairs


def rows(pid, answers, surprisals, **extra):
    """Sample rows as `scpo sample` writes them: one log-prob per token (all equal here), their sum, the count."""
    out = []
    for i, (a, s) in enumerate(zip(answers, surprisals)):
        n = 4
        out.append(
            {
                "id": pid,
                "prompt": f"Question {pid}?",
                "sample_index": i,
                "completion": f"The answer is {a}." if a is not None else "I give up.",
                "num_tokens": n,
                "token_logprobs": [-s] * n,
                "logprob": -s * n,
                "finish_reason": "stop",
                **extra,
            }
        )
    return out


def test_pick_by_scrl_chooses_the_positive_and_rejects_the_least_voted_negative():
    votes = vote(["1"] * 10 + ["2", "2", "3", None], NUMERIC)
    labels = scrl_labels(votes, [0.1] * 10 + [0.8, 0.8, 0.9, 0.5], REFERENCE)
    assert [votes.groups[g].answer for g in labels.negatives] == ["2", "3"]  # 2/14 and 1/14, both unsure
    result = pick_by_scrl(votes, labels, PairRule(), "p")
    assert votes.group_of[result.chosen] == labels.positive
    assert votes.groups[votes.group_of[result.rejected]].answer == "3"
    assert result.weight == pytest.approx((10 - 1) / 14) and result.source == "votes"
    assert pick_by_scrl(votes, labels, PairRule(weighting="none"), "p").weight == 1.0
    assert {"scrl_no_positive", "scrl_no_negative"} <= set(SKIP_REASONS)


def test_votes_labeler_scrl_pairs_on_a_rows_file(tmp_path):
    samples = write_jsonl(
        tmp_path / "samples.jsonl",
        rows("pos-neg", ["7"] * 5 + ["8", "9", None], [0.2] * 5 + [1.0, 0.1, 0.4])
        + rows("no-pos", ["7"] * 4 + ["8"] * 3 + ["9"], [0.2] * 7 + [1.0])
        + rows("no-neg", ["7"] * 7 + [None], [0.5] * 7 + [3.0]),
    )
    labels_file, pairs_file = tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl"
    scrl = ["--task", "numeric", "--vote_rule", "scrl"]
    label.main(["--samples_file", str(samples), "--labels_file", str(labels_file), *scrl])
    pairs.main(["--labels_file", str(labels_file), "--pairs_file", str(pairs_file), *scrl])
    (pair,) = read_jsonl(pairs_file)
    assert pair["id"] == "pos-neg" and pair["chosen_answer"] == "7" and pair["rejected_answer"] == "8"
    assert pair["weight"] == pytest.approx((5 - 1) / 8)
    manifest = json.loads((tmp_path / "pairs.jsonl.manifest.json").read_text())
    assert manifest["counts"]["skipped"] == {"scrl_no_positive": 1, "scrl_no_negative": 1}
    assert manifest["config"]["vote_rule"] == "scrl" and manifest["config"]["scrl_tau_pos"] == 0.5
    # the plain rule on the same labels: ScPO's pairs, and its manifest config as before (no SCRL keys)
    pairs.main(["--labels_file", str(labels_file), "--pairs_file", str(tmp_path / "plain.jsonl"), "--task", "numeric"])
    plain = json.loads((tmp_path / "plain.jsonl.manifest.json").read_text())
    assert plain["counts"]["pairs"] == 3 and not any(key.startswith(("scrl", "vote_rule")) for key in plain["config"])


def test_samples_without_log_probs_are_a_named_error_before_labeling(tmp_path):
    bare = [
        {k: v for k, v in r.items() if k not in ("token_logprobs", "logprob")}
        for r in rows("p", ["1", "1", "2"], [0.1, 0.1, 0.1])
    ]
    samples = write_jsonl(tmp_path / "samples.jsonl", bare)
    with pytest.raises(ScpoError, match=r"samples.jsonl: prompt 'p', sample_index 0: no finite log-probs"):
        label.main(
            [
                "--samples_file",
                str(samples),
                "--labels_file",
                str(tmp_path / "l.jsonl"),
                "--task",
                "numeric",
                "--vote_rule",
                "scrl",
            ]
        )
    assert not (tmp_path / "l.jsonl").exists()
