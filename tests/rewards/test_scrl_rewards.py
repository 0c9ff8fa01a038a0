"""`vote_rule: scrl` in the GRPO rewards: `majority` is SCRL's binary reward, `vote_share` its continuous one.

The oracle is SCRL's `reward_func` (Jasper-Yan/SCRL, verl/verl/utils/reward_score/scrl_math/__init__.py:61-160)
ported literally (tests/scrl_reference.py), fed with the labels of its ported `determine_pseudo_labels` as SCRL's
`apply_scrl_gt` feeds it (scrl_utils.py:260-287).
"""

from __future__ import annotations

import random

import pytest
from scrl_reference import reference_rewards

from scpo.core.errors import ScpoError
from scpo.rewards import REWARDS, RolloutBatch, vote_group
from scpo.rewards._scrl import ScrlRewardSettings
from scpo.tasks import get_task
from scpo.training.token_stats import TokenStats

NUMERIC = get_task("numeric")


def scrl_batch(answers, entropies) -> RolloutBatch:
    return RolloutBatch(
        texts=[a or "" for a in answers],
        answers=answers,
        groups=[vote_group(answers, NUMERIC)],
        group_golds=[None],
        group_answers=[answers],
        local=slice(0, len(answers)),
        task=NUMERIC,
        group_entropies=[list(entropies)],
    )


def reward(name, **settings):
    return REWARDS.get(name)(ScrlRewardSettings(vote_rule="scrl", **settings))


def test_known_rewards():
    answers = ["1"] * 5 + ["2", "3", None]
    entropies = [0.2] * 5 + [0.9, 0.05, 0.3]  # mean 0.26875: "2" is unsure (a negative), "3" sure (not)
    assert reward("majority")(scrl_batch(answers, entropies)) == [1, 1, 1, 1, 1, -1, 0, -1]
    mean = sum(entropies) / 8
    assert reward("vote_share")(scrl_batch(answers, entropies)) == pytest.approx(
        [5 / 8 - 0.1 * (0.2 - mean)] * 5 + [-(0.15 - 1 / 8) - 0.1 * (0.9 - mean), -0.1 * (0.05 - mean), -1.0]
    )
    assert reward("majority", scrl_unparsed_reward=0.0)(scrl_batch(answers, entropies))[-1] == 0.0
    # no positive (4/8 vs 3/8): the majority answer gets 0, not TTRL's 1
    assert reward("majority")(scrl_batch(["1"] * 4 + ["2"] * 3 + ["3"], [0.2] * 7 + [0.9])) == [0] * 7 + [-1]


@pytest.mark.parametrize("name, mode", [("majority", "binary"), ("vote_share", "continuous")])
def test_random_groups_match_the_reference_reward(name, mode):
    rng = random.Random(2)
    for case in range(300):
        k = rng.randint(1, 16)
        answers = rng.choices(["1", "2", "3", "4", None], weights=[6, 2, 1, 1, 1], k=k)
        entropies = [rng.uniform(0, 2) for _ in answers]
        knobs = (
            {}
            if case % 2
            else {"tau_pos": 0.375, "tau_marg": 0.125, "tau_low": 0.125, "a_plus": 2.0, "a_minus": 0.5, "lambda_h": 0.3}
        )
        settings = {f"scrl_{key}": value for key, value in knobs.items()}
        got = reward(name, **settings)(scrl_batch(answers, entropies))
        assert got == pytest.approx(reference_rewards(answers, entropies, mode, **knobs)), (answers, knobs)


def test_the_plain_rule_is_unchanged_and_needs_no_token_statistics():
    plain = REWARDS.get("majority")(ScrlRewardSettings())
    assert not plain.needs_token_stats
    assert reward("majority").needs_token_stats and reward("vote_share").needs_token_stats
    batch = scrl_batch(["1", "1", "2", None], [0.1] * 4)
    assert plain(batch) == [1, 1, 0, 0]
    assert REWARDS.get("vote_share")(None)(batch) == [0.5, 0.5, 0.25, 0]


def test_the_voter_gathers_each_groups_entropies_for_the_rewards():
    """The GRPO voter with two groups of 4 and the policy's token statistics (given here): each group's entropies
    are its rollouts' mean token entropies, and majority / vote_share are SCRL's rewards per group."""
    from scpo.training.grpo import GroupVoter, reward_functions

    texts = ["1", "1", "1", "2", "5", "5", "6", "oops"]
    token_entropy = [[0.1, 0.3], [0.2], [0.2, 0.2, 0.2], [1.0, 2.0], [0.4], [0.4], [0.9], [3.0]]
    voter = GroupVoter(NUMERIC, group_size=lambda: 4, n_samples=lambda: 4, rank=lambda: 0)
    voter.score_tokens = lambda prompt_ids, completion_ids: [TokenStats(e, [0.0] * len(e)) for e in token_entropy]
    settings = ScrlRewardSettings(vote_rule="scrl", scrl_tau_low=0.3)  # groups of 4: a share of 1/4 can be negative
    functions = reward_functions(["majority", "vote_share"], voter, settings)
    assert voter.needs_token_stats
    kwargs = {"id": ["a"] * 4 + ["b"] * 4, "prompt_ids": [[1]] * 8, "completion_ids": [[7, 2]] * 8}
    rewards = {f.__name__: f(prompts=["p"] * 8, completions=texts, **kwargs) for f in functions}
    batch = voter(["p"] * 8, texts, kwargs).batch
    assert batch.group_entropies == [pytest.approx([0.2, 0.2, 0.2, 1.5]), pytest.approx([0.4, 0.4, 0.9, 3.0])]
    # a: "1" 3/4 vs "2" 1/4 -> positive "1"; "2" (1/4 < 0.3, entropy 1.5 >= mean 0.525) negative. b: "5" 2/4, margin
    # 0.25 -> positive; "6" (1/4, but entropy 0.9 < mean 1.175) not negative; "oops" has no answer.
    assert rewards["majority"] == [1, 1, 1, -1, 1, 1, 0, -1]
    assert rewards["vote_share"] == pytest.approx(
        reference_rewards(["1", "1", "1", "2"], [0.2, 0.2, 0.2, 1.5], "continuous", tau_low=0.3)
        + reference_rewards(["5", "5", "6", None], [0.4, 0.4, 0.9, 3.0], "continuous", tau_low=0.3)
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--vote_rule", "scrl", "--scrl_tau_pos", "1.5"], "setting scrl_tau_pos=1.5: a vote share, must be in [0, 1]"),
        (
            ["--vote_rule", "scrl", "--scrl_tau_low", "-0.2"],
            "setting scrl_tau_low=-0.2: a vote share, must be in [0, 1]",
        ),
        (
            ["--vote_rule", "scrl", "--reward_funcs", "self_certainty"],
            "vote_rule=scrl changes the majority and vote_share",
        ),
        (["--vote_rule", "scrl", "--vote_teacher", "frozen"], "settings vote_rule=scrl and vote_teacher=frozen"),
        (["--scrl_lambda_h", "nan"], "setting scrl_lambda_h=nan: must be a finite number"),
    ],
)
def test_bad_scrl_settings_stop_scpo_grpo_before_it_starts(args, message):
    from scpo.stages.grpo import parse

    with pytest.raises(ScpoError) as e:
        parse(["--per_device_train_batch_size", "4", "--num_generations", "4", *args])
    assert message in str(e.value)
