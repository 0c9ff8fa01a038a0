"""Eval metrics against brute force, the report on a synthetic run, and `scpo setting`."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from helpers import run_scpo
from scpo.metrics import calibration, mean_and_stderr, pass_at_k, somers_d


def test_pass_at_k_matches_combinatorics():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                brute = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(brute)
    assert pass_at_k(8, 4, 1) == 0.5
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=2, max_size=30))
@settings(max_examples=200, deadline=None)
def test_somers_d_equals_brute_force(points):
    scores, correct = [s / 4 for s, _ in points], [c for _, c in points]
    pairs = [(a, b) for a, b in itertools.product(range(len(points)), repeat=2) if correct[a] and not correct[b]]
    got = somers_d(scores, correct)
    if not pairs:
        assert got is None
        return
    brute = sum((scores[a] > scores[b]) - (scores[a] < scores[b]) for a, b in pairs) / len(pairs)
    assert got == pytest.approx(brute)
    assert -1 <= got <= 1


def test_calibration_and_stderr():
    bins = calibration([0.1, 0.15, 0.9, 1.0, 1.0], [False, True, True, True, False])
    assert bins == [{"lo": 0.1, "hi": 0.2, "n": 2, "accuracy": 0.5},
                    {"lo": 0.9, "hi": 1.0, "n": 3, "accuracy": pytest.approx(2 / 3)}]
    mean, se = mean_and_stderr([0.0, 1.0, 1.0, 0.0])
    assert mean == 0.5 and se == pytest.approx(math.sqrt((4 * 0.25 / 3) / 4))


def _fake_run(tmp_path):
    run = tmp_path / "runs" / "demo"
    rng = random.Random(0)
    for t, acc in enumerate([0.5, 0.6, 0.65]):
        d = run / f"iter_{t}"
        d.mkdir(parents=True)
        ev = {"problems": 300, "k": 8, "somers_d": 0.7,
              "calibration": [{"lo": 0.1 * b, "hi": 0.1 * b + 0.1, "n": 10, "accuracy": rng.random()} for b in range(10)]}
        for key in ("greedy", "pass@1", "maj@8", "pass@8"):
            ev[key] = {"mean": acc, "stderr": 0.02}
        (d / "eval.json").write_text(json.dumps(ev))
        if t < 2:
            (d / "pairs.jsonl.manifest.json").write_text(json.dumps({"counts": {"pairs": 100 + t, "mean_weight": 0.5}}))
    return run


def test_report_writes_table_and_plots(tmp_path):
    run = _fake_run(tmp_path)
    proc = run_scpo("report", str(run))
    text = (run / "report.md").read_text()
    assert "| 1 | 0.600 ± 0.020 | 0.600 ± 0.020 |" in text and "| 101 | 0.5 |" in text
    assert "M_0 0.500 -> M_2 0.650 (+15.0 points; standard error of the difference 2.8 points)" in text
    assert "+15.0 points" in proc.stdout
    for png in ("metrics.png", "calibration.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_pairs_the_same_problems(tmp_path):
    run = _fake_run(tmp_path)
    for t, flips in ((0, 0), (2, 1)):  # M_2 gets one more of 4 samples right on each of 3 problems
        rows = [{"id": f"q{i}", "sample_index": j, "correct": j < 2 + flips, "vote_share": 0.5}
                for i in range(3) for j in range(4)]
        (run / f"iter_{t}" / "eval_samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_scpo("report", str(run))
    assert "(+25.0 points; paired over the same 3 problems)" in (run / "report.md").read_text()


def test_report_shows_adaptive_sampling_and_new_problems(tmp_path):
    run = _fake_run(tmp_path)
    d = run / "iter_1"
    (d / "samples.jsonl.manifest.json").write_text(json.dumps({"counts": {
        "prompts_sampled": 40, "samples_drawn": 200, "stopped_early": 30, "audit_prompts": 20,
        "audit_majority_changed": 1}}))
    (d / "generated_problems.jsonl.manifest.json").write_text(json.dumps({"counts": {
        "candidates": 50, "kept": 42, "dropped": {"duplicate_of_seed": 5, "empty": 3}}}))
    (d / "pairs.jsonl.manifest.json").write_text(json.dumps({"counts": {"pairs": 30, "generated_pairs": 12}}))
    run_scpo("report", str(run))
    text = (run / "report.md").read_text()
    assert "| 1 | 5.00 | 30 | 5.0% of 20 | 50 | 42 | duplicate_of_seed 5, empty 3 | 12 |" in text
    assert "| 0 | 5.00" not in text and "| 0 | -" not in text  # iteration 0 used neither: no row


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    proc = run_scpo("report", str(tmp_path), check=False)
    assert proc.returncode == 1 and "no iter_<t> folders" in proc.stderr


def test_setting_resolves_recipe_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("run_name: demo\niterations: 3\ntau: [0.5, 0.7]\nlearning_rate: 1.0e-6\n")
    assert run_scpo("setting", "run_name", "--config", str(recipe)).stdout.strip() == "demo"
    assert run_scpo("setting", "iterations", "--config", str(recipe), "--iterations", "1").stdout.strip() == "1"
    bad = run_scpo("setting", "run_name", "--config", str(recipe), "--iteratons", "1", check=False)
    assert bad.returncode == 1 and "did you mean 'iterations'" in bad.stderr


def test_majority_vote_ties_score_the_share_of_correct_tied_answers():
    from scpo.metrics import majority_accuracy
    from scpo.stages.eval import grade_problem
    from scpo.tasks import get_task

    assert majority_accuracy([True]) == (1.0, True) and majority_accuracy([]) == (0.0, False)
    assert majority_accuracy([True, False]) == (0.5, False)  # standard: a uniform choice among the tied answers
    assert majority_accuracy([False, True, False]) == (pytest.approx(1 / 3), False)
    task = get_task("numeric")
    result, _ = grade_problem({"id": "p", "gold": "2"}, ["1", "1", "2", "2", "3", "x"], None, task)
    assert result["maj"] == 0.5 and result["maj_strict"] is False
    # ScPO's y+ and y- (Appendix A): the most-voted answer (1 and 2 tie; "1" comes first) and the least-voted
    assert result["extremes"] == [(2, False), (1, False)]
    result, _ = grade_problem({"id": "p", "gold": "2"}, ["2", "2", "2", "x", "x"], None, task)
    assert result["maj"] == 1.0 and result["extremes"] == [(3, True), (2, False)]  # the unparseable group is y-


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.booleans()), min_size=2, max_size=60))
def test_scpo_somers_d_is_scipys_somersd_of_accuracy_given_votes(points):
    scipy_stats = pytest.importorskip("scipy.stats")
    from scpo.metrics import somers_d_given

    votes, acc = [v for v, _ in points], [a for _, a in points]
    got = somers_d_given(votes, acc)
    if len(set(votes)) < 2:
        assert got is None
        return
    if len(set(acc)) < 2:  # scipy says nan for a constant y; no pair is concordant or discordant: 0
        assert got == 0.0
        return
    want = scipy_stats.somersd(votes, [int(a) for a in acc]).statistic
    assert got == pytest.approx(want, abs=1e-12)


def test_report_shows_the_dev_selection_per_iteration(tmp_path):
    run = _fake_run(tmp_path)
    curve = [{"epoch": 1, "step": 5, "value": 0.4}, {"epoch": 2, "step": 10, "value": 0.55},
             {"epoch": 3, "step": 15, "value": 0.5}]
    (run / "iter_0" / "model.manifest.json").write_text(json.dumps({"counts": {
        "dev_curve": curve, "selected_epoch": 2, "select_metric": "greedy"}}))
    run_scpo("report", str(run))
    text = (run / "report.md").read_text()
    assert "| 0 | greedy | 1: 0.400, 2: 0.550, 3: 0.500 | 2 |" in text and "selection.png" in text
    assert (run / "selection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
