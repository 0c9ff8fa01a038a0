"""A plain TRL reward function `f(completions, **kwargs) -> list[float]`, named by dotted path, is an scpo reward
(scpo/rewards/_trl.py): wrapped, called with TRL's keyword arguments, and refused by name before any model loads
when it does not import, is not callable or cannot take TRL's arguments."""

from __future__ import annotations

import sys
import textwrap

import pytest

from scpo.core.errors import ScpoError
from scpo.rewards import REWARDS

USER_REWARDS = '''
def length_reward(completions, **kwargs):
    """open-r1 style: conversational completions, one float per completion."""
    return [-len(c[0]["content"]) for c in completions]


def seen(prompts, completions, gold, trainer_state=None, **kwargs):
    seen.calls.append({"prompts": prompts, "gold": gold, "keys": sorted(kwargs)})
    return [1.0 if g is not None else None for g in gold]


seen.calls = []


def no_kwargs(completions):
    return [0.0] * len(completions)


def needs_solution(completions, solution, **kwargs):
    return [0.0] * len(completions)


async def later(completions, **kwargs):
    return [0.0] * len(completions)


def too_few(completions, **kwargs):
    return [1.0]


NOT_CALLABLE = 3


class NotAReward:
    pass
'''


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_rewards.py").write_text(textwrap.dedent(USER_REWARDS))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_rewards"
    sys.modules.pop("user_rewards", None)


def test_a_trl_function_is_wrapped_and_called_with_trl_arguments(user_module):
    from scpo.tasks import get_task
    from scpo.training.grpo import GroupVoter, reward_functions

    cls = REWARDS.get(f"{user_module}.length_reward")
    assert cls.name == "length_reward"  # TRL logs rewards/length_reward/mean, as TRL itself would
    voter = GroupVoter(get_task("numeric"), group_size=lambda: 2, n_samples=lambda: 1, rank=lambda: 0)
    length, seen = reward_functions([f"{user_module}.length_reward", f"{user_module}:seen"], voter)
    assert (length.__name__, seen.__name__) == ("length_reward", "seen")
    completions = [[{"role": "assistant", "content": text}] for text in ("5", "five", "7", "seven")]
    kwargs = dict(
        prompts=[[{"role": "user", "content": "q"}]] * 4,
        completions=completions,
        id=["a", "a", "b", "b"],
        gold=["5", "5", None, None],
        completion_ids=[[1], [2, 3], [4], [5, 6]],
        trainer_state="state",
    )
    assert length(**kwargs) == [-1.0, None, -1.0, None]  # the second of each group only votes (n_samples 1)
    assert seen(**kwargs) == [1.0, None, None, None]  # None from the function: no reward
    (call,) = sys.modules[user_module].seen.calls
    assert call["prompts"] == kwargs["prompts"] and call["gold"] == ["5", "5", None, None]
    assert {"completion_ids", "id"} <= set(call["keys"])


@pytest.mark.parametrize(
    "attr, message",
    [
        ("missing_function", "cannot import it"),
        ("NOT_CALLABLE", "not callable"),
        ("NotAReward", "a class that is not a Reward"),
        ("no_kwargs", r"takes no \*\*kwargs"),
        ("needs_solution", "needs solution, which scpo grpo does not pass"),
        ("later", "async function"),
    ],
)
def test_a_bad_dotted_path_is_a_named_error(user_module, attr, message):
    with pytest.raises(ScpoError, match=message) as e:
        REWARDS.get(f"{user_module}.{attr}")
    assert attr in str(e.value)


def test_a_module_that_does_not_import_is_named():
    with pytest.raises(ScpoError, match=r"reward_funcs: reward 'no_such_pkg\.mod\.f': cannot import it"):
        REWARDS.get("no_such_pkg.mod.f")


def test_grpo_settings_refuse_a_bad_reward_before_anything_runs(user_module):
    from scpo.stages.grpo import GrpoSettings

    GrpoSettings(
        reward_funcs=["majority", f"{user_module}.length_reward"], guard_metric="rewards/length_reward/mean"
    )  # the guard can watch it under its logged name
    with pytest.raises(ScpoError, match="takes no"):
        GrpoSettings(reward_funcs=[f"{user_module}.no_kwargs"])


def test_a_function_returning_the_wrong_count_is_named(user_module):
    from scpo.rewards import RolloutBatch
    from scpo.tasks import get_task

    reward = REWARDS.get(f"{user_module}.too_few")()
    batch = RolloutBatch(
        texts=["a", "b"],
        answers=[None, None],
        groups=[],
        group_golds=[],
        group_answers=[],
        local=slice(0, 2),
        task=get_task("numeric"),
    )
    with pytest.raises(ScpoError, match="returned 1 values for 2 completions"):
        reward(batch)
