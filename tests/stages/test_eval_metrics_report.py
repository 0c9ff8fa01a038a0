"""Eval metrics against brute force, the report on a synthetic run, and `scpo setting`."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
from helpers import run_scpo
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert bins == [
        {"lo": 0.1, "hi": 0.2, "n": 2, "accuracy": 0.5},
        {"lo": 0.9, "hi": 1.0, "n": 3, "accuracy": pytest.approx(2 / 3)},
    ]
    mean, se = mean_and_stderr([0.0, 1.0, 1.0, 0.0])
    assert mean == 0.5 and se == pytest.approx(math.sqrt((4 * 0.25 / 3) / 4))


def _fake_run(tmp_path):
    run = tmp_path / "runs" / "demo"
    rng = random.Random(0)
    for t, acc in enumerate([0.5, 0.6, 0.65]):
        d = run / f"iter_{t}"
        d.mkdir(parents=True)
        ev = {
            "problems": 300,
            "k": 8,
            "somers_d": 0.7,
            "calibration": [{"lo": 0.1 * b, "hi": 0.1 * b + 0.1, "n": 10, "accuracy": rng.random()} for b in range(10)],
        }
        for key in ("greedy", "pass@1", "maj@8", "pass@8"):
            ev[key] = {"mean": acc, "stderr": 0.02}
        (d / "eval.json").write_text(json.dumps(ev))
        if t < 2:
            (d / "pairs.jsonl.manifest.json").write_text(json.dumps({"counts": {"pairs": 100 + t, "mean_weight": 0.5}}))
    return run


@pytest.mark.slow  # scpo in a subprocess
def test_report_writes_table_and_plots(tmp_path):
    run = _fake_run(tmp_path)
    run_scpo("report", str(run))
    text = (run / "report.md").read_text()
    assert "| 1 | 0.600 ± 0.020 | 0.600 ± 0.020 |" in text and "| 101 | 0.5 |" in text
    assert "Paired differences" not in text  # the fake run has no per-problem results to pair
    for png in ("metrics.png", "calibration.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # scpo in a subprocess
def test_report_pairs_the_same_problems(tmp_path):
    run = _fake_run(tmp_path)
    for t, flips in ((0, 0), (2, 1)):  # M_2 gets one more of 4 samples right on each of 3 problems
        rows = [
            {"id": f"q{i}", "sample_index": j, "correct": j < 2 + flips, "vote_share": 0.5}
            for i in range(3)
            for j in range(4)
        ]
        rows += [{"id": f"q{i}", "sample_index": -1, "correct": t > 0, "vote_share": None} for i in range(3)]
        (run / f"iter_{t}" / "eval_samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_scpo("report", str(run))
    text = (run / "report.md").read_text()
    # greedy: 0 -> 1 on all three; pass@1: 2/4 -> 3/4 each (the greedy rows are not samples); no spread: no z
    assert "| M_2 - M_0 | +100.0 ± 0.0 (n 3) | +25.0 ± 0.0 (n 3) | - |" in text


@pytest.mark.slow  # scpo in a subprocess
def test_report_pairs_clustered_problems_with_cluster_standard_errors(tmp_path):
    """Four wordings of one fact are one unit: the paired SE is over facts (CR1), larger than over rows."""
    from scpo.metrics import mean_and_stderr

    run = _fake_run(tmp_path)
    gains = {"a#0": 1, "a#1": 1, "a#2": 1, "a#3": 1, "b#0": 0, "b#1": 0, "b#2": 0, "b#3": 0, "c#0": 1, "c#1": 0}
    for t in (0, 2):
        rows = [
            {"id": i, "c": 0, "n": 0, "greedy": bool(t and g), "maj": 0.0, "cluster": i.split("#")[0]}
            for i, g in gains.items()
        ]
        (run / f"iter_{t}" / "eval_per_problem.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_scpo("report", str(run))
    text = (run / "report.md").read_text()
    d = [float(g) for g in gains.values()]
    _, plain = mean_and_stderr(d)
    _, clustered = mean_and_stderr(d, [i.split("#")[0] for i in gains])
    assert clustered > plain * 1.3
    assert f"| M_2 - M_0 | +50.0 ± {clustered * 100:.1f} (n 10, " in text and "over clusters of problems" in text


@pytest.mark.slow  # scpo in a subprocess
def test_report_shows_adaptive_sampling_and_new_problems(tmp_path):
    run = _fake_run(tmp_path)
    d = run / "iter_1"
    (d / "samples.jsonl.manifest.json").write_text(
        json.dumps(
            {
                "counts": {
                    "prompts_sampled": 40,
                    "samples_drawn": 200,
                    "stopped_early": 30,
                    "audit_prompts": 20,
                    "audit_majority_changed": 1,
                }
            }
        )
    )
    (d / "generated_problems.jsonl.manifest.json").write_text(
        json.dumps({"counts": {"candidates": 50, "kept": 42, "dropped": {"duplicate_of_seed": 5, "empty": 3}}})
    )
    (d / "pairs.jsonl.manifest.json").write_text(json.dumps({"counts": {"pairs": 30, "generated_pairs": 12}}))
    run_scpo("report", str(run))
    text = (run / "report.md").read_text()
    assert "| 1 | 5.00 | 30 | 5.0% of 20 | 50 | 42 | duplicate_of_seed 5, empty 3 | 12 |" in text
    rows = text.splitlines()
    assert not any(row.startswith(("| 0 | 5.00", "| 0 | -")) for row in rows)  # iteration 0 used neither: no row


@pytest.mark.slow  # scpo in a subprocess
def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    proc = run_scpo("report", str(tmp_path), check=False)
    assert proc.returncode == 1 and "no iter_<t> folders" in proc.stderr


@pytest.mark.slow  # scpo in a subprocess
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


@pytest.mark.slow  # scpo in a subprocess
def test_report_shows_the_dev_selection_per_iteration(tmp_path):
    run = _fake_run(tmp_path)
    curve = [
        {"epoch": 1, "step": 5, "value": 0.4},
        {"epoch": 2, "step": 10, "value": 0.55},
        {"epoch": 3, "step": 15, "value": 0.5},
    ]
    (run / "iter_0" / "model.manifest.json").write_text(
        json.dumps({"counts": {"dev_curve": curve, "selected_epoch": 2, "select_metric": "greedy"}})
    )
    run_scpo("report", str(run))
    text = (run / "report.md").read_text()
    assert "| 0 | greedy | 1: 0.400, 2: 0.550, 3: 0.500 | 2 |" in text and "selection.png" in text
    assert (run / "selection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_k_problems_samples_a_subset_and_grades_greedy_on_all():
    """pass@1 and maj@k over the first N problems only, greedy over all: summarize keeps the two apart."""
    from scpo.stages.eval import grade_problem, summarize
    from scpo.tasks import get_task

    task = get_task("gsm8k")
    results, rows = [], []
    for i in range(5):
        sampled = ["The answer is 2.", "The answer is 3."] if i < 2 else []  # eval_k_problems 2 of 5
        result, graded = grade_problem({"id": f"p{i}", "gold": "#### 2"}, sampled, "The answer is 2.", task)
        results.append(result)
        rows.extend(graded)
    metrics = summarize(results, rows, 2)
    assert metrics["problems"] == 5 and metrics["problems_sampled"] == 2
    assert metrics["greedy"]["mean"] == 1.0 and metrics["pass@1"]["mean"] == 0.5
    assert metrics["maj@2"]["mean"] == 0.5  # a 1-1 tie: the share of correct tied answers


def test_cluster_robust_standard_error():
    """CR1 over clusters: singletons give the plain SE; identical wordings of one item count once."""
    from scpo.metrics import cluster_key, mean_and_stderr

    values = [1.0, 0.0, 1.0, 1.0, 0.0]
    assert mean_and_stderr(values, list("abcde")) == pytest.approx(mean_and_stderr(values))
    # two items asked four ways each, all wordings agreeing: the same SE as the two items alone
    _, four_ways = mean_and_stderr([1.0] * 4 + [0.0] * 4, ["x"] * 4 + ["y"] * 4)
    assert four_ways == pytest.approx(mean_and_stderr([1.0, 0.0])[1])
    assert four_ways > mean_and_stderr([1.0] * 4 + [0.0] * 4)[1] * 1.8  # rows as units: too small by ~sqrt(7/2)
    assert mean_and_stderr([1.0, 0.0], ["x", "x"]) == (0.5, 0.0)  # one cluster: nothing independent to measure
    assert cluster_key({"id": "8+4#2"}, "id_prefix") == "8+4" and cluster_key({"id": "8+4#2"}, "none") == "8+4#2"
    assert cluster_key({"id": "p", "group": "g1"}, "group") == "g1"


@pytest.mark.slow  # scpo in a subprocess
def test_eval_max_tokens_that_leave_no_room_are_named_before_the_engine_starts(tmp_path):
    """eval_max_tokens is eval's own length; a cut that it applies is checked in tests/loop/test_chain.py (one engine
    for the eval and the sampling, each with its own length)."""
    from helpers import ROOT

    problems = tmp_path / "eval.jsonl"
    problems.write_text("".join((ROOT / "recipes/cpu_demo/eval.jsonl").read_text().splitlines(True)[:3]))
    for args, message in (
        (["--eval_max_tokens", "0"], "eval_max_tokens=0: must be at least 1"),
        (["--eval_max_tokens", "512", "--max_model_len", "512"], "leaves no room for a prompt"),
    ):
        proc = run_scpo(
            "eval", "--model", "embedded", "--eval_file", str(problems), "--iter_dir", str(tmp_path), *args, check=False
        )
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert "engine started" not in proc.stderr
    assert not (tmp_path / "eval.json").exists()


def test_report_names_a_cut_short_eval_and_links_only_written_plots(tmp_path, capsys):
    from scpo.stages import report

    run = _fake_run(tmp_path)
    (run / "iter_1" / "eval.json").write_text('{"greedy": {"mean": 0.6')  # a write cut short
    (run / "iter_2" / "eval.json").write_text("null")
    text = report.main([str(run)])
    assert "| 1 | - | - |" in text  # its cells are empty, not an error for the whole run
    assert f"- {run / 'iter_1' / 'eval.json'} (JSONDecodeError:" in text
    assert f"- {run / 'iter_2' / 'eval.json'} (holds NoneType, not an object)" in text
    assert "could not read" in capsys.readouterr().err
    assert "![metrics](metrics.png)" in text and (run / "metrics.png").exists()
    assert "selection.png" not in text  # no dev curve: no plot written, none linked
    for d in run.glob("iter_*"):
        (d / "eval.json").unlink()
    text = report.main([str(run)])
    assert "![" not in text and "could not be read" not in text  # nothing to draw: no plot links
