"""A plain TRL reward function as an scpo reward: `reward_funcs: [my_pkg.my_module.my_reward]`.

TRL and open-r1 write a reward as a function `f(completions, **kwargs) -> list[float]` (TRL's GRPOTrainer docs,
"Using a custom reward function": GRPOTrainer._calculate_rewards calls it with prompts, completions, completion_ids,
every dataset column, trainer_state, log_extra and log_metric as keywords; open-r1 src/open_r1/rewards.py). scpo's
reward registry takes such a function by dotted path wherever it takes a reward name: `trl_reward` wraps it in a
`Reward` subclass named after the function, so TRL logs it as rewards/<function name>/mean, as TRL itself would.

The wrapper calls the function with TRL's own keyword arguments: `prompts` and `completions` as TRL passes them
(conversational: lists of messages), `completion_ids`, scpo's dataset columns (`id`, `gold`: the gold answer's
text, None when unlabeled), scpo's `prompt_ids`, `trainer_state`, `log_extra`, `log_metric` (and, with a vote
teacher, `teacher_completion`, `teacher_truncated`). It returns the function's values, None as no reward (TRL's
NaN); rollouts that only vote (n_samples < n_votes) get None, as from every scpo reward.

Checked when `reward_funcs` is read, before any model loads (scpo's choice: TRL finds these only at the first
reward call): the path imports, names a function or other callable object (not an async one, not a class that is
no Reward), which takes `**kwargs` (TRL passes more keywords than any function names) and needs no argument that
scpo's GRPO does not pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ClassVar

from scpo.core.errors import ScpoError
from scpo.rewards._base import Reward, RolloutBatch

# The keywords a reward function always gets from `scpo grpo` (TRL's and scpo's dataset columns: id, gold).
PASSED = (
    "prompts",
    "completions",
    "completion_ids",
    "id",
    "gold",
    "prompt_ids",
    "trainer_state",
    "log_extra",
    "log_metric",
)


class TrlFunctionReward(Reward):
    """A TRL reward function, called with TRL's keyword arguments (the batch's `extras`)."""

    function: ClassVar[Callable]
    path: ClassVar[str]

    def __call__(self, batch: RolloutBatch) -> list[float | None]:
        kwargs = dict(batch.extras)
        kwargs.setdefault("completions", list(batch.texts))
        kwargs.setdefault("prompts", None)
        values = type(self).function(**kwargs)
        try:
            values = [None if v is None else float(v) for v in values]
        except (TypeError, ValueError) as e:
            raise ScpoError(
                f"reward {self.path!r} returned {type(values).__name__} {str(values)[:80]!r}: expected "
                f"a list of numbers (or None), one per completion ({e})"
            ) from None
        if len(values) != len(batch.texts):
            raise ScpoError(
                f"reward {self.path!r} returned {len(values)} values for {len(batch.texts)} completions: "
                "one per completion is expected"
            )
        return values


def trl_reward(obj: object, path: str) -> type[Reward]:
    """The Reward subclass that calls `obj`, a TRL-style reward function named by `path`; a named ScpoError when
    `obj` is not one."""
    where = f"setting reward_funcs: {path!r}"
    accepted = (
        "a Reward subclass (scpo/rewards/_base.py) or a TRL reward function "
        "`def f(completions, **kwargs) -> list[float]`"
    )
    if isinstance(obj, type) or not callable(obj):
        what = "a class that is not a Reward" if isinstance(obj, type) else f"a {type(obj).__name__}, not callable"
        raise ScpoError(f"{where} is {what}; expected {accepted}")
    if inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(type(obj).__call__):
        raise ScpoError(f"{where} is an async function; scpo calls rewards synchronously: write it as a plain function")
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: taken as it is
        parameters = None
    if parameters is not None:
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            raise ScpoError(
                f"{where} takes no **kwargs; TRL passes every dataset column and more as keywords "
                f"({', '.join(PASSED)}): define it as `def f(completions, **kwargs)`"
            )
        needed = [
            p.name
            for p in parameters
            if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and (p.kind is p.POSITIONAL_ONLY or p.name not in PASSED)
        ]
        if needed:
            raise ScpoError(
                f"{where} needs {', '.join(needed)}, which scpo grpo does not pass (it passes "
                f"{', '.join(PASSED)} as keywords); give them defaults or read them from kwargs"
            )
    name = getattr(obj, "__name__", None) or path.replace(":", ".").rsplit(".", 1)[-1]
    return type(
        f"TrlReward_{name}",
        (TrlFunctionReward,),
        {"name": name, "function": staticmethod(obj), "path": path, "__module__": __name__},
    )
