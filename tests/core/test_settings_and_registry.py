"""Settings: TRL's keys kept as data match TRL, every command has --help, no TRL import to validate a recipe;
registries: an entry is one file, found by name, listed, and an unknown name gets the closest one."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT, run_scpo

from scpo.core.errors import ScpoError


def test_trl_keys_kept_as_data_are_the_installed_trl_fields():
    import trl
    from trl import DPOConfig, GRPOConfig, ModelConfig, SFTConfig

    from scpo.core import trl_keys

    assert trl.__version__ == trl_keys.TRL_VERSION
    for data, cls in (
        (trl_keys.DPO_CONFIG, DPOConfig),
        (trl_keys.GRPO_CONFIG, GRPOConfig),
        (trl_keys.MODEL_CONFIG, ModelConfig),
        (trl_keys.SFT_CONFIG, SFTConfig),
    ):
        assert data == {f.name for f in dataclasses.fields(cls)}, cls.__name__
    defaults = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    assert trl_keys.GRPO_DEFAULTS == {key: defaults[key] for key in trl_keys.GRPO_DEFAULTS}


@pytest.mark.slow  # a subprocess
def test_validating_a_recipe_imports_no_trl_or_torch():
    code = (
        "import sys\nfrom scpo.cli import main\nmain(['setting', 'run_name', '--config', 'recipes/cpu_demo.yaml'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'trl', 'transformers', 'vllm'}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["cpu_demo", "[]"]


@pytest.mark.slow  # scpo in a subprocess
@pytest.mark.parametrize(
    "command, expect",
    [
        (["label"], "--judge_samples"),
        (["pairs"], "--tau"),
        (["train"], "--alpha"),
        (["grpo"], "--reward_funcs"),
        (["sample"], "--adaptive_confidence"),
        (["eval"], "--eval_k"),
        (["generate-problems"], "--generation_shots"),
        (["plan"], "--iterations"),
        (["slurm", "submit"], "--array_parallelism"),
        (["data"], "--dev_fraction"),
    ],
)
def test_every_command_prints_its_settings_with_defaults_and_help(command, expect):
    from scpo import cli

    for flag in ("--help", "-h"):
        proc = run_scpo(*command, flag)
        assert proc.returncode == 0
        line = next(line for line in proc.stdout.splitlines() if line.strip().startswith(expect + " "))
        assert "default" in line
    if command[0] in ("train", "grpo"):
        assert "learning_rate" in proc.stdout  # TRL's fields are listed too
    assert command[0] in cli.COMMANDS


def test_help_text_takes_each_fields_comment():
    from scpo.core.settings import field_help
    from scpo.stages.sample import SampleSettings

    helps = field_help(SampleSettings)
    assert helps["k"].startswith("samples per prompt") and helps["backend"].startswith("vllm, or hf")


def test_unknown_keys_name_the_closest_known_key_across_stages():
    from scpo.core.settings import parse_settings
    from scpo.stages.sample import SampleSettings

    parse_settings(SampleSettings, ["--tau", "0.5", "--learning_rate", "1e-6"])  # other stages' and TRL's keys pass
    with pytest.raises(ScpoError, match="did you mean 'learning_rate'"):
        parse_settings(SampleSettings, ["--learning_rat", "1e-6"])


@pytest.fixture()
def plugin_package(tmp_path, monkeypatch):
    package = tmp_path / "shapes"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent("""
        from scpo.core.registry import Registry

        class Shape:
            name = "base"

        SHAPES = Registry("shape", __name__, Shape)
    """)
    )
    (package / "_shared.py").write_text("SIDES = {'square': 4}\n")  # not an entry
    (package / "square.py").write_text(
        textwrap.dedent("""
        from shapes import Shape
        from shapes._shared import SIDES

        class Square(Shape):
            name = "square"
            sides = SIDES["square"]
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


def test_a_registry_entry_is_one_file(plugin_package):
    import importlib

    shapes = importlib.import_module("shapes")
    assert shapes.SHAPES.names() == ["square"] and shapes.SHAPES.get("square").sides == 4
    (plugin_package / "triangle.py").write_text(
        "from shapes import Shape\n\nclass Triangle(Shape):\n    name = 'triangle'\n"
    )
    assert shapes.SHAPES.names() == ["square", "triangle"]  # one new file, nothing else edited
    assert shapes.SHAPES.get("triangle").__name__ == "Triangle"
    with pytest.raises(ScpoError, match="unknown shape 'squar' \\(did you mean 'square'\\?\\)"):
        shapes.SHAPES.get("squar")
    (plugin_package / "empty.py").write_text("X = 1\n")
    with pytest.raises(ScpoError, match="defines no Shape subclass with name = 'empty'"):
        shapes.SHAPES.get("empty")


def test_every_builtin_registry_lists_its_files():
    from scpo.adaptive import RULES
    from scpo.labelers import LABELERS
    from scpo.losses import LOSSES
    from scpo.rewards import REWARDS
    from scpo.tasks import TASKS

    assert LABELERS.names() == ["cream", "implicit", "irpo", "judge", "scir", "semantic", "votes"]
    assert LOSSES.names() == ["cream", "dpo", "irpo", "scpo"]
    assert REWARDS.names() == [
        "format",
        "gold",
        "majority",
        "negative_entropy",
        "self_certainty",
        "semantic_vote_share",
        "semantic_voting",
        "vote_share",
    ]
    assert TASKS.names() == ["free_form", "gsm8k", "math", "multiple_choice", "numeric", "zebra"]
    assert RULES.names() == ["beta", "dirichlet", "esc", "overtake"]
    for registry in (LABELERS, LOSSES, REWARDS, TASKS, RULES):
        for name in registry.names():
            assert registry.get(name).name == name


def test_a_setting_given_twice_on_the_command_line_is_an_error_naming_both_values():
    from scpo.core.settings import split_argv

    assert split_argv(["r.yaml", "--a", "1", "--flag", "--b=2"]) == ("r.yaml", {"a": "1", "flag": "true", "b": "2"})
    with pytest.raises(
        ScpoError, match=r"setting tau is given twice on the command line \(--tau 0.5, then --tau 0.7\)"
    ):
        split_argv(["--tau", "0.5", "--model", "m", "--tau=0.7"])
    with pytest.raises(ScpoError, match="setting dry_run is given twice"):
        split_argv(["--dry_run", "--dry-run", "false"])  # the hyphenated spelling is the same setting
    with pytest.raises(ScpoError, match=r"--config is given twice on the command line \(a.yaml, then b.yaml\)"):
        split_argv(["a.yaml", "--config", "b.yaml"])


def test_set_settings_replaces_every_spelling_of_a_setting_and_keeps_the_rest_in_order():
    from scpo.core.settings import set_settings, split_argv

    argv = ["r.yaml", "--model", "m0", "--k", "8", "--iter-dir=old", "--greedy", "--tau", "0.5"]
    out = set_settings(argv, model="m1", iter_dir="new", greedy="false", iteration=2)
    assert out == ["r.yaml", "--k", "8", "--tau", "0.5", "--model", "m1", "--iter_dir", "new", "--greedy", "false",
                   "--iteration", "2"]  # fmt: skip
    assert split_argv(out)[1] == {"k": "8", "tau": "0.5", "model": "m1", "iter_dir": "new", "greedy": "false",
                                  "iteration": "2"}  # fmt: skip
    assert set_settings(argv) == argv
