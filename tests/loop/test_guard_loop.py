"""The loop's collapse guard (scpo guard): stop when results on the dev file stop improving, keep the best model;
never chosen on the held-out eval."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import ROOT, run_scpo, write_jsonl
from test_loop import PROBLEMS, iterate, recipe


def evals(run: Path, greedy: list[float], held_out: list[float] | None = None) -> None:
    """Each M_t's eval on the guard's dev file (guard_eval.json) and, when given, on the held-out file."""
    for t, value in enumerate(greedy):
        (run / f"iter_{t}").mkdir(parents=True, exist_ok=True)
        (run / f"iter_{t}" / "guard_eval.json").write_text(json.dumps({"greedy": {"mean": value, "stderr": 0.0}}))
        if held_out:
            (run / f"iter_{t}" / "eval.json").write_text(json.dumps({"greedy": {"mean": held_out[t], "stderr": 0.0}}))
        if t:
            (run / f"iter_{t - 1}" / "model").mkdir(parents=True, exist_ok=True)


@pytest.mark.slow  # scpo in a subprocess
def test_guard_keeps_the_best_model_and_stops_with_status_3(tmp_path):
    run = tmp_path / "run"
    m0 = tmp_path / "m0"
    m0.mkdir()
    evals(run, [0.30, 0.55, 0.50])
    args = ("--guard_metric", "greedy", "--guard_patience", "2", "--initial_model", str(m0))
    proc = run_scpo("guard", "--iter_dir", str(run / "iter_2"), "--iteration", "2", *args, check=False)
    assert proc.returncode == 0, proc.stderr  # one eval without improvement: patience 2 not used up
    record = json.loads((run / "guard.json").read_text())
    assert record["best_iteration"] == 1 and record["best_model"] == str(run / "iter_0" / "model")
    assert os.path.realpath(run / "final_model") == str((run / "iter_0" / "model").resolve())
    evals(run, [0.30, 0.55, 0.50, 0.40])
    proc = run_scpo("guard", "--iter_dir", str(run / "iter_3"), "--iteration", "3", *args, check=False)
    assert proc.returncode == 3 and "stops the loop after M_3: no improvement in 2 checks since M_1" in proc.stderr
    assert json.loads((run / "guard.json").read_text())["stopped_after"] == 3
    evals(run, [0.30, 0.20])
    proc = run_scpo(
        "guard",
        "--iter_dir",
        str(run / "iter_1"),
        "--iteration",
        "1",
        "--guard_metric",
        "greedy",
        "--guard_patience",
        "1",
        "--initial_model",
        str(m0),
        check=False,
    )
    assert proc.returncode == 3 and os.path.realpath(run / "final_model") == str(m0.resolve())  # M_0 stays best


@pytest.mark.slow  # scpo in a subprocess
def test_the_guard_chooses_on_dev_when_dev_and_held_out_disagree(tmp_path):
    """Dev says M_1, the held-out eval says M_2: the run's model is the dev's choice (a test-set choice would be M_2)."""
    run, m0 = tmp_path / "run", tmp_path / "m0"
    m0.mkdir()
    evals(run, [0.30, 0.55, 0.50], held_out=[0.30, 0.40, 0.70])
    run_scpo(
        "guard",
        "--iter_dir",
        str(run / "iter_2"),
        "--iteration",
        "2",
        "--guard_metric",
        "greedy",
        "--initial_model",
        str(m0),
    )
    record = json.loads((run / "guard.json").read_text())
    assert record["best_iteration"] == 1 and record["values"] == {"M_0": 0.30, "M_1": 0.55, "M_2": 0.50}
    for broken, message in (('{"greedy": {"me', "not a readable eval"), ("null", "holds NoneType, not an eval")):
        (run / "iter_2" / "guard_eval.json").write_text(broken)
        proc = run_scpo(
            "guard",
            "--iter_dir",
            str(run / "iter_2"),
            "--iteration",
            "2",
            "--guard_metric",
            "greedy",
            "--initial_model",
            str(m0),
            check=False,
        )
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    (run / "iter_2" / "guard_eval.json").unlink()
    missing = run_scpo(
        "guard",
        "--iter_dir",
        str(run / "iter_2"),
        "--iteration",
        "2",
        "--guard_metric",
        "greedy",
        "--initial_model",
        str(m0),
        check=False,
    )
    assert missing.returncode == 1 and "guard_eval.json: missing" in missing.stderr


DEV_SPLIT = (
    "--eval_file",
    str(ROOT / "recipes" / "cpu_demo_dev" / "eval.jsonl"),
    "--guard_file",
    str(ROOT / "recipes" / "cpu_demo_dev" / "dev.jsonl"),
)


@pytest.mark.slow  # scpo in a subprocess
def test_a_guard_metric_eval_does_not_write_is_refused_by_the_plan():
    proc = run_scpo(
        "plan", str(ROOT / "recipes" / "cpu_demo.yaml"), "--guard_metric", "maj@16", *DEV_SPLIT, check=False
    )
    assert proc.returncode == 1 and "scpo eval does not write it (did you mean 'maj@8'?)" in proc.stderr
    lines = run_scpo(
        "plan", str(ROOT / "recipes" / "cpu_demo.yaml"), "--guard_metric", "greedy", *DEV_SPLIT
    ).stdout.splitlines()
    words = [word for line in lines for word in line.split()[1:] + ["--then"]]  # `chain A --then B` counts A, B
    stages = [
        word for previous, word in zip(["--then", *words], words) if previous in ("--then", "chain") and word != "chain"
    ]
    assert stages.count("guard") == 2 and stages[stages.index("guard") - 1] == "eval"
    # each model's guard eval is on the dev file, greedy only, written beside (not over) its held-out eval
    assert sum(w.endswith("/guard_eval.json") for w in words) == 3
    from scpo.reporting.per_problem import sidecar  # the two evals of a folder keep their rows apart

    assert sidecar("r/iter_1/guard_eval.json", "samples").name == "guard_eval_samples.jsonl"
    assert sidecar("r/iter_1/eval.json", "per_problem").name == "eval_per_problem.jsonl"
    assert stages.count("eval") == 6


@pytest.mark.slow  # scpo in a subprocess
def test_a_guard_or_dev_file_that_overlaps_the_held_out_eval_is_refused():
    cpu_demo = str(ROOT / "recipes" / "cpu_demo.yaml")
    no_dev = run_scpo("plan", cpu_demo, "--guard_metric", "greedy", check=False)
    assert no_dev.returncode == 1 and "set guard_file (or dev_file)" in no_dev.stderr
    # recipes/cpu_demo_dev/dev.jsonl holds 10 of the 60 facts of recipes/cpu_demo/eval.jsonl
    overlap = run_scpo(
        "plan",
        cpu_demo,
        "--guard_metric",
        "greedy",
        "--guard_file",
        str(ROOT / "recipes" / "cpu_demo_dev" / "dev.jsonl"),
        check=False,
    )
    assert overlap.returncode == 1 and "guard_file=" in overlap.stderr and "is also in eval_file=" in overlap.stderr
    dev = run_scpo(
        "plan",
        cpu_demo,
        "--select_checkpoint",
        "dev",
        "--dev_file",
        str(ROOT / "recipes" / "cpu_demo_dev" / "dev.jsonl"),
        check=False,
    )
    assert dev.returncode == 1 and "dev_file=" in dev.stderr and "must not overlap the held-out eval" in dev.stderr


@pytest.mark.slow
def test_the_loop_stops_at_the_guard_and_still_reports(tmp_path, tiny_model):
    """The tiny random model answers nothing: greedy accuracy is 0 for M_0 and M_1, so with patience 1 the guard
    stops the loop after M_1's eval; the second iteration never samples, the report says why, M_0 is the model."""
    path = recipe(tmp_path, tiny_model)
    write_jsonl(
        tmp_path / "dev.jsonl", [{**p, "id": f"dev-{p['id']}", "prompt": p["prompt"] + " (dev)"} for p in PROBLEMS[3:6]]
    )
    path.write_text(
        path.read_text().replace("iterations: 1", "iterations: 2")
        + f"guard_metric: greedy\nguard_patience: 1\nguard_file: {tmp_path / 'dev.jsonl'}\n"
    )
    proc = iterate(path, stdout=None, stderr=__import__("subprocess").PIPE)
    _, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by the collapse guard" in err
    run = tmp_path / "runs" / "tiny"
    assert (run / "iter_1" / "eval.json").exists() and not (run / "iter_1" / "samples.jsonl").exists()
    assert os.path.realpath(run / "final_model") == str(Path(tiny_model).resolve())
    assert "Collapse guard on greedy: best M_0" in (run / "report.md").read_text()
