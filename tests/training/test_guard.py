"""The collapse guard of `scpo grpo`: the rule, a real run that stops and restores the best model, named errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import ROOT, read_jsonl, run_scpo

from scpo.training.guard import GuardRule

TESTS = Path(__file__).resolve().parent
DEMO = ROOT / "recipes" / "cpu_demo"


def run_rule(values, **kw):
    rule = GuardRule(**kw)
    for step, value in enumerate(values):
        _, stop = rule.check(step * 10, value)
        if stop:
            break
    return rule


def test_rule_stops_after_patience_or_a_drop_and_keeps_the_best():
    # the GRPO CPU demo's collapse (lr 5e-6): 0.342, peak 0.583 at step 10, then down to 0.208
    curve = [0.342, 0.583, 0.55, 0.50, 0.45, 0.30, 0.208]
    rule = run_rule(curve, patience=3)
    assert (rule.best_step, rule.best_value, rule.stopped_at) == (10, 0.583, 40)
    assert "no improvement in 3 checks" in rule.reason
    rule = run_rule(curve, patience=10, max_drop=0.1)
    assert rule.stopped_at == 40 and "below the best" in rule.reason  # 0.583 - 0.45 > 0.1
    rule = run_rule([0.5, 0.505, 0.51, 0.6], patience=2, min_delta=0.02)
    assert rule.stopped_at == 20 and rule.best_step == 0  # +0.005 and +0.01 are not improvements
    rule = run_rule([3.0, 2.0, 2.5, 2.6], mode="min", patience=2)  # lower is better (e.g. an entropy)
    assert rule.best_step == 10 and rule.stopped_at == 30
    assert run_rule([0.1, 0.2, 0.3], patience=1).stopped_at is None


@pytest.mark.slow  # scpo in a subprocess
@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--guard_metric", "heldout/acuracy", "--eval_file", str(DEMO / "eval.jsonl")],
            "does not log it (did you mean 'heldout/accuracy'?)",
        ),
        (
            ["--guard_metric", "heldout/accuracy", "--eval_file", str(DEMO / "eval.jsonl")],
            "heldout/ metrics are measured on guard_file",
        ),  # never chosen on the held-out eval
        (
            [
                "--guard_metric",
                "heldout/accuracy",
                "--eval_file",
                str(DEMO / "eval.jsonl"),
                "--guard_file",
                str(ROOT / "recipes" / "cpu_demo_dev" / "dev.jsonl"),
            ],
            "is also in eval_file=",
        ),
        (["--guard_metric", "reward", "--guard_mode", "up"], "guard_mode='up': one of max, min"),
        (["--guard_metric", "reward", "--guard_patience", "0"], "guard_patience=0: must be at least 1"),
    ],
)
def test_bad_guard_settings_are_named_before_anything_runs(tmp_path, args, message):
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


@pytest.mark.slow
def test_guard_stops_a_real_run_and_restores_the_best_model(tmp_path, tiny_model):
    """The tiny random model answers no held-out problem: accuracy stays 0, so with patience 1 the first check
    after step 0 stops training and the step-0 model (the best, found first) becomes the output."""
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
        "--guard_file",
        str(DEMO / "eval.jsonl"),
        "--max_eval_problems",
        "4",
        "--eval_every_steps",
        "1",
        "--output_dir",
        str(out),
        "--guard_metric",
        "heldout/accuracy",
        "--guard_patience",
        "1",
        "--n_votes",
        "4",
        "--max_steps",
        "5",
        "--per_device_train_batch_size",
        "4",
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
        "no",
        "--report_to",
        "none",
        env=env,
    )
    counts = json.loads((tmp_path / "model.manifest.json").read_text())["counts"]
    assert counts["global_step"] == 1 and counts["guard"]["stopped_at"] == 1 and counts["guard"]["best_step"] == 0
    assert counts["restored_from"].endswith("guard_best")
    before, after = load_file(Path(tiny_model) / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(before[k].equal(after[k]) for k in before)  # the step-0 weights, not the trained ones
    trained = load_file(out / "guard_best" / "model.safetensors")
    assert all(trained[k].equal(before[k]) for k in before)
    log = read_jsonl(out / "grpo_log.jsonl")
    assert any(e.get("guard/stopped_at") == 1 for e in log)
    assert next(e for e in log if "reward" in e)["grad_norm"] > 0  # step 1 did change the weights it replaced
    run_scpo("report", str(out))
    report = (out / "report.md").read_text()
    assert "Collapse guard: best at step 0 (0.000), stopped at step 1" in report
