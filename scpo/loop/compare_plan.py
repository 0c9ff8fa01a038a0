"""The plan of `scpo compare` (scpo/loop/compare.py): every method's commands, made and checked before anything runs.

An offline method (`trainer: loop`) gets its loop plan (scpo/loop/plan.py) and its planned training rollouts
(`offline_rollouts`: every completion the plan samples to make the model, at most); an online method (`trainer:
grpo`) gets `scpo grpo` with `max_steps` = budget / rollouts per step (`grpo_rollouts_per_step`), then `scpo eval`
of its model. `build` refuses a method whose rollouts are not the budget, whose held-out eval differs from the eval
recipe's or whose M_0 is another model; each method's `spec_hash` covers its specification and the content of every
file it depends on (`depends_on`), so an edited recipe or data file reruns it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scpo.core import trl_keys
from scpo.core.blocks import LaunchBlock, ModelBlock
from scpo.core.errors import ScpoError
from scpo.core.io import config_digest, file_digest
from scpo.core.settings import parse_settings, peek, peek_setting, set_settings
from scpo.labelers import LABELERS
from scpo.loop.plan import LoopSettings, chained, plan, teacher_samples_at

if TYPE_CHECKING:
    from scpo.loop.compare import CompareSettings

EVAL_KEYS_LEFT_OUT = ("iter_dir", "eval_output", "overwrite", "iteration", "model", "verbose")
DATA_SETTINGS = ("problems_file", "eval_file", "dev_file", "guard_file", "sft_file")


@dataclass
class Method:
    name: str
    trainer: str
    folder: Path
    argv: list[str]  # the recipe and overrides (and where the method works)
    rollouts: int  # planned training rollouts
    commands: list[list[str]]  # `scpo <stage> ...` argument lists, in order
    spec_hash: str = ""
    final_eval: Path | None = None
    rollouts_per_step: int = 0


def build(s: CompareSettings) -> tuple[Path, list[str], list[Method]]:
    """Every method's commands, after the equal-budget and same-eval checks (nothing has run yet)."""
    root = Path(s.output_root) / s.run_name
    base = ["--config", s.eval_recipe]
    base_eval = eval_config(base)
    base_model = peek_setting(base, "model", ModelBlock)
    m0_eval = ["eval", *set_settings(base, iter_dir=root / "M_0", iteration=0)]
    methods: list[Method] = []
    budget = s.budget_rollouts
    for name, spec in s.methods.items():
        trainer = spec.get("trainer", "loop")
        argv = ["--config", str(spec["recipe"]), *overrides(spec)]
        model = peek_setting(argv, "model", ModelBlock)
        if model != base_model:
            raise ScpoError(
                f"method {name}: model {model!r} is not the eval recipe's M_0 {base_model!r}: "
                "every method starts from the same model"
            )
        folder = root / name
        spec_hash = config_digest(
            {
                "spec": spec,
                "eval": base_eval,
                "budget": budget,
                "files": depends_on(argv, str(spec["recipe"]), s.eval_recipe),
            }
        )
        if trainer == "loop":
            argv = set_settings(argv, output_root=root, run_name=name)
            mine = eval_config(argv)
            if mine != base_eval:
                diff = {
                    k: (mine.get(k), base_eval.get(k))
                    for k in set(mine) | set(base_eval)
                    if mine.get(k) != base_eval.get(k)
                }
                raise ScpoError(
                    f"method {name}: its held-out eval differs from eval_recipe {s.eval_recipe} "
                    f"(setting: (method, eval recipe)) {diff}; set the same values"
                )
            rollouts = offline_rollouts(argv)
            if budget is None:
                budget = rollouts
            elif rollouts != budget:
                raise ScpoError(
                    f"method {name}: plans {rollouts} training rollouts (iterations x problems x k, and "
                    f"every extra completion: resampled, teacher, new-problem and judge samples), "
                    f"budget_rollouts is {budget}; change its k, max_problems or iterations"
                )
            loop, steps = plan(argv)
            commands = [c for c in chained(steps) if c[0] != "report"]  # as recipes/iterate.sh runs them
            commands.append(["report", str(folder)])
            final = folder / f"iter_{loop.iterations}" / "eval.json"
            methods.append(Method(name, trainer, folder, argv, rollouts, commands, spec_hash, final))
        else:
            methods.append(
                Method(
                    name,
                    trainer,
                    folder,
                    argv,
                    0,
                    [],
                    spec_hash,
                    folder / "iter_1" / "eval.json",
                    grpo_rollouts_per_step(argv),
                )
            )
    if budget is None:
        raise ScpoError("no offline method sets the budget: set budget_rollouts")
    for m in methods:
        if m.trainer == "grpo":
            spec = s.methods[m.name]  # the recipe's own max_steps gives way to the budget unless the method sets one
            if budget % m.rollouts_per_step:
                raise ScpoError(
                    f"method {m.name}: budget_rollouts {budget} is not a whole number of GRPO steps of "
                    f"{m.rollouts_per_step} rollouts (per_device_train_batch_size x "
                    "gradient_accumulation_steps x processes); change either so that they divide"
                )
            steps = int(spec["max_steps"]) if "max_steps" in spec else budget // m.rollouts_per_step
            m.rollouts = int(steps) * m.rollouts_per_step
            if m.rollouts != budget:
                raise ScpoError(
                    f"method {m.name}: max_steps {steps} x {m.rollouts_per_step} rollouts per step = "
                    f"{m.rollouts}, budget_rollouts is {budget}; leave max_steps out (compare sets it)"
                )
            model_dir = m.folder / "model"
            m.commands = [
                ["grpo", *set_settings(m.argv, max_steps=steps, output_dir=model_dir)],
                ["eval", *set_settings(base, model=model_dir, iter_dir=m.folder / "iter_1", iteration=1)],
            ]
            m.spec_hash = config_digest({"hash": m.spec_hash, "max_steps": steps, "budget": budget})
    return root, m0_eval, methods


def overrides(spec: dict) -> list[str]:
    out = []
    for key, value in spec.items():
        if key not in ("recipe", "trainer"):
            out += [f"--{key}", cli_value(value)]
    return out


def cli_value(value) -> str:
    """A recipe value as a command-line value (lists comma-joined, mappings as JSON, which YAML reads)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def eval_config(argv: list[str]) -> dict:
    from scpo.stages.eval import EvalSettings

    return parse_settings(EvalSettings, argv).hashed(leave_out=EVAL_KEYS_LEFT_OUT)


def depends_on(argv: list[str], recipe: str, eval_recipe: str) -> dict[str, str]:
    """The content of every file a method's result depends on: its recipe, the eval recipe and the data files they
    name. A method's result is reused only while all of them are unchanged (an edited recipe reruns it)."""
    files = {"recipe": recipe, "eval_recipe": eval_recipe}
    for key in DATA_SETTINGS:
        for source, args in (("", argv), ("eval_recipe.", ["--config", eval_recipe])):
            value = peek(args, key)
            if value not in (None, "null", "None", ""):
                files[source + key] = str(value)
    return {key: file_digest(path) if Path(path).is_file() else "missing" for key, path in files.items()}


def offline_rollouts(argv: list[str]) -> int:
    """Every completion the plan samples to make the model, at most. Per iteration t: the k votes of each problem
    (new problems counted as if all were kept), ScPO's `resample_n` extras (as if every prompt were unanimous),
    one completion per new-problem candidate, a vote teacher's k samples per problem (frozen: from t = 1, or t = 0
    with a teacher_model; ema: from t = 1) and a judge labeler's `judge_samples` outputs per response."""
    from scpo.labelers.judge import JudgeSettings
    from scpo.stages.label import LabelSettings
    from scpo.stages.sample import SampleSettings

    loop = parse_settings(LoopSettings, argv)
    problems = str(peek(argv, "problems_file"))
    if not Path(problems).exists():
        raise ScpoError(f"problems_file={problems!r}: no such file")
    labeler = LABELERS.get(peek_setting(argv, "labeler", LabelSettings))
    total = 0
    for t in range(loop.iterations):
        at = set_settings(argv, iteration=t)
        n = count_rows(problems)
        limit = peek_setting(at, "max_problems", SampleSettings)
        n = min(n, limit) if limit is not None else n
        new = peek_setting(at, "new_problems", SampleSettings)
        k = peek_setting(at, "k", SampleSettings)
        total += (n + new) * (k + peek_setting(at, "resample_n", SampleSettings)) + new
        if teacher_samples_at(loop, t):
            total += (n + new) * k
        if "judge" in getattr(labeler, "signals", ()):
            total += (n + new) * k * peek_setting(at, "judge_samples", JudgeSettings)
    return total


def count_rows(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def grpo_rollouts_per_step(argv: list[str]) -> int:
    defaults = trl_keys.GRPO_DEFAULTS  # TRL's own, kept as data (no TRL import) and checked against TRL by a test
    per_device = int(peek(argv, "per_device_train_batch_size", defaults["per_device_train_batch_size"]))
    accumulation = int(peek(argv, "gradient_accumulation_steps", defaults["gradient_accumulation_steps"]))
    processes = peek_setting(argv, "num_processes", LaunchBlock) or 1  # unset: one process
    return per_device * accumulation * processes


def uses_gold(argv: list[str]) -> bool:
    """Whether a method (its recipe and overrides) trains on gold answers: IRPO's upper bound, semi-supervised
    mixes, the gold reward."""
    from scpo.stages.grpo import GrpoSettings

    rewards = peek_setting(argv, "reward_funcs", GrpoSettings)  # the whole list, not one per iteration
    return peek_setting(argv, "mode", LABELERS.get("votes").settings) != "unsupervised" or "gold" in rewards
