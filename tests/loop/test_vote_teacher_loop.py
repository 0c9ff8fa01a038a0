"""vote_teacher in the loop: a teacher's samples vote, the model's own samples make the pairs; the ema teacher
stage; the plan's teacher steps and their Slurm job; named errors before anything runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import read_jsonl, write_jsonl

from scpo.core.errors import ScpoError
from scpo.core.settings import set_settings
from scpo.labelers.votes import label_prompt, votes_from_labels
from scpo.loop.plan import plan
from scpo.pairs import PairRule, pick_by_votes
from scpo.stages import label, pairs
from scpo.tasks import get_task

NUMERIC = get_task("numeric")


def rows(pid, answers, **extra):
    return [
        {"id": pid, "prompt": f"Q {pid}?", "completion": f"The answer is {a}.", "sample_index": i, **extra}
        for i, a in enumerate(answers)
    ]


def text(side) -> str:
    """A pair side's text (conversational pairs hold the assistant message)."""
    return side[0]["content"] if isinstance(side, list) else side


def test_teacher_rows_vote_and_only_the_models_rows_pair():
    own, teacher = rows("p", [5, 3, 7, 7]), rows("p", [5, 5, 5, 3], teacher=True)
    labeled = label_prompt(own + teacher, NUMERIC)
    assert [r["votes"] for r in labeled[:4]] == [3, 1, 0, 0] and labeled[0]["k"] == 4  # the teacher's 4 votes
    votes = votes_from_labels(labeled)
    pick = pick_by_votes(votes, PairRule(tau=0.5), "p", [not r.get("teacher") for r in labeled], [False] * 8)
    assert pick.chosen == 0 and pick.rejected in (2, 3)  # chosen: the model's 5; rejected: its 7 (no teacher vote)
    assert (pick.chosen_votes, pick.rejected_votes, pick.weight) == (3, 0, 0.75)
    # the model itself votes 7 (2 of 4): without the teacher the pair would be the other way round
    alone = pick_by_votes(votes_from_labels(label_prompt(own, NUMERIC)), PairRule(tau=0.5), "p")
    assert alone.chosen in (2, 3)
    unsampled = label_prompt(rows("q", [3, 3, 7]) + rows("q", [5, 5, 3], teacher=True), NUMERIC)
    assert (
        pick_by_votes(votes_from_labels(unsampled), PairRule(tau=0.5), "q", [not r.get("teacher") for r in unsampled])
        == "teacher_top_unsampled"
    )


def test_label_and_pairs_stages_with_teacher_samples(tmp_path):
    samples = write_jsonl(tmp_path / "samples.jsonl", rows("a", [5, 3, 7, 7]) + rows("b", [2, 2, 9, 9]))
    teacher = write_jsonl(
        tmp_path / "teacher_samples.jsonl",
        rows("a", [5, 5, 5, 3]) + rows("b", [9, 9, 9, 2]) + [{**rows("b", [4], resampled=True)[0], "sample_index": 4}],
    )
    labels, out = tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl"
    counts = label.main(
        ["--samples_file", str(samples), "--labels_file", str(labels), "--teacher_samples", str(teacher)]
    )
    assert counts["counts"]["teacher_completions"] == 8  # the teacher's extra sample does not vote
    pairs.main(["--labels_file", str(labels), "--pairs_file", str(out)])
    made = {p["id"]: p for p in read_jsonl(out)}
    assert text(made["a"]["chosen"]) == "The answer is 5." and text(made["a"]["rejected"]) == "The answer is 7."
    assert text(made["b"]["chosen"]) == "The answer is 9." and text(made["b"]["rejected"]) == "The answer is 2."
    assert made["a"]["weight"] == 0.75 and made["b"]["weight"] == 0.5
    write_jsonl(teacher, rows("a", [5, 5]))  # the teacher did not sample b
    with pytest.raises(
        ScpoError,
        match=re.escape(f"{teacher}: the vote teacher has no samples of 1 prompt(s) of the samples file (first: 'b')"),
    ):
        label.main(
            [
                "--samples_file",
                str(samples),
                "--labels_file",
                str(labels),
                "--teacher_samples",
                str(teacher),
                "--overwrite",
            ]
        )
    assert read_jsonl(out)  # the pairs written before are still there
    with pytest.raises(ScpoError, match="labeler=cream does not label by votes"):
        label.main(
            [
                "--samples_file",
                str(samples),
                "--labels_file",
                str(tmp_path / "l2.jsonl"),
                "--teacher_samples",
                str(teacher),
                "--labeler",
                "cream",
            ]
        )


def test_ema_teacher_stage_averages_the_models(tmp_path, tiny_model):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scpo.stages import teacher as teacher_stage
    from scpo.training.teacher import ema_alpha

    m1 = tmp_path / "m1"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.save_pretrained(m1)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(m1)  # M_t as the loop saves it
    argv = [
        "--vote_teacher",
        "ema",
        "--teacher_alpha_start",
        "0.5",
        "--teacher_alpha_end",
        "0.1",
        "--iterations",
        "3",
        "--iteration",
        "1",
        "--iter_dir",
        str(tmp_path / "iter_1"),
        "--teacher_previous",
        tiny_model,
        "--teacher_current",
        str(m1),
    ]
    teacher_stage.main(argv)
    alpha = ema_alpha(1, 2, 0.5, 0.1)
    assert alpha == 0.5
    m0, moved, avg = (
        load_file(Path(p) / "model.safetensors") for p in (tiny_model, m1, tmp_path / "iter_1" / "teacher")
    )
    for k in m0:
        assert torch.allclose(avg[k], (1 - alpha) * m0[k] + alpha * moved[k], atol=1e-6), k
    assert (tmp_path / "iter_1" / "teacher" / "tokenizer.json").exists()
    again = teacher_stage.main(argv)  # done: skipped by its manifest
    assert again["counts"]["alpha"] == 0.5
    with pytest.raises(ScpoError, match="updates start at 1"):
        teacher_stage.main(set_settings(argv, iteration=0))


def test_plan_puts_teacher_steps_before_the_labels():
    _, steps = plan(["--model", "/m0", "--problems_file", "p.jsonl", "--iterations", "3", "--vote_teacher", "ema"])
    names = [(s.stage, s.iteration, s.job) for s in steps]
    assert names[:5] == [
        ("eval", 0, "eval-0"),
        ("sample", 0, "sample-0"),
        ("label", 0, "label-0"),
        ("pairs", 0, "label-0"),
        ("train", 0, "train-0"),
    ]  # at t = 0 the teacher is M_0 itself
    t1 = [s for s in steps if s.iteration == 1 and s.stage != "eval"]
    assert [(s.stage, s.job) for s in t1][:4] == [
        ("teacher", "teacher-1"),
        ("sample", "teacher-1"),
        ("sample", "sample-1"),
        ("label", "label-1"),
    ]
    teacher, teacher_sample, label_step = t1[0], t1[1], t1[3]
    assert teacher.args[-6:] == [
        "--teacher_previous",
        "/m0",
        "--teacher_current",
        "runs/scpo/iter_0/model",
        "--model",
        "runs/scpo/iter_1/teacher",
    ]
    from scpo.core.settings import peek

    assert peek(teacher_sample.args, "model") == "runs/scpo/iter_1/teacher"  # the last --model wins
    assert peek(teacher_sample.args, "samples_file") == "runs/scpo/iter_1/teacher_samples.jsonl"
    assert label_step.args[-2:] == ["--teacher_samples", "runs/scpo/iter_1/teacher_samples.jsonl"]
    assert label_step.after == ["sample-1", "teacher-1"]
    t2 = next(s for s in steps if s.stage == "teacher" and s.iteration == 2)
    assert t2.args[t2.args.index("--teacher_previous") + 1] == "runs/scpo/iter_1/teacher"  # the average goes on
    _, frozen = plan(["--model", "/m0", "--iterations", "2", "--vote_teacher", "frozen"])
    samples = [s for s in frozen if s.job.startswith("teacher-")]
    assert [(s.stage, s.iteration) for s in samples] == [("sample", 1)]
    assert samples[0].args[-2:] == ["--model", "/m0"]


def test_slurm_runs_the_teacher_job_on_an_engine(tmp_path):
    from scpo.loop.slurm import slurm_jobs

    _, jobs = slurm_jobs(
        [
            "--model",
            "/models/llama",
            "--iterations",
            "2",
            "--vote_teacher",
            "ema",
            "--num_shards",
            "2",
            "--output_root",
            str(tmp_path),
        ]
    )
    by_name = {job.name: job for job in jobs}
    assert list(by_name)[:8] == [
        "eval-0",
        "sample-0",
        "label-0",
        "train-0",
        "eval-1",
        "teacher-1",
        "sample-1",
        "label-1",
    ]
    assert by_name["teacher-1"].stages == ["teacher", "sample"] and "--gres=gpu:1" in by_name["teacher-1"].options
    assert by_name["label-1"].stages == ["sample", "label", "pairs"]  # the array's merge, then the labels
    assert set(by_name["label-1"].after) == {"sample-1", "teacher-1"}


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--vote_teacher", "frozen", "--teacher_model", "/no/such/model"],
            "teacher_model='/no/such/model': no such folder",
        ),
        (["--vote_teacher", "ema", "--labeler", "cream"], "labeler=cream does not label by votes"),
        (["--vote_teacher", "teacher"], "vote_teacher='teacher'"),
    ],
)
def test_bad_teacher_settings_stop_the_plan(args, message):
    with pytest.raises(ScpoError, match=re.escape(message)):
        plan(["--model", "/m0", *args])
