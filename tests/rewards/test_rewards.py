"""Majority-vote rewards (TTRL) on known completions: pure Python, milliseconds."""

from __future__ import annotations

import pytest

from scpo.rewards import batch_stats, format_rewards, gold_rewards, vote_group
from scpo.tasks import get_task

NUMERIC = get_task("numeric")
COMPLETIONS = ["The answer is 5.", "5", "I think it is 6", "no idea", "The answer is 5.0", "6", "7", "The answer is 5"]


def answers(completions, task=NUMERIC):
    return [task.extract(c) for c in completions]


def test_majority_vote_share_and_gold_rewards_for_known_completions():
    group = vote_group(answers(COMPLETIONS), NUMERIC)
    # 5 (4 votes, '5.0' is equivalent), 6 (2), 7 (1), no answer (1)
    assert group.majority == "5" and group.majority_votes == 4 and not group.tied
    assert group.majority_ratio == 4 / 8 and group.distinct_answers == 3 and group.unparsed == 1
    assert group.majority_rewards() == [1, 1, 0, 0, 1, 0, 0, 1]
    assert group.vote_share_rewards() == [4 / 8, 4 / 8, 2 / 8, 0, 4 / 8, 2 / 8, 1 / 8, 4 / 8]
    assert gold_rewards(answers(COMPLETIONS), "6", NUMERIC) == [0, 0, 1, 0, 0, 1, 0, 0]
    assert gold_rewards(answers(COMPLETIONS), None, NUMERIC) == [None] * 8  # unlabeled: no reward, not 0


def test_ties_go_to_the_answer_seen_first_and_are_counted():
    first = vote_group(answers(["3", "4", "4", "3"]), NUMERIC)
    assert first.majority == "3" and first.tied and first.majority_rewards() == [1, 0, 0, 1]
    swapped = vote_group(answers(["4", "3", "3", "4"]), NUMERIC)
    assert swapped.majority == "4" and swapped.majority_rewards() == [1, 0, 0, 1]
    assert batch_stats([first, swapped], [None, None], NUMERIC)["majority_ties"] == 2


def test_a_group_without_any_answer_gets_zero_rewards_and_is_counted():
    group = vote_group(answers(["no idea", "hmm", "?"]), NUMERIC)
    assert group.majority is None and group.majority_ratio == 0
    assert group.majority_rewards() == [0, 0, 0] and group.vote_share_rewards() == [0, 0, 0]
    stats = batch_stats([group, vote_group(["1", "1", None], NUMERIC)], ["2", "1"], NUMERIC)
    assert stats["no_answer_prompts"] == 1 and stats["unparsed_rollouts"] == 4
    assert stats["label_accuracy"] == 0.5  # the unanswered prompt's majority is not its gold answer
    assert stats["majority_ratio"] == pytest.approx((0 + 2 / 3) / 2)


def test_label_accuracy_only_over_prompts_with_gold():
    groups = [vote_group(["5", "5", "6"], NUMERIC), vote_group(["2", "3", "3"], NUMERIC)]
    assert batch_stats(groups, ["5", None], NUMERIC)["label_accuracy"] == 1.0
    assert "label_accuracy" not in batch_stats(groups, [None, ""], NUMERIC)
    assert batch_stats(groups, ["#### 4", "3"], get_task("gsm8k"))["label_accuracy"] == 0.5  # gold rationales


def test_majority_is_independent_of_the_order_of_a_clear_winner():
    import random

    ans = answers(COMPLETIONS)
    for seed in range(5):
        order = list(range(len(ans)))
        random.Random(seed).shuffle(order)
        group = vote_group([ans[i] for i in order], NUMERIC)
        assert group.majority == "5" and sum(group.majority_rewards()) == 4


def test_format_reward():
    completions = ["The answer is 5.", "none", "5"]
    assert format_rewards(completions, answers(completions)) == [1, 0, 1]
    assert format_rewards(completions, answers(completions), pattern=r"The answer is \S+") == [1, 0, 0]
