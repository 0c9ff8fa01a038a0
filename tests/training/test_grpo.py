"""`scpo grpo` (TTRL on TRL's GRPOTrainer): rewards across processes, settings errors, real steps on CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from grpo_helpers import GROUP, KNOWN_BATCH, vote_in_process
from helpers import ROOT, read_jsonl, run_scpo

from scpo.core.errors import ScpoError

TESTS = Path(__file__).resolve().parent  # grpo_helpers.py: a task module and a script
DEMO = ROOT / "recipes" / "cpu_demo"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_known_batch_rewards_in_one_process():
    result = vote_in_process(rank=0, world=1, n_samples=GROUP)
    r = result["rewards"]
    assert r["majority"] == [1, 1, 0, 0] + [1, 0, 0, 1] + [0] * 4  # group b ties 7 vs 8: 7 is seen first
    assert r["vote_share"] == [0.5, 0.5, 0.25, 0] + [0.5] * 4 + [0] * 4
    assert r["gold"] == [1, 1, 0, 0] + [None] * 4 + [0] * 4  # b has no gold: no gold reward, not 0
    assert r["format"] == [1, 1, 1, 0] + [1] * 4 + [0] * 4
    logged = result["logged"]
    assert logged["ttrl/prompts"] == 3 and logged["ttrl/unparsed_rollouts"] == 5
    assert logged["ttrl/no_answer_prompts"] == 1 and logged["ttrl/majority_ties"] == 1
    assert logged["ttrl/majority_ratio"] == pytest.approx(1 / 3) and logged["ttrl/label_accuracy"] == 0.5
    subset = vote_in_process(rank=0, world=1, n_samples=2)["rewards"]["majority"]
    assert subset == [1, 1, None, None, 1, 0, None, None, 0, 0, None, None]  # the last two of each group only vote


def test_truncated_rollouts_do_not_vote_and_get_zero():
    """A rollout cut at max_completion_length (no EOS) has no answer, as `scpo label` treats finish_reason length."""
    from scpo.tasks import get_task
    from scpo.training.grpo import GroupVoter, reward_functions

    completions = ["5", "To find 3 + 5, add 3", "To find 3 + 5, add 3", "To find 3 + 5, add 3"]
    token_ids = [[20, 2], [30, 31, 32], [30, 31, 32], [30, 31, 32]]  # 2 is EOS: rollouts 1 to 3 were cut off
    logged = {}
    for task, expected in (
        (get_task("numeric"), [1, 0, 0, 0]),
        (get_task("numeric", truncated_completions_vote=True), [0, 1, 1, 1]),
    ):  # '3' wins 3 to 1
        voter = GroupVoter(task, group_size=lambda: 4, n_samples=lambda: 4, rank=lambda: 0, eos_token_ids=[2])
        (majority,) = reward_functions(["majority"], voter)
        rewards = majority(
            prompts=["p"] * 4,
            completions=completions,
            completion_ids=token_ids,
            id=["a"] * 4,
            gold=["8"] * 4,
            log_metric=logged.__setitem__,
        )
        assert rewards == expected
        assert logged["ttrl/truncated_rollouts"] == 3


@pytest.mark.slow  # torchrun: two processes
def test_rewards_are_identical_with_two_processes(tmp_path):
    """Two gloo processes, each holding half the batch (the middle group split between them), vote as one."""
    # torchrun, not `accelerate launch --cpu --num_processes 2`: on CPU the latter starts a single process.
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{TESTS}:{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            str(TESTS / "grpo_helpers.py"),
            str(tmp_path),
        ],
        check=False,
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(KNOWN_BATCH) // 2 % GROUP != 0  # the split really cuts a group
    for n_samples in (GROUP, 2):
        single = vote_in_process(rank=0, world=1, n_samples=n_samples)
        parts = [rank[str(n_samples)] for rank in ranks]
        for name, rewards in single["rewards"].items():
            assert parts[0]["rewards"][name] + parts[1]["rewards"][name] == rewards, name
        assert parts[0]["logged"] == parts[1]["logged"] == single["logged"]


def test_vote_layout_checks():
    from scpo.training.grpo import check_vote_layout, trained_flags

    assert trained_flags(6, 1, 4, 2) == [False, False, True, True, False, False]  # global rows 6..11
    check_vote_layout(4, 4, 3, 1)  # training on every rollout: any layout
    check_vote_layout(2, 4, 4, 1)
    with pytest.raises(ScpoError, match="between 1 and n_votes"):
        check_vote_layout(5, 4, 4, 1)
    with pytest.raises(ScpoError, match="multiple of n_votes=4"):
        check_vote_layout(2, 4, 2, 1)
    with pytest.raises(ScpoError, match="whole number of trained rollouts"):
        check_vote_layout(1, 4, 2, 2)  # 4 rows per process, 2 per step: half a trained row per step


@pytest.mark.parametrize(
    "args, message",
    [
        (["--reward_funcs", "majority,accuracy"], "unknown reward 'accuracy'"),
        (["--n_votes", "4", "--n_samples", "8"], "n_samples=8: must be between 1 and n_votes=4"),
        (["--num_generations", "4", "--n_samples", "8"], "n_samples=8: must be between 1 and n_votes=4"),
        (["--n_votes", "4", "--num_generations", "8"], "disagree"),
        (["--num_generations", "3", "--per_device_train_batch_size", "4"], "divisible by num_generations"),
        (["--reward_funcs", "majority,format", "--reward_weights", "1.0"], "has 1 values for 2 reward_funcs"),
        (["--n_vote", "4"], "did you mean 'n_votes'"),
        (["--use_vllm", "true", "--vllm_mode", "server"], "on CPU set vllm_mode: colocate"),  # the suite runs on CPU
    ],
)
def test_bad_settings_are_clear_errors(args, message):
    from scpo.core.settings import set_settings
    from scpo.stages.grpo import parse

    with pytest.raises(ScpoError) as e:
        defaults = {"per_device_train_batch_size": 4, "num_generations": 4}
        given = dict(zip((a.removeprefix("--") for a in args[::2]), args[1::2]))
        parse(set_settings([], **{**defaults, **given}))
    assert message in str(e.value)


@pytest.mark.slow  # scpo in a subprocess
def test_grpo_steps_on_cpu_log_votes_and_change_the_model(tmp_path, tiny_model):
    """Two real GRPO steps on the tiny model: 4 votes per prompt, 2 trained on, held-out accuracy, TensorBoard."""
    from safetensors.torch import load_file

    out = tmp_path / "model"
    # One thread: on a shared 2-core box, two spinning OpenMP threads make generate many times slower.
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{TESTS}:{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    run_scpo(
        "grpo",
        "--model",
        tiny_model,
        "--task",
        "grpo_helpers:FirstLetter",
        "--task_options",
        '{"truncated_completions_vote": true}',  # a random model rarely stops by itself
        "--problems_file",
        str(DEMO / "train.jsonl"),
        "--eval_file",
        str(DEMO / "eval.jsonl"),
        "--max_eval_problems",
        "4",
        "--eval_every_steps",
        "1",
        "--output_dir",
        str(out),
        "--reward_funcs",
        "majority,format",
        "--reward_weights",
        "1.0,0.1",
        "--n_votes",
        "4",
        "--n_samples",
        "2",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--max_completion_length",
        "6",
        "--learning_rate",
        "1e-2",
        "--beta",
        "0.001",
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
    log = read_jsonl(out / "grpo_log.jsonl")
    steps = [e for e in log if "reward" in e]
    assert [e["step"] for e in steps] == [1, 2]
    for entry in steps:
        assert 0 <= entry["ttrl/majority_ratio"] <= 1 and entry["ttrl/distinct_answers"] >= 1
        assert "ttrl/label_accuracy" in entry and "ttrl/truncated_rollouts" in entry and "kl" in entry
        assert entry["ttrl/trained_rollouts"] == 2  # one prompt per step: 4 rollouts vote, 2 are trained on
        assert math.isfinite(entry["loss"]) and math.isfinite(entry["kl"])  # vote-only rows' NaN log-probs dropped
    held = {e["step"]: e["heldout/accuracy"] for e in log if "heldout/accuracy" in e}
    assert sorted(held) == [0, 1, 2]  # before training, then every step
    counts = json.loads((tmp_path / "model.manifest.json").read_text())["counts"]
    assert counts["n_votes"] == 4 and counts["n_samples"] == 2 and counts["global_step"] == 2
    assert list((out / "runs").rglob("events.out.tfevents.*"))
    before, after = load_file(Path(tiny_model) / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before.keys() & after.keys())


@pytest.mark.slow  # a real GRPOTrainer on the tiny model, in this process
def test_scoring_a_generation_batch_runs_the_trained_rollouts_only(tmp_path, tiny_model):
    """The old and reference log-probs of a generation batch: the trained rollouts' values are those of scoring every
    row, the vote-only rows (dropped right after) get NaN and never reach the model."""
    import torch
    from datasets import Dataset
    from grpo_helpers import FirstLetter
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from scpo.training.grpo import GroupVoter, VoteTrainer, reward_functions, trained_flags

    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_completion_length=4,
        beta=0.001, report_to=[], use_cpu=True, gradient_checkpointing=False,
    )  # fmt: skip
    voter = GroupVoter(FirstLetter())
    trainer = VoteTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["a", "b"]}),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
        reward_funcs=reward_functions(["majority"], voter),
        voter=voter,
        n_samples=2,
    )
    rows_seen = []
    trainer.model.register_forward_hook(
        lambda module, inputs, kwargs, output: rows_seen.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    ids = torch.randint(3, 200, (8, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding of one trained row's prompt

    def score(scoring: bool, **kwargs):
        trainer._scoring = scoring
        rows_seen.clear()
        return trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 5, batch_size=4, **kwargs)

    every, _, _ = score(False)
    assert rows_seen == [4, 4] and not every.isnan().any()
    trained, entropies, _ = score(True)
    keep = torch.tensor(trained_flags(8, 0, 4, 2))
    assert rows_seen == [4] and entropies is None  # 2 prompts x 2 trained rollouts: one micro-batch of 4
    assert trained[~keep].isnan().all()
    torch.testing.assert_close(trained[keep], every[keep])
    _, entropies, _ = score(True, compute_entropy=True)  # entropies are asked for every row: every row scored
    assert rows_seen == [4, 4] and entropies.shape == every.shape

    # TRL logged the vLLM importance ratio over every row (vote-only ones at 1): the trained rows' replace it
    name = "sampling/importance_sampling_ratio/"
    per_rollout = torch.tensor([[0.5], [2.0], [1.0], [1.0], [0.8], [1.5], [1.0], [1.0]])
    per_token = torch.tensor([[0.5, 9.0]] + [[1.2, 1.4]] * 7)
    completion_mask = torch.tensor([[1, 0]] + [[1, 1]] * 7)
    for ratio, trained_values in ((per_rollout, [0.5, 2.0, 0.8, 1.5]), (per_token, [0.5] + [1.2, 1.4] * 3)):
        for stat in ("min", "mean", "max"):
            trainer._metrics["train"][name + stat] = [99.0, 1.0]  # an earlier step's value, then TRL's over all rows
        trainer._log_ratio_of_trained_rows({"importance_sampling_ratio": ratio, "completion_mask": completion_mask})
        want = torch.tensor(trained_values)  # the masked token (9.0) and the vote-only rows left out
        got = {stat: trainer._metrics["train"][name + stat] for stat in ("min", "mean", "max")}
        assert got["min"] == [99.0, pytest.approx(want.min().item())] and got["max"][-1] == pytest.approx(want.max())
        assert got["mean"][-1] == pytest.approx(want.mean().item())


def test_report_of_a_grpo_run_shows_votes_and_heldout_accuracy_per_step(tmp_path):
    from scpo.stages import report

    rows = [
        {"step": 0, "heldout/accuracy": 0.5},
        {
            "step": 1,
            "reward": 0.25,
            "ttrl/majority_ratio": 0.5,
            "ttrl/label_accuracy": 1.0,
            "ttrl/distinct_answers": 3.0,
            "ttrl/unparsed_rollouts": 1.0,
            "kl": 0.0,
        },
        {
            "step": 2,
            "reward": 0.75,
            "ttrl/majority_ratio": 0.875,
            "ttrl/distinct_answers": 1.5,
            "ttrl/unparsed_rollouts": 0.0,
            "kl": 0.01,
            "heldout/accuracy": 0.625,
        },
        {"step": 2, "train_runtime": 3.0},
    ]
    (tmp_path / "grpo_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = report.main([str(tmp_path)])
    assert "| step | reward | majority ratio | label acc. |" in text
    assert "| 0 | - | - | - | - | - | - | 0.500 |" in text
    assert "| 2 | 0.750 | 0.875 | - | 1.500 | 0.000 | 0.010 | 0.625 |" in text
    assert "Held-out greedy accuracy: step 0 0.500 -> step 2 0.625." in text
    assert (tmp_path / "report.md").read_text() == text and (tmp_path / "grpo_metrics.png").stat().st_size > 0


@pytest.mark.slow
def test_two_process_grpo_run_splits_groups_across_ranks(tmp_path, tiny_model):
    """torchrun with 2 gloo processes, 2 rollouts each per step: every group of 4 is split between the ranks."""
    out = tmp_path / "model"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{TESTS}:{os.environ.get('PYTHONPATH', '')}",
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            "-m",
            "scpo.cli",
            "grpo",
            "--model",
            tiny_model,
            "--task",
            "grpo_helpers:FirstLetter",
            "--task_options",
            '{"truncated_completions_vote": true}',
            "--problems_file",
            str(DEMO / "train.jsonl"),
            "--output_dir",
            str(out),
            "--use_cpu",
            "true",
            "--num_generations",
            "4",
            "--per_device_train_batch_size",
            "2",
            "--max_steps",
            "2",
            "--max_completion_length",
            "6",
            "--gradient_checkpointing",
            "false",
            "--logging_steps",
            "1",
            "--save_strategy",
            "no",
            "--report_to",
            "none",
        ],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = [e for e in read_jsonl(out / "grpo_log.jsonl") if "reward" in e]
    assert [e["step"] for e in steps] == [1, 2]
    assert all(e["ttrl/prompts"] == 1 and e["ttrl/distinct_answers"] >= 1 for e in steps)  # one whole group voted


@pytest.mark.slow  # scpo in subprocesses, one killed
def test_grpo_killed_mid_run_resumes_past_a_checkpoint_cut_short(tmp_path, tiny_model):
    """A GRPO run killed after a checkpoint resumes from it, to the same steps and the same model as a run never
    killed; a newer checkpoint the kill cut short (no trainer_state.json: transformers writes it last) is removed
    and named, not resumed from (which would fail on every re-run)."""
    import shutil
    import signal
    import time

    from safetensors.torch import load_file

    def command(out: Path) -> list[str]:
        args = {
            "model": tiny_model,
            "task": "grpo_helpers:FirstLetter",
            "task_options": '{"truncated_completions_vote": true}',
            "problems_file": str(DEMO / "train.jsonl"),
            "output_dir": str(out),
            "n_votes": "4",
            "n_samples": "2",
            "per_device_train_batch_size": "4",
            "max_steps": "8",
            "max_completion_length": "6",
            "learning_rate": "1e-2",
            "beta": "0.001",
            "gradient_checkpointing": "false",
            "logging_steps": "1",
            "save_strategy": "steps",
            "save_steps": "2",
            "save_total_limit": "1",
            "report_to": "none",
        }
        return ["grpo", *[part for key, value in args.items() for part in (f"--{key}", value)]]

    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{TESTS}:{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    clean, killed = tmp_path / "clean" / "model", tmp_path / "killed" / "model"
    run_scpo(*command(clean), env=env)

    proc = subprocess.Popen(
        [sys.executable, "-m", "scpo.cli", *command(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while time.time() < deadline and not (killed / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "model.safetensors").exists(), "killed too late: the run had finished"
    saved = [int(c.name.split("-")[1]) for c in killed.glob("checkpoint-*") if (c / "trainer_state.json").exists()]
    last = max(saved)
    cut = killed / f"checkpoint-{last + 2}"  # as a kill while writing the next checkpoint leaves it
    cut.mkdir(exist_ok=True)
    shutil.copy2(killed / f"checkpoint-{last}" / "model.safetensors", cut / "model.safetensors")
    (cut / "trainer_state.json").unlink(missing_ok=True)

    proc = run_scpo(*command(killed), env=env)
    assert f"removing {cut}: the run was killed while writing it" in proc.stdout
    assert f"resuming from {killed / f'checkpoint-{last}'}" in proc.stdout
    counts = json.loads((killed.parent / "model.manifest.json").read_text())["counts"]
    assert counts["global_step"] == 8 and counts["resumed_from_step"] == last
    steps = {e["step"] for e in read_jsonl(killed / "grpo_log.jsonl") if "reward" in e}
    assert steps == set(range(1, 9))  # the log kept the steps before the kill and appended the rest
    before, after = load_file(clean / "model.safetensors"), load_file(killed / "model.safetensors")
    assert before.keys() == after.keys() and all(before[k].equal(after[k]) for k in before)
