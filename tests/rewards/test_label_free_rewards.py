"""The label-free GRPO rewards: self_certainty (Intuitor), negative_entropy (RENT), semantic_vote_share (EMPO).

The token statistics are checked against a forward pass written here (one row at a time, no padding, float64
softmax), on a padded batch with a truncated rollout; the rewards against hand-computed values; and a real
GRPO step logs them.
"""

from __future__ import annotations

import math
import os

import pytest
from helpers import ROOT, read_jsonl, run_scpo

from scpo.core.errors import ScpoError
from scpo.rewards import REWARDS, RolloutBatch, vote_group
from scpo.tasks import get_task
from scpo.training.token_stats import TokenStats, token_stats


def independent(model, prompt: list[int], completion: list[int], temperature: float):
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + completion])).logits[0].double() / temperature
    entropy, certainty = [], []
    for t in range(len(completion)):
        p = torch.softmax(logits[len(prompt) - 1 + t], dim=-1)
        v = p.numel()
        entropy.append(float(-(p * p.log()).sum()))
        certainty.append(float(((1 / v) * (math.log(1 / v) - p.log())).sum()))  # KL(U || p)
    return entropy, certainty


def test_token_statistics_match_an_independent_forward_with_padding_and_truncation(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    eos = 2
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    completions = [[20, 21, eos], [22, 23, 24, 25, 26, 27], [28]]  # the second was cut off (no EOS): all counts
    for temperature in (1.0, 0.7):
        got = token_stats(model, prompts, completions, temperature, pad_token_id=0, batch_size=3)
        for p, c, stats in zip(prompts, completions, got):
            entropy, certainty = independent(model, p, c, temperature)
            assert len(stats.entropy) == len(c) == len(stats.self_certainty)
            assert stats.entropy == pytest.approx(entropy, abs=2e-4)
            assert stats.self_certainty == pytest.approx(certainty, abs=2e-4)
    alone = token_stats(model, prompts[1:2], completions[1:2], 1.0, batch_size=1)[0]
    batched = token_stats(model, prompts, completions, 1.0, batch_size=3)[1]
    assert alone.entropy == pytest.approx(batched.entropy, abs=1e-5)  # padding does not change a row


def batch_of(answers: list[str | None], stats: list[TokenStats] | None = None) -> RolloutBatch:
    task = get_task("numeric")
    group = vote_group(answers, task)
    return RolloutBatch(
        texts=[a or "" for a in answers],
        answers=answers,
        groups=[group],
        group_golds=[None],
        group_answers=[answers],
        local=slice(0, len(answers)),
        task=task,
        token_stats=stats,
    )


def reward(name: str, **settings):
    cls = REWARDS.get(name)
    return cls(cls.settings(**settings) if cls.settings else None)


def test_self_certainty_and_negative_entropy_average_the_tokens():
    stats = [
        TokenStats(entropy=[1.0, 2.0, 3.0], self_certainty=[0.5, 1.5, 1.0]),
        TokenStats(entropy=[0.3], self_certainty=[2.0]),
    ]
    batch = batch_of(["1", "2"], stats)
    assert reward("self_certainty")(batch) == pytest.approx([1.0, 2.0])
    assert reward("negative_entropy")(batch) == pytest.approx([-2.0, -0.3])
    last = reward("negative_entropy", entropy_tokens="last", entropy_last_fraction=1 / 3)(batch)
    assert last == pytest.approx([-3.0, -0.3])  # the last third of 3 tokens is 1 token; at least one counts
    assert REWARDS.get("self_certainty").needs_token_stats and not REWARDS.get("majority").needs_token_stats
    with pytest.raises(ScpoError, match="entropy_tokens='middle': one of all, last"):
        reward("negative_entropy", entropy_tokens="middle")


def test_negative_entropy_as_rents_code_and_em_rls_sum():
    """RENT's code (satrams/rent-rl, `minimize_entropy` with its `format` experiment): -mean entropy over all the
    response's tokens, -7.0 (-entropy_base) for a rollout without an answer; EM-RL's paper sums the entropies."""
    stats = [
        TokenStats(entropy=[1.0, 2.0, 3.0], self_certainty=[0.0] * 3),
        TokenStats(entropy=[0.3], self_certainty=[0.0]),
        TokenStats(entropy=[0.1, 0.1], self_certainty=[0.0] * 2),
    ]
    batch = batch_of(["1", "2", None], stats)
    assert reward("negative_entropy")(batch) == pytest.approx([-2.0, -0.3, -7.0])
    assert reward("negative_entropy", entropy_unparsed_reward=None)(batch) == pytest.approx([-2.0, -0.3, -0.1])
    assert reward("negative_entropy", entropy_aggregate="sum", entropy_unparsed_reward=-1.0)(batch) == pytest.approx(
        [-6.0, -0.3, -1.0]
    )
    with pytest.raises(ScpoError, match="entropy_aggregate='max': one of mean, sum"):
        reward("negative_entropy", entropy_aggregate="max")
    with pytest.raises(ScpoError, match="entropy_unparsed_reward=nan: a finite number or null"):
        reward("negative_entropy", entropy_unparsed_reward=float("nan"))


def test_semantic_vote_share_with_a_teacher_gives_an_unparsed_rollout_zero():
    """Only the teacher votes: a policy rollout without an answer is in no teacher cluster, like a parsed answer the
    teacher never gave (before: 1/n, ranking it above that answer)."""
    task = get_task("gsm8k")
    group = vote_group(["4", "9", None, "5"], task, teacher_answers=["4", "4", "4", "5"])
    batch = RolloutBatch(
        texts=["x"] * 4,
        answers=["4", "9", None, "5"],
        groups=[group],
        group_golds=[None],
        group_answers=[["4", "9", None, "5"]],
        local=slice(0, 4),
        task=task,
    )
    got = reward("semantic_vote_share", empo_entropy_high=1.0)(batch)
    assert got[1] == 0.0 and got[2] == 0.0 and got[0] > got[3] > 0


def test_semantic_vote_share_clusters_no_answer_alone_and_filters_by_entropy():
    # 8 rollouts: '4' x4, '5' x2, two without an answer (each its own cluster, share 1/8, as EMPO's code)
    answers = ["4", "4.0", "4", "4", "5", "5", None, None]
    got = reward("semantic_vote_share")(batch_of(answers))
    assert got == pytest.approx([0.5] * 4 + [0.25] * 2 + [0.125] * 2)
    entropy = -(0.5 * math.log(0.5) + 0.25 * math.log(0.25) + 2 * 0.125 * math.log(0.125))
    fraction = entropy / math.log(8)  # 0.58 of the maximum
    assert reward("semantic_vote_share", empo_entropy_high=fraction - 0.01)(batch_of(answers)) == [0.0] * 8
    assert reward("semantic_vote_share", empo_entropy_low=fraction + 0.01)(batch_of(answers)) == [0.0] * 8
    # all answers distinct: H = log n, outside [0, log n) as EMPO's `total_entropy < log(n)`
    assert reward("semantic_vote_share")(batch_of(["1", "2", "3", "4"])) == [0.0] * 4
    assert reward("semantic_vote_share")(batch_of(["7"] * 4)) == [1.0] * 4
    with pytest.raises(ScpoError, match="need 0 <= low < high <= 1"):
        reward("semantic_vote_share", empo_entropy_low=0.8, empo_entropy_high=0.5)


@pytest.mark.slow  # scpo in a subprocess
def test_an_unknown_reward_name_suggests_the_closest(tmp_path):
    proc = run_scpo(
        "grpo",
        "--model",
        "embedded",
        "--problems_file",
        str(ROOT / "recipes/cpu_demo/train.jsonl"),
        "--reward_funcs",
        "self_certanity",
        "--output_dir",
        str(tmp_path / "m"),
        check=False,
    )
    assert proc.returncode == 1 and "unknown reward 'self_certanity' (did you mean 'self_certainty'?)" in proc.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_grpo_steps_with_the_label_free_rewards_log_them(tmp_path, tiny_model):
    """One real GRPO step on the tiny model with all three rewards: each is logged per step, and the logged mean
    self-certainty of the rollouts equals the self_certainty reward's mean (the same rollouts, the same policy)."""
    out = tmp_path / "model"
    tests = ROOT / "tests" / "training"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{tests}:{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    run_scpo(
        "grpo",
        "--model",
        tiny_model,
        "--task",
        "grpo_helpers:FirstLetter",
        "--task_options",
        '{"truncated_completions_vote": true}',
        "--problems_file",
        str(ROOT / "recipes/cpu_demo/train.jsonl"),
        "--output_dir",
        str(out),
        "--reward_funcs",
        "self_certainty,negative_entropy,semantic_vote_share",
        "--reward_weights",
        "1,1,1",
        "--entropy_tokens",
        "last",
        "--n_votes",
        "4",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--max_completion_length",
        "6",
        "--learning_rate",
        "1e-3",
        "--beta",
        "0.0",
        "--gradient_checkpointing",
        "false",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        env=env,
    )
    (step,) = [e for e in read_jsonl(out / "grpo_log.jsonl") if "reward" in e]
    for name in ("self_certainty", "negative_entropy", "semantic_vote_share"):
        assert f"rewards/{name}/mean" in step
    assert step["rewards/self_certainty/mean"] == pytest.approx(step["label_free/self_certainty"], rel=1e-4)
    assert step["rewards/self_certainty/mean"] > 0 and step["rewards/negative_entropy/mean"] < 0
    assert step["label_free/token_entropy"] > 0
