"""The loop's collapse guard (scpo guard): stop when held-out results stop improving, keep the best model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import ROOT, run_scpo
from test_loop import iterate, recipe


def evals(run: Path, greedy: list[float]) -> None:
    for t, value in enumerate(greedy):
        (run / f"iter_{t}").mkdir(parents=True, exist_ok=True)
        (run / f"iter_{t}" / "eval.json").write_text(json.dumps({"greedy": {"mean": value, "stderr": 0.0}}))
        if t:
            (run / f"iter_{t - 1}" / "model").mkdir(parents=True, exist_ok=True)


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
    proc = run_scpo("guard", "--iter_dir", str(run / "iter_1"), "--iteration", "1", "--guard_metric", "greedy",
                    "--guard_patience", "1", "--initial_model", str(m0), check=False)
    assert proc.returncode == 3 and os.path.realpath(run / "final_model") == str(m0.resolve())  # M_0 stays best


def test_a_guard_metric_eval_does_not_write_is_refused_by_the_plan():
    proc = run_scpo("plan", str(ROOT / "recipes" / "cpu_demo.yaml"), "--guard_metric", "maj@16", check=False)
    assert proc.returncode == 1 and "scpo eval does not write it (did you mean 'maj@8'?)" in proc.stderr
    lines = run_scpo("plan", str(ROOT / "recipes" / "cpu_demo.yaml"), "--guard_metric", "greedy").stdout.splitlines()
    words = [word for line in lines for word in line.split()[1:] + ["--then"]]  # `chain A --then B` counts A, B
    stages = [word for previous, word in zip(["--then", *words], words) if previous in ("--then", "chain")
              and word != "chain"]
    assert stages.count("guard") == 2 and stages[stages.index("guard") - 1] == "eval"


@pytest.mark.slow
def test_the_loop_stops_at_the_guard_and_still_reports(tmp_path, tiny_model):
    """The tiny random model answers nothing: greedy accuracy is 0 for M_0 and M_1, so with patience 1 the guard
    stops the loop after M_1's eval; the second iteration never samples, the report says why, M_0 is the model."""
    path = recipe(tmp_path, tiny_model)
    path.write_text(path.read_text().replace("iterations: 1", "iterations: 2")
                    + "guard_metric: greedy\nguard_patience: 1\n")
    proc = iterate(path, stdout=None, stderr=__import__("subprocess").PIPE)
    _, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by the collapse guard" in err
    run = tmp_path / "runs" / "tiny"
    assert (run / "iter_1" / "eval.json").exists() and not (run / "iter_1" / "samples.jsonl").exists()
    assert os.path.realpath(run / "final_model") == str(Path(tiny_model).resolve())
    assert "Collapse guard on greedy: best M_0" in (run / "report.md").read_text()
