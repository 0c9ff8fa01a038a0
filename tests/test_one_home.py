"""Each rule that several modules apply is written once (issue 33): eval's sampled-row and pass@1 rules, paired and
clustered standard errors and the "mean ± se" text in scpo/metrics.py; the "did you mean" hint; the loop-stop exit
status; the rendezvous port; settings defaults read from their class; the GPU check; a field's --help however a
formatter wraps it. Pure logic, milliseconds."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import pytest
from helpers import ROOT

from scpo import metrics
from scpo.core.errors import STOP_EXIT, LoopStop, ScpoError, did_you_mean


def test_eval_rows_the_sampled_row_rule_keeps_are_the_ones_with_a_vote_share():
    """eval writes the k samples with a vote share and the greedy row without one; is_sampled tells them apart by
    sample_index, the rule compare, report and eval's Somers' D all use now."""
    from scpo.stages.eval import grade_problem
    from scpo.tasks import get_task

    problem = {"id": "p", "prompt": "2+2?", "gold": "4"}
    result, rows = grade_problem(problem, ["4", "5", "4"], "4", get_task("numeric"))
    assert [metrics.is_sampled(r) for r in rows] == [r["vote_share"] is not None for r in rows] == [True] * 3 + [False]
    assert rows[-1]["sample_index"] == metrics.GREEDY_INDEX
    assert metrics.problem_results({**result, "cluster": "p"})["pass@1"] == pytest.approx(2 / 3)
    from_samples = metrics.problem_results_from_samples(rows)
    assert from_samples == {"p": {"cluster": "p", "greedy": 1.0, "pass@1": pytest.approx(2 / 3)}}


@pytest.mark.parametrize("n", [1, 3, 7, 8, 10])
def test_pass_at_1_is_pass_at_k_with_k_1(n):
    for c in range(n + 1):
        assert metrics.pass_at_1(c, n) == pytest.approx(metrics.pass_at_k(n, c, 1), abs=1e-15)


def test_a_problem_without_samples_has_no_pass_at_1():
    row = {"id": 7, "c": 0, "n": 0, "greedy": True}  # eval_k_problems: greedy only
    assert metrics.problem_results(row) == {"cluster": "7", "greedy": 1.0}


def test_distinct_clusters_give_the_plain_standard_error_exactly():
    values = [0.1, 0.7, 0.25, 1.0, 0.0]
    assert metrics.mean_and_stderr(values, list("abcde")) == metrics.mean_and_stderr(values)
    assert metrics.mean_and_stderr(values, list("aabbc"))[1] != metrics.mean_and_stderr(values)[1]


def test_paired_by_problem_pairs_the_shared_problems_over_clusters():
    after = {
        "a#0": {"pass@1": 1.0, "cluster": "a"},
        "a#1": {"pass@1": 1.0, "cluster": "a"},
        "b#0": {"pass@1": 0.5, "cluster": "b"},
        "c#0": {"greedy": 1.0, "cluster": "c"},
    }
    before = {
        "a#0": {"pass@1": 0.0, "cluster": "a"},
        "a#1": {"pass@1": 0.5, "cluster": "a"},
        "b#0": {"pass@1": 0.5, "cluster": "b"},
    }
    d, se, n = metrics.paired_by_problem(after, before, "pass@1")
    assert n == 3 and d == pytest.approx((1 + 0.5 + 0) / 3)
    assert (d, se) == metrics.mean_and_stderr([1.0, 0.5, 0.0], ["a", "a", "b"])


def test_mean_se_text():
    assert metrics.format_mean_se(0.3417, 0.0394) == "0.342 ± 0.039"
    assert metrics.format_mean_se(39.17, 4.02, digits=1, signed=True) == "+39.2 ± 4.0"
    ev = {"greedy": {"mean": 0.5, "stderr": 0.1}}
    assert metrics.format_metric(ev, "greedy") == "0.500 ± 0.100"
    assert metrics.format_metric(ev, "pass@1") == metrics.format_metric(None, "greedy") == "-"


def test_the_modules_that_report_metrics_format_and_pair_them_through_metrics():
    for path in (
        "scpo/loop/compare.py",
        "scpo/loop/compare_plan.py",
        "scpo/reporting/compare.py",
        "scpo/reporting/runs.py",
        "scpo/stages/eval.py",
        "scpo/reporting/per_problem.py",
    ):
        text = (ROOT / path).read_text()
        assert not re.search(r"\['stderr'\]:\.\df\}", text), f"{path} formats mean ± se itself"
        assert "sample_index" not in text or path == "scpo/stages/eval.py", f"{path} spots the greedy row itself"
        assert "paired_difference(" not in text, f"{path} pairs problems itself"


def test_did_you_mean():
    assert did_you_mean("majorty", ["majority", "format"]) == " (did you mean 'majority'?)"
    assert did_you_mean("zzz", ["majority"]) == ""
    for path in (
        "scpo/stages/grpo.py",
        "scpo/loop/plan.py",
        "scpo/core/settings.py",
        "scpo/core/registry.py",
        "scpo/core/blocks.py",
    ):
        assert "get_close_matches" not in (ROOT / path).read_text(), path


def test_the_loop_stop_status_is_one_constant(monkeypatch):
    import subprocess

    from scpo.loop import compare

    monkeypatch.setattr(subprocess, "run", lambda command: subprocess.CompletedProcess(command, STOP_EXIT))
    with pytest.raises(LoopStop):
        compare.run_command(["guard"])
    script = (ROOT / "recipes" / "iterate.sh").read_text()
    assert re.search(r"\$status -eq (\d+) \]\]; then  # STOP_EXIT", script).group(1) == str(STOP_EXIT)


def test_the_rendezvous_port_is_one_constant():
    from types import SimpleNamespace

    from scpo.core.blocks import MAIN_PROCESS_PORT
    from scpo.training.launch import launch_command

    s = SimpleNamespace(
        accelerate_config="cpu",
        num_processes=2,
        num_machines=1,
        machine_rank=None,
        main_process_ip=None,
        main_process_port=None,
    )
    command = launch_command(s, ["--x", "1"])
    assert command[command.index("--master_port") + 1] == str(MAIN_PROCESS_PORT)
    for path in ("scpo/training/launch.py", "scpo/loop/slurm.py"):
        assert "29500" not in (ROOT / path).read_text(), path


def test_one_gpu_check():
    from scpo.core.devices import has_gpu

    assert isinstance(has_gpu(), bool)
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "scpo").rglob("*.py")
        if "cuda.is_available" in p.read_text() and p.name != "devices.py"
    ]
    assert offenders == []


def test_peek_setting_takes_the_default_from_the_class(tmp_path):
    from scpo.core.settings import peek_setting
    from scpo.stages.grpo import GrpoSettings
    from scpo.stages.sample import SampleSettings

    recipe = tmp_path / "r.yaml"
    recipe.write_text("k: [4, 16]\nreward_funcs: [majority, gold]\nmax_problems: null\n")
    argv = ["--config", str(recipe)]
    default_k = next(f.default for f in dataclasses.fields(SampleSettings) if f.name == "k")
    assert peek_setting([], "k", SampleSettings) == default_k
    assert (
        peek_setting(argv, "k", SampleSettings) == 4
        and peek_setting([*argv, "--iteration", "1"], "k", SampleSettings) == 16
    )
    assert peek_setting(argv, "reward_funcs", GrpoSettings) == ["majority", "gold"]  # a list setting whole
    assert peek_setting([*argv, "--reward_funcs", "format,gold"], "reward_funcs", GrpoSettings) == ["format", "gold"]
    assert peek_setting(argv, "max_problems", SampleSettings) is None
    with pytest.raises(ScpoError, match="setting k="):
        peek_setting(["--k", "many"], "k", SampleSettings)
    with pytest.raises(KeyError):
        peek_setting(argv, "no_such_setting", SampleSettings)


def test_gold_in_a_recipes_reward_list_counts_as_trained_on_gold(tmp_path):
    from scpo.loop.compare_plan import uses_gold

    recipe = tmp_path / "r.yaml"
    recipe.write_text("reward_funcs: [majority, gold]\n")
    assert uses_gold(["--config", str(recipe)])  # peek would have read only the first element


def test_no_default_is_repeated_in_a_peek():
    calls = [
        (p.relative_to(ROOT), m.group(0))
        for p in (ROOT / "scpo").rglob("*.py")
        for m in re.finditer(r"(?<!def )\bpeek\([^()]*,[^()]*,[^()]*\)", p.read_text())
    ]
    assert all("GRPO_DEFAULTS" in text or "defaults[" in text for _, text in calls), calls  # TRL's, kept as data


def test_a_field_help_survives_a_formatter_wrapping_it(tmp_path, monkeypatch):
    from scpo.core.settings import field_help

    source = """
from dataclasses import dataclass, field


@dataclass
class Wrapped:
    plain: int = 1  # one line
    long_default: str | None = (
        None  # the formatter moved me inside the parentheses
    )
    long_call: list[str] = field(
        default_factory=lambda: ["majority"]
    )  # after the closing parenthesis
    continued: int = 2  # first line
    # second line, not the help

    def method(self):
        inner: int = 3  # not a field
        return inner
"""
    (tmp_path / "wrapped_settings.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    from wrapped_settings import Wrapped

    assert field_help(Wrapped) == {
        "plain": "one line",
        "long_default": "the formatter moved me inside the parentheses",
        "long_call": "after the closing parenthesis",
        "continued": "first line",
    }


def test_a_block_another_block_includes_composes():
    from scpo.core.settings import Block, compose

    @dataclass
    class Inner(Block):
        a: int = 1

    @dataclass
    class Outer(Inner):
        b: list = field(default_factory=list)

    cls = compose("Stage", (Inner, Outer))  # Inner listed before its subclass: no consistent MRO without the filter
    assert {f.name for f in dataclasses.fields(cls)} == {"a", "b"}


def test_n_samples_and_the_vote_layout_are_checked_once_when_the_settings_are_read(tmp_path):
    from scpo.stages.grpo import parse

    common = [
        "--output_dir",
        str(tmp_path),
        "--n_votes",
        "4",
        "--per_device_train_batch_size",
        "2",
        "--steps_per_generation",
        "2",
        "--report_to",
        "none",
    ]
    with pytest.raises(ScpoError, match="n_samples=5: must be between 1 and n_votes=4"):
        parse([*common, "--n_samples", "5"])
    with pytest.raises(ScpoError, match="whole number of trained rollouts per step"):
        parse([*common, "--n_samples", "1"])  # 2 x 1/4 rollouts per step: refused before any model loads
    settings, args, _ = parse([*common, "--n_samples", "2"])
    assert (settings.n_samples, args.num_generations) == (2, 4)


def test_version(capsys):
    import tomllib

    import scpo
    from scpo.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"scpo {scpo.__version__}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]  # one home: the package's __version__
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "scpo.__version__"}
