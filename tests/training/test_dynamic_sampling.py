"""Dynamic sampling in `scpo grpo` (DAPO's filter_groups): which groups are dropped, the refill rounds, the cap,
bad input before any generation, and one real GRPO run that drops and replaces equal-reward prompts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import ROOT, read_jsonl, run_scpo, write_jsonl

from scpo.core.errors import ScpoError
from scpo.rewards import vote_group
from scpo.tasks import get_task
from scpo.training.dynamic_sampling import (
    DynamicSampling,
    PromptStream,
    Refill,
    check_data_can_vary,
    check_rewards_can_vary,
    check_whole_groups,
    group_has_signal,
    signal_flags,
)

TESTS = Path(__file__).resolve().parent
NUMERIC = get_task("numeric")


def flags_for(groups_of_answers, reward: str) -> list[bool]:
    """Real votes -> the reward's values -> one flag per group (one reward function, weight 1)."""
    rows = []
    for answers in groups_of_answers:
        group = vote_group(answers, NUMERIC)
        rows += [[r] for r in (group.majority_rewards() if reward == "majority" else group.vote_share_rewards())]
    return signal_flags(rows, [1.0], len(groups_of_answers[0]))


def test_groups_whose_votes_give_equal_rewards_are_dropped():
    groups = [
        ["5", "5", "5", "5"],  # unanimous: majority 1 for all
        [None, None, None, None],  # nothing parsed: 0 for all
        ["5", "5", "3", "5"],  # a minority: 1, 1, 0, 1
        ["1", "2", "3", "4"],
    ]  # four answers: majority 1, 0, 0, 0 (the first seen wins the tie)
    assert flags_for(groups, "majority") == [False, False, True, True]
    # vote_share: four different answers give every rollout 0.25. Its mean is inside (0, 1), so a filter on the
    # mean (OpenRLHF issue 1270) keeps it; its spread is 0 and it is dropped here.
    assert flags_for(groups, "vote_share") == [False, False, True, False]


def test_spread_is_exact_equality_of_scored_rewards():
    assert not group_has_signal([[0.1], [0.1], [0.1]], [1.0])  # numpy's std of these is not exactly 0
    assert group_has_signal([[0.1], [0.1], [0.1 + 1e-12]], [1.0])
    assert not group_has_signal([[1.0], [None], [None], [1.0]], [1.0])  # vote-only rollouts are left out
    assert group_has_signal([[1.0], [None], [None], [0.0]], [1.0])
    assert not group_has_signal([[1.0], [None]], [1.0])  # one scored rollout: no spread
    assert not group_has_signal([[None], [None]], [1.0])  # gold without a gold answer: nothing scored
    assert not group_has_signal([[float("nan")], [0.0]], [1.0])  # TRL's NaN is None


def test_aggregation_decides_which_values_must_differ():
    rows = [[1.0, 0.0], [0.0, 1.0]]  # format 1,0 and majority 0,1 with equal weights: sums 1 and 1
    assert not group_has_signal(rows, [1.0, 1.0], "sum_then_normalize")  # TRL's default adds first: no spread
    assert group_has_signal(rows, [1.0, 1.0], "normalize_then_sum")  # each function varies within the group
    assert group_has_signal(rows, [1.0, 0.5], "sum_then_normalize")
    varies_with_weight_0 = [[1.0, 0.0], [1.0, 1.0]]
    assert not group_has_signal(varies_with_weight_0, [1.0, 0.0], "normalize_then_sum")
    assert not group_has_signal(varies_with_weight_0, [1.0, 0.0], "sum_then_normalize")
    with pytest.raises(ScpoError, match="multi_objective_aggregation"):
        group_has_signal(rows, [1.0, 1.0], "average")
    with pytest.raises(ScpoError, match="groups of 4"):
        signal_flags([[1.0]] * 6, [1.0], 4)


def test_refill_keeps_the_first_groups_with_signal_and_drops_the_surplus():
    refill = Refill(groups_per_process=2, processes=1, max_rounds=10)
    refill.add([False, True])
    assert refill.needs_another_round()
    refill.add([True, True])  # one more than needed: DAPO's batch[:traj_bsz] drops it
    assert not refill.needs_another_round()
    assert refill.selection(0) == [(0, 1), (1, 0)]
    m = refill.metrics(group_size=4)
    assert m["dynamic_sampling/filtered_share"] == 1 / 4 and m["dynamic_sampling/rounds"] == 2
    assert m["dynamic_sampling/rollouts_generated"] == 16 and m["dynamic_sampling/cap_hit"] == 0
    assert m["dynamic_sampling/equal_reward_share_trained"] == 0


def test_round_cap_raises_as_dapo_or_fills_with_equal_reward_groups():
    def capped():
        refill = Refill(groups_per_process=2, processes=1, max_rounds=2)
        refill.add([False, False])
        refill.add([False, True])
        return refill

    refill = capped()
    assert not refill.needs_another_round() and refill.short
    with pytest.raises(ScpoError, match=r"after 2 generation rounds \(dynamic_sampling_max_rounds=2\) only 1 of the 2"):
        refill.selection(0, "raise")
    assert refill.selection(0, "fill") == [(0, 0), (1, 1)]  # the earliest equal-reward group tops it up
    m = refill.metrics(group_size=4)
    assert m["dynamic_sampling/cap_hit"] == 1 and m["dynamic_sampling/equal_reward_share_trained"] == 0.5
    assert m["dynamic_sampling/filtered_share"] == 3 / 4
    endless = Refill(groups_per_process=1, processes=1, max_rounds=0)  # 0: no cap, as DAPO's max_num_gen_batches
    for _ in range(50):
        endless.add([False])
    assert endless.needs_another_round()


def test_every_process_gets_its_share_and_all_raise_together():
    refill = Refill(groups_per_process=1, processes=2, max_rounds=3)
    refill.add([True, False])  # process 1 has nothing yet: both generate again (collectives stay in step)
    assert refill.needs_another_round()
    refill.add([False, True])
    assert not refill.needs_another_round()
    assert refill.selection(0) == [(0, 0)] and refill.selection(1) == [(1, 0)]
    short = Refill(groups_per_process=1, processes=2, max_rounds=1)
    short.add([True, False])
    with pytest.raises(ScpoError, match="dynamic_sampling_max_rounds=1"):
        short.selection(0)  # process 0 is full, but process 1 raises: so must it
    with pytest.raises(ScpoError, match="expected 1 per process x 2"):
        short.add([True])


def test_prompt_stream_walks_epochs_and_skips_prompts_already_drawn():
    ids = [f"p{i}" for i in range(6)]
    a, b = PromptStream(ids, seed=3), PromptStream(ids, seed=3)
    first = a.take(6)
    assert sorted(first) == list(range(6)) and b.take(6) == first  # one epoch: each once; same on every process
    assert sorted(a.take(6)) == list(range(6)) and a.epoch == 1
    assert PromptStream(ids, seed=4).take(6) != first  # reshuffled by seed (these two orders differ)
    c = PromptStream(ids, seed=0, shuffle=False)
    assert c.take(3, exclude={"p0", "p2"}) == [1, 3, 4]
    tiny = PromptStream(["x", "y"], seed=0, shuffle=False)
    assert tiny.take(3, exclude={"x", "y"}) == [0, 1, 0]  # fewer prompts than asked for: repeats after an epoch
    with pytest.raises(ScpoError, match="empty"):
        PromptStream([], seed=0)


def test_rewards_that_can_never_vary_are_refused():
    check_rewards_can_vary(2, ["majority"], None)
    with pytest.raises(ScpoError, match="1 trained rollout per prompt"):
        check_rewards_can_vary(1, ["majority"], None)
    with pytest.raises(ScpoError, match=r"reward_weights=\[0.0, 0.0\]: every reward is weighted 0"):
        check_rewards_can_vary(4, ["majority", "format"], [0.0, 0.0])
    check_data_can_vary(["gold"], None, "train.jsonl", {"gold": True})
    check_data_can_vary(["gold", "majority"], None, "train.jsonl", {"gold": False})  # majority still varies
    with pytest.raises(ScpoError, match="train.jsonl: .*gold needs a gold answer"):
        check_data_can_vary(["gold"], None, "train.jsonl", {"gold": False})
    with pytest.raises(ScpoError, match="gold needs a gold answer"):
        check_data_can_vary(["gold", "format"], [1.0, 0.0], "train.jsonl", {"gold": False})  # format weighs 0
    check_whole_groups(8, 1, 4)
    with pytest.raises(ScpoError, match="multiple of num_generations=4"):
        check_whole_groups(2, 1, 4)  # a group split across processes
    with pytest.raises(ScpoError, match="dynamic_sampling_on_cap"):
        DynamicSampling(on_cap="wait")
    with pytest.raises(ScpoError, match="dynamic_sampling_max_rounds=-1"):
        DynamicSampling(max_rounds=-1)


def test_rounds_merge_into_one_batch_with_each_side_padded():
    import torch

    from scpo.training.refill import take_rows

    def round_output(prompt_width, completion_width, fill):
        rows = 4  # two groups of two
        return {
            "prompt_ids": torch.full((rows, prompt_width), fill),
            "prompt_mask": torch.ones(rows, prompt_width),
            "completion_ids": torch.full((rows, completion_width), fill),
            "completion_mask": torch.ones(rows, completion_width),
            "advantages": torch.arange(rows, dtype=torch.float) + 10 * fill,
            "num_items_in_batch": torch.tensor(9),
        }

    merged = take_rows([round_output(2, 3, 1), round_output(3, 2, 2)], [(0, 1), (1, 0)], group_size=2, pad_id=-1)
    assert merged["advantages"].tolist() == [12, 13, 20, 21]  # round 0's second group, round 1's first
    assert merged["prompt_ids"].tolist() == [[-1, 1, 1]] * 2 + [[2, 2, 2]] * 2  # prompts: left-padded
    assert merged["prompt_mask"].tolist() == [[0, 1, 1]] * 2 + [[1, 1, 1]] * 2
    assert merged["completion_ids"].tolist() == [[1, 1, 1]] * 2 + [[2, 2, -1]] * 2  # completions: right-padded
    assert merged["completion_mask"].tolist() == [[1, 1, 1]] * 2 + [[1, 1, 0]] * 2
    assert "num_items_in_batch" not in merged  # recounted over all processes by the caller
    with pytest.raises(ScpoError, match="cannot merge"):
        take_rows([{**round_output(2, 2, 1), "pixel_values": torch.ones(7, 3, 2, 2)}], [(0, 0)], 2, 0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n_votes", "4", "--n_samples", "1"], "1 trained rollout per prompt"),
        (["--reward_funcs", "majority,format", "--reward_weights", "0,0"], "every reward is weighted 0"),
        (["--dynamic_sampling_on_cap", "wait"], "dynamic_sampling_on_cap='wait'"),
        (["--dynamic_sampling_max_rounds", "-2"], "dynamic_sampling_max_rounds=-2"),
    ],
)
def test_bad_dynamic_sampling_settings_are_named_errors(args, message):
    from scpo.stages.grpo import parse

    with pytest.raises(ScpoError) as e:
        parse(["--per_device_train_batch_size", "4", "--num_generations", "4", "--dynamic_sampling", "true", *args])
    assert message in str(e.value)


def test_gold_reward_without_gold_answers_fails_before_the_model_loads(tmp_path, tiny_model):
    from scpo.stages.grpo import main

    problems = write_jsonl(tmp_path / "train.jsonl", [{"id": f"q{i}", "prompt": f"What is {i} + 1?"} for i in range(4)])
    with pytest.raises(ScpoError, match=f"{problems}: .*gold needs a gold answer"):
        main(
            [
                "--model",
                tiny_model,
                "--problems_file",
                str(problems),
                "--reward_funcs",
                "gold",
                "--dynamic_sampling",
                "true",
                "--num_generations",
                "4",
                "--per_device_train_batch_size",
                "4",
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )


@pytest.mark.slow  # scpo in a subprocess
def test_grpo_run_drops_equal_reward_prompts_and_refills_with_fresh_ones(tmp_path, tiny_model):
    """Three real GRPO steps on the tiny model, 2 prompts of 4 rollouts per step: 8 of the 12 prompts always get
    equal rewards. The rounds, drops and rollouts the trainer logs are recounted from the reward's own calls."""
    problems = write_jsonl(
        tmp_path / "train.jsonl",
        [{"id": f"{'flat' if i % 3 else 'vary'}-{i}", "prompt": f"Say a word about {i}."} for i in range(12)],
    )
    calls_file, out = tmp_path / "reward_calls.jsonl", tmp_path / "model"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{TESTS}:{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
        "DYNAMIC_SAMPLING_REWARD_LOG": str(calls_file),
    }
    run_scpo(
        "grpo",
        "--model",
        tiny_model,
        "--task",
        "grpo_helpers:FirstLetter",
        "--task_options",
        '{"truncated_completions_vote": true}',
        "--problems_file",
        str(problems),
        "--output_dir",
        str(out),
        "--reward_funcs",
        "dynamic_sampling_helpers:FlatForSome",
        "--dynamic_sampling",
        "true",
        "--dynamic_sampling_max_rounds",
        "6",
        "--num_generations",
        "4",
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "8",
        "--max_completion_length",
        "4",
        "--learning_rate",
        "1e-2",
        "--beta",
        "0",
        "--gradient_checkpointing",
        "false",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "tensorboard",
        env=env,
    )
    calls = read_jsonl(calls_file)
    logged = [e for e in read_jsonl(out / "grpo_log.jsonl") if "dynamic_sampling/rounds" in e]
    assert [e["step"] for e in logged] == [1, 2, 3]
    total_rounds = 0
    for entry in logged:
        rounds = [c["ids"] for c in calls if c["step"] == entry["step"] - 1]  # generated before the step's update
        groups = [i for ids in rounds for i in ids]
        kept_after = [sum(not i.startswith("flat") for ids in rounds[: n + 1] for i in ids) for n in range(len(rounds))]
        assert kept_after[-1] >= 2 and all(k < 2 for k in kept_after[:-1])  # rounds stop once 2 prompts vary
        assert len(set(groups)) == len(groups)  # each extra round brought prompts not yet drawn this step
        assert entry["dynamic_sampling/rounds"] == len(rounds)
        assert entry["dynamic_sampling/filtered_share"] == pytest.approx(
            sum(i.startswith("flat") for i in groups) / len(groups)
        )
        assert entry["dynamic_sampling/rollouts_generated"] == 4 * len(groups)
        assert entry["dynamic_sampling/equal_reward_share_trained"] == 0 and entry["dynamic_sampling/cap_hit"] == 0
        # TRL's own count of zero-std groups, averaged over the step's equal-sized rounds, agrees with the filter
        assert entry["frac_reward_zero_std"] == pytest.approx(entry["dynamic_sampling/filtered_share"])
        total_rounds += len(rounds)
    assert total_rounds > 3  # some step dropped prompts and generated again (8 of 12 prompts are flat)
    counts = json.loads((tmp_path / "model.manifest.json").read_text())["counts"]
    assert counts["rollouts_generated"] == 4 * sum(len(c["ids"]) for c in calls)
    assert list((out / "runs").rglob("events.out.tfevents.*"))  # report_to: the metrics reach TensorBoard
