"""`scpo compare`: methods on the same problems, rollout budget and held-out eval; one table, one plot; resumes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from helpers import run_scpo, write_jsonl
from test_loop import recipe

from scpo.core.errors import ScpoError
from scpo.core.settings import parse_settings
from scpo.loop import compare, compare_plan
from scpo.metrics import paired_by_problem
from scpo.reporting import compare as compare_report
from scpo.reporting.per_problem import per_problem


def compare_file(tmp_path: Path, tiny_model: str, methods: str, budget: str = "") -> Path:
    loop = recipe(tmp_path, tiny_model)  # 6 problems, k 6: 36 training rollouts per iteration
    grpo = tmp_path / "grpo.yaml"
    grpo.write_text(
        f"model: {tiny_model}\ntask: loop_task:WordParity\nproblems_file: {tmp_path / 'train.jsonl'}\n"
        "reward_funcs: [majority]\nn_votes: 6\nper_device_train_batch_size: 6\nmax_completion_length: 8\n"
        "learning_rate: 1.0e-4\nbeta: 0.0\ngradient_checkpointing: false\nlogging_steps: 1\n"
        'save_strategy: "no"\nreport_to: none\nmax_steps: 2\n'
    )
    path = tmp_path / "compare.yaml"
    path.write_text(
        f"run_name: cmp\noutput_root: {tmp_path / 'runs'}\neval_recipe: {loop}\n{budget}"
        f"methods:\n{methods.format(loop=loop, grpo=grpo)}"
    )
    return path


def settings(path: Path, *extra: str):
    return parse_settings(compare.CompareSettings, ["--config", str(path), *extra])


METHODS = """  scpo: {{recipe: {loop}}}
  unweighted: {{recipe: {loop}, weighting: none}}
  ttrl: {{recipe: {grpo}, trainer: grpo}}
"""


def test_budget_sets_grpo_steps_and_bad_comparisons_are_refused(tmp_path, tiny_model):
    path = compare_file(tmp_path, tiny_model, METHODS)
    _, m0_eval, methods = compare_plan.build(settings(path))
    assert m0_eval[:3] == ["eval", "--config", str(tmp_path / "tiny.yaml")]
    assert [m.rollouts for m in methods] == [36, 36, 36]  # 6 problems x k 6; GRPO 6 steps x 6 rollouts
    grpo = methods[2].commands[0]
    assert grpo[grpo.index("--max_steps") + 1] == "6"  # the recipe's max_steps 2 gives way to the budget
    assert methods[0].commands[-1] == ["report", str(tmp_path / "runs" / "cmp" / "scpo")]
    assert methods[2].commands[1][-4:] == [
        "--iter_dir",
        str(tmp_path / "runs" / "cmp" / "ttrl" / "iter_1"),
        "--iteration",
        "1",
    ]
    cases = [
        (
            "  a: {{recipe: {loop}}}\n  b: {{recipe: {loop}, k: 4}}\n",
            "method b: plans 24 training rollouts (iterations x problems x k, and every extra completion",
        ),
        # every sampled completion counts: ScPO's extras (at most 6 x 2) and a frozen teacher's 6 x 6 votes
        ("  a: {{recipe: {loop}}}\n  b: {{recipe: {loop}, resample_n: 2}}\n", "method b: plans 48 training rollouts"),
        (
            "  a: {{recipe: {loop}}}\n  b: {{recipe: {loop}, vote_teacher: frozen, teacher_model: "
            + tiny_model
            + "}}\n",
            "method b: plans 72 training rollouts",
        ),
        ("  a: {{recipe: {loop}, eval_k: 4}}\n", "method a: its held-out eval differs from eval_recipe"),
        ("  a: {{recipe: {loop}, model: /elsewhere}}\n", "method a: model '/elsewhere' is not the eval recipe's M_0"),
        ("  a: {{recipe: /no/such.yaml}}\n", "setting methods.a.recipe='/no/such.yaml': no such file"),
        ("  a: {{recipe: {loop}, trainer: ppo}}\n", "setting methods.a.trainer='ppo': expected one of"),
        ("  a: {{recipe: {grpo}, trainer: grpo, max_steps: 3}}\n", "max_steps 3 x 6 rollouts per step = 18"),
        ("  a: {{recipe: {loop}}}\n  a: {{recipe: {loop}, weighting: none}}\n", "the key 'a' is given twice"),
    ]
    for methods_text, message in cases:
        bad = compare_file(tmp_path, tiny_model, methods_text, budget="budget_rollouts: 36\n")
        with pytest.raises(ScpoError, match=re.escape(message)):
            compare_plan.build(settings(bad))
    # a budget that is no whole number of GRPO steps (37 / 6) is refused, not rounded up
    uneven = compare_file(
        tmp_path, tiny_model, "  t: {{recipe: {grpo}, trainer: grpo}}\n", budget="budget_rollouts: 37\n"
    )
    with pytest.raises(ScpoError, match="budget_rollouts 37 is not a whole number of GRPO steps of 6 rollouts"):
        compare_plan.build(settings(uneven))
    with pytest.raises(ScpoError, match="setting run_name='': the comparison's folder name"):
        settings(path, "--run_name", "")
    no_eval = tmp_path / "no_eval.yaml"
    no_eval.write_text(path.read_text().replace(f"eval_recipe: {tmp_path / 'tiny.yaml'}\n", ""))
    with pytest.raises(ScpoError, match="setting eval_recipe: name the recipe whose model is M_0"):
        settings(no_eval)


def test_a_methods_result_depends_on_its_recipe_and_data_contents(tmp_path, tiny_model):
    """Editing a method's recipe (or a data file it names) changes its hash: a finished result is not reused."""
    path = compare_file(tmp_path, tiny_model, METHODS)
    before = {m.name: m.spec_hash for m in compare_plan.build(settings(path))[2]}
    grpo = tmp_path / "grpo.yaml"
    grpo.write_text(grpo.read_text().replace("learning_rate: 1.0e-4", "learning_rate: 2.0e-4"))
    after = {m.name: m.spec_hash for m in compare_plan.build(settings(path))[2]}
    assert after["ttrl"] != before["ttrl"] and after["scpo"] == before["scpo"]
    with open(tmp_path / "train.jsonl", "a") as f:  # every method trains on it
        f.write('{"id": "extra", "prompt": "one more", "gold": "1"}\n')
    again = {m.name: m.spec_hash for m in compare_plan.build(settings(path))[2]}
    assert all(again[name] != after[name] for name in again)


def test_a_guard_file_that_overlaps_the_eval_file_is_refused(tmp_path, tiny_model):
    path = compare_file(
        tmp_path,
        tiny_model,
        "  g: {{recipe: {loop}, guard_metric: greedy, guard_file: %s}}\n" % (tmp_path / "eval.jsonl"),
    )
    with pytest.raises(ScpoError, match="guard_file=.*is also in eval_file="):
        compare_plan.build(settings(path))


def test_paired_difference_and_the_table(tmp_path):
    def write_eval(folder: Path, per_problem: dict[str, list[bool]], greedy: float) -> Path:
        folder.mkdir(parents=True)
        rows = [{"id": i, "sample_index": j, "correct": c} for i, cs in per_problem.items() for j, c in enumerate(cs)]
        rows += [{"id": i, "sample_index": -1, "correct": greedy == 1.0} for i in per_problem]  # as scpo eval writes
        write_jsonl(folder / "eval_samples.jsonl", rows)
        n = len(per_problem)
        mean = sum(sum(c) / len(c) for c in per_problem.values()) / n
        (folder / "eval.json").write_text(
            json.dumps(
                {
                    "greedy": {"mean": greedy, "stderr": 0.1},
                    "pass@1": {"mean": mean, "stderr": 0.05},
                    "maj@2": {"mean": mean, "stderr": 0.05},
                }
            )
        )
        return folder / "eval.json"

    m0 = write_eval(tmp_path / "m0", {"a": [False, False], "b": [True, False], "c": [False, False]}, 0.0)
    good = write_eval(tmp_path / "good", {"a": [True, True], "b": [True, True], "c": [True, False]}, 1.0)
    same = write_eval(tmp_path / "same", {"a": [False, True], "b": [True, False], "c": [False, False]}, 0.0)
    # the greedy row (sample_index -1) is not one of pass@1's samples
    assert {i: r["pass@1"] for i, r in per_problem(good).items()} == {"a": 1.0, "b": 1.0, "c": 0.5}
    d, se, n = paired_by_problem(per_problem(good), per_problem(m0), "pass@1")
    assert d == pytest.approx(2 / 3) and n == 3 and se == pytest.approx((1 / 12 / 3) ** 0.5)  # sd over 3 problems
    results = {
        name: {"trainer": "loop", "eval": str(path), "rollouts": 36, "tokens": 100, "train_steps": 4, "wall_s": 12.0}
        for name, path in (("good", good), ("same", same))
    }
    # the model's seconds: every non-eval stage manifest of the method (a copied one too), evals left out
    (tmp_path / "good" / "iter_0").mkdir()
    (tmp_path / "good" / "iter_0" / "samples.jsonl.manifest.json").write_text('{"stage": "sample", "seconds": 30}')
    (tmp_path / "good" / "iter_0" / "model.manifest.json").write_text('{"stage": "train", "seconds": 50.5}')
    (tmp_path / "good" / "iter_0" / "eval.json.manifest.json").write_text('{"stage": "eval", "seconds": 99}')
    assert compare_report.model_seconds(tmp_path / "good", "loop") == 80.5
    m0_read = json.loads(m0.read_text())

    def table(chosen: dict, gold: set | None = None):
        passes = {name: per_problem(Path(r["eval"])) for name, r in chosen.items()}
        return compare_report.table(chosen, 2, m0_read, per_problem(m0), passes, tmp_path, gold)

    text, notes = table(results)
    lines = text.splitlines()
    assert lines[0].startswith("| method | trainer | greedy | pass@1 | maj@2 | Δ pass@1 vs M_0")
    assert lines[2].startswith("| M_0 |") and lines[3].startswith("| good | loop | 1.000 ± 0.100 |")
    assert "+0.667" in lines[3] and "| 36 | 100 | 4 | 80 | 12 |" in lines[3]
    assert "| 36 | 100 | 4 | 0 | 12 |" in lines[4]  # no manifests: nothing made it
    assert notes[0].startswith("Best pass@1: **good**, +0.500 over same (paired SE 0.000: no spread, beyond")
    # a method trained on gold gets the best line, and the best label-free method a line of its own
    worse = write_eval(tmp_path / "worse", {"a": [False, False], "b": [False, False], "c": [False, False]}, 0.0)
    three = {**results, "worse": {**results["same"], "eval": str(worse)}}
    _, notes = table(three, {"good"})
    assert notes[0].startswith("Best pass@1: **good**")
    assert notes[1].startswith("Best without gold labels: **same**, +0.333 over worse")
    _, notes = table(three, {"worse"})
    assert len(notes) == 1  # the best uses no gold: no second line repeating it
    assert compare_plan.uses_gold(["--mode", "supervised"])
    assert compare_plan.uses_gold(["--reward_funcs", "majority,gold"])
    assert not compare_plan.uses_gold(["--reward_funcs", "majority"]) and not compare_plan.uses_gold([])
    compare_report.plot(results, 2, json.loads(m0.read_text()), tmp_path / "compare.png")
    assert (tmp_path / "compare.png").stat().st_size > 1000

    # evals whose engines ran at different precisions (a CPU with native bf16 and one without) are named
    warning = compare_report.precision_line(
        {"M_0": {"engine_dtype": "bfloat16"}, "good": {"engine_dtype": "float32"}, "old": {}}
    )
    assert warning.startswith("Warning: the held-out evals ran at different precisions (M_0 bfloat16, good float32)")
    one_precision = {"M_0": {"engine_dtype": "float32"}, "good": {"engine_dtype": "float32"}}
    assert compare_report.precision_line(one_precision) is None
    assert compare_report.precision_line({"M_0": {}, "good": {"engine_dtype": "float32"}}) is None  # unrecorded


@pytest.mark.slow
def test_compare_runs_every_method_shares_m0_and_resumes(tmp_path, tiny_model):
    path = compare_file(tmp_path, tiny_model, METHODS)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    run_scpo("compare", "--config", str(path), env=env, timeout=1500)
    root = tmp_path / "runs" / "cmp"
    state = json.loads((root / "compare.json").read_text())["methods"]
    assert sorted(state) == ["scpo", "ttrl", "unweighted"]
    assert [state[m]["rollouts"] for m in state] == [36, 36, 36]
    assert state["ttrl"]["train_steps"] == 6 and state["scpo"]["train_steps"] == 2
    assert all(state[m]["tokens"] > 0 and state[m]["wall_s"] > 0 for m in state)
    # M_0's eval and samples were made once: the copies are byte for byte the originals, kept by their manifests
    assert (root / "scpo" / "iter_0" / "eval.json").read_bytes() == (root / "M_0" / "eval.json").read_bytes()
    first, second = (
        json.loads((root / m / "iter_0" / "samples.jsonl.manifest.json").read_text()) for m in ("scpo", "unweighted")
    )
    assert first == second
    table = (root / "compare.md").read_text()
    for name in ("M_0", "scpo", "unweighted", "ttrl"):
        assert f"| {name} |" in table
    assert (root / "compare.png").exists()
    before = (root / "compare.json").read_text()
    proc = run_scpo("compare", "--config", str(path), env=env, timeout=600)  # resumes: every method is done
    assert proc.stderr.count("done (") == 3 and (root / "compare.json").read_text() == before


def test_measured_rollouts_count_every_completion_sampled(tmp_path):
    """Resampled extras (inside the samples' count), a vote teacher's samples, new-problem candidates and judge
    outputs all count toward a method's measured rollouts, not only its k votes per problem."""
    folder = tmp_path / "m"
    manifests = {
        "iter_0/samples.jsonl": {"completions": 40, "output_tokens": 400},  # 32 votes + 8 resampled
        "iter_1/samples.jsonl": {"completions": 32, "output_tokens": 300},
        "iter_1/teacher_samples.jsonl": {"completions": 32, "output_tokens": 310},
        "iter_1/generated_problems.jsonl": {"candidates": 6, "kept": 2},
        "iter_1/labels.jsonl": {"judge_outputs": 12},
    }
    for name, counts in manifests.items():
        path = folder / f"{name}.manifest.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"counts": counts}))
    got = compare_report.measured(folder, "loop")
    assert got["rollouts"] == 40 + 32 + 32 + 6 + 12 and got["tokens"] == 1010


def test_measured_grpo_rollouts_come_from_its_log(tmp_path):
    """An online method: its logged training steps x rollouts per step, and tokens from each step's mean completion
    length (a resumed run's later line for a step wins; lines without a length, eval or runtime, do not count)."""
    folder = tmp_path / "ttrl"
    (folder / "model").mkdir(parents=True)
    log = [
        {"step": 1, "reward": 0.5, "completions/mean_length": 7.5},
        {"step": 1, "heldout/accuracy": 0.2},
        {"step": 2, "reward": 0.6, "completions/mean_length": 9.25},
        {"step": 2, "reward": 0.7, "completions/mean_length": 8.0},
        {"step": 3, "reward": 0.7, "completions/mean_length": 5.0},
        {"step": 3, "train_runtime": 1.0},
    ]
    write_jsonl(folder / "model" / "grpo_log.jsonl", log)
    got = compare_report.measured(folder, "grpo", rollouts_per_step=12)
    assert got == {"rollouts": 36, "tokens": round((7.5 + 8.0 + 5.0) * 12), "train_steps": 3}
    assert compare_report.measured(tmp_path / "none", "grpo", 12) == {"rollouts": 0, "tokens": 0, "train_steps": 0}


def test_se_units_name_the_sampled_problems_apart_from_greedy():
    from scpo.reporting.compare import se_units

    assert se_units({"problems": 400, "problems_sampled": 128}) == (
        "400 problems for greedy, the first 128 for the sampled metrics"
    )
    assert se_units({"problems": 120, "problems_sampled": 120}) == "120 problems"
    assert se_units({"problems": 120, "clusters": 30}).startswith("30 clusters of problems")


def test_a_partial_report_lists_the_methods_to_come_and_pairs_each_metric_with_m0(tmp_path):
    """compare.md after each finished method: the unfinished ones "to come", and every method minus M_0 on each
    per-problem metric plus its greedy answer against M_0's votes (maj), paired over the problems both measured."""

    def write_eval(name: str, rows: list[dict]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        write_jsonl(folder / "eval_per_problem.jsonl", rows)
        (folder / "eval.json").write_text(json.dumps({"greedy": {"mean": 0.5, "stderr": 0.1}, "problems": 4}))
        return folder / "eval.json"

    def row(i, greedy, c=None, maj=None):  # as scpo eval writes; c of 2 samples on the first two problems only
        return {"id": i, "greedy": greedy, **({"c": c, "n": 2, "maj": maj} if c is not None else {})}

    m0 = write_eval("M_0", [row("a", 0, 0, 0), row("b", 0, 1, 1), row("c", 1), row("d", 0)])
    trained = write_eval("scpo", [row("a", 1, 2, 1), row("b", 1, 1, 1), row("c", 1), row("d", 1)])
    record = {"trainer": "loop", "eval": str(trained), "rollouts": 8, "tokens": 10, "train_steps": 1}
    record |= {"wall_s": 5.0, "planned_rollouts": 8}
    md = compare_report.report(tmp_path, "cmp", "eval.yaml", 2, {"scpo": record}, m0, set(), "greedy", {"ttrl": "grpo"})
    assert md.startswith("# cmp (partial: ttrl to come): methods on 8 training rollouts each")
    assert "| ttrl | grpo | to come |" in md
    assert (tmp_path / "compare.md").read_text() == md
    line = next(x for x in md.splitlines() if x.startswith("| scpo | +"))
    greedy, pass1, maj, versus_votes = line.strip("| ").split(" | ")[1:]
    assert greedy.startswith("+0.750 ± 0.250") and greedy.endswith("n 4)")  # 3 of 4 problems gained one
    assert pass1.startswith("+0.500 ± 0.500") and pass1.endswith("n 2)")  # only the sampled problems pair
    assert maj.startswith("+0.500 ± 0.500")
    assert versus_votes.startswith("+0.500 ± 0.500") and versus_votes.endswith("n 2)")  # greedy 1, 1 vs maj 0, 1
    whole = compare_report.report(tmp_path, "cmp", "eval.yaml", 2, {"scpo": record}, m0, set(), "greedy")
    assert whole.startswith("# cmp: methods") and "to come" not in whole
