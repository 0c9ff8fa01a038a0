"""vote_teacher for `scpo grpo`: the teacher's rollouts vote, the policy's are scored against them; the ema update."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import ROOT, read_jsonl, run_scpo

from scpo.rewards import vote_group
from scpo.tasks import get_task
from scpo.training.teacher import ema_alpha

TESTS = Path(__file__).resolve().parent
DEMO = ROOT / "recipes" / "cpu_demo"
NUMERIC = get_task("numeric")


def test_ema_alpha_is_co_rewarding_ii_cosine_schedule():
    assert ema_alpha(1, 10, 0.01, 1e-5) == pytest.approx(0.01)  # t = step - 1 = 0: alpha_start
    assert ema_alpha(6, 10, 0.01, 1e-5) == pytest.approx((0.01 + 1e-5) / 2)  # half way: the mean
    assert ema_alpha(11, 10, 0.01, 1e-5) == pytest.approx(1e-5)  # t = T: alpha_end
    assert ema_alpha(50, 10, 0.01, 1e-5) == pytest.approx(1e-5)  # clipped to [0, T]


def test_teacher_votes_decide_and_the_rollouts_only_join():
    teacher, rollouts = ["5", "5", "3", None], ["3", "3", "3", "7"]
    group = vote_group(rollouts, NUMERIC, teacher)
    assert group.majority == "5" and group.majority_ratio == 0.5 and group.size == 4
    assert group.majority_rewards() == [0, 0, 0, 0]  # nobody agrees with the teacher's majority
    assert group.vote_share_rewards() == [0.25, 0.25, 0.25, 0.0]  # 3 has one teacher vote, 7 none
    assert group.distinct_answers == 2 and group.unparsed == 1  # the teacher's answers, not the policy's
    own = vote_group(rollouts, NUMERIC)
    assert own.majority == "3" and own.majority_rewards() == [1, 1, 1, 0]
    tie = vote_group(["4", "9"], NUMERIC, ["9", "4"])  # a teacher tie: the answer the teacher gave first
    assert tie.majority == "9" and tie.tied and tie.majority_rewards() == [0, 1]


def test_voter_scores_rollouts_against_the_teacher_columns():
    from scpo.training.grpo import GroupVoter, reward_functions

    voter = GroupVoter(NUMERIC, group_size=lambda: 4, n_samples=lambda: 4, rank=lambda: 0, eos_token_ids=[2])
    (majority,) = reward_functions(["majority"], voter)
    logged = {}
    rewards = majority(
        prompts=["p"] * 4,
        completions=["3", "3", "5", "3"],
        completion_ids=[[9, 2]] * 4,
        id=["a"] * 4,
        gold=["5"] * 4,
        log_metric=logged.__setitem__,
        teacher_completion=["5", "5", "The sum is 5 and", "3"],
        teacher_truncated=[False, False, True, False],
    )  # a cut-off teacher rollout has no vote
    assert rewards == [0, 0, 1, 0]
    assert logged["ttrl/label_accuracy"] == 1.0 and logged["ttrl/majority_ratio"] == 0.5


def test_vote_teacher_is_one_spec_and_the_trainer_makes_the_teacher_from_it():
    """`vote_teacher` gives a TeacherSpec (None: the policy votes); make_teacher turns it into the VoteTeacher: a
    loaded teacher_model, TRL's reference model (ema, beta > 0, teacher_as_reference), else a copy of the policy."""
    from types import SimpleNamespace

    import torch

    from scpo.core.errors import ScpoError
    from scpo.stages.grpo import vote_teacher
    from scpo.training.teacher import TeacherSpec, make_teacher

    settings = SimpleNamespace(
        vote_teacher="ema",
        teacher_model=None,
        teacher_alpha_start=0.02,
        teacher_alpha_end=0.001,
        teacher_as_reference=True,
    )
    assert vote_teacher(SimpleNamespace(vote_teacher="current"), None) is None
    spec = vote_teacher(settings, None)
    assert spec == TeacherSpec("ema", alpha_start=0.02, alpha_end=0.001, as_reference=True)

    policy, reference, loaded = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    accelerator = SimpleNamespace(unwrap_model=lambda m: m)
    trainer = SimpleNamespace(beta=0.1, ref_model=reference, model=policy, accelerator=accelerator)
    as_reference = make_teacher(spec, trainer)
    assert as_reference.model is reference and (as_reference.mode, as_reference.alpha_start) == ("ema", 0.02)
    copy = make_teacher(spec, SimpleNamespace(**{**vars(trainer), "beta": 0.0}))  # no KL term: a copy of the policy
    assert copy.model is not policy and torch.equal(copy.model.weight, policy.weight)
    frozen = make_teacher(TeacherSpec("frozen", model=loaded), trainer)
    assert frozen.model is loaded and frozen.mode == "frozen"
    with pytest.raises(ScpoError, match="with a PEFT adapter TRL has no reference model"):
        make_teacher(spec, SimpleNamespace(**{**vars(trainer), "ref_model": None}))


@pytest.mark.slow  # scpo in a subprocess
@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--vote_teacher", "frozen", "--teacher_model", "/no/such/teacher"],
            "teacher_model='/no/such/teacher': no such folder",
        ),
        (["--vote_teacher", "emma"], "vote_teacher='emma' (did you mean 'ema'?)"),
        (["--vote_teacher", "ema", "--teacher_model", "embedded"], "needs vote_teacher: frozen"),
        (
            ["--vote_teacher", "ema", "--teacher_alpha_start", "0.001", "--teacher_alpha_end", "0.01"],
            "need 0 <= end <= start <= 1",
        ),
    ],
)
def test_bad_teacher_settings_are_named_before_anything_runs(tmp_path, args, message):
    proc = run_scpo(
        "grpo",
        "--model",
        "embedded",
        "--problems_file",
        str(DEMO / "train.jsonl"),
        "--output_dir",
        str(tmp_path / "m"),
        *args,
        check=False,
    )
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.slow  # scpo in a subprocess
def test_ema_teacher_follows_the_policy_and_is_saved_in_checkpoints(tmp_path, tiny_model):
    """Two real steps with the teacher saved at each: before step 1 the teacher is M_0 (no update), before step 2
    it is (1 - a) M_0 + a M_1 with Co-rewarding-II's alpha for step 2 of 2; the policy is rewarded by its votes."""
    from safetensors.torch import load_file

    out = tmp_path / "model"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{TESTS}:{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    run_scpo(
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
        "--vote_teacher",
        "ema",
        "--teacher_alpha_start",
        "0.5",
        "--teacher_alpha_end",
        "0.1",
        "--reward_funcs",
        "vote_share",
        "--n_votes",
        "4",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "16",
        "--max_completion_length",
        "6",
        "--learning_rate",
        "1e-2",
        "--beta",
        "0.0",
        "--gradient_checkpointing",
        "false",
        "--logging_steps",
        "1",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
        "--report_to",
        "none",
        env=env,
    )
    m0 = load_file(Path(tiny_model) / "model.safetensors")
    m1 = load_file(out / "checkpoint-1" / "model.safetensors")
    t1 = load_file(out / "checkpoint-1" / "teacher.safetensors")
    t2 = load_file(out / "checkpoint-2" / "teacher.safetensors")
    for step in (1, 2):  # the teacher is written before trainer_state.json marks the checkpoint whole: a kill
        folder = out / f"checkpoint-{step}"  # between the two leaves a folder that is not resumed from
        teacher_written = (folder / "teacher.safetensors").stat().st_mtime_ns
        assert teacher_written <= (folder / "trainer_state.json").stat().st_mtime_ns
        assert teacher_written <= (folder / "model.safetensors").stat().st_mtime_ns  # before the weights, even
    alpha = ema_alpha(2, 2, 0.5, 0.1)
    assert alpha == pytest.approx(0.3)
    moved = [k for k in m0 if not m1[k].equal(m0[k])]
    assert moved  # step 1 changed the policy
    for k in m0:
        assert t1[k].equal(m0[k]), k  # no update before step 1: the teacher is M_0
        expected = (1 - alpha) * m0[k].float() + alpha * m1[k].float()
        assert (t2[k].float() - expected).abs().max().item() < 1e-6, k
    log = read_jsonl(out / "grpo_log.jsonl")
    assert [e["teacher/ema_alpha"] for e in log if "teacher/ema_alpha" in e] == [pytest.approx(alpha)]

    from transformers import AutoModelForCausalLM

    from scpo.training.teacher import VoteTeacher

    resumed = VoteTeacher(AutoModelForCausalLM.from_pretrained(tiny_model), "ema")  # what a resumed run loads
    assert resumed.load(out / "checkpoint-2") and resumed.updated_at == 1
    assert all(resumed.model.state_dict()[k].equal(t2[k]) for k in t2)


def _ema_run(tiny_model, out: Path, *args: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{TESTS}:{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    run_scpo(
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
        "--vote_teacher",
        "ema",
        "--reward_funcs",
        "vote_share",
        "--n_votes",
        "4",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "16",
        "--max_completion_length",
        "6",
        "--learning_rate",
        "1e-2",
        "--gradient_checkpointing",
        "false",
        "--logging_steps",
        "1",
        "--report_to",
        "none",
        *args,
        env=env,
    )
    return read_jsonl(out / "grpo_log.jsonl")


@pytest.mark.slow  # scpo in a subprocess
def test_ema_teacher_moves_once_per_optimizer_step_when_a_generation_serves_two_steps(tmp_path, tiny_model):
    """steps_per_generation 2: one generation, two optimizer steps; the teacher still moves before step 2."""
    from safetensors.torch import load_file

    out = tmp_path / "model"
    log = _ema_run(
        tiny_model,
        out,
        "--teacher_alpha_start",
        "0.5",
        "--teacher_alpha_end",
        "0.1",
        "--beta",
        "0.0",
        "--steps_per_generation",
        "2",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
    )
    alpha = ema_alpha(2, 2, 0.5, 0.1)
    assert [e["teacher/ema_alpha"] for e in log if "teacher/ema_alpha" in e] == [pytest.approx(alpha)]
    m0 = load_file(Path(tiny_model) / "model.safetensors")
    m1 = load_file(out / "checkpoint-1" / "model.safetensors")
    t2 = load_file(out / "checkpoint-2" / "teacher.safetensors")
    assert any(not m1[k].equal(m0[k]) for k in m0)
    for k in m0:
        expected = (1 - alpha) * m0[k].float() + alpha * m1[k].float()
        assert (t2[k].float() - expected).abs().max().item() < 1e-6, k


@pytest.mark.slow  # scpo in a subprocess
@pytest.mark.parametrize("as_reference", [True, False])
def test_ema_teacher_is_the_kl_reference(tmp_path, tiny_model, as_reference):
    """alpha 1: the teacher becomes the policy before each step, so as TRL's reference the KL of step 2 is 0 (the
    policy has not moved since that step's rollouts); a separate M_0 reference gives the distance step 1 made."""
    log = _ema_run(
        tiny_model,
        tmp_path / "model",
        "--teacher_alpha_start",
        "1.0",
        "--teacher_alpha_end",
        "1.0",
        "--beta",
        "0.1",
        "--teacher_as_reference",
        str(as_reference).lower(),
    )
    kl = [e["kl"] for e in log if "kl" in e]
    assert len(kl) == 2 and abs(kl[0]) < 1e-6  # step 1: the reference is M_0, the policy too
    assert (abs(kl[1]) < 1e-6) == as_reference, kl
