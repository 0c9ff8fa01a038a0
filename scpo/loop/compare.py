"""`scpo compare`: several methods on the same problems, the same budget of training rollouts and the same
held-out eval; one Markdown table and one plot.

A comparison file names the methods, each a recipe plus the settings it changes:

    run_name: compare_cpu_demo
    eval_recipe: recipes/cpu_demo.yaml    # M_0 and the held-out eval every model gets
    budget_rollouts: 1280                 # training rollouts each method samples
    methods:
      scpo: {recipe: recipes/cpu_demo.yaml, iterations: 1}
      ttrl: {trainer: grpo, recipe: recipes/grpo_cpu_demo.yaml, reward_funcs: [majority]}

An offline method (`trainer: loop`, the default) runs its loop plan (scpo/loop/plan.py) in
`<output_root>/<run_name>/<method>/`; its planned rollouts are iterations x problems x k plus every extra
completion it would sample, at most (`offline_rollouts`), and its measured rollouts every completion it sampled (`measured`: ScPO's extra samples at T=1.2, a vote teacher's samples,
new-problem candidates and judge outputs too). An online method (`trainer: grpo`) runs `scpo grpo` there with
`max_steps` = budget / rollouts per step (per_device_train_batch_size x gradient_accumulation_steps x
processes; every rollout counts, the vote-only ones too), then `scpo eval` of its model with the eval
recipe's settings. The plan refuses, before anything runs, an offline method whose planned rollouts
are not the budget or whose held-out eval differs from the eval recipe's: the table compares like with
like. Measured and reported per method: rollouts and completion tokens sampled (from the stages'
manifests and the GRPO log), optimizer steps, wall time.

Shared work: M_0's eval is made once (`<run>/M_0/eval.json`) and offered to every offline method's
iteration 0, and M_0's samples are offered from one offline method to the next; a copy is kept only when
the stage's own manifest says it fits (same config and inputs), else the stage redoes it, so sharing never
changes a result.

Resume: `compare.json` records each finished method with the hash of its specification; a re-run skips
those, and an unfinished method's stages skip what their manifests say is done. compare.md is written after
every method that finishes, the unfinished ones listed "to come" (a comparison of several hours shows each
result as it lands), and whole when the last one is done.

The table's noise: each metric's standard error over problems (scpo eval; over clusters with `cluster_by`), and
for `paired_metric` (pass@1 by default; greedy for GSM8K, the papers' headline) the paired difference to M_0 and
between the two best methods (per problem, the same problems, standard errors over clusters), which says whether
a win is beyond the noise. A second table pairs every method with M_0 on each metric, and its greedy answer with
M_0's maj@k (does one training step beat voting without it?).

This file runs the comparison; the plan (every method's commands, the budget and same-eval checks) is
scpo/loop/compare_plan.py, the measurements, table and plot scpo/reporting/compare.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scpo.core.errors import STOP_EXIT, LoopStop, ScpoError
from scpo.core.io import write_json
from scpo.core.settings import Block, parse_settings, peek_setting
from scpo.loop.compare_plan import Method, build, uses_gold
from scpo.metrics import PER_PROBLEM_METRICS as PAIRED_METRICS
from scpo.reporting.compare import measured, report
from scpo.reporting.per_problem import sidecar

TRAINERS = ("loop", "grpo")


@dataclass
class CompareSettings(Block):
    """scpo compare: methods on the same problems, rollout budget and held-out eval; a table and a plot."""

    run_name: str = "compare"  # the comparison's folder: <output_root>/<run_name>/<method>/
    output_root: str = "runs"  # where it goes
    eval_recipe: str | None = None  # the recipe whose model is M_0 and whose eval settings every model gets (required)
    budget_rollouts: int | None = None  # training rollouts per method; None: the first offline method's plan
    methods: dict = field(default_factory=dict)  # name -> {recipe: FILE, trainer: loop | grpo, <setting>: value ...}
    paired_metric: str = "pass@1"  # the paired difference column and the best-method lines: pass@1 | greedy | maj
    dry_run: bool = False  # print each method's commands instead of running them
    iteration: int = 0  # (unused; every settings class has it)

    def __post_init__(self):
        super().__post_init__()
        if not self.methods:
            raise ScpoError("setting methods: name at least one method (name: {recipe: FILE, ...})")
        for name, spec in self.methods.items():
            where = f"setting methods.{name}"
            if not isinstance(spec, dict) or not spec.get("recipe"):
                raise ScpoError(f"{where}: needs a recipe (methods: {{{name}: {{recipe: recipes/....yaml}}}})")
            if not Path(str(spec["recipe"])).exists():
                raise ScpoError(f"{where}.recipe={spec['recipe']!r}: no such file")
            if spec.get("trainer", "loop") not in TRAINERS:
                raise ScpoError(f"{where}.trainer={spec['trainer']!r}: expected one of {TRAINERS}")
            if name == "M_0" or "/" in name:
                raise ScpoError(f"{where}: {name!r} cannot name a method (M_0 is the initial model's row)")
        if not self.run_name or not self.run_name.strip() or "/" in self.run_name:
            raise ScpoError(f"setting run_name={self.run_name!r}: the comparison's folder name, non-empty, no '/'")
        if not self.eval_recipe:
            raise ScpoError(
                "setting eval_recipe: name the recipe whose model is M_0 and whose held-out eval every "
                "method gets (e.g. eval_recipe: recipes/compare_cpu_demo/eval.yaml)"
            )
        if not Path(self.eval_recipe).exists():
            raise ScpoError(f"setting eval_recipe={self.eval_recipe!r}: no such file")
        if self.paired_metric not in PAIRED_METRICS:
            raise ScpoError(f"setting paired_metric={self.paired_metric!r}: one of {', '.join(PAIRED_METRICS)}")
        if self.budget_rollouts is not None and self.budget_rollouts <= 0:
            raise ScpoError(f"setting budget_rollouts={self.budget_rollouts}: must be > 0")


SETTINGS = CompareSettings


def run(s: CompareSettings) -> dict:
    from scpo.core.lock import run_lock
    from scpo.stages.eval import EvalSettings

    # the plan: every method's commands, checked for equal budgets and the same held-out eval before anything runs
    root, m0_eval, methods = build(s)
    k = peek_setting(["--config", s.eval_recipe], "eval_k", EvalSettings)
    if s.dry_run:
        for command in [m0_eval] + [c for m in methods for c in m.commands]:
            print("scpo " + " ".join(command))
        return {}
    with run_lock(root, "scpo compare"):
        # the methods already finished (compare.json)
        state_path = root / "compare.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        done = state.get("methods", {})

        # M_0's held-out eval, made once for every method
        run_command(m0_eval)
        m0_path = root / "M_0" / "eval.json"

        # each method in turn: offered M_0's eval and samples, skipped when finished with the same specification
        previous_samples = None
        for m in methods:
            if m.trainer == "loop":
                offer(m0_path, m.folder / "iter_0" / "eval.json")
                if previous_samples is not None:
                    offer(previous_samples, m.folder / "iter_0" / "samples.jsonl")
                previous_samples = m.folder / "iter_0" / "samples.jsonl"
            record = done.get(m.name)
            if record and record.get("spec_hash") == m.spec_hash and Path(record["eval"]).exists():
                print(f"[compare] {m.name}: done ({record['wall_s']:.0f} s)", file=sys.stderr)
                continue
            done[m.name] = run_method(m, state, done, state_path)
            write_json(state_path, {**state, "settings": dataclasses.asdict(s), "methods": done})
            finished = [n for n in methods if n.name in done and done[n.name].get("spec_hash") == n.spec_hash]
            if len(finished) < len(methods):  # a partial compare.md: each result shows as it lands
                pending = {n.name: n.trainer for n in methods if n not in finished}
                report(
                    root,
                    s.run_name,
                    s.eval_recipe,
                    k,
                    {n.name: done[n.name] for n in finished},
                    m0_path,
                    gold_methods(methods),
                    s.paired_metric,
                    pending,
                )

        # the report: compare.md and compare.png
        results = {m.name: done[m.name] for m in methods}
        md = report(root, s.run_name, s.eval_recipe, k, results, m0_path, gold_methods(methods), s.paired_metric)
        print(md)
        return results


def gold_methods(methods: list[Method]) -> set[str]:
    """The methods that train on gold answers (the table names the best one without them too)."""
    return {m.name for m in methods if uses_gold(m.argv)}


def offer(source: Path, target: Path) -> None:
    """Copies a finished stage output and its manifest (and eval's samples) where a stage would write them, unless
    something is already there; the stage keeps the copy only when its manifest fits."""
    manifest = source.with_name(source.name + ".manifest.json")
    if not source.exists() or not manifest.exists() or target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    extra = [sidecar(source, "samples"), sidecar(source, "per_problem")] if source.suffix == ".json" else []
    for path in [*extra, source, manifest]:  # the manifest last: a half-made copy has none and is redone
        if path.exists():
            shutil.copy2(path, target.with_name(path.name))


def run_method(m: Method, state: dict, done: dict, state_path: Path) -> dict:
    """Runs a method's commands in order and returns its record for compare.json: its time (a killed or failed
    method's time so far is kept in the state and counts when it resumes), its held-out eval and what it sampled."""
    elapsed = state.setdefault("elapsed_s", {})
    for command in m.commands:
        started = time.time()
        try:
            run_command(command)
        except LoopStop:  # the guard kept the best model and its eval; the report is the last command
            run_command(m.commands[-1])
            break
        finally:  # a killed or failed method's time so far counts when it resumes
            elapsed[m.name] = round(elapsed.get(m.name, 0) + time.time() - started, 1)
            write_json(state_path, {**state, "methods": done})
    final = m.final_eval
    if (m.folder / "guard.json").exists():  # the method's own rule chose its model, on its dev file: the
        guard = json.loads((m.folder / "guard.json").read_text())  # held-out eval of that iteration
        final = m.folder / f"iter_{guard['best_iteration']}" / "eval.json"
    record = {
        "trainer": m.trainer,
        "spec_hash": m.spec_hash,
        "eval": str(final),
        "wall_s": elapsed[m.name],
        "planned_rollouts": m.rollouts,
        **measured(m.folder, m.trainer, m.rollouts_per_step),
    }
    elapsed.pop(m.name)
    return record


def run_command(args: list[str]) -> None:
    script = Path(sys.executable).with_name("scpo")  # the console script beside this interpreter, as iterate.sh runs it
    command = [str(script), *args] if script.exists() else [sys.executable, "-m", "scpo.cli", *args]
    print(f"[compare] scpo {' '.join(args)}", file=sys.stderr, flush=True)
    status = subprocess.run(command).returncode
    if status == STOP_EXIT:  # the collapse guard stopped this method's loop: its best model stands, the report follows
        raise LoopStop("stopped by the collapse guard")
    if status != 0:
        raise ScpoError(
            f"`scpo {args[0]}` failed (exit {status}); fix it and run scpo compare again: finished "
            "stages and methods are kept"
        )


def main(argv: list[str]) -> dict:
    """`scpo compare --config recipes/compare_cpu_demo.yaml [--setting value ...]`."""
    return run(parse_settings(CompareSettings, argv))
