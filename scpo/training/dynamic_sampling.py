"""Vote-aware dynamic sampling for `scpo grpo` (DAPO, Yu et al. 2025, arXiv 2503.14476 §3.2): pure logic.

GRPO's advantage is a rollout's reward minus its group's mean, over the group's std. A prompt whose
rollouts all earn the same reward - unanimous votes under `majority`, every rollout unparsed, all zero -
gets advantage 0 for every rollout: it costs a generation and a forward/backward pass and moves nothing.
DAPO over-samples and keeps only groups that are neither all right nor all wrong (its Eq. 11:
0 < |{o_i correct}| < G), generating again until the batch is full. Its reference code is verl's
recipe/dapo/dapo_ray_trainer.py (verl commit 9d77200, lines 229-288, before recipe/ moved to
verl-project/verl-recipe): per prompt uid, `np.std` of the `filter_groups.metric` values; groups with
std > 0 are kept; if fewer than `train_batch_size` prompts are kept, it draws the next `gen_batch_size`
prompts from the dataloader and repeats, at most `max_num_gen_batches` generation batches per step
(<= 0: no cap), then raises ValueError ("Generated too many. Please check if your data are too
difficult"); a full batch is cut to `train_batch_size` prompts and the surplus is dropped.

What scpo does, and where it differs (each difference is scpo's choice):
- The filter is on the rewards' spread, never their mean (OpenRLHF issue 1270: a mean filter lets a
  vote-share group with equal non-binary rewards through). The values are the rewards as TRL aggregates
  them (`multi_objective_aggregation`): `sum_then_normalize` (TRL's default) filters on the weighted
  sum of the reward functions per rollout; `normalize_then_sum` drops a group when every weighted reward
  function is constant in it (each function is normalised in its group first, so that is when the
  group contributes nothing). A rollout every reward left unscored (None: TTRL's vote-only rollouts,
  `gold` without a gold answer) is left out, as TRL leaves it out of the group's mean and std.
- "All equal" is exact equality (max == min), not DAPO's `np.std(...) > 0`: the std of equal floats
  can come out as 1e-17 (the mean of [0.1, 0.1, 0.1] is 0.10000000000000002), which would let an
  all-equal vote-share group through (NVIDIA-NeMo/RL PR 4158 reports the same for its `std != 0` filter).
- A group with fewer than two scored rollouts has no spread and is dropped; DAPO keeps a group of one
  (`len(...) == 1`), which only occurs with rollout.n = 1. scpo refuses dynamic sampling when no group
  can ever have two scored rollouts (`check_rewards_can_vary`).
- Each generation round is one TRL generation batch (DAPO's `gen_batch_size` equals the train batch;
  DAPO's scripts over-sample 3x in every round). The first round is TRL's own batch; further rounds
  take fresh prompts from `PromptStream`, a shuffled walk over the training set of its own (seeded from
  the run's seed), so TRL's own epoch order is untouched; a prompt already drawn for this step is
  skipped. DAPO instead consumes its training dataloader, so its epochs end sooner.
- `max_rounds` is DAPO's `max_num_gen_batches` (rounds per step, the first included; 0: no cap); its
  default 10 is DAPO's scripts' value (recipe/dapo/run_dapo_qwen2.5_32b.sh:27; verl's config default is
  0, no cap). When the cap is hit, `on_cap: raise` (default) is DAPO's ValueError as an ScpoError;
  `on_cap: fill` trains on the batch topped up with the earliest equal-reward groups, whose advantage is
  0 (as GRPO without the filter), and logs their share.
- Multi-process: rounds stop when every process has its share of kept groups; each process keeps its
  own groups (`check_whole_groups`: a process's generation batch must hold whole groups).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from scpo.core.errors import ScpoError

ON_CAP = ("raise", "fill")
# Rewards bound to data: with no such data in the training prompts they score nothing (None for every rollout).
DATA_BOUND_REWARDS = {"gold": "a gold answer"}


@dataclass(frozen=True)
class DynamicSampling:
    """The settings VoteTrainer needs (from GrpoSettings: dynamic_sampling_max_rounds, dynamic_sampling_on_cap)."""

    max_rounds: int = 10
    on_cap: str = "raise"

    def __post_init__(self):
        check_settings(self.max_rounds, self.on_cap)


def check_settings(max_rounds: int, on_cap: str) -> None:
    if max_rounds < 0:
        raise ScpoError(
            f"setting dynamic_sampling_max_rounds={max_rounds}: must be 0 (no cap) or a number of "
            "generation rounds per step, the first included (1: never generate again)"
        )
    if on_cap not in ON_CAP:
        raise ScpoError(f"setting dynamic_sampling_on_cap={on_cap!r}: must be one of {', '.join(ON_CAP)}")


def _scored(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def weighted_reward(row: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """A rollout's reward as TRL's sum_then_normalize adds it: the weighted sum of its scored rewards, None if none
    scored it (TRL: nansum over the functions, NaN when every function returned None)."""
    values = [w * r for r, w in zip(row, weights) if _scored(r)]
    return sum(values) if values else None


def _spread(values: Sequence[float | None]) -> bool:
    scored = [v for v in values if _scored(v)]
    return len(scored) >= 2 and max(scored) != min(scored)


def group_has_signal(
    rows: Sequence[Sequence[float | None]], weights: Sequence[float], aggregation: str = "sum_then_normalize"
) -> bool:
    """Whether one prompt's rollouts (one row of per-function rewards each) differ in what GRPO normalises."""
    if aggregation == "sum_then_normalize":
        return _spread([weighted_reward(row, weights) for row in rows])
    if aggregation == "normalize_then_sum":
        return any(w != 0 and _spread([row[k] for row in rows]) for k, w in enumerate(weights))
    raise ScpoError(
        f"setting multi_objective_aggregation={aggregation!r}: dynamic sampling knows sum_then_normalize "
        "and normalize_then_sum"
    )


def signal_flags(
    rewards_per_func: Sequence[Sequence[float | None]],
    weights: Sequence[float],
    group_size: int,
    aggregation: str = "sum_then_normalize",
) -> list[bool]:
    """One flag per group of a generation batch (rows in TRL's order, `group_size` consecutive rows per prompt)."""
    if len(rewards_per_func) % group_size:
        raise ScpoError(f"{len(rewards_per_func)} rollouts do not form groups of {group_size} (num_generations)")
    return [
        group_has_signal(rewards_per_func[s : s + group_size], weights, aggregation)
        for s in range(0, len(rewards_per_func), group_size)
    ]


class PromptStream:
    """Fresh prompts for the extra rounds: dataset indices in a seeded shuffled order, epoch after epoch.

    Every process holds the same stream and draws the same global prompts (then takes its own slice).
    On resume from a checkpoint the stream starts again from its first epoch (scpo's choice: its position is
    not saved)."""

    def __init__(self, ids: Sequence[str], seed: int, shuffle: bool = True):
        if not ids:
            raise ScpoError("dynamic sampling: the training set is empty")
        self.ids, self.seed, self.shuffle = list(ids), seed, shuffle
        self.epoch, self._order, self._pos = -1, [], 0

    def _next(self) -> int:
        if self._pos >= len(self._order):
            self.epoch += 1
            self._order = list(range(len(self.ids)))
            if self.shuffle:
                random.Random(f"scpo-dynamic-sampling:{self.seed}:{self.epoch}").shuffle(self._order)
            self._pos = 0
        self._pos += 1
        return self._order[self._pos - 1]

    def take(self, n: int, exclude: set[str] = frozenset()) -> list[int]:
        """The next `n` indices whose ids are not in `exclude` (once a whole epoch was skipped, repeats are allowed:
        a training set smaller than a step's rounds)."""
        out: list[int] = []
        skipped = 0
        while len(out) < n:
            i = self._next()
            if self.ids[i] in exclude and skipped < len(self.ids):
                skipped += 1
                continue
            out.append(i)
        return out


@dataclass
class Refill:
    """One optimizer step's generation rounds: which groups each process keeps, when to stop, what to log.

    `groups_per_process` is how many groups each process trains on (its generation batch / num_generations).
    `add(flags)` takes one round's flags for every group in TRL's global order (process 0's groups first)."""

    groups_per_process: int
    processes: int
    max_rounds: int
    rounds: int = 0
    kept: list[list[tuple[int, int]]] = field(default_factory=list)  # per process: (round, local group) with signal
    dropped: list[list[tuple[int, int]]] = field(default_factory=list)  # per process: (round, local group) without

    def __post_init__(self):
        self.kept = [[] for _ in range(self.processes)]
        self.dropped = [[] for _ in range(self.processes)]

    def add(self, flags: Sequence[bool]) -> None:
        if len(flags) != self.groups_per_process * self.processes:
            raise ScpoError(
                f"dynamic sampling: a round gave {len(flags)} groups, expected "
                f"{self.groups_per_process} per process x {self.processes}"
            )
        for rank in range(self.processes):
            for j in range(self.groups_per_process):
                keep = flags[rank * self.groups_per_process + j]
                (self.kept if keep else self.dropped)[rank].append((self.rounds, j))
        self.rounds += 1

    @property
    def short(self) -> bool:
        return any(len(k) < self.groups_per_process for k in self.kept)

    @property
    def capped(self) -> bool:
        return self.max_rounds > 0 and self.rounds >= self.max_rounds

    def needs_another_round(self) -> bool:
        return self.short and not self.capped

    def selection(self, rank: int, on_cap: str = "raise") -> list[tuple[int, int]]:
        """This process's groups to train on, (round, local group), in generation order: the first kept ones (the
        surplus is dropped, as DAPO's `batch[:traj_bsz]`); short after the cap: DAPO's error, or topped up with the
        earliest equal-reward groups (`on_cap: fill`)."""
        chosen = self.kept[rank][: self.groups_per_process]
        missing = self.groups_per_process - len(chosen)
        if self.short and on_cap == "raise":  # any process short: every process raises, none waits on the others
            kept = sum(min(len(k), self.groups_per_process) for k in self.kept)
            raise ScpoError(
                f"dynamic sampling: after {self.rounds} generation rounds (dynamic_sampling_max_rounds="
                f"{self.max_rounds}) only {kept} of the {self.groups_per_process * self.processes} prompts this step "
                f"needs have rollouts with different rewards ({self.filtered_share:.0%} of "
                f"{self.generated_groups} prompts had all-equal rewards: unanimous votes, no answers, all zero). "
                "Raise dynamic_sampling_max_rounds (0: no cap), set dynamic_sampling_on_cap: fill to train on the "
                "batch topped up with equal-reward prompts, or check the data and rewards (too easy, too hard)"
            )
        return sorted(chosen + self.dropped[rank][:missing])

    @property
    def generated_groups(self) -> int:
        return self.rounds * self.groups_per_process * self.processes

    @property
    def filtered_share(self) -> float:
        """Share of this step's generated groups whose rewards were all equal."""
        dropped = sum(len(d) for d in self.dropped)
        return dropped / self.generated_groups if self.generated_groups else 0.0

    def metrics(self, group_size: int) -> dict[str, float]:
        """What a step logs (TRL's metrics dict: TensorBoard / report_to, grpo_log.jsonl)."""
        trained = self.groups_per_process * self.processes
        filled = sum(max(0, self.groups_per_process - len(k)) for k in self.kept)
        return {
            "dynamic_sampling/filtered_share": self.filtered_share,
            "dynamic_sampling/rounds": float(self.rounds),
            "dynamic_sampling/rollouts_generated": float(self.generated_groups * group_size),
            "dynamic_sampling/cap_hit": float(self.short),
            "dynamic_sampling/equal_reward_share_trained": filled / trained if trained else 0.0,
        }


def check_rewards_can_vary(
    trained_per_group: int, reward_funcs: Sequence[str], reward_weights: Sequence[float] | None
) -> None:
    """Dynamic sampling with rewards that can never differ inside a group would regenerate forever: refused before
    any generation. "Can never vary", as scpo defines it from the settings alone:
    (a) fewer than two rollouts of a group are trained on, and so scored (n_samples, else num_generations, < 2):
        one value has no spread;
    (b) every reward function has weight 0 in reward_weights: every rollout's reward is 0.
    (c), the data-bound case, is `check_data_can_vary`. A reward whose own code returns one value for every
    rollout cannot be seen before generation: there the round cap stops it (dynamic_sampling_max_rounds)."""
    if trained_per_group < 2:
        raise ScpoError(
            f"setting dynamic_sampling=true with {trained_per_group} trained rollout per prompt "
            "(n_samples, else n_votes / num_generations): a group's rewards can never differ, so every "
            "prompt would be dropped; train on at least 2 rollouts per prompt or set dynamic_sampling false"
        )
    weights = list(reward_weights) if reward_weights is not None else [1.0] * len(reward_funcs)
    if weights and all(w == 0 for w in weights):
        raise ScpoError(
            f"setting dynamic_sampling=true with reward_weights={weights}: every reward is weighted 0, so "
            "every rollout's reward is 0 and every prompt would be dropped; give a reward a non-zero "
            "weight or set dynamic_sampling false"
        )


def check_data_can_vary(
    reward_funcs: Sequence[str], reward_weights: Sequence[float] | None, path: str, has_data: dict[str, bool]
) -> None:
    """(c) every reward with a non-zero weight is data-bound (`gold`) and no training prompt has that data: every
    rollout is unscored. `has_data` maps a data-bound reward's name to whether any prompt has its data."""
    weights = list(reward_weights) if reward_weights is not None else [1.0] * len(reward_funcs)
    live = [name for name, w in zip(reward_funcs, weights) if w != 0]
    empty = [name for name in live if name in DATA_BOUND_REWARDS and not has_data.get(name, True)]
    if live and len(empty) == len(live):
        needs = ", ".join(f"{n} needs {DATA_BOUND_REWARDS[n]}" for n in empty)
        raise ScpoError(
            f"{path}: setting dynamic_sampling=true with reward_funcs={list(reward_funcs)}, but no training "
            f"prompt has the data its rewards read ({needs}), so every rollout is unscored and every prompt "
            "would be dropped; add gold answers, add a label-free reward (majority, vote_share, ...) or "
            "set dynamic_sampling false"
        )


def check_whole_groups(per_device_batch: int, steps_per_generation: int, group_size: int) -> None:
    """Each process drops and keeps its own groups, so its generation batch must hold whole groups."""
    local = per_device_batch * steps_per_generation
    if local % group_size:
        raise ScpoError(
            f"setting dynamic_sampling=true needs each process's generation batch "
            f"(per_device_train_batch_size {per_device_batch} x steps_per_generation "
            f"{steps_per_generation} = {local}) to be a multiple of num_generations={group_size}: whole "
            "groups per process"
        )
